package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/jetsms/jetsms/dispatcher"
)

// Defaults of the circuit.
const (
	// CircuitFailuresDefault is how many submissions in a row must fail for the
	// gateway's sake (refused connections, 5xx, timeouts) to open the circuit. A
	// refusal of the credentials (401, 403) or an answer that shows the
	// configuration is wrong (3xx, 404, 405, 406, 415) opens it at once.
	CircuitFailuresDefault = 20
	// CircuitProbeMinDefault and CircuitProbeMaxDefault bound the wait before a
	// probe; it doubles with each failed probe.
	CircuitProbeMinDefault = time.Second
	CircuitProbeMaxDefault = 30 * time.Second
	// probeTimeout bounds one probe of the gateway.
	probeTimeout = 15 * time.Second
)

// Prober checks the gateway without sending an SMS; see dispatcher.RESTv2.Probe.
type Prober interface {
	Probe(ctx context.Context) error
}

type circuitState int

const (
	circuitClosed   circuitState = iota
	circuitOpen                  // no job is taken until a probe succeeds
	circuitHalfOpen              // a probe (or, without a prober, a trial submission) is out
)

// circuit keeps the worker from taking jobs while the gateway cannot take them, so
// that an outage burns no job's attempts and a wrong configuration (credentials,
// URL, API version) fails no job: the jobs stay queued, untouched. It opens at once
// on a refusal of the credentials or an answer that shows the configuration is
// wrong, and after a run of failed submissions. While open, the gateway is probed
// each probe interval with a request that sends no SMS (probe); a successful probe
// closes it. Each failed probe logs one line. Without a probe function (tests with
// a fake sender), one trial submission goes out instead.
type circuit struct {
	threshold          int
	probeMin, probeMax time.Duration
	now                func() time.Time
	log                *zap.Logger
	onChange           func(open bool)
	probe              func(ctx context.Context) error // nil: trial submissions

	mu        sync.Mutex
	state     circuitState
	failures  int // in a row, while closed
	interval  time.Duration
	nextProbe time.Time
	reason    string
	probing   bool          // a caller of admit is probing now
	changed   chan struct{} // closed and replaced at every change of state
}

func newCircuit(threshold int, probeMin, probeMax time.Duration, now func() time.Time, log *zap.Logger, onChange func(bool)) *circuit {
	return &circuit{
		threshold: threshold, probeMin: probeMin, probeMax: max(probeMax, probeMin), now: now, log: log,
		onChange: onChange, interval: probeMin, changed: make(chan struct{}),
	}
}

// admit returns once a job may be submitted: at once while closed; while open,
// once a probe succeeded (without a probe function: when the next trial is due,
// that submission being the trial). One caller at a time runs the probe; the
// others wait for its outcome.
func (c *circuit) admit(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.state == circuitClosed {
			c.mu.Unlock()
			return nil
		}
		now := c.now()
		due := !now.Before(c.nextProbe)
		switch {
		case due && c.probe == nil && c.state == circuitOpen, due && c.probe == nil && c.state == circuitHalfOpen:
			// The trial. If its outcome never comes (the job was not sent after
			// all), another goes out an interval later.
			c.state = circuitHalfOpen
			c.nextProbe = now.Add(c.interval)
			c.mu.Unlock()
			return nil
		case due && c.probe != nil && !c.probing:
			c.state, c.probing = circuitHalfOpen, true
			c.mu.Unlock()
			if err := c.runProbe(ctx); err != nil {
				return err
			}
			continue
		}
		var (
			t     *time.Timer
			timer <-chan time.Time // nil while another caller probes: wait for its outcome
		)
		if !c.probing {
			t = time.NewTimer(c.nextProbe.Sub(now))
			timer = t.C
		}
		changed := c.changed
		c.mu.Unlock()
		var err error
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-changed:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
		if err != nil {
			return err
		}
	}
}

// runProbe probes the gateway once and records the outcome. It returns ctx's
// error when ctx ended during the probe.
func (c *circuit) runProbe(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	err := c.probe(pctx)
	cancel()
	c.mu.Lock()
	c.probing = false
	if ctx.Err() != nil {
		if c.state == circuitHalfOpen {
			c.state = circuitOpen
		}
		c.broadcast() // another caller probes
		c.mu.Unlock()
		return ctx.Err()
	}
	c.mu.Unlock()
	if err == nil {
		c.succeeded()
		return nil
	}
	reason, _ := outcomeReason(err)
	c.failed(reason, true)
	return nil
}

// check probes the gateway before the first job is taken. A failure opens the
// circuit at once, with its reason logged, so no job is taken until a probe
// succeeds.
func (c *circuit) check(ctx context.Context) {
	if c.probe == nil {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	err := c.probe(pctx)
	cancel()
	if err == nil {
		c.log.Info("gateway checked: it answers and takes the credentials")
		return
	}
	reason, _ := outcomeReason(err)
	c.failed("start-up check: "+reason, true)
}

// succeeded records a submission the gateway answered (accepted, or refused the
// job itself) or a successful probe: the gateway works.
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

// failed records a submission or probe that failed for the gateway's sake (or the
// configuration's); now is true for a failure that opens the circuit at once: a
// refusal of the credentials, an answer that shows the configuration is wrong, a
// failed probe.
func (c *circuit) failed(reason string, now bool) {
	c.mu.Lock()
	switch c.state {
	case circuitClosed:
		c.failures++
		if !now && c.failures < c.threshold {
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
		// The probe (or trial) failed: wait longer before the next.
		c.interval = min(2*c.interval, c.probeMax)
		c.state, c.reason = circuitOpen, reason
		c.nextProbe = c.now().Add(c.interval)
		c.broadcast()
		next := c.interval
		c.mu.Unlock()
		c.log.Warn("gateway circuit still open: the probe failed",
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

// reportCircuit tells the circuit what a submission's outcome says of the gateway.
func (w *Worker) reportCircuit(err error) {
	var gwErr *dispatcher.Error
	switch {
	case err == nil:
		w.circuit.succeeded()
	case !errors.As(err, &gwErr):
	case gwErr.Kind == dispatcher.KindRejected:
		w.circuit.succeeded() // the gateway works; it refused this job
	case gwErr.StatusCode == http.StatusTooManyRequests:
		// The account's rate, not an outage: pacing answers it.
	default:
		reason, now := outcomeReason(err)
		w.circuit.failed(reason, now)
	}
}

// outcomeReason says why a submission or probe failed, naming what an operator
// should check, and whether it opens the circuit at once.
func outcomeReason(err error) (string, bool) {
	var gwErr *dispatcher.Error
	if !errors.As(err, &gwErr) {
		return "the gateway could not be checked: " + err.Error(), false
	}
	switch gwErr.Kind {
	case dispatcher.KindUnauthorized:
		return fmt.Sprintf("the gateway refused the credentials (HTTP %d): check gateway.username and gateway.password, "+
			"that the account may use this API, and that this host's IP address is on the account's allow-list", gwErr.StatusCode), true
	case dispatcher.KindMisconfigured:
		return fmt.Sprintf("the configuration is wrong, not the jobs: the gateway answered HTTP %d (%s); "+
			"check gateway.url (https://, host and base path) and gateway.api", gwErr.StatusCode, gwErr.Description), true
	}
	return "the gateway is failing: " + circuitReason(gwErr), false
}

func circuitReason(e *dispatcher.Error) string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("HTTP %d %s", e.StatusCode, e.Code)
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return e.Code
}
