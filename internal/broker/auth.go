package broker

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jetsms/jetsms/internal/loopback"
	"github.com/jetsms/jetsms/internal/secret"
)

// The embedded server's generated credentials: the user EmbeddedUser with the
// password kept in the file PasswordFile of the store directory (mode 0600).
const (
	EmbeddedUser = "jetsms"
	PasswordFile = "nats.password"
)

// passwordBytes is the generated password's entropy: 32 random bytes, written as
// 43 characters of unpadded URL-safe base64, so the password can stand in a URL.
const passwordBytes = 32

// Credentials are what a NATS client presents: a user and password, or a token.
type Credentials struct {
	User     string
	Password secret.Secret
	Token    secret.Secret
}

// IsZero reports whether no credential is set.
func (c Credentials) IsZero() bool { return c.User == "" && !c.Password.IsSet() && !c.Token.IsSet() }

// PasswordPath is the path of the embedded server's password file in storeDir.
func PasswordPath(storeDir string) string { return filepath.Join(storeDir, PasswordFile) }

// LoadOrCreateCredentials returns the embedded server's credentials kept in
// storeDir, creating the password file (mode 0600) on first use. Two processes
// starting at once agree: the file appears whole or not at all, and the first
// one written wins.
func LoadOrCreateCredentials(storeDir string) (Credentials, error) {
	password, err := LoadOrCreatePassword(storeDir, PasswordFile)
	if err != nil {
		return Credentials{}, fmt.Errorf("embedded nats: %w", err)
	}
	return Credentials{User: EmbeddedUser, Password: password}, nil
}

// ReadCredentials reads the embedded server's credentials from storeDir. found
// is false when there is no password file. A file that others than its owner may
// read or write is refused, as ssh refuses a private key.
func ReadCredentials(storeDir string) (creds Credentials, found bool, err error) {
	password, found, err := ReadPassword(storeDir, PasswordFile)
	if err != nil || !found {
		return Credentials{}, found, err
	}
	return Credentials{User: EmbeddedUser, Password: password}, true, nil
}

// LoadOrCreatePassword returns the password kept in the file name of dir,
// generating it (32 random bytes as unpadded URL-safe base64, mode 0600) on first
// use. Two processes starting at once agree: the file appears whole or not at
// all, and the first one written wins. The embedded server's password and the
// console's generated admin password are both kept this way.
func LoadOrCreatePassword(dir, name string) (secret.Secret, error) {
	password, found, err := ReadPassword(dir, name)
	if err != nil || found {
		return password, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("store_dir: %w", err)
	}
	raw := make([]byte, passwordBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate %s: %w", name, err)
	}
	generated := base64.RawURLEncoding.EncodeToString(raw)
	// Written whole to a temporary file (created 0600), then linked into place,
	// which fails if another process got there first.
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, err = tmp.WriteString(generated + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	password, found, err = ReadPassword(dir, name)
	if err == nil && !found {
		err = fmt.Errorf("%s vanished after it was written", path)
	}
	return password, err
}

// ReadPassword reads the password kept in the file name of dir. found is false
// when there is no such file. A file that others than its owner may read or
// write is refused, as ssh refuses a private key.
func ReadPassword(dir, name string) (password secret.Secret, found bool, err error) {
	path := filepath.Join(dir, name)
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("credentials %s: %w", path, err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", false, fmt.Errorf("credentials %s: mode %04o lets other users read it; chmod 600 it", path, perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("credentials %s: %w", path, err)
	}
	text := strings.TrimSpace(string(data))
	if text == "" || strings.ContainsAny(text, " \t\r\n") {
		return "", false, fmt.Errorf("credentials %s: must hold one password on one line", path)
	}
	return secret.Secret(text), true, nil
}

// isLocalURLs reports whether every URL of a comma-separated list points at this
// machine (a loopback or unspecified address, or localhost) and carries no
// credentials of its own. Only then does Connect add the embedded server's
// credentials, so they never leave the machine.
func isLocalURLs(list string) bool {
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if !strings.Contains(part, "://") {
			part = "nats://" + part
		}
		u, err := url.Parse(part)
		if err != nil || u.User != nil || u.Host == "" {
			return false
		}
		host := u.Hostname()
		ip := net.ParseIP(host)
		if !loopback.Host(host) && (ip == nil || !ip.IsUnspecified()) {
			return false
		}
	}
	return true
}
