package admin

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"
)

// start runs a server on a free loopback port and returns its base URL.
func start(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	s, err := New(cfg, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, s.Stop(ctx))
	})
	return s, "http://" + s.Addr()
}

// get returns the status and body of a GET, with credentials when user is set.
func get(t *testing.T, url, user, pass string) (int, string) {
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

func TestServer(t *testing.T) {
	t.Parallel()

	t.Run("ReadinessGivesReasonCodes", func(t *testing.T) {
		t.Parallel()
		s, base := start(t, Config{})
		var disconnected, open atomic.Bool
		s.ReadyUnless(ReasonNATSDisconnected, disconnected.Load)
		s.ReadyUnless(ReasonCircuitOpen, open.Load)

		code, body := get(t, base+PathReady, "", "")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "not ready: starting\n", body)
		s.SetReady(true)
		code, body = get(t, base+PathReady, "", "")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ready\n", body)
		disconnected.Store(true)
		open.Store(true)
		_, body = get(t, base+PathReady, "", "")
		require.Equal(t, "not ready: nats_disconnected\n", body, "the first failing check is named")
		disconnected.Store(false)
		_, body = get(t, base+PathReady, "", "")
		require.Equal(t, "not ready: circuit_open\n", body)
		open.Store(false)
		s.SetReady(false)
		code, body = get(t, base+PathReady, "", "")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "not ready: stopping\n", body)
	})

	t.Run("LivenessFailsWhileACheckFails", func(t *testing.T) {
		t.Parallel()
		s, base := start(t, Config{})
		var closed atomic.Bool
		s.LiveUnless(ReasonNATSClosed, closed.Load)
		code, body := get(t, base+PathHealth, "", "")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "ok\n", body)
		closed.Store(true)
		code, body = get(t, base+PathHealth, "", "")
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "not live: nats_closed\n", body)
	})

	t.Run("CredentialsGuardAllButTheProbes", func(t *testing.T) {
		t.Parallel()
		s, base := start(t, Config{Username: "ops", Password: "pa55-w0rd"})
		s.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "jetsms_up 1\n")
		}))
		// Registered after Start: served at once, guarded too.
		s.Handle("GET /console/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "console\n")
		}))
		s.SetReady(true)
		for _, path := range []string{"/metrics", "/console/", "/nothing-here"} {
			code, _ := get(t, base+path, "", "")
			require.Equal(t, http.StatusUnauthorized, code, path)
			code, _ = get(t, base+path, "ops", "wrong")
			require.Equal(t, http.StatusUnauthorized, code, path)
			code, _ = get(t, base+path, "OPS", "pa55-w0rd")
			require.Equal(t, http.StatusUnauthorized, code, path)
		}
		code, body := get(t, base+"/metrics", "ops", "pa55-w0rd")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "jetsms_up 1\n", body)
		code, body = get(t, base+"/console/", "ops", "pa55-w0rd")
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "console\n", body)
		code, _ = get(t, base+"/nothing-here", "ops", "pa55-w0rd")
		require.Equal(t, http.StatusNotFound, code)
		// The probes need nothing.
		code, _ = get(t, base+PathHealth, "", "")
		require.Equal(t, http.StatusOK, code)
		code, _ = get(t, base+PathReady, "", "")
		require.Equal(t, http.StatusOK, code)
	})

	t.Run("UnauthorizedNamesTheRealm", func(t *testing.T) {
		t.Parallel()
		_, base := start(t, Config{Username: "ops", Password: "pa55-w0rd"})
		resp, err := http.Get(base + "/metrics")
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, `Basic realm="jetsms admin", charset="UTF-8"`, resp.Header.Get("WWW-Authenticate"))
	})

	t.Run("RefusesToListenBeyondLoopbackWithoutCredentials", func(t *testing.T) {
		t.Parallel()
		for _, listen := range []string{":9090", "0.0.0.0:9090", "[::]:9090", "10.0.0.5:9090", "admin.example.com:9090"} {
			_, err := New(Config{Listen: listen}, nil)
			require.ErrorContains(t, err, "admin.listen: "+`"`+listen+`" is reachable beyond this machine, so it needs admin.username and admin.password`, listen)
			require.ErrorContains(t, err, "admin.allow_unauthenticated: true", listen)
			_, err = New(Config{Listen: listen, Username: "ops", Password: "pw"}, nil)
			require.NoError(t, err, listen)
			_, err = New(Config{Listen: listen, AllowUnauthenticated: true}, nil)
			require.NoError(t, err, listen)
		}
		for _, listen := range []string{"127.0.0.1:9090", "localhost:9090", "[::1]:9090", "127.0.0.2:0"} {
			_, err := New(Config{Listen: listen}, nil)
			require.NoError(t, err, listen)
		}
	})

	t.Run("ChecksItsConfig", func(t *testing.T) {
		t.Parallel()
		_, err := New(Config{Listen: "9090"}, nil)
		require.ErrorContains(t, err, "admin.listen: must be host:port")
		_, err = New(Config{Listen: "127.0.0.1:70000"}, nil)
		require.ErrorContains(t, err, "admin.listen: must be host:port with a port number from 0 to 65535")
		_, err = New(Config{Username: "ops"}, nil)
		require.ErrorContains(t, err, "admin.username: must be set together with admin.password")
		_, err = New(Config{Password: "pw"}, nil)
		require.ErrorContains(t, err, "admin.username: must be set together with admin.password")
		s, err := New(Config{}, nil)
		require.NoError(t, err)
		require.Equal(t, ListenDefault, s.cfg.Listen)
	})

	t.Run("StartReportsAPortInUse", func(t *testing.T) {
		t.Parallel()
		first, _ := start(t, Config{})
		second, err := New(Config{Listen: first.Addr()}, nil)
		require.NoError(t, err)
		err = second.Start(t.Context())
		require.ErrorContains(t, err, "admin.listen:")
		require.True(t, strings.Contains(err.Error(), "address already in use"), err.Error())
		require.NoError(t, second.Stop(t.Context()), "Stop is safe after a failed Start")
	})

	t.Run("StopIsSafeTwiceAndWithoutStart", func(t *testing.T) {
		t.Parallel()
		s, err := New(Config{Listen: "127.0.0.1:0"}, nil)
		require.NoError(t, err)
		require.NoError(t, s.Stop(t.Context()))
		require.NoError(t, s.Start(t.Context()))
		require.NoError(t, s.Stop(t.Context()))
		require.NoError(t, s.Stop(t.Context()))
	})
}
