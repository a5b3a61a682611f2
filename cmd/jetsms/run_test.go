package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker"
)

// runBundle is a `jetsms run` subprocess: embedded NATS on a free port, the worker
// and the gateway simulator.
type runBundle struct {
	proc  *proc
	store string // nats.embedded.store_dir, where the server keeps its password
}

// setupRun starts `jetsms run` with its store in a temporary directory and every
// listener on a port the system picks. It does not wait for start-up: natsURL does,
// so that subtests sharing the process start their own work meanwhile.
func setupRun(t *testing.T, extra ...string) *runBundle {
	t.Helper()
	store := t.TempDir()
	args := append([]string{"run",
		"--nats.embedded.store_dir", store,
		"--nats.embedded.listen", "127.0.0.1:0",
		"--sandbox.listen", "127.0.0.1:0",
		"--callbacks.listen", "127.0.0.1:0",
		"--admin.listen", "127.0.0.1:0",
	}, extra...)
	return &runBundle{proc: startJetsms(t, nil, args...), store: store}
}

// plainURL waits until the process logs that it runs and returns the URL of its
// embedded server from that line, without credentials.
func (b *runBundle) plainURL(t *testing.T) string {
	t.Helper()
	running := b.proc.waitLog(t, startTimeout, "jetsms running")
	url := running.str("nats")
	require.Regexp(t, `^nats://127\.0\.0\.1:[1-9][0-9]*$`, url, "the running line names the embedded server's address")
	return url
}

// natsURL is plainURL with the server's generated credentials in it, as any
// client may use it.
func (b *runBundle) natsURL(t *testing.T) string {
	t.Helper()
	url := b.plainURL(t)
	creds, found, err := broker.ReadCredentials(b.store)
	require.NoError(t, err)
	require.True(t, found, "the embedded server wrote its password file")
	return "nats://" + creds.User + ":" + creds.Password.Reveal() + "@" + strings.TrimPrefix(url, "nats://")
}

// adminURL is the base URL of the admin listener, from the running line.
func (b *runBundle) adminURL(t *testing.T) string {
	t.Helper()
	admin := b.proc.waitLog(t, startTimeout, "jetsms running").str("admin")
	require.Regexp(t, `^http://127\.0\.0\.1:[1-9][0-9]*$`, admin)
	return admin
}

func TestRun(t *testing.T) {
	t.Parallel()

	// One `jetsms run` serves the subtests that only send to it.
	// Every receipt of the simulator is "received", so the lifecycle is known.
	shared := setupRun(t, "--sandbox.dlr_mix", "received=1", "--sandbox.dlr_delay", "100ms")

	t.Run("RunStartsAndSendWaitShowsTheLifecycle", func(t *testing.T) {
		t.Parallel()
		url := shared.natsURL(t)
		const id = "cli-accepted-1"
		res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--id", id,
			"--wait", "--timeout", "20s", "--nats.url", url)
		require.Equal(t, 0, res.code, "stderr: %s", res.stderr)
		require.Contains(t, res.stdout, "job "+id+" published to sms.send.default")
		// accepted from the worker, then sent and received from the simulator's
		// receipts, each with the job id.
		require.Regexp(t, `(?ms)^accepted +job=`+regexp.QuoteMeta(id)+` message_id=([0-9a-f-]{36}) lane=default attempts=1\b.*`+
			`^sent +job=`+regexp.QuoteMeta(id)+` message_id=[0-9a-f-]{36} lane=default .*`+
			`^received +job=`+regexp.QuoteMeta(id)+` message_id=[0-9a-f-]{36} lane=default attempts=1 detail=\+64211234567$`, res.stdout)
	})

	t.Run("CallbacksNeedTheSimulatorsGeneratedCredentials", func(t *testing.T) {
		t.Parallel()
		shared.natsURL(t)
		running := shared.proc.waitLog(t, 0, "jetsms running")
		resp, err := http.Post(running.str("callbacks"), "application/json",
			strings.NewReader(`{"message_id":"1e41f423-24cf-4fa2-9a8a-888c30653305","status":"received"}`))
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no credentials were configured, yet callbacks need them")
		require.NotContains(t, strings.Join(shared.proc.output(), "\n"), "callbacks are accepted without credentials")
	})

	t.Run("SendWithUnknownLaneEndsFailed", func(t *testing.T) {
		t.Parallel()
		url := shared.natsURL(t)
		const id = "cli-unknown-lane-1"
		// The worker looks for jobs on unknown lanes every 10 s, so this takes up
		// to that long.
		res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--id", id, "--lane", "nolane",
			"--wait", "--until", "final", "--timeout", "25s", "--nats.url", url)
		require.Equal(t, 3, res.code, "a job that ends failed exits 3; stderr: %s", res.stderr)
		require.Contains(t, res.stdout, "job "+id+" published to sms.send.nolane")
		require.Regexp(t, `(?m)^failed +job=`+regexp.QuoteMeta(id)+` .*error=lane: "nolane" is not configured`, res.stdout)
		require.Contains(t, res.stderr, "jetsms send: job "+id+" ended failed: lane: \"nolane\" is not configured")
	})

	t.Run("SIGTERMStopsWithinGraceAndExitsZero", func(t *testing.T) {
		t.Parallel()
		b := setupRun(t, "--worker.grace_period", "5s")
		b.natsURL(t)
		require.NoError(t, b.proc.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, b.proc.wait(t, exitTimeout), "a graceful stop is a clean exit")
		stopping := b.proc.waitLog(t, 0, "stopping: finishing jobs in flight; a second signal stops at once")
		require.Equal(t, "5s", stopping.str("grace_period"))
		b.proc.waitLog(t, 0, "worker stopped")
		require.Empty(t, b.proc.stdout.String())
		for _, l := range b.proc.output() {
			require.NotContains(t, strings.ToLower(l), `"level":"error"`, "a clean stop logs no error")
		}
	})

	t.Run("SecondSignalCutsTheGracePeriodShort", func(t *testing.T) {
		t.Parallel()
		// The simulator holds every request for a minute, so a job stays in flight.
		b := setupRun(t, "--worker.grace_period", "1m", "--sandbox.latency", "1m", "--gateway.timeout", "2m")
		url := b.natsURL(t)
		res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--id", "held-1", "--nats.url", url)
		require.Equal(t, 0, res.code, res.stderr)
		// Wait until the worker holds the job: the consumer shows it pending an ack.
		nc, err := nats.Connect(url)
		require.NoError(t, err)
		defer nc.Close()
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		cons, err := js.Consumer(t.Context(), "SMS_JOBS", "jetsms_sms_default")
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			info, err := cons.Info(t.Context())
			return err == nil && info.NumAckPending == 1
		}, exitTimeout, 10*time.Millisecond)
		require.NoError(t, b.proc.cmd.Process.Signal(syscall.SIGTERM))
		b.proc.waitLog(t, exitTimeout, "stopping: finishing jobs in flight; a second signal stops at once")
		start := time.Now()
		require.NoError(t, b.proc.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, 0, b.proc.wait(t, exitTimeout), "jobs cut off are handed back: still a clean exit")
		require.Less(t, time.Since(start), 30*time.Second, "did not wait out the grace period")
		b.proc.waitLog(t, 0, "grace period over")
	})
}

