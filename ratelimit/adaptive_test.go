package ratelimit

import (
	"context"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAdaptive(t *testing.T) {
	t.Parallel()

	testLimiterConformance(t, limiterImpl{
		new: func(t *testing.T, perSecond float64, burst int) waiter {
			l, err := NewAdaptive(AdaptiveConfig{PerSecond: perSecond, Burst: burst})
			require.NoError(t, err)
			return l
		},
	})

	// setup returns a limiter of 100/s, burst 10, and the changes it reported.
	setup := func(t *testing.T, cfg AdaptiveConfig) (*Adaptive, *changes) {
		t.Helper()
		if cfg.PerSecond == 0 {
			cfg.PerSecond, cfg.Burst = 100, 10
		}
		ch := &changes{}
		cfg.OnChange = ch.add
		l, err := NewAdaptive(cfg)
		require.NoError(t, err)
		return l, ch
	}

	t.Run("StartsAtTheCeilingWithAFullBucket", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, _ := setup(t, AdaptiveConfig{})
			require.Equal(t, 100.0, l.Rate())
			require.Equal(t, 100.0, l.Ceiling())
			require.Equal(t, 10, l.Burst())
			start := time.Now()
			require.NoError(t, l.Wait(context.Background(), 10))
			require.Zero(t, time.Since(start))
		})
	})

	t.Run("SlowPausesThenClimbsBackToTheCeiling", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			const ceiling, burst = 100, 10
			l, ch := setup(t, AdaptiveConfig{PerSecond: ceiling, Burst: burst})
			g := newGrants()
			ctx, cancel := context.WithTimeout(context.Background(), 14*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			wg.Go(func() {
				for l.Wait(ctx, 1) == nil {
					g.add(1)
				}
			})
			// The rate, sampled every 10 ms, never goes above the ceiling.
			var rates []float64
			wg.Go(func() {
				for ctx.Err() == nil {
					rates = append(rates, l.Rate())
					time.Sleep(10 * time.Millisecond)
				}
			})

			time.Sleep(3 * time.Second)
			l.Slow(2 * time.Second)
			require.Equal(t, 50.0, l.Rate())
			time.Sleep(2 * time.Second) // the pause
			require.Equal(t, 50.0, l.Rate())
			time.Sleep(2 * time.Second) // +10/s each second
			require.InDelta(t, 70.0, l.Rate(), 1e-9)
			wg.Wait()

			require.Zero(t, g.between(3*time.Second+time.Nanosecond, 5*time.Second), "granted during the pause")
			// After the pause the bucket starts empty: ∫(50+10t)dt over the first second.
			require.InDelta(t, 55, g.between(5*time.Second, 6*time.Second), 1)
			require.InDelta(t, 65, g.between(6*time.Second, 7*time.Second), 1)
			// Back at the ceiling 5 s after the pause.
			require.InDelta(t, 100, g.between(10*time.Second, 11*time.Second), 1)
			most, from := g.maxInWindow(time.Second)
			require.LessOrEqual(t, most, ceiling+burst, "window starting at %s", from)
			require.Equal(t, 100.0, l.Rate())
			for i, r := range rates {
				require.LessOrEqual(t, r, float64(ceiling), "sample %d", i)
			}
			require.Equal(t, []ChangeReason{ChangeSlowed, ChangeRecovered}, ch.reasons())
			require.Equal(t, 10*time.Second, ch.at(1).Sub(ch.at(0)).Round(time.Millisecond)+3*time.Second)
		})
	})

	t.Run("CutsStopAtTheFloor", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, _ := setup(t, AdaptiveConfig{MinPerSecond: 5, Recover: 1e-9})
			var got []float64
			for range 6 {
				l.Slow(0)
				got = append(got, math.Round(l.Rate()*100)/100)
				time.Sleep(CutCooldownDefault)
			}
			require.Equal(t, []float64{50, 25, 12.5, 6.25, 5, 5}, got)
		})
	})

	t.Run("SlowsAnsweringTheSameBurstCutOnce", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, ch := setup(t, AdaptiveConfig{Recover: 0.001})
			for range 64 { // every submission in flight answered 429
				l.Slow(2 * time.Second)
			}
			require.Equal(t, 50.0, l.Rate())
			time.Sleep(2500 * time.Millisecond) // within the cool-down after the pause
			l.Slow(time.Second)                 // extends the pause, no cut
			require.InDelta(t, 50, l.Rate(), 0.1)
			start := time.Now()
			require.NoError(t, l.Wait(context.Background(), 1))
			require.Equal(t, time.Second+20*time.Millisecond, time.Since(start).Round(time.Millisecond))
			time.Sleep(time.Second) // past the cool-down
			l.Slow(0)
			require.InDelta(t, 25, l.Rate(), 0.1)
			require.Equal(t, []ChangeReason{ChangeSlowed, ChangeSlowed}, ch.reasons())
		})
	})

	t.Run("PauseIsCappedByMaxPause", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, ch := setup(t, AdaptiveConfig{MaxPause: 5 * time.Second})
			start := time.Now()
			l.Slow(time.Hour)
			require.Equal(t, start.Add(5*time.Second), ch.last().PausedUntil)
			require.NoError(t, l.Wait(context.Background(), 1))
			// 1 token at 50/s, climbing by 10/s/s.
			require.InDelta(t, 5*time.Second+20*time.Millisecond, time.Since(start), float64(time.Millisecond))
		})
	})

	t.Run("SlowWithoutRetryAfterCutsAndEmptiesTheBucket", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, ch := setup(t, AdaptiveConfig{})
			start := time.Now()
			l.Slow(0)
			require.True(t, ch.last().PausedUntil.IsZero())
			require.NoError(t, l.Wait(context.Background(), 1))
			require.Equal(t, 20*time.Millisecond, time.Since(start).Round(time.Millisecond))
		})
	})

	t.Run("SlowEmptiesWhatAWaiterGathered", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, _ := setup(t, AdaptiveConfig{PerSecond: 10, Burst: 1})
			start := time.Now()
			done := make(chan time.Duration, 1)
			go func() {
				_ = l.Wait(context.Background(), 10)
				done <- time.Since(start)
			}()
			time.Sleep(500 * time.Millisecond) // 6 of 10 gathered
			l.Slow(time.Second)
			// Paused until 1.5 s, then 10 tokens from nothing at 5/s climbing by 1/s/s.
			took := <-done
			require.Greater(t, took, 3*time.Second)
			require.Less(t, took, 3500*time.Millisecond)
		})
	})

	t.Run("TakersAreServedInArrivalOrder", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, _ := setup(t, AdaptiveConfig{PerSecond: 10, Burst: 1})
			start := time.Now()
			var mu sync.Mutex
			var order []string
			var wg sync.WaitGroup
			take := func(name string, n int) {
				wg.Go(func() {
					require.NoError(t, l.Wait(context.Background(), n))
					mu.Lock()
					order = append(order, name)
					mu.Unlock()
				})
			}
			take("big", 10)
			time.Sleep(100 * time.Millisecond)
			take("small", 1)
			wg.Wait()
			require.Equal(t, []string{"big", "small"}, order)
			require.Equal(t, time.Second, time.Since(start))
		})
	})

	t.Run("SetCeilingKeepsTheRatesFraction", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, ch := setup(t, AdaptiveConfig{PerSecond: 90, Burst: 9, Recover: 0.01})
			require.NoError(t, l.SetCeiling(30, 3))
			require.Equal(t, 30.0, l.Rate())
			// The full bucket is trimmed to the new burst.
			start := time.Now()
			require.NoError(t, l.Wait(context.Background(), 4))
			require.InDelta(t, time.Second/30, time.Since(start), float64(time.Microsecond))
			l.Slow(0)
			require.Equal(t, 15.0, l.Rate())
			require.NoError(t, l.SetCeiling(60, 6))
			require.InDelta(t, 30, l.Rate(), 1e-9)
			require.NoError(t, l.SetCeiling(60, 6)) // no change, no event
			require.Equal(t, []ChangeReason{ChangeCeiling, ChangeSlowed, ChangeCeiling}, ch.reasons())
			require.Equal(t, Change{Reason: ChangeCeiling, PerSecond: 30, Ceiling: 60, Burst: 6}, ch.last())
		})
	})

	t.Run("SetCeilingRefusesBadValues", func(t *testing.T) {
		t.Parallel()
		l, _ := setup(t, AdaptiveConfig{})
		require.ErrorIs(t, l.SetCeiling(0, 1), ErrInvalidConfig)
		require.ErrorIs(t, l.SetCeiling(math.Inf(1), 1), ErrInvalidConfig)
		require.ErrorIs(t, l.SetCeiling(1, 0), ErrInvalidConfig)
		require.Equal(t, 100.0, l.Ceiling())
	})

	t.Run("RateNeverExceedsTheCeilingAsItChanges", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, _ := setup(t, AdaptiveConfig{PerSecond: 300, Burst: 30, Recover: 0.5})
			g := newGrants()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for _, n := range []int{1, 3, 7} {
				wg.Go(func() {
					for l.Wait(ctx, n) == nil {
						g.add(n)
					}
				})
			}
			// Replicas come and go; the gateway pushes back now and then.
			steps := []func(){
				func() { _ = l.SetCeiling(100, 10) },
				func() { l.Slow(300 * time.Millisecond) },
				func() { _ = l.SetCeiling(150, 15) },
				func() { l.Slow(0) },
				func() { _ = l.SetCeiling(75, 7) },
				func() { _ = l.SetCeiling(300, 30) },
			}
			for _, step := range steps {
				step()
				for range 100 {
					require.LessOrEqual(t, l.Rate(), l.Ceiling())
					time.Sleep(15 * time.Millisecond)
				}
			}
			wg.Wait()
			most, from := g.maxInWindow(time.Second)
			require.LessOrEqual(t, most, 300+30, "window starting at %s", from)
		})
	})

	t.Run("SuspendedLimiterGrantsNothing", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l, ch := setup(t, AdaptiveConfig{})
			l.suspend(true)
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- l.Wait(context.Background(), 1) }()
			time.Sleep(time.Minute)
			synctest.Wait()
			require.Empty(t, done)
			l.suspend(false)
			require.NoError(t, <-done)
			// The bucket was emptied: the token took 1/100 s after the resume.
			require.Equal(t, time.Minute+10*time.Millisecond, time.Since(start))
			require.Equal(t, []ChangeReason{ChangeSuspended, ChangeResumed}, ch.reasons())
		})
	})

	t.Run("OnChangeMayReadTheLimiter", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			var l *Adaptive
			var seen []float64
			l, err := NewAdaptive(AdaptiveConfig{PerSecond: 100, Burst: 10, OnChange: func(c Change) {
				seen = append(seen, l.Rate())
				if c.Reason == ChangeCeiling && c.Ceiling == 40 {
					l.Slow(0) // and even change it
				}
			}})
			require.NoError(t, err)
			require.NoError(t, l.SetCeiling(40, 4))
			require.Equal(t, []float64{40, 20}, seen)
		})
	})

	t.Run("BadConfigNamesTheSetting", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			cfg  AdaptiveConfig
			name string
		}{
			{AdaptiveConfig{PerSecond: 0, Burst: 1}, "rate.per_second"},
			{AdaptiveConfig{PerSecond: math.Inf(1), Burst: 1}, "rate.per_second"},
			{AdaptiveConfig{PerSecond: math.NaN(), Burst: 1}, "rate.per_second"},
			{AdaptiveConfig{PerSecond: 1, Burst: 0}, "rate.burst"},
			{AdaptiveConfig{PerSecond: 1, Burst: 1, MinPerSecond: -1}, "rate.min_per_second"},
			{AdaptiveConfig{PerSecond: 1, Burst: 1, Decrease: 1}, "rate.decrease"},
			{AdaptiveConfig{PerSecond: 1, Burst: 1, Recover: 2}, "rate.recover"},
			{AdaptiveConfig{PerSecond: 1, Burst: 1, CutCooldown: -time.Second}, "rate.cut_cooldown"},
			{AdaptiveConfig{PerSecond: 1, Burst: 1, MaxPause: -time.Second}, "rate.max_pause"},
		} {
			_, err := NewAdaptive(tc.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig, tc.name)
			require.ErrorContains(t, err, tc.name)
		}
	})
}

// changes records what OnChange was told, and when.
type changes struct {
	mu   sync.Mutex
	all  []Change
	when []time.Time
}

func (c *changes) add(ch Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, ch)
	c.when = append(c.when, time.Now())
}

func (c *changes) reasons() []ChangeReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ChangeReason
	for _, ch := range c.all {
		out = append(out, ch.Reason)
	}
	return out
}

func (c *changes) last() Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all[len(c.all)-1]
}

func (c *changes) at(i int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.when[i]
}
