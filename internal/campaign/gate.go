package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// ErrNotStarted is returned by Gate.State before Start.
var ErrNotStarted = errors.New("campaign gate not started")

// gateMissTTL is how long the Gate remembers that a campaign has no record: a job
// published to a campaign subject by hand costs one read per second, not one per
// job. gateMissesMax bounds how many such campaigns it remembers.
const (
	gateMissTTL   = time.Second
	gateMissesMax = 10_000
)

// Gate tells a worker, cheaply, whether a campaign's jobs may be sent: it keeps
// every campaign's state in memory, from a watch on the campaign bucket, so a
// pause or a cancel reaches it within milliseconds of being stored and State
// costs no round trip.
//
// A worker asks it for each job that has a campaign (the subject's last token),
// before it spends anything on the job, and again just before submitting when the
// job waited (for a rate token) since:
//
//	st, err := gate.State(ctx, j.Campaign)
//	switch {
//	case err != nil:              // the gate is not running: release the job with a delay
//	case st == StatePaused:       // hold: nak with a delay, no event, no attempt counted
//	case st == StateCancelled:    // end it: final event "cancelled", no gateway request
//	default:                      // publishing, running, done, or StateUnknown: send
//	}
//
// A Gate is safe for concurrent use. Start it once; Stop it once or more.
type Gate struct {
	kv  jetstream.KeyValue
	log *zap.Logger

	mu      sync.RWMutex
	states  map[string]gateEntry
	misses  map[string]time.Time
	changed chan struct{} // closed and replaced on every change

	ready    chan struct{} // closed once the initial values are in
	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
	started  bool
}

// gateEntry is what the Gate keeps of a record.
type gateEntry struct {
	state State
	// unsettled: publishing is over but not every job has ended; the Tracker
	// reconciles such campaigns now and then.
	unsettled bool
	// rows is the last row that may have a job: the rows checkpointed plus
	// those the publisher may have stored beyond (Totals.Rows + Progress.Ahead).
	rows int
}

// NewGate returns a gate over the campaign bucket of store.
func NewGate(store *Store, log *zap.Logger) (*Gate, error) {
	if store == nil {
		return nil, errors.New("campaign gate: a store is required")
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Gate{
		kv:      store.kv,
		log:     log.Named("campaign_gate"),
		states:  make(map[string]gateEntry),
		misses:  make(map[string]time.Time),
		changed: make(chan struct{}),
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
	}, nil
}

// Start watches the bucket and returns once every existing record is loaded.
func (g *Gate) Start(ctx context.Context) error {
	g.mu.Lock()
	if g.started {
		g.mu.Unlock()
		return errors.New("campaign gate: already started")
	}
	g.started = true
	g.mu.Unlock()
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// Records only: their keys are one token; tallies have three.
	w, err := g.kv.Watch(wctx, "*")
	if err != nil {
		cancel()
		close(g.done)
		return fmt.Errorf("watch campaigns: %w", err)
	}
	g.mu.Lock()
	g.cancel = cancel
	g.mu.Unlock()
	go g.run(wctx, w)
	select {
	case <-g.ready:
		return nil
	case <-ctx.Done():
		_ = g.Stop(context.Background())
		return ctx.Err()
	}
}

// Stop ends the watch and returns once its goroutine has ended; should ctx end
// first it still waits, and returns ctx's error. It is safe twice and without
// Start.
func (g *Gate) Stop(ctx context.Context) error {
	g.stopOnce.Do(func() {
		g.mu.Lock()
		started, cancel := g.started, g.cancel
		g.started = true // a Start after Stop fails
		g.mu.Unlock()
		if !started {
			close(g.done)
			return
		}
		if cancel != nil {
			cancel()
		}
	})
	select {
	case <-g.done:
		return nil
	case <-ctx.Done():
		<-g.done // cancelled above: the watch loop ends at once
		return ctx.Err()
	}
}

func (g *Gate) run(ctx context.Context, w jetstream.KeyWatcher) {
	defer close(g.done)
	defer func() { _ = w.Stop() }()
	readyOnce := sync.OnceFunc(func() { close(g.ready) })
	defer readyOnce()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				readyOnce()
				continue
			}
			g.apply(e)
		}
	}
}

