package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"

	"golang.org/x/time/rate"
)

// Config is the account's rate as a token bucket.
type Config struct {
	// PerSecond is the sustained rate in tokens a second; it must be > 0.
	// math.Inf(1) means unlimited (benchmarks).
	PerSecond float64
	// Burst is how many tokens may be spent at once after a quiet spell; >= 1.
	Burst int
}

// Limiter is a token bucket shared by every worker of the process. It is safe for
// concurrent use.
type Limiter struct {
	l     *rate.Limiter
	burst int
}

// ErrInvalidConfig wraps every configuration error of New.
var ErrInvalidConfig = errors.New("invalid rate limit")

// New returns a limiter that starts full (Burst tokens available).
func New(cfg Config) (*Limiter, error) {
	if !(cfg.PerSecond > 0) {
		return nil, fmt.Errorf("%w: rate.per_second must be greater than 0 (got %v)", ErrInvalidConfig, cfg.PerSecond)
	}
	if cfg.Burst < 1 {
		return nil, fmt.Errorf("%w: rate.burst must be at least 1 (got %d)", ErrInvalidConfig, cfg.Burst)
	}
	limit := rate.Limit(cfg.PerSecond)
	if math.IsInf(cfg.PerSecond, 1) {
		limit = rate.Inf
	}
	return &Limiter{l: rate.NewLimiter(limit, cfg.Burst), burst: cfg.Burst}, nil
}

// Wait blocks until n tokens are available and takes them, or returns ctx's error
// without taking any. n larger than the burst is taken in burst-sized parts, so a
// long message still passes at the configured rate. n < 1 returns at once.
func (l *Limiter) Wait(ctx context.Context, n int) error {
	for n > 0 {
		part := min(n, l.burst)
		if err := l.l.WaitN(ctx, part); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			// WaitN refuses at once when ctx's deadline comes before the tokens
			// would: that is a cancellation as far as the caller is concerned.
			return fmt.Errorf("wait for %d tokens: %w", part, context.DeadlineExceeded)
		}
		n -= part
	}
	return nil
}

// PerSecond returns the configured rate.
func (l *Limiter) PerSecond() float64 { return float64(l.l.Limit()) }

// Burst returns the configured burst.
func (l *Limiter) Burst() int { return l.burst }
