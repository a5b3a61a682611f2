package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults of AdaptiveConfig.
const (
	// MinPerSecondDefault is the floor Slow never cuts below (tokens a second).
	MinPerSecondDefault = 1.0
	// DecreaseDefault is the factor each cut multiplies the rate by.
	DecreaseDefault = 0.5
	// RecoverDefault is the fraction of the ceiling regained each second after a
	// cut: from half the ceiling back to all of it in 5 s.
	RecoverDefault = 0.1
	// CutCooldownDefault is how long after a cut's pause further Slows only extend
	// the pause; it keeps the answers to requests sent before the cut from cutting
	// again.
	CutCooldownDefault = time.Second
	// MaxPauseDefault caps the pause of one Slow.
	MaxPauseDefault = time.Minute
)

// AdaptiveConfig configures an Adaptive limiter. Zero values take the defaults
// above.
type AdaptiveConfig struct {
	// PerSecond is the ceiling in tokens a second: the rate starts there and never
	// climbs above it. It must be > 0 and finite (use New for an unlimited rate).
	PerSecond float64
	// Burst is how many tokens may be spent at once after a quiet spell; >= 1.
	Burst int
	// MinPerSecond is the floor Slow never cuts below; > 0. When the ceiling is
	// lower than the floor, the ceiling is the floor.
	MinPerSecond float64
	// Decrease is the factor Slow multiplies the rate by; 0 < Decrease < 1.
	Decrease float64
	// Recover is the fraction of the ceiling the rate regains each second after a
	// cut (additive increase); 0 < Recover <= 1.
	Recover float64
	// CutCooldown: a Slow during a cut's pause, or less than CutCooldown after it
	// ended, extends the pause but does not cut again; >= 0.
	CutCooldown time.Duration
	// MaxPause caps the pause of one Slow, whatever Retry-After asked for; > 0.
	MaxPause time.Duration
	// OnChange, when set, is told of every change: a cut, the rate back at the
	// ceiling, a new ceiling, a suspension and its end. Calls come in order, one at
	// a time and outside the limiter's lock, so OnChange may call the limiter; a
	// call may run on the goroutine of a later change or on a timer's goroutine.
	// The rate's climb between those events is not reported: read Rate for a gauge.
	OnChange func(Change)
}

// ChangeReason says why an Adaptive limiter's state changed.
type ChangeReason string

// The reasons of Change.
const (
	// ChangeSlowed: Slow cut the rate and paused takers until PausedUntil.
	ChangeSlowed ChangeReason = "slowed"
	// ChangeRecovered: after a cut, the rate climbed back to the ceiling.
	ChangeRecovered ChangeReason = "recovered"
	// ChangeCeiling: SetCeiling gave a new ceiling or burst (Share does this when
	// replicas join or leave).
	ChangeCeiling ChangeReason = "ceiling"
	// ChangeSuspended: no tokens are handed out until ChangeResumed. Share
	// suspends the limiter while it cannot tell how many replicas share the rate,
	// and for good once stopped.
	ChangeSuspended ChangeReason = "suspended"
	// ChangeResumed ends a suspension.
	ChangeResumed ChangeReason = "resumed"
)

// Change is an Adaptive limiter's state right after a change.
type Change struct {
	Reason ChangeReason
	// PerSecond is the current rate (which applies again once a pause ends).
	PerSecond float64
	// Ceiling and Burst are the current ceiling and burst.
	Ceiling float64
	Burst   int
	// PausedUntil is when the pause of a Slow ends; zero when not paused.
	PausedUntil time.Time
}

// Adaptive is a token bucket whose rate backs off when the gateway pushes back
// (additive increase, multiplicative decrease). It starts at the ceiling; Slow cuts
// the rate and pauses every taker; the rate then climbs back to the ceiling at
// Recover×ceiling a second. The ceiling itself may change (SetCeiling), which is
// how Share divides the account's rate among replicas.
//
// Takers are served first come, first served. It is safe for concurrent use.
type Adaptive struct {
	cfg  AdaptiveConfig
	turn chan struct{} // held by the one taker that gathers tokens; the rest queue

	mu          sync.Mutex
	ceiling     float64
	burst       int
	floor       float64 // min(cfg.MinPerSecond, ceiling)
	rate        float64 // floor <= rate <= ceiling
	tokens      float64 // in the bucket: at most burst
	held        float64 // gathered by the taker at the head of the queue
	gathering   bool    // a taker is gathering: accrual goes to held, uncapped
	last        time.Time
	pausedUntil time.Time
	noCutBefore time.Time
	suspended   bool
	atCeiling   bool
	changed     chan struct{} // closed and replaced on every change
	recoverT    *time.Timer   // fires when the rate is due back at the ceiling

	pending    []Change // not yet given to OnChange
	delivering bool
}

