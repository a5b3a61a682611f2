package ratelimit

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLimiter(t *testing.T) {
	t.Parallel()

	t.Run("NeverExceedsRatePlusBurstInAnySecond", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			const perSecond, burst = 100, 20
			l, err := New(Config{PerSecond: perSecond, Burst: burst})
			require.NoError(t, err)
			start := time.Now()
			var sends []time.Duration
			for time.Since(start) < 5*time.Second {
				require.NoError(t, l.Wait(context.Background(), 1))
				sends = append(sends, time.Since(start))
			}
			// Slide a one-second window over every send.
			for i := range sends {
				j := i
				for j < len(sends) && sends[j]-sends[i] < time.Second {
					j++
				}
				require.LessOrEqual(t, j-i, perSecond+burst, "window starting at %s", sends[i])
			}
			// And the rate is used fully: burst plus 5 s worth.
			require.GreaterOrEqual(t, len(sends), burst+5*perSecond-1)
		})
	})

	t.Run("WaitHonoursCancellation", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, err := New(Config{PerSecond: 1, Burst: 1})
			require.NoError(t, err)
			require.NoError(t, l.Wait(context.Background(), 1))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Wait(ctx, 1) }()
			synctest.Wait()
			cancel()
			require.ErrorIs(t, <-done, context.Canceled)
		})
	})

	t.Run("DeadlineBeforeTokensIsAnError", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, err := New(Config{PerSecond: 1, Burst: 1})
			require.NoError(t, err)
			require.NoError(t, l.Wait(context.Background(), 1))
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, l.Wait(ctx, 1), context.DeadlineExceeded)
		})
	})

	t.Run("MoreThanBurstIsTakenInParts", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, err := New(Config{PerSecond: 10, Burst: 2})
			require.NoError(t, err)
			start := time.Now()
			require.NoError(t, l.Wait(context.Background(), 12))
			// 2 from the full bucket, then 10 more at 10/s.
			require.Equal(t, time.Second, time.Since(start))
		})
	})

	t.Run("UnlimitedNeverWaits", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, err := New(Config{PerSecond: math.Inf(1), Burst: 1})
			require.NoError(t, err)
			start := time.Now()
			for range 10000 {
				require.NoError(t, l.Wait(context.Background(), 1))
			}
			require.Zero(t, time.Since(start))
		})
	})

	t.Run("BadConfigNamesTheSetting", func(t *testing.T) {
		t.Parallel()
		_, err := New(Config{PerSecond: 0, Burst: 1})
		require.ErrorIs(t, err, ErrInvalidConfig)
		require.ErrorContains(t, err, "rate.per_second")
		_, err = New(Config{PerSecond: 1, Burst: 0})
		require.ErrorContains(t, err, "rate.burst")
		_, err = New(Config{PerSecond: math.NaN(), Burst: 1})
		require.ErrorContains(t, err, "rate.per_second")
	})
}
