package app

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/config"
)

// quickStart is `jetsms run`'s configuration on free ports in a temporary store.
func quickStart(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.Gateway.URL = config.SandboxURL
	cfg.NATS.Embedded.StoreDir = t.TempDir()
	cfg.NATS.Embedded.Listen = "127.0.0.1:0"
	cfg.Callbacks.Listen = "127.0.0.1:0"
	cfg.Sandbox.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	return cfg
}

func readyz(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	require.NoError(t, resp.Body.Close())
	return resp.StatusCode
}

// TestStartAndStop runs each role's process and stops it: ready while it runs,
// every part stopped after (goleak checks that nothing outlives Stop).
func TestStartAndStop(t *testing.T) {
	for name, role := range map[string]Role{"worker": RoleWorker, "receiver": RoleReceiver} {
		t.Run(name, func(t *testing.T) {
			a, err := New(quickStart(t), role, Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))})
			require.NoError(t, err)
			require.NoError(t, a.Start(context.Background()))
			admin := "http://" + a.AdminAddr()
			require.Equal(t, http.StatusOK, readyz(t, admin))
			require.Equal(t, role == RoleWorker, a.Worker() != nil)

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, a.Stop(ctx))
			require.NoError(t, a.Stop(ctx), "Stop is safe twice")
			_, err = http.Get(admin + "/readyz")
			require.Error(t, err, "the admin listener stopped")
			_, err = http.Post(a.CallbackURL()+"/callbacks/dlr", "application/json", strings.NewReader("{}"))
			require.Error(t, err, "the HTTP server stopped")
		})
	}
}

// TestStopWithoutStart is a no-op.
func TestStopWithoutStart(t *testing.T) {
	a, err := New(quickStart(t), RoleWorker, Options{})
	require.NoError(t, err)
	require.NoError(t, a.Stop(context.Background()))
}

// TestStartFailureStopsWhatStarted fails on a taken callback port: the embedded
// server and the connection started before it are stopped again.
func TestStartFailureStopsWhatStarted(t *testing.T) {
	first, err := New(quickStart(t), RoleReceiver, Options{})
	require.NoError(t, err)
	require.NoError(t, first.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, first.Stop(context.Background())) })

	cfg := quickStart(t)
	cfg.Callbacks.Listen = first.ln.Addr().String()
	a, err := New(cfg, RoleWorker, Options{})
	require.NoError(t, err)
	require.ErrorContains(t, a.Start(context.Background()), "callbacks.listen")
	require.Zero(t, a.started)
}

// TestOrder pins the parts that must start before others (so they stop after).
func TestOrder(t *testing.T) {
	a, err := New(config.Default(), RoleWorker, Options{})
	require.NoError(t, err)
	pos := map[string]int{}
	for i, c := range a.comps {
		pos[c.name] = i
	}
	before := [][2]string{
		{"embedded NATS", "NATS connection"},
		{"NATS connection", "admin listener"},
		{"admin listener", "readiness"},
		{"NATS connection", "callback listener"},
		{"callback listener", "sandbox"},
		{"sandbox", "gateway client"},
		{"gateway client", "broadcast batcher"},
		{"broadcast batcher", "worker"},
		{"gateway client", "resolver"},
		{"resolver", "worker"},
		{"reconciler", "worker"},
		{"campaign gate", "campaign tracker"},
		{"campaign tracker", "worker"},
		{"rate", "worker"},
		{"worker", "HTTP server"},
		{"HTTP server", "readiness"},
	}
	for _, b := range before {
		require.Less(t, pos[b[0]], pos[b[1]], "%s starts before %s", b[0], b[1])
	}
	require.Equal(t, "readiness", a.comps[len(a.comps)-1].name, "readiness goes false first")
}

// TestHardStopWaitsForTheCallbackInHand stops the process while a callback
// request is in its handler and outlasts the HTTP server's stop time: the
// connection is closed, the handler's context ends, and Stop returns only after
// the handler has.
func TestHardStopWaitsForTheCallbackInHand(t *testing.T) {
	entered := make(chan struct{})
	var returned atomic.Bool
	a, err := New(quickStart(t), RoleReceiver, Options{
		Logger:      zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)),
		StopTimeout: 100 * time.Millisecond,
		WrapCallbacks: func(http.Handler) http.Handler {
			return http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body) // as the receiver reads it
				close(entered)
				<-r.Context().Done()
				returned.Store(true)
			})
		},
	})
	require.NoError(t, err)
	require.NoError(t, a.Start(context.Background()))
	errc := make(chan error, 1)
	go func() {
		resp, err := http.Post(a.CallbackURL()+"/callbacks/dlr", "application/json", strings.NewReader("{}"))
		if err == nil {
			_ = resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the request to reach its handler")
	}
	require.ErrorIs(t, a.Stop(context.Background()), context.DeadlineExceeded)
	require.True(t, returned.Load(), "the handler ended before Stop returned")
	require.Error(t, <-errc, "the connection was closed")
}
