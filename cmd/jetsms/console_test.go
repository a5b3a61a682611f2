package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConsoleCredentials: without admin credentials, `jetsms run` generates the
// console's password in the data directory (0600), logs the address and the file,
// and keeps the password across a restart; /metrics stays open on loopback. With
// admin credentials the console takes those and generates nothing.
func TestConsoleCredentials(t *testing.T) {
	t.Parallel()
	b := setupRun(t)
	b.natsURL(t)
	line := b.proc.waitLog(t, startTimeout, "console")
	file := filepath.Join(b.store, "admin.password")
	require.Equal(t, file, line.str("password_file"))
	require.Equal(t, "admin", line.str("user"))
	info, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	password := strings.TrimSpace(string(raw))
	url := line.str("url")
	admin := strings.TrimSuffix(url, "/console/")
	require.Equal(t, b.adminURL(t), admin)

	code, _ := httpGet(t, url, "", "")
	require.Equal(t, http.StatusUnauthorized, code, "the console needs credentials even on loopback")
	code, body := httpGet(t, url, "admin", password)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `id="lanes"`)
	code, _ = httpGet(t, admin+"/metrics", "", "")
	require.Equal(t, http.StatusOK, code, "without admin credentials /metrics stays open on loopback")
	for _, l := range b.proc.output() {
		require.NotContains(t, l, password, "the console password is never logged")
	}

	// A restart on the same directory keeps the password.
	require.NoError(t, b.proc.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, b.proc.wait(t, exitTimeout))
	again := startJetsms(t, nil, "run", "--nats.embedded.store_dir", b.store, "--nats.embedded.listen", "127.0.0.1:0",
		"--sandbox.listen", "127.0.0.1:0", "--callbacks.listen", "127.0.0.1:0", "--admin.listen", "127.0.0.1:0")
	url = again.waitLog(t, startTimeout, "console").str("url")
	code, _ = httpGet(t, url, "admin", password)
	require.Equal(t, http.StatusOK, code)

	// Configured admin credentials are the console's.
	const user, pass = "ops", "adm-pw-4e2b"
	c := setupRun(t, "--admin.username", user, "--admin.password", pass)
	line = c.proc.waitLog(t, startTimeout, "console")
	require.Equal(t, user, line.str("user"))
	require.Empty(t, line.str("password_file"))
	code, _ = httpGet(t, line.str("url"), user, pass)
	require.Equal(t, http.StatusOK, code)
	_, err = os.Stat(filepath.Join(c.store, "admin.password"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
