package worker

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/ratelimit"
)

func TestRetryPolicy(t *testing.T) {
	t.Parallel()

	t.Run("WaitsGrowStayBoundedAndEndWithinTheBudget", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newRetryPolicy()
			start := time.Now()
			var waits []time.Duration
			for {
				d := p.NextBackOff()
				if d == backoff.Stop {
					break
				}
				require.LessOrEqual(t, d, QuickRetryMaxWait)
				waits = append(waits, d)
				time.Sleep(d) // fake time: the bubble's clock moves, no real wait
			}
			require.GreaterOrEqual(t, len(waits), 3, "several quick retries: %v", waits)
			require.LessOrEqual(t, time.Since(start), QuickRetryBudget+QuickRetryMaxWait)
			require.Less(t, waits[0], 200*time.Millisecond, "the first wait is short: %v", waits)
		})
	})

	t.Run("HonoursAShortRetryAfterAndStopsAtALongOne", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newRetryPolicy()
			p.retryAfter = time.Second
			require.GreaterOrEqual(t, p.NextBackOff(), time.Second)
			p.retryAfter = QuickRetryMaxWait + time.Second
			require.Equal(t, backoff.Stop, p.NextBackOff(), "a long Retry-After releases the job instead")
		})
	})
}

func TestNakDelay(t *testing.T) {
	t.Parallel()
	require.Equal(t, NakDelayMin, nakDelay(NakDelayMin, 1, 0))
	require.Equal(t, 2*NakDelayMin, nakDelay(NakDelayMin, 2, 0))
	require.Equal(t, 8*NakDelayMin, nakDelay(NakDelayMin, 4, 0))
	require.Equal(t, NakDelayMax, nakDelay(NakDelayMin, 100, 0), "capped")
	require.Equal(t, 10*time.Minute, nakDelay(NakDelayMin, 1, 10*time.Minute), "never shorter than Retry-After")
}

func TestSizer(t *testing.T) {
	t.Parallel()
	unlimited, err := ratelimit.New(ratelimit.Config{PerSecond: math.Inf(1), Burst: 1})
	require.NoError(t, err)
	s := newSizer(4, 64, unlimited)
	s.observe(20 * time.Millisecond)
	require.Equal(t, 64, s.size(), "an unlimited rate needs the ceiling")

	limited, err := ratelimit.New(ratelimit.Config{PerSecond: 200, Burst: 1})
	require.NoError(t, err)
	s = newSizer(4, 64, limited)
	require.Equal(t, 64, s.size(), "no measurement yet: the ceiling")
	s.observe(20 * time.Millisecond)
	require.Equal(t, 9, s.size(), "2 × 200/s × 20 ms + 1")
	s = newSizer(4, 64, limited)
	s.observe(time.Millisecond)
	require.Equal(t, 4, s.size(), "never below the floor")
}
