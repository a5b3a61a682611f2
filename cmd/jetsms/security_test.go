package main

import (
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
)

func TestCallbacksNeedCredentials(t *testing.T) {
	t.Parallel()
	gateway := []string{"--gateway.url", "https://gw.example/rest/sms/v2", "--gateway.username", "app", "--gateway.password", "pw",
		"--nats.url", "nats://127.0.0.1:1"}

	for _, cmd := range []string{"worker", "receiver"} {
		t.Run(cmd+"RefusesToStartWithoutThem", func(t *testing.T) {
			t.Parallel()
			res := runJetsms(t, append([]string{cmd}, gateway...)...)
			require.NotEqual(t, 0, res.code)
			require.Contains(t, res.stderr, "callbacks.username: required, with callbacks.password")
			require.Contains(t, res.stderr, "callbacks.allow_unauthenticated: true")
		})
	}

	t.Run("AllowUnauthenticatedStartsWithAWarning", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		p := startJetsms(t, nil, "receiver", "--nats.url", env.URL, "--gateway.username", "app", "--gateway.password", "pw",
			"--callbacks.allow_unauthenticated=true", "--callbacks.listen", "127.0.0.1:0")
		p.waitLog(t, startTimeout, "jetsms running")
		require.Contains(t, strings.Join(p.output(), "\n"), "callbacks are accepted without credentials")
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, p.wait(t, exitTimeout))
	})

	t.Run("AStartUpErrorHidesAPasswordOfAnyCharacters", func(t *testing.T) {
		t.Parallel()
		const pw = "p#ss/w?rd"
		res := runJetsms(t, "worker", "--nats.url", "nats://jetsms:"+pw+"@127.0.0.1:1",
			"--gateway.username", "app", "--gateway.password", "pw", "--callbacks.username", "gw", "--callbacks.password", "cb")
		require.NotEqual(t, 0, res.code)
		require.NotContains(t, res.stderr, pw)
		require.NotContains(t, res.stderr, "ss/w")
		require.Contains(t, res.stderr, "nats.url")
	})
}

// TestNATSConnectionKickedByTheServer: the server closes the process's
// connections (the shared one and the ledger's); within 10 s the process is
// ready again (reconnected), or has exited non-zero.
func TestNATSConnectionKickedByTheServer(t *testing.T) {
	t.Parallel()
	env := brokertest.Run(t)
	p := startJetsms(t, nil, "receiver", "--nats.url", env.URL, "--gateway.username", "app", "--gateway.password", "pw",
		"--callbacks.username", "gw", "--callbacks.password", "cb", "--callbacks.listen", "127.0.0.1:0")
	running := p.waitLog(t, startTimeout, "jetsms running")
	base := running.str("admin") // /readyz and /healthz are on the admin listener
	require.Equal(t, http.StatusOK, get(t, base+"/readyz"))

	srv := env.Server.Server()
	connz, err := srv.Connz(nil)
	require.NoError(t, err)
	kicked := 0
	for _, c := range connz.Conns {
		if c.Name == "jetsms" || c.Name == "jetsms-ledger" {
			require.NoError(t, srv.DisconnectClientByID(c.Cid))
			kicked++
		}
	}
	require.Equal(t, 2, kicked, "the process's connections")

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.exited:
			require.NotEqual(t, 0, p.code, "a process that lost NATS for good exits non-zero")
			return
		default:
		}
		if get(t, base+"/readyz") == http.StatusOK && get(t, base+"/healthz") == http.StatusOK {
			return // reconnected
		}
		require.True(t, time.Now().Before(deadline), "neither ready again nor exited within 10 s")
		select {
		case <-p.exited:
		case <-time.After(50 * time.Millisecond): // polled: readiness has no event to wait on
		}
	}
}

func get(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestNATSConnectionClosedForGood: the server starts requiring credentials the
// process does not have, then kicks it; nats.go gives up after the refused
// reconnects and closes the connection for good. Within 10 s the process has
// exited non-zero, for its supervisor to start a new one.
func TestNATSConnectionClosedForGood(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	opts := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	srv, err := server.NewServer(opts)
	require.NoError(t, err)
	srv.Start()
	t.Cleanup(srv.Shutdown)
	require.True(t, srv.ReadyForConnections(10*time.Second))

	p := startJetsms(t, nil, "receiver", "--nats.url", srv.ClientURL(), "--gateway.username", "app", "--gateway.password", "pw",
		"--callbacks.username", "gw", "--callbacks.password", "cb", "--callbacks.listen", "127.0.0.1:0")
	p.waitLog(t, startTimeout, "jetsms running")

	locked := *opts
	locked.Username, locked.Password = "someone-else", "not-jetsms"
	require.NoError(t, srv.ReloadOptions(&locked))
	connz, err := srv.Connz(nil)
	require.NoError(t, err)
	for _, c := range connz.Conns {
		require.NoError(t, srv.DisconnectClientByID(c.Cid))
	}
	start := time.Now()
	code := p.wait(t, 10*time.Second)
	require.NotEqual(t, 0, code, "exited non-zero")
	require.Less(t, time.Since(start), 10*time.Second)
	p.waitLog(t, 0, "NATS connection closed for good; stopping")
}
