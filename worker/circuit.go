package worker

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Defaults of the circuit.
const (
	// CircuitFailuresDefault is how many submissions in a row must fail for the
	// gateway's sake (refused connections, 5xx, timeouts) to open the circuit. A
	// refusal of the credentials (401, 403) opens it at once.
	CircuitFailuresDefault = 20
	// CircuitProbeMinDefault and CircuitProbeMaxDefault bound the wait before a
	// trial submission; it doubles with each failed trial.
	CircuitProbeMinDefault = time.Second
	CircuitProbeMaxDefault = 30 * time.Second
)

type circuitState int

const (
	circuitClosed   circuitState = iota
	circuitOpen                  // no job is taken until the next probe
	circuitHalfOpen              // one trial submission went out; waiting for its outcome
)

// circuit keeps the worker from taking jobs while the gateway cannot take them, so
// that an outage burns no job's attempts and bad credentials fail no job: the jobs
// stay queued, untouched. It opens at once on a refusal of the credentials and
// after a run of failed submissions; while open, one trial submission goes out
// each probe interval, and its success closes it.
type circuit struct {
	threshold          int
	probeMin, probeMax time.Duration
	now                func() time.Time
	log                *zap.Logger
	onChange           func(open bool)

	mu        sync.Mutex
	state     circuitState
	failures  int // in a row, while closed
	interval  time.Duration
	nextProbe time.Time
	reason    string
	changed   chan struct{} // closed and replaced at every change of state
}

func newCircuit(threshold int, probeMin, probeMax time.Duration, now func() time.Time, log *zap.Logger, onChange func(bool)) *circuit {
	return &circuit{
		threshold: threshold, probeMin: probeMin, probeMax: max(probeMax, probeMin), now: now, log: log,
		onChange: onChange, interval: probeMin, changed: make(chan struct{}),
	}
}

// admit returns once a job may be submitted: at once while closed; while open,
// when the next probe is due (that submission is the trial).
func (c *circuit) admit(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.state == circuitClosed {
			c.mu.Unlock()
			return nil
		}
		now := c.now()
		if !now.Before(c.nextProbe) {
			// The trial. If its outcome never comes (the job was not sent after
			// all), another goes out an interval later.
			c.state = circuitHalfOpen
			c.nextProbe = now.Add(c.interval)
			c.mu.Unlock()
			return nil
		}
		wait, changed := c.nextProbe.Sub(now), c.changed
		c.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// succeeded records a submission the gateway answered (accepted, or refused the
// job itself): the gateway works.
func (c *circuit) succeeded() {
	c.mu.Lock()
	c.failures = 0
	if c.state == circuitClosed {
		c.mu.Unlock()
		return
	}
	c.state, c.interval, c.reason = circuitClosed, c.probeMin, ""
	c.broadcast()
	c.mu.Unlock()
	c.log.Info("gateway circuit closed: the gateway takes submissions again")
	c.onChange(false)
}

// failed records a submission that failed for the gateway's sake; auth is true for
// a refusal of the credentials.
func (c *circuit) failed(reason string, auth bool) {
	c.mu.Lock()
	switch c.state {
	case circuitClosed:
		c.failures++
		if !auth && c.failures < c.threshold {
			c.mu.Unlock()
			return
		}
		c.state, c.reason = circuitOpen, reason
		c.nextProbe = c.now().Add(c.interval)
		c.broadcast()
		next := c.interval
		c.mu.Unlock()
		c.log.Warn("gateway circuit open: no jobs are taken; they stay queued",
			zap.String("reason", reason), zap.Duration("next_probe", next))
		c.onChange(true)
	case circuitHalfOpen:
		// The trial failed: wait longer before the next.
		c.interval = min(2*c.interval, c.probeMax)
		c.state, c.reason = circuitOpen, reason
		c.nextProbe = c.now().Add(c.interval)
		c.broadcast()
		next := c.interval
		c.mu.Unlock()
		c.log.Warn("gateway circuit still open: the trial submission failed",
			zap.String("reason", reason), zap.Duration("next_probe", next))
	default:
		// Already open: the outcome of a submission from before it opened.
		c.mu.Unlock()
	}
}

// open reports whether the circuit is open (or half-open), and why.
func (c *circuit) open() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state != circuitClosed, c.reason
}

func (c *circuit) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}
