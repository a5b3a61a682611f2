package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
)

// jobsStored returns how many jobs the jobs stream holds.
func jobsStored(t *testing.T, env *brokertest.Env) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	s, err := env.JS.Stream(ctx, env.Names.JobsStream())
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	return info.State.Msgs
}

func TestSend(t *testing.T) {
	t.Parallel()

	t.Run("SendRefusesBadJobLocally", func(t *testing.T) {
		t.Parallel()
		// A real server with the streams, so that a publish would be seen.
		env := brokertest.Run(t)
		res := runJetsms(t, "send", "--to", "0211234567", "--text", "hi", "--nats.url", env.URL)
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stderr, `jetsms send: job refused: destination: "0211234567" is a local number; use international format`)
		require.Empty(t, res.stdout)
		// send returns only after the publish was acknowledged, so a job it had
		// published would be stored by now.
		require.Zero(t, jobsStored(t, env), "a refused job is never published")
	})

	t.Run("SendWaitTimesOutWithoutWorker", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		const id = "cli-no-worker-1"
		res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--id", id,
			"--wait", "--timeout", "1s", "--nats.url", env.URL)
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stdout, "job "+id+" published to sms.send.default")
		require.Contains(t, res.stderr, "jetsms send: no status event within 1s (is a worker running?)")
		require.Equal(t, uint64(1), jobsStored(t, env), "the job waits in the stream for a worker")
	})

	t.Run("SendNeedsToAndText", func(t *testing.T) {
		t.Parallel()
		res := runJetsms(t, "send", "--text", "hi")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, "--to and --text are required")
	})

	t.Run("SendRefusesBadUntil", func(t *testing.T) {
		t.Parallel()
		res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--until", "delivered")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, `--until must be accepted or final (got "delivered")`)
	})
}
