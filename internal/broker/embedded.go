package broker

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetsms/jetsms/internal/loopback"
)

// ReadyTimeoutDefault bounds how long StartEmbedded waits for the server to accept
// connections.
const ReadyTimeoutDefault = 10 * time.Second

// EmbeddedConfig configures the embedded NATS server.
type EmbeddedConfig struct {
	// StoreDir is where JetStream keeps its files. Required.
	StoreDir string
	// Listen is host:port for clients; port 0 picks a free port (tests).
	Listen string
	// SyncAlways makes every write reach the disk before it is acknowledged.
	SyncAlways bool
	// SyncInterval, when SyncAlways is false, is how often writes are flushed to
	// disk; zero means the server's default (2 minutes).
	SyncInterval time.Duration
	// ServerName names the server in logs and monitoring; default "jetsms".
	ServerName string
	// Auth is what clients must present: a user and password, or a token. When
	// it is zero, the server requires the generated credentials kept in StoreDir
	// (LoadOrCreateCredentials), which Connect finds through
	// ConnectConfig.LocalCredentialsDir.
	Auth Credentials
	// NoAuth lets any client in, for tests only; it is refused unless Listen is a
	// loopback address.
	NoAuth bool
}

// Embedded is a running in-process NATS server with JetStream.
type Embedded struct {
	srv *server.Server
	// passwordFile is the generated credentials' file, or "" when the
	// credentials were given or there are none.
	passwordFile string
}

// StartEmbedded starts a NATS server with JetStream in this process and returns once
// it accepts connections.
func StartEmbedded(cfg EmbeddedConfig, log *zap.Logger) (*Embedded, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded nats: store_dir must not be empty")
	}
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: listen %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("embedded nats: listen %q: port must be 0 to 65535", cfg.Listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if cfg.NoAuth && !cfg.Auth.IsZero() {
		return nil, errors.New("embedded nats: NoAuth cannot be combined with Auth")
	}
	if cfg.NoAuth && !loopback.Host(host) {
		// Anyone who reaches the port could publish jobs, read phone numbers
		// and delete streams.
		return nil, fmt.Errorf("embedded nats: listen %q: refusing to listen beyond loopback without authentication", cfg.Listen)
	}
	switch a := cfg.Auth; {
	case a.Token.IsSet() && (a.User != "" || a.Password.IsSet()):
		return nil, errors.New("embedded nats: a token cannot be combined with a user and password")
	case !a.Token.IsSet() && (a.User == "") != !a.Password.IsSet():
		return nil, errors.New("embedded nats: a user and a password go together")
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded nats: store_dir: %w", err)
	}
	auth, passwordFile := cfg.Auth, ""
	if auth.IsZero() && !cfg.NoAuth {
		if auth, err = LoadOrCreateCredentials(cfg.StoreDir); err != nil {
			return nil, err
		}
		passwordFile = PasswordPath(cfg.StoreDir)
	}
	name := cfg.ServerName
	if name == "" {
		name = "jetsms"
	}
	opts := &server.Options{
		ServerName:   name,
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncAlways:   cfg.SyncAlways,
		SyncInterval: cfg.SyncInterval,
		NoSigs:       true, // the jetsms process owns signal handling
		HTTPPort:     0,    // no monitoring port unless asked for
	}
	if auth.Token.IsSet() {
		opts.Authorization = serverSecret(auth.Token.Reveal())
	} else if auth.User != "" {
		opts.Username, opts.Password = auth.User, serverSecret(auth.Password.Reveal())
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if log != nil {
		srv.SetLoggerV2(serverLogger{log.Named("nats").Sugar()}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(ReadyTimeoutDefault) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready for connections on %s within %s", cfg.Listen, ReadyTimeoutDefault)
	}
	return &Embedded{srv: srv, passwordFile: passwordFile}, nil
}

// ClientURL is the URL clients on this machine connect to, e.g.
// nats://127.0.0.1:4222; a server listening on every interface is reached on
// 127.0.0.1. It carries no credentials.
func (e *Embedded) ClientURL() string {
	addr, ok := e.srv.Addr().(*net.TCPAddr)
	if !ok {
		return e.srv.ClientURL()
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// PasswordFile is the file holding the generated password clients present (with
// the user EmbeddedUser), or "" when the credentials were given in
// EmbeddedConfig.Auth or the server needs none.
func (e *Embedded) PasswordFile() string { return e.passwordFile }

// Server gives access to the underlying server (tests use it to stop and restart).
func (e *Embedded) Server() *server.Server { return e.srv }

// Stop shuts the server down and waits until it has. It is safe to call twice.
func (e *Embedded) Stop() {
	if e == nil || e.srv == nil {
		return
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// serverSecret is the form of a password or token the server is given: a bcrypt
// hash, which the server compares against what clients present, so that its
// options hold no usable secret and it does not warn of plaintext passwords at
// every start. The cost is bcrypt's minimum: every connection pays it, and the
// generated password is 32 random bytes, which no cost would make stronger. A
// secret bcrypt cannot take (over 72 bytes) is given as it is; the server then
// compares it in constant time, and warns.
func serverSecret(plain string) string {
	hash, err := bcrypt.GenerateFromPassword([]byte(plain), bcrypt.MinCost)
	if err != nil {
		return plain
	}
	return string(hash)
}

// serverLogger sends the server's own log lines to zap.
type serverLogger struct{ s *zap.SugaredLogger }

func (l serverLogger) Noticef(format string, v ...any) { l.s.Debugf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.s.Warnf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.s.Errorf(format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.s.Errorf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.s.Debugf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.s.Debugf(format, v...) }
