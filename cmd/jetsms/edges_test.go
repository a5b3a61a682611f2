package main

import (
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker"
)

// httpGet returns the status and body of a GET, with HTTP Basic credentials when
// user is set.
func httpGet(t *testing.T, url, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// TestAdminListener: /metrics, /healthz and /readyz are on the admin listener, not
// on the public callbacks listener, and the admin credentials guard /metrics.
func TestAdminListener(t *testing.T) {
	t.Parallel()
	const user, pass = "ops", "adm-pw-7c1d"
	b := setupRun(t, "--admin.username", user, "--admin.password", pass)
	b.natsURL(t)
	admin := b.adminURL(t)
	callbacks := strings.TrimSuffix(b.proc.waitLog(t, 0, "jetsms running").str("callbacks"), "/callbacks/dlr")

	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/"} {
		code, _ := httpGet(t, callbacks+path, "", "")
		require.Equal(t, http.StatusNotFound, code, "the callbacks listener serves only the callback paths: %s", path)
	}
	code, body := httpGet(t, admin+"/readyz", "", "")
	require.Equal(t, http.StatusOK, code, "probes need no credentials")
	require.Equal(t, "ready\n", body)
	code, body = httpGet(t, admin+"/healthz", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	code, _ = httpGet(t, admin+"/metrics", "", "")
	require.Equal(t, http.StatusUnauthorized, code)
	code, _ = httpGet(t, admin+"/metrics", user, "wrong")
	require.Equal(t, http.StatusUnauthorized, code)
	code, body = httpGet(t, admin+"/metrics", user, pass)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "jetsms_build_info")
	for _, l := range b.proc.output() {
		require.NotContains(t, l, pass, "the admin password is never logged")
	}
}

// TestAdminBeyondLoopbackNeedsCredentials: a start with admin.listen on every
// interface and no credentials is refused before anything listens, unless
// admin.allow_unauthenticated says so.
func TestAdminBeyondLoopbackNeedsCredentials(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	p := startJetsms(t, nil, "run", "--nats.embedded.store_dir", store, "--nats.embedded.listen", "127.0.0.1:0",
		"--sandbox.listen", "127.0.0.1:0", "--callbacks.listen", "127.0.0.1:0", "--admin.listen", "0.0.0.0:0")
	require.Equal(t, 1, p.wait(t, exitTimeout))
	require.Contains(t, strings.Join(p.output(), "\n"),
		`jetsms run: admin.listen: "0.0.0.0:0" is reachable beyond this machine, so it needs admin.username and admin.password`)
	_, err := os.Stat(broker.PasswordPath(store))
	require.ErrorIs(t, err, os.ErrNotExist, "refused before the embedded server started")

	open := setupRun(t, "--admin.listen", "0.0.0.0:0", "--admin.allow_unauthenticated=true")
	open.plainURL(t)
	open.proc.waitLog(t, 0, "admin listener without credentials beyond loopback (admin.allow_unauthenticated): anyone who reaches it reads /metrics")
}

// TestEmbeddedNATSNeedsItsPassword: the embedded server refuses clients without
// credentials; a second jetsms command finds the generated password in the store
// directory without being told; the file is 0600; a restart reuses it.
func TestEmbeddedNATSNeedsItsPassword(t *testing.T) {
	t.Parallel()
	b := setupRun(t, "--sandbox.dlr_mix", "received=1", "--sandbox.dlr_delay", "10ms")
	plain := b.plainURL(t)

	_, err := nats.Connect(plain, nats.NoReconnect())
	require.ErrorIs(t, err, nats.ErrAuthorization, "an unauthenticated client is refused")

	info, err := os.Stat(broker.PasswordPath(b.store))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	before, err := os.ReadFile(broker.PasswordPath(b.store))
	require.NoError(t, err)

	// Told only where the store is, as a command run beside `jetsms run` is.
	res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--id", "auth-1",
		"--wait", "--timeout", "20s", "--nats.url", plain, "--nats.embedded.store_dir", b.store)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "job auth-1 published")
	dead := runJetsms(t, "dead", "list", "--nats.url", plain, "--nats.embedded.store_dir", b.store)
	require.Equal(t, 0, dead.code, dead.stderr)

	// Elsewhere, without the file: refused at once, with a hint.
	res = runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--nats.url", plain, "--nats.embedded.store_dir", t.TempDir())
	require.Equal(t, 1, res.code)
	require.Contains(t, res.stderr, "Authorization Violation")
	require.Contains(t, res.stderr, "nats.password: run where `jetsms run` runs, set nats.embedded.store_dir to its directory")

	// A restart on the same store keeps the password.
	require.NoError(t, b.proc.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, b.proc.wait(t, exitTimeout))
	again := &runBundle{store: b.store, proc: startJetsms(t, nil, "run",
		"--nats.embedded.store_dir", b.store, "--nats.embedded.listen", "127.0.0.1:0",
		"--sandbox.listen", "127.0.0.1:0", "--callbacks.listen", "127.0.0.1:0", "--admin.listen", "127.0.0.1:0")}
	again.plainURL(t)
	after, err := os.ReadFile(broker.PasswordPath(b.store))
	require.NoError(t, err)
	require.Equal(t, before, after)
	nc, err := nats.Connect(again.natsURL(t))
	require.NoError(t, err, "the same credentials work after the restart")
	nc.Close()
	for _, l := range append(b.proc.output(), again.proc.output()...) {
		require.NotContains(t, l, strings.TrimSpace(string(before)), "the password is never logged")
	}
}
