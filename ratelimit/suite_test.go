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

// waiter is what the worker asks of a limiter.
type waiter interface {
	Wait(ctx context.Context, n int) error
}

var (
	_ waiter = (*Limiter)(nil)
	_ waiter = (*Adaptive)(nil)
)

// limiterFeatures is what an implementation does beyond the common contract.
type limiterFeatures struct {
	// Unlimited: math.Inf(1) is an accepted rate that never waits.
	Unlimited bool
}

// limiterImpl is one implementation under the conformance suite.
type limiterImpl struct {
	features limiterFeatures
	// new returns a limiter of perSecond and burst that starts full.
	new func(t *testing.T, perSecond float64, burst int) waiter
}

// grant is one successful Wait: when it returned and how many tokens it took.
type grant struct {
	at time.Duration
	n  int
}

// grants records successful Waits from several goroutines.
type grants struct {
	mu    sync.Mutex
	start time.Time
	all   []grant
}

func newGrants() *grants { return &grants{start: time.Now()} }

func (g *grants) add(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.all = append(g.all, grant{at: time.Since(g.start), n: n})
}

// maxInWindow returns the most tokens granted within any half-open window of
// length w, and the window's start.
func (g *grants) maxInWindow(w time.Duration) (most int, from time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	sum, j := 0, 0
	for i := range g.all {
		for j < len(g.all) && g.all[j].at-g.all[i].at < w {
			sum += g.all[j].n
			j++
		}
		if sum > most {
			most, from = sum, g.all[i].at
		}
		sum -= g.all[i].n
	}
	return most, from
}

// between returns the tokens granted in [from, to).
func (g *grants) between(from, to time.Duration) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	sum := 0
	for _, x := range g.all {
		if x.at >= from && x.at < to {
			sum += x.n
		}
	}
	return sum
}

func (g *grants) total() int { return g.between(0, math.MaxInt64) }

// testLimiterConformance runs the contract every limiter the worker may use keeps.
func testLimiterConformance(t *testing.T, impl limiterImpl) {
	seconds := 5
	if testing.Short() {
		seconds = 2
	}
	run := time.Duration(seconds) * time.Second

	t.Run("NeverExceedsRatePlusBurstInAnySecond", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			const perSecond, burst = 100, 20
			l := impl.new(t, perSecond, burst)
			g := newGrants()
			for time.Since(g.start) < run {
				require.NoError(t, l.Wait(context.Background(), 1))
				g.add(1)
			}
			most, from := g.maxInWindow(time.Second)
			require.LessOrEqual(t, most, perSecond+burst, "window starting at %s", from)
			// And the rate is used fully: the burst plus the run's worth.
			require.GreaterOrEqual(t, g.total(), burst+seconds*perSecond-1)
		})
	})

	t.Run("ConcurrentTakersShareTheRate", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			const perSecond, burst, takers = 50, 5, 8
			l := impl.new(t, perSecond, burst)
			g := newGrants()
			ctx, cancel := context.WithTimeout(context.Background(), run)
			defer cancel()
			var wg sync.WaitGroup
			for i := range takers {
				n := 1 + i%burst // every size up to the burst
				wg.Go(func() {
					for l.Wait(ctx, n) == nil {
						g.add(n)
					}
				})
			}
			wg.Wait()
			most, from := g.maxInWindow(time.Second)
			require.LessOrEqual(t, most, perSecond+burst, "window starting at %s", from)
			require.GreaterOrEqual(t, g.total(), seconds*perSecond-burst)
		})
	})

	t.Run("MoreThanBurstIsTakenAtTheRate", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := impl.new(t, 10, 2)
			start := time.Now()
			require.NoError(t, l.Wait(context.Background(), 12))
			// 2 from the full bucket, then 10 more at 10/s.
			require.Equal(t, time.Second, time.Since(start))
			require.NoError(t, l.Wait(context.Background(), 25))
			require.Equal(t, 3500*time.Millisecond, time.Since(start))
		})
	})

	t.Run("NothingAskedReturnsAtOnce", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := impl.new(t, 1, 1)
			require.NoError(t, l.Wait(context.Background(), 1))
			start := time.Now()
			require.NoError(t, l.Wait(context.Background(), 0))
			require.NoError(t, l.Wait(context.Background(), -3))
			require.Zero(t, time.Since(start))
		})
	})

	t.Run("WaitHonoursCancellation", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := impl.new(t, 1, 1)
			require.NoError(t, l.Wait(context.Background(), 1))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Wait(ctx, 1) }()
			synctest.Wait()
			cancel()
			require.ErrorIs(t, <-done, context.Canceled)
		})
	})

	t.Run("CancelledTakerLeavesTheTokensToOthers", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := impl.new(t, 1, 1)
			start := time.Now()
			require.NoError(t, l.Wait(context.Background(), 1))
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			require.Error(t, l.Wait(ctx, 1))
			require.NoError(t, l.Wait(context.Background(), 1))
			require.Equal(t, time.Second, time.Since(start))
		})
	})

	t.Run("DeadlineBeforeTokensIsAnError", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			l := impl.new(t, 1, 1)
			require.NoError(t, l.Wait(context.Background(), 1))
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, l.Wait(ctx, 1), context.DeadlineExceeded)
		})
	})

	if impl.features.Unlimited {
		t.Run("UnlimitedNeverWaits", func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				l := impl.new(t, math.Inf(1), 1)
				start := time.Now()
				for range 10000 {
					require.NoError(t, l.Wait(context.Background(), 1))
				}
				require.Zero(t, time.Since(start))
			})
		})
	}
}
