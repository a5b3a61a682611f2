package worker_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/ratelimit"
	"github.com/jetsms/jetsms/worker"
)

// countingLimiter is a real limiter that counts the tokens taken.
type countingLimiter struct {
	*ratelimit.Adaptive
	tokens atomic.Int64
}

func (c *countingLimiter) Wait(ctx context.Context, n int) error {
	c.tokens.Add(int64(n))
	return c.Adaptive.Wait(ctx, n)
}

func TestPacing(t *testing.T) {
	t.Parallel()

	t.Run("UnderABacklogInEveryLaneBulkGetsItsShare", func(t *testing.T) {
		t.Parallel()
		lim, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{PerSecond: 400, Burst: 1})
		require.NoError(t, err)
		b := setup(t, options{noRun: true, limiter: lim, worker: worker.Config{
			Concurrency: 8,
			LaneOptions: map[string]worker.LaneOptions{"bulk": {MinShare: 0.1}},
		}})
		for i := range 300 {
			for _, lane := range lanes {
				b.publishJob(t, lane, validJob(fmt.Sprintf("%s-%03d", lane, i)))
			}
		}
		b.start(t)
		b.status.WaitFor(t, 30*time.Second, "200 accepted", func(ms []brokertest.Msg) bool { return len(ms) >= 220 })
		b.mu.Lock()
		first := append([]string(nil), b.order[:200]...)
		b.mu.Unlock()
		count := map[string]int{}
		for _, ref := range first {
			count[strings.SplitN(ref, "-", 2)[0]]++
		}
		// Bulk's floor is 10% ±5%; priority, the highest lane, takes the rest, and
		// default (no floor) waits.
		require.InDelta(t, 20, count["bulk"], 10, "bulk's share of the first 200: %v", count)
		require.GreaterOrEqual(t, count["priority"], 170, "%v", count)
		require.LessOrEqual(t, count["default"], 5, "%v", count)
	})

	t.Run("RateInSegmentsTakesATokenPerSegment", func(t *testing.T) {
		t.Parallel()
		ad, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{PerSecond: 1e6, Burst: 1000})
		require.NoError(t, err)
		lim := &countingLimiter{Adaptive: ad}
		b := setup(t, options{limiter: lim, worker: worker.Config{RateInSegments: true}})
		long := validJob("three-parts")
		long.Content = strings.Repeat("a", 153*2+10) // 3 GSM-7 segments
		b.publishJob(t, "default", long)
		b.publishJob(t, "default", validJob("one-part"))
		b.waitAccepted(t, []string{"three-parts", "one-part"}, 20*time.Second)
		require.EqualValues(t, 4, lim.tokens.Load())
	})

	t.Run("A429WithRetryAfterCutsTheRate", func(t *testing.T) {
		t.Parallel()
		changes := make(chan ratelimit.Change, 16)
		lim, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{PerSecond: 100, Burst: 10,
			OnChange: func(c ratelimit.Change) { changes <- c }})
		require.NoError(t, err)
		b := setup(t, options{limiter: lim, sim: gwsim.Config{RetryAfter: time.Second}})
		b.sim.Inject(gwsim.Fault429)
		b.publishJob(t, "default", validJob("slowed"))
		select {
		case c := <-changes:
			require.Equal(t, ratelimit.ChangeSlowed, c.Reason)
			require.Less(t, c.PerSecond, 100.0)
		case <-time.After(10 * time.Second):
			t.Fatal("the rate was not cut")
		}
		b.waitStatus(t, "slowed", job.StatusAccepted)
	})

	t.Run("PerDestinationLimitDelaysTheExcess", func(t *testing.T) {
		t.Parallel()
		// Windows are fixed (a multiple of Window since the epoch): the worker's
		// clock is moved ahead to the start of one, so that its 3 s hold the five
		// jobs' first tries (all stored before the worker starts) however slowly
		// a busy machine runs them.
		const window = 3 * time.Second
		var ahead atomic.Int64 // set just before the worker starts
		b := setup(t, options{noRun: true, worker: worker.Config{
			Destination: worker.DestinationLimit{Max: 2, Window: window},
			Now:         func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
		}})
		ids := make([]string, 5)
		for i := range ids {
			ids[i] = fmt.Sprintf("same-number-%d", i)
			b.publishJob(t, "default", validJob(ids[i]))
		}
		now := time.Now()
		ahead.Store(int64(time.Unix(0, (now.UnixNano()/int64(window)+1)*int64(window)).Sub(now)))
		b.start(t)
		msgs := b.waitAccepted(t, ids, 60*time.Second)
		delayed := 0
		for _, ev := range brokertest.Events(msgs) {
			if ev.Status == job.StatusRetrying && ev.Error == "destination_limit" {
				delayed++
				require.Contains(t, ev.Detail, "at most 2 messages per 3s to one number")
			}
		}
		require.GreaterOrEqual(t, delayed, 3, "three of five waited for a later window")
		for _, id := range ids {
			require.Equal(t, 1, b.arrived(id))
		}
	})

	t.Run("ConcurrencyFollowsLatencyAndRate", func(t *testing.T) {
		t.Parallel()
		// 20/s through a 200 ms gateway needs 4 in flight; the sizer keeps
		// 1 + R×(2L + 4×deviation), about 10 on an idle machine and more on a busy
		// one, where a slot is held longer. The bounds hold whatever the machine's
		// speed: the gateway's 200 ms keeps it above the floor, and only
		// submissions held 25 s each on average would take it to the ceiling of
		// 1,000 (a ceiling of 64 is reached at about 1.6 s, which a loaded 2-core
		// machine under -race did reach). The limit starts at the ceiling and is recomputed every
		// 250 ms, so the test waits for the first sizing rather than reading it
		// once.
		const ceiling = 1000
		lim, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{PerSecond: 20, Burst: 1})
		require.NoError(t, err)
		b := setup(t, options{noRun: true, limiter: lim, sim: gwsim.Config{Latency: 200 * time.Millisecond},
			worker: worker.Config{Concurrency: ceiling}})
		ids := make([]string, 30)
		for i := range ids {
			ids[i] = fmt.Sprintf("sized-%03d", i)
			b.publishJob(t, "bulk", validJob(ids[i]))
		}
		w := b.start(t)
		b.waitAccepted(t, ids, 30*time.Second)
		require.Eventually(t, func() bool { return w.ConcurrencyLimit() < ceiling }, 10*time.Second, 10*time.Millisecond,
			"sized below the ceiling: %d", w.ConcurrencyLimit())
		require.Greater(t, w.ConcurrencyLimit(), worker.ConcurrencyMinDefault, "sized from the latency, above the floor")
	})
}