// eps absorbs floating-point error when comparing token counts.
const eps = 1e-9

// NewAdaptive checks cfg and returns a limiter at its ceiling with a full bucket.
func NewAdaptive(cfg AdaptiveConfig) (*Adaptive, error) {
	if err := checkRate(cfg.PerSecond, cfg.Burst); err != nil {
		return nil, err
	}
	if cfg.MinPerSecond == 0 {
		cfg.MinPerSecond = MinPerSecondDefault
	}
	if cfg.Decrease == 0 {
		cfg.Decrease = DecreaseDefault
	}
	if cfg.Recover == 0 {
		cfg.Recover = RecoverDefault
	}
	if cfg.CutCooldown == 0 {
		cfg.CutCooldown = CutCooldownDefault
	}
	if cfg.MaxPause == 0 {
		cfg.MaxPause = MaxPauseDefault
	}
	switch {
	case !(cfg.MinPerSecond > 0) || math.IsInf(cfg.MinPerSecond, 0):
		return nil, fmt.Errorf("%w: rate.min_per_second must be greater than 0 (got %v)", ErrInvalidConfig, cfg.MinPerSecond)
	case !(cfg.Decrease > 0 && cfg.Decrease < 1):
		return nil, fmt.Errorf("%w: rate.decrease must be between 0 and 1, both excluded (got %v)", ErrInvalidConfig, cfg.Decrease)
	case !(cfg.Recover > 0 && cfg.Recover <= 1):
		return nil, fmt.Errorf("%w: rate.recover must be greater than 0 and at most 1 (got %v)", ErrInvalidConfig, cfg.Recover)
	case cfg.CutCooldown < 0:
		return nil, fmt.Errorf("%w: rate.cut_cooldown must not be negative (got %s)", ErrInvalidConfig, cfg.CutCooldown)
	case cfg.MaxPause < 0:
		return nil, fmt.Errorf("%w: rate.max_pause must be greater than 0 (got %s)", ErrInvalidConfig, cfg.MaxPause)
	}
	return &Adaptive{
		cfg:       cfg,
		turn:      make(chan struct{}, 1),
		ceiling:   cfg.PerSecond,
		burst:     cfg.Burst,
		floor:     min(cfg.MinPerSecond, cfg.PerSecond),
		rate:      cfg.PerSecond,
		tokens:    float64(cfg.Burst),
		last:      time.Now(),
		atCeiling: true,
		changed:   make(chan struct{}),
	}, nil
}

// checkRate validates a ceiling and a burst.
func checkRate(perSecond float64, burst int) error {
	if !(perSecond > 0) || math.IsInf(perSecond, 1) {
		return fmt.Errorf("%w: rate.per_second must be greater than 0 and finite (got %v)", ErrInvalidConfig, perSecond)
	}
	if burst < 1 {
		return fmt.Errorf("%w: rate.burst must be at least 1 (got %d)", ErrInvalidConfig, burst)
	}
	return nil
}

// Wait blocks until n tokens are available and takes them, or returns ctx's error
// without taking any. n < 1 returns at once.
//
// Takers are served in arrival order: the first gathers tokens as they accrue while
// the rest queue behind it. n larger than the burst is therefore never refused: the
// taker drains the bucket and gathers the rest at the current rate, so n tokens
// cost n/rate seconds like any others. Those n tokens are granted at one instant,
// so a window that ends there holds more than the burst. A taker that gives up
// (ctx ends) puts what it gathered back in the bucket, up to the burst.
//
// Unlike Limiter.Wait, Wait does not refuse early when ctx's deadline comes before
// the tokens would: the rate may climb meanwhile. It returns ctx's error at the
// deadline.
func (l *Adaptive) Wait(ctx context.Context, n int) error {
	if n < 1 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case l.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-l.turn }()

	need := float64(n)
	l.mu.Lock()
	l.advance(time.Now())
	l.held, l.tokens, l.gathering = l.tokens, 0, true
	for {
		now := time.Now()
		var d time.Duration // 0: wait for a change only
		switch {
		case l.suspended:
		case now.Before(l.pausedUntil):
			d = l.pausedUntil.Sub(now)
		case l.held+eps >= need:
			l.tokens = min(float64(l.burst), l.tokens+max(0, l.held-need))
			l.held, l.gathering = 0, false
			l.mu.Unlock()
			return nil
		default:
			d = seconds(l.timeFor(need - l.held))
		}
		changed := l.changed
		l.mu.Unlock()
		err := sleep(ctx, d, changed)
		l.mu.Lock()
		l.advance(time.Now())
		if err != nil {
			l.tokens = min(float64(l.burst), l.tokens+l.held)
			l.held, l.gathering = 0, false
			l.mu.Unlock()
			return err
		}
	}
}