func TestMetricsAfterAKnownWorkload(t *testing.T) {
	t.Parallel()
	b := setupRun(t, "--sandbox.dlr_mix", "received=1", "--sandbox.dlr_delay", "10ms")
	url := b.natsURL(t)
	base := b.adminURL(t)
	for i := range 3 {
		res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--id", fmt.Sprintf("metered-%d", i),
			"--wait", "--timeout", "20s", "--nats.url", url)
		require.Equal(t, 0, res.code, res.stderr)
	}
	scrape := func() string {
		resp, err := http.Get(base + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(body)
	}
	// The counters move just after the events are stored, and have no event of
	// their own to await.
	var text string
	require.Eventually(t, func() bool {
		text = scrape()
		return strings.Contains(text, "jetsms_receipts_total{result=\"published\"} 6\n")
	}, 10*time.Second, 20*time.Millisecond, "six receipts published")
	for _, line := range []string{
		`jetsms_jobs_total{lane="default",outcome="accepted"} 3`,
		`jetsms_jobs_total{lane="default",outcome="failed"} 0`,
		`jetsms_gateway_request_duration_seconds_count{outcome="accepted"} 3`,
		`jetsms_callbacks_total{kind="dlr",result="stored"} 6`,
		`jetsms_receipts_total{result="unmatched"} 0`,
		`jetsms_circuit_open 0`,
		`jetsms_rate_per_second 50`,
		`jetsms_lane_pending_jobs{lane="default"} 0`,
	} {
		require.True(t, strings.Contains(text, line+"\n"), "no line %s", line)
	}
	require.Regexp(t, `(?m)^jetsms_build_info\{version="[^"]+"\} 1$`, text)

	ready, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	ready.Body.Close()
	require.Equal(t, http.StatusOK, ready.StatusCode)
}

func TestRunOverRESTv1(t *testing.T) {
	t.Parallel()
	b := setupRun(t, "--gateway.api", "v1", "--lane.broadcast", "bulk",
		"--sandbox.dlr_mix", "received=1", "--sandbox.dlr_delay", "10ms")
	url := b.natsURL(t)
	for _, lane := range []string{"priority", "bulk"} {
		id := "v1-" + lane
		res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--id", id, "--lane", lane,
			"--wait", "--timeout", "20s", "--nats.url", url)
		require.Equal(t, 0, res.code, res.stderr)
		// REST v1 ids are integers.
		require.Regexp(t, `(?m)^accepted +job=`+id+` message_id=[0-9]+ `, res.stdout)
		require.Regexp(t, `(?m)^received +job=`+id+` message_id=[0-9]+ `, res.stdout)
	}
}