func TestTraceContextReachesEveryEvent(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b.sim.Inject(gwsim.Fault503)
	b.publishWith(t, "default", validJob("traced"), "traced", map[string]string{"traceparent": tp})
	b.waitStatus(t, "traced", job.StatusAccepted)
	n := 0
	for _, m := range b.status.Msgs() {
		if strings.Contains(string(m.Data), `"job_id":"traced"`) {
			n++
			require.Equal(t, tp, m.Header.Get("traceparent"), "event on %s", m.Subject)
		}
	}
	require.Equal(t, 2, n, "retrying and accepted")
	require.Equal(t, tp, b.entry(t, "traced").TraceParent, "kept for receipt events")
}

func TestBroadcastLanes(t *testing.T) {
	t.Parallel()
	b := setup(t, options{noRun: true, sim: gwsim.Config{API: gwsim.APIv1, BroadcastLimit: 8}, worker: worker.Config{
		LaneOptions: map[string]worker.LaneOptions{"bulk": {Broadcast: true}},
	}})
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("bc-%02d", i)
		j := validJob(ids[i])
		j.Destination = fmt.Sprintf("+642100%05d", i)
		j.Content = "Sale on now"
		j.Reference = "campaign-7" // one reference for the whole broadcast
		b.publishJob(t, "bulk", j)
	}
	otp := validJob("not-broadcast")
	b.publishJob(t, "priority", otp)
	b.start(t)
	msgs := b.waitAccepted(t, append(ids, otp.ID), 30*time.Second)
	st := b.sim.Stats()
	require.GreaterOrEqual(t, st.Broadcasts, int64(3), "20 jobs in broadcasts of at most 8")
	require.EqualValues(t, 21, st.Accepted, "each job sent once")
	seen := map[string]bool{}
	for _, ev := range brokertest.Events(msgs) {
		if ev.Status == job.StatusAccepted {
			require.False(t, seen[ev.MessageID], "each job has its own message id")
			seen[ev.MessageID] = true
		}
	}
}