// sleep waits for d (forever when d is 0), for changed to close or for ctx to end;
// only the last is an error.
func sleep(ctx context.Context, d time.Duration, changed <-chan struct{}) error {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		return nil
	case <-changed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// seconds converts to a Duration, rounding up so a wake-up is never early, and
// capped at an hour so a tiny rate cannot overflow (the taker then looks again).
func seconds(s float64) time.Duration {
	const maxWait = time.Hour
	if s >= maxWait.Seconds() {
		return maxWait
	}
	return max(time.Nanosecond, time.Duration(math.Ceil(s*1e9)))
}

// Slow tells the limiter the gateway pushed back (429 or 503): it cuts the rate by
// Decrease (not below the floor), empties the bucket, and pauses every taker for
// retryAfter (capped at MaxPause; none when <= 0). The rate then climbs back to the
// ceiling at Recover×ceiling a second, starting when the pause ends.
//
// Answers to requests sent before the cut come back after it; so a Slow during the
// pause, or less than CutCooldown after it, does not cut again. It still pauses
// until its own retryAfter when that is later, and then empties the bucket too.
func (l *Adaptive) Slow(retryAfter time.Duration) {
	now := time.Now()
	l.mu.Lock()
	l.advance(now)
	retryAfter = min(max(retryAfter, 0), l.cfg.MaxPause)
	if until := now.Add(retryAfter); until.After(l.pausedUntil) {
		// What the bucket held would go out at once when the pause ends.
		l.pausedUntil = until
		l.tokens, l.held = 0, 0
		l.signal()
	}
	if now.Before(l.noCutBefore) {
		l.scheduleRecovery(now)
		l.unlockAndDeliver()
		return
	}
	l.rate = max(l.floor, l.rate*l.cfg.Decrease)
	l.tokens, l.held = 0, 0
	l.atCeiling = false
	l.noCutBefore = later(now, l.pausedUntil).Add(l.cfg.CutCooldown)
	l.scheduleRecovery(now)
	l.signal()
	l.queue(ChangeSlowed, now)
	l.unlockAndDeliver()
}

// SetCeiling changes the ceiling and the burst. The current rate keeps its fraction
// of the ceiling (a limiter at its ceiling moves to the new one at once; one
// climbing back after a cut keeps climbing), and the bucket is trimmed to the new
// burst. It returns ErrInvalidConfig for a ceiling that is not > 0 and finite or a
// burst < 1.
func (l *Adaptive) SetCeiling(perSecond float64, burst int) error {
	if err := checkRate(perSecond, burst); err != nil {
		return err
	}
	now := time.Now()
	l.mu.Lock()
	l.advance(now)
	if perSecond == l.ceiling && burst == l.burst {
		l.mu.Unlock()
		return nil
	}
	atCeiling := l.atCeiling || l.rate >= l.ceiling
	scale := perSecond / l.ceiling
	l.ceiling, l.burst = perSecond, burst
	l.floor = min(l.cfg.MinPerSecond, perSecond)
	if atCeiling {
		l.rate = perSecond
	} else {
		l.rate = min(perSecond, max(l.floor, l.rate*scale))
	}
	l.tokens = min(l.tokens, float64(burst))
	l.scheduleRecovery(now)
	l.signal()
	l.queue(ChangeCeiling, now)
	l.unlockAndDeliver()
	return nil
}

// suspend stops (on) or resumes handing out tokens, and reports whether that was a
// change. A suspension empties the bucket and freezes the climb; nothing accrues
// until it ends.
func (l *Adaptive) suspend(on bool) bool {
	now := time.Now()
	l.mu.Lock()
	l.advance(now)
	if l.suspended == on {
		l.mu.Unlock()
		return false
	}
	l.suspended = on
	reason := ChangeResumed
	if on {
		l.tokens, l.held = 0, 0
		reason = ChangeSuspended
	}
	l.scheduleRecovery(now)
	l.signal()
	l.queue(reason, now)
	l.unlockAndDeliver()
	return true
}

// Rate returns the current rate in tokens a second. During a pause it is the rate
// that applies once the pause ends.
func (l *Adaptive) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.advance(time.Now())
	return l.rate
}