// apply takes one change of a record.
func (g *Gate) apply(e jetstream.KeyValueEntry) {
	var ent gateEntry
	if e.Operation() == jetstream.KeyValuePut {
		var r struct {
			State    State      `json:"state"`
			Progress Progress   `json:"progress"`
			Totals   Totals     `json:"totals"`
			Ended    *time.Time `json:"ended"`
		}
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			g.log.Warn("campaign record not readable", zap.String("campaign", e.Key()), zap.Error(err))
			return
		}
		ent = gateEntry{state: r.State, unsettled: r.Ended == nil && (r.Progress.Complete || r.Progress.Stopped),
			rows: r.Totals.Rows + r.Progress.Ahead}
	}
	g.mu.Lock()
	if ent.state == StateUnknown {
		delete(g.states, e.Key())
	} else {
		g.states[e.Key()] = ent
	}
	delete(g.misses, e.Key())
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
}

// State returns the campaign's state as last stored; StateUnknown for "" and for a
// campaign without a record, whose jobs are sent as any other. It answers from
// memory, except for a campaign it has no record of, which it reads once a second
// at most. The error is ErrNotStarted, or the bucket's when that read fails.
func (g *Gate) State(ctx context.Context, campaign string) (State, error) {
	if campaign == "" || ValidateName(campaign) != nil {
		// No record can have a name that is not a campaign's: it is never looked
		// up, so a long name from a subject never reaches the server as a key.
		return StateUnknown, nil
	}
	select {
	case <-g.ready:
	default:
		return StateUnknown, ErrNotStarted
	}
	g.mu.RLock()
	ent, ok := g.states[campaign]
	missed, isMiss := g.misses[campaign]
	g.mu.RUnlock()
	if ok {
		return ent.state, nil
	}
	if isMiss && time.Since(missed) < gateMissTTL {
		return StateUnknown, nil
	}
	// A record stored a moment ago may not have reached the watch yet.
	key, err := recordKey(campaign)
	if err != nil {
		return StateUnknown, nil // checked above; no record has such a name
	}
	e, err := g.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		g.mu.Lock()
		if len(g.misses) >= gateMissesMax {
			clear(g.misses)
		}
		g.misses[campaign] = time.Now()
		g.mu.Unlock()
		return StateUnknown, nil
	case err != nil:
		return StateUnknown, fmt.Errorf("read campaign %s: %w", campaign, err)
	}
	g.apply(e)
	g.mu.RLock()
	ent = g.states[campaign]
	g.mu.RUnlock()
	return ent.state, nil
}

// WaitFor blocks until cond holds for the campaign's state as the gate sees it,
// and returns that state; or returns ctx's error.
func (g *Gate) WaitFor(ctx context.Context, campaign string, cond func(State) bool) (State, error) {
	select {
	case <-g.ready:
	case <-ctx.Done():
		return StateUnknown, ctx.Err()
	}
	for {
		g.mu.RLock()
		st, changed := g.states[campaign].state, g.changed
		g.mu.RUnlock()
		if cond(st) {
			return st, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return st, ctx.Err()
		}
	}
}

// unsettled returns the campaigns whose publishing is over but whose jobs have
// not all ended.
func (g *Gate) unsettled() []string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []string
	for name, ent := range g.states {
		if ent.unsettled {
			out = append(out, name)
		}
	}
	return out
}

// HasRow reports whether the job id names a row of the campaign's file that may
// have been published: "<campaign>:<row>" with row from 1 to the rows
// checkpointed plus those the publisher may have stored beyond them. known is
// false (and ok true) for a campaign without a record, whose jobs are sent as any
// other. A row beyond what the gate has seen is checked once more against the
// stored record, which the publisher writes before it publishes further.
func (g *Gate) HasRow(ctx context.Context, campaign, jobID string) (known, ok bool, err error) {
	st, err := g.State(ctx, campaign)
	if err != nil || st == StateUnknown {
		return false, true, err
	}
	name, row, parsed := ParseJobID(jobID)
	if !parsed || name != campaign {
		return true, false, nil
	}
	if g.rows(campaign) >= row {
		return true, true, nil
	}
	e, err := g.kv.Get(ctx, campaign)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, true, nil
	case err != nil:
		return true, false, fmt.Errorf("read campaign %s: %w", campaign, err)
	}
	g.apply(e)
	return true, g.rows(campaign) >= row, nil
}

func (g *Gate) rows(campaign string) int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.states[campaign].rows
}

// rowLimit returns the last row of the campaign that may have a job, reading the
// stored record once when the gate's copy says less than need.
func (g *Gate) rowLimit(ctx context.Context, campaign string, need int) (int, error) {
	if n := g.rows(campaign); n >= need {
		return n, nil
	}
	e, err := g.kv.Get(ctx, campaign)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read campaign %s: %w", campaign, err)
	}
	g.apply(e)
	return g.rows(campaign), nil
}
