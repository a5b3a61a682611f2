package main

import (
	"regexp"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDeadLettersReplayAndGet fails two jobs at a gateway that answers 503 to
// every message (one attempt allowed), then replays one to a gateway that accepts,
// and reads its ledger entry.
func TestDeadLettersReplayAndGet(t *testing.T) {
	t.Parallel()
	store := t.TempDir()
	start := func(extra ...string) (*runBundle, string) {
		b := &runBundle{store: store, proc: startJetsms(t, nil, append([]string{"run",
			"--nats.embedded.store_dir", store,
			"--nats.embedded.listen", "127.0.0.1:0",
			"--sandbox.listen", "127.0.0.1:0",
			"--callbacks.listen", "127.0.0.1:0",
			"--admin.listen", "127.0.0.1:0",
			// Every receipt says received, so the replayed job's status is known.
			"--sandbox.dlr_mix", "received=1",
		}, extra...)...)}
		return b, b.natsURL(t)
	}
	rejecting, url := start("--sandbox.faults", "503=1", "--worker.max_attempts", "1")
	for _, id := range []string{"dead-1", "dead-2"} {
		res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--id", id, "--wait", "--timeout", "20s", "--nats.url", url)
		require.Equal(t, 3, res.code, "stderr: %s", res.stderr)
		require.Regexp(t, `(?m)^failed +job=`+id+` .*error=retries_exhausted`, res.stdout)
	}
	list := runJetsms(t, "dead", "list", "--nats.url", url)
	require.Equal(t, 0, list.code, list.stderr)
	require.Regexp(t, `(?m)^1 +\S+ +sms\.send\.default +dead-1 +retries_exhausted +retries_exhausted: 1 attempts`, list.stdout)
	require.Regexp(t, `(?m)^2 +\S+ +sms\.send\.default +dead-2 +retries_exhausted`, list.stdout)
	none := runJetsms(t, "dead", "list", "--reason", "expired", "--nats.url", url)
	require.Equal(t, 0, none.code, none.stderr)
	require.NotContains(t, none.stdout, "dead-1")

	require.NoError(t, rejecting.proc.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, rejecting.proc.wait(t, exitTimeout))

	// The same store, a gateway that accepts.
	_, url = start()
	dry := runJetsms(t, "dead", "replay", "--job", "dead-1", "--dry-run", "--nats.url", url)
	require.Equal(t, 0, dry.code, dry.stderr)
	require.Contains(t, dry.stdout, "1 dead letters would be replayed")

	tail := startJetsms(t, nil, "tail", "--job", "dead-1", "--status", "accepted", "--limit", "1", "--since", "1h", "--nats.url", url)
	replay := runJetsms(t, "dead", "replay", "--job", "dead-1", "--nats.url", url)
	require.Equal(t, 0, replay.code, replay.stderr)
	require.Contains(t, replay.stdout, "replayed job dead-1 to sms.send.default")
	require.Equal(t, 0, tail.wait(t, exitTimeout), "tail stops after its one line")
	require.Regexp(t, `(?m)accepted +job=dead-1 message_id=[0-9a-f-]{36} lane=default attempts=1 `, tail.stdout.String())

	after := runJetsms(t, "dead", "list", "--nats.url", url)
	require.NotContains(t, after.stdout, "dead-1", "a replayed letter is removed")
	require.Contains(t, after.stdout, "dead-2")

	get := runJetsms(t, "get", "dead-1", "--nats.url", url)
	require.Equal(t, 0, get.code, get.stderr)
	require.Regexp(t, `(?m)^status +(accepted|sent|received)`, get.stdout)
	require.Regexp(t, regexp.MustCompile(`(?s)history:.*submitting.*queued.*failed.*error=retries_exhausted.*submitting.*accepted +message_id=`), get.stdout)
	missing := runJetsms(t, "get", "no-such-job", "--nats.url", url)
	require.Equal(t, 1, missing.code)
	require.Contains(t, missing.stderr, "job no-such-job is not in the ledger")
}