// Ceiling returns the current ceiling.
func (l *Adaptive) Ceiling() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ceiling
}

// Burst returns the current burst.
func (l *Adaptive) Burst() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.burst
}

// advance accounts for the tokens accrued and the climb of the rate up to now.
// Nothing accrues during a pause or a suspension. l.mu is held.
func (l *Adaptive) advance(now time.Time) {
	from := l.last
	if !now.After(from) {
		return
	}
	l.last = now
	if l.suspended {
		return
	}
	from = later(from, l.pausedUntil)
	if !now.After(from) {
		return
	}
	gained, rate := l.climb(now.Sub(from).Seconds())
	l.rate = rate
	if l.gathering {
		l.held += gained
	} else {
		l.tokens = min(float64(l.burst), l.tokens+gained)
	}
}

// climb returns the tokens that accrue in dt seconds from the current rate, and the
// rate after them: the rate rises by Recover×ceiling a second up to the ceiling.
func (l *Adaptive) climb(dt float64) (gained, rate float64) {
	r0, c, a := l.rate, l.ceiling, l.cfg.Recover*l.ceiling
	if r0 >= c {
		return c * dt, c
	}
	up := (c - r0) / a // seconds until the ceiling
	if dt < up {
		return r0*dt + a*dt*dt/2, min(c, r0+a*dt)
	}
	return r0*up + a*up*up/2 + c*(dt-up), c
}

// timeFor returns the seconds until need tokens accrue from now, the inverse of
// climb.
func (l *Adaptive) timeFor(need float64) float64 {
	r0, c, a := l.rate, l.ceiling, l.cfg.Recover*l.ceiling
	if r0 >= c {
		return need / c
	}
	up := (c - r0) / a
	if gainedUp := r0*up + a*up*up/2; need >= gainedUp {
		return up + (need-gainedUp)/c
	}
	// r0·t + a·t²/2 = need, written to stay exact for a tiny a.
	return 2 * need / (r0 + math.Sqrt(r0*r0+2*a*need))
}

// scheduleRecovery arms the timer that reports ChangeRecovered when the rate is
// due back at the ceiling. l.mu is held.
func (l *Adaptive) scheduleRecovery(now time.Time) {
	if l.cfg.OnChange == nil {
		return
	}
	if l.suspended || l.atCeiling {
		if l.recoverT != nil {
			l.recoverT.Stop()
		}
		return
	}
	d := later(now, l.pausedUntil).Sub(now) + seconds((l.ceiling-l.rate)/(l.cfg.Recover*l.ceiling))
	if l.recoverT == nil {
		l.recoverT = time.AfterFunc(d, l.checkRecovered)
		return
	}
	l.recoverT.Reset(d)
}

// checkRecovered runs on the recovery timer.
func (l *Adaptive) checkRecovered() {
	now := time.Now()
	l.mu.Lock()
	l.advance(now)
	if !l.atCeiling && !l.suspended {
		if l.rate >= l.ceiling*(1-eps) {
			l.rate, l.atCeiling = l.ceiling, true
			l.queue(ChangeRecovered, now)
		} else {
			l.scheduleRecovery(now)
		}
	}
	l.unlockAndDeliver()
}

// signal wakes the taker at the head of the queue to look again. l.mu is held.
func (l *Adaptive) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// queue records a change for OnChange. l.mu is held.
func (l *Adaptive) queue(reason ChangeReason, now time.Time) {
	if l.cfg.OnChange == nil {
		return
	}
	c := Change{Reason: reason, PerSecond: l.rate, Ceiling: l.ceiling, Burst: l.burst}
	if now.Before(l.pausedUntil) {
		c.PausedUntil = l.pausedUntil
	}
	l.pending = append(l.pending, c)
}

// unlockAndDeliver releases l.mu and gives queued changes to OnChange, in order and
// outside the lock. If another goroutine is delivering, it delivers these too.
func (l *Adaptive) unlockAndDeliver() {
	for {
		if l.delivering || len(l.pending) == 0 {
			l.mu.Unlock()
			return
		}
		batch := l.pending
		l.pending, l.delivering = nil, true
		l.mu.Unlock()
		for _, c := range batch {
			l.cfg.OnChange(c)
		}
		l.mu.Lock()
		l.delivering = false
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
