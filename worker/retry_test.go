package worker

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stretchr/testify/require"
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
