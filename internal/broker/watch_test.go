package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
)

func TestWatch(t *testing.T) {
	t.Parallel()

	t.Run("AConnectionTheServerClosesForGoodEndsTheProcess", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		exited := make(chan int, 1)
		ctx, w := broker.Watch(context.Background(), env.Conn, broker.WatchConfig{
			ExitAfter: 100 * time.Millisecond, Exit: func(code int) { exited <- code },
		}, zaptest.NewLogger(t))
		require.True(t, w.Alive())
		require.NoError(t, w.Err(nil))

		// A protocol line past the server's 4 KiB limit: the server closes the
		// connection, and nats.go does not reconnect after that error.
		require.NoError(t, env.Conn.Publish(strings.Repeat("a", 5000), nil))
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the watch's context did not end within 10 s of the close")
		}
		require.False(t, w.Alive(), "/healthz fails")
		require.ErrorIs(t, w.Err(nil), broker.ErrConnectionClosed, "the process exits non-zero")
		select {
		case code := <-exited:
			require.Equal(t, 1, code, "a process that did not stop in time is ended")
		case <-time.After(10 * time.Second):
			t.Fatal("not ended")
		}
	})

	t.Run("TheProcessOwnCloseIsNotALoss", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		ctx, w := broker.Watch(context.Background(), env.Conn, broker.WatchConfig{
			Exit: func(int) { t.Error("exit called") },
		}, nil)
		w.Stop()
		env.Conn.Close()
		require.NoError(t, w.Err(nil))
		require.NoError(t, ctx.Err())
	})

	t.Run("DownLongerThanDownMaxIsNotAlive", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		now := time.Now()
		clock := func() time.Time { return now }
		_, w := broker.Watch(context.Background(), env.Conn, broker.WatchConfig{DownMax: time.Minute, Now: clock}, nil)
		defer w.Stop()
		env.Server.Stop()
		require.Eventually(t, func() bool { return !env.Conn.IsConnected() }, 10*time.Second, 5*time.Millisecond)
		require.True(t, w.Alive(), "down a moment: still alive, reconnecting")
		now = now.Add(time.Minute)
		require.False(t, w.Alive(), "down a minute: a liveness probe restarts it")
	})
}
