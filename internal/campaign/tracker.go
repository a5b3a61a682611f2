package campaign

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// Defaults of TrackerConfig.
const (
	// FlushIntervalDefault is how long events wait before they are counted: the
	// lag of a record's counts.
	FlushIntervalDefault = 250 * time.Millisecond
	// ReconcileIntervalDefault is how often campaigns whose publishing is over but
	// which have not ended are recounted from their tallies.
	ReconcileIntervalDefault = 10 * time.Second
	// TrackerBatchDefault is the most events counted in one flush.
	TrackerBatchDefault = 4096
	// trackerAckWait is the consumer's ack deadline: far above a flush.
	trackerAckWait = 30 * time.Second
	// flushTimeout bounds one flush or one reconciliation.
	flushTimeout = 10 * time.Second
	// nakDelay is the wait before events whose flush failed are counted again;
	// it doubles with each flush that fails in a row, up to nakDelayMax.
	nakDelay    = time.Second
	nakDelayMax = time.Minute
)

// TrackerConfig configures a Tracker.
type TrackerConfig struct {
	// Names gives the status stream. Required.
	Names subjects.Names
	// Store is the campaign bucket. Required.
	Store *Store
	// Gate, when set, is a started Gate the tracker shares (the worker's); else
	// the tracker runs its own.
	Gate *Gate
	// Durable names the consumer; default Names.TrackerConsumer(), which every
	// Tracker of a deployment shares (the server splits the events among them).
	Durable string
	// FlushInterval; default FlushIntervalDefault.
	FlushInterval time.Duration
	// ReconcileInterval; default ReconcileIntervalDefault.
	ReconcileInterval time.Duration
	// MaxBatch; default TrackerBatchDefault.
	MaxBatch int
}

// Tracker keeps campaign records' counts up to date from status events: it
// consumes the status stream with a durable consumer, takes the events of
// campaign jobs (those whose campaign is set and whose id JobID made), marks each
// job's row in the campaign's tallies, and copies the tallies' counts into the
// record; it moves a campaign to done once every job has a final status.
//
// Run one in every process that runs workers or the callback receiver (jetsms
// worker, receiver and run): they share the consumer, and counting is idempotent,
// so any number may run. A Tracker is safe for concurrent use. Start it once; Stop
// it once or more.
type Tracker struct {
	cfg     TrackerConfig
	js      jetstream.JetStream
	log     *zap.Logger
	gate    *Gate
	ownGate bool

	in       chan tracked
	quit     chan struct{} // closed to make the loop flush and return
	done     chan struct{} // closed when the loop has returned
	hardCtx  context.Context
	hardStop context.CancelFunc
	cc       jetstream.ConsumeContext

	mu       sync.Mutex
	started  bool
	stopOnce sync.Once
	stopErr  error

	// failures counts the flushes that failed in a row (loop goroutine only).
	failures int
	// writes counts the tally and record writes tried (for tests).
	writes atomic.Int64
}

// tracked is one campaign job's event, waiting to be counted.
type tracked struct {
	msg      jetstream.Msg
	campaign string
	mark     mark
}

// NewTracker checks cfg and returns a tracker; Start runs it.
func NewTracker(cfg TrackerConfig, js jetstream.JetStream, log *zap.Logger) (*Tracker, error) {
	if cfg.Names.Prefix() == "" {
		return nil, errors.New("campaign tracker: names are required")
	}
	if cfg.Store == nil {
		return nil, errors.New("campaign tracker: a store is required")
	}
	if cfg.FlushInterval < 0 || cfg.ReconcileInterval < 0 || cfg.MaxBatch < 0 {
		return nil, errors.New("campaign tracker: intervals and batch must not be negative")
	}
	if cfg.Durable == "" {
		cfg.Durable = cfg.Names.TrackerConsumer()
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = FlushIntervalDefault
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = ReconcileIntervalDefault
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = TrackerBatchDefault
	}
	if log == nil {
		log = zap.NewNop()
	}
	t := &Tracker{
		cfg:  cfg,
		js:   js,
		log:  log.Named("campaign_tracker"),
		gate: cfg.Gate,
		in:   make(chan tracked, cfg.MaxBatch),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	t.hardCtx, t.hardStop = context.WithCancel(context.Background())
	return t, nil
}

// Start creates (or updates) the durable consumer and starts counting; it returns
// once events flow. A new consumer starts from the first stored event: counting
// is idempotent, so history costs time, never a wrong count.
func (t *Tracker) Start(ctx context.Context) error {
	t.mu.Lock()
	if t.started {
		t.mu.Unlock()
		return errors.New("campaign tracker: already started")
	}
	t.started = true
	t.mu.Unlock()
	if t.gate == nil {
		g, err := NewGate(t.cfg.Store, t.log)
		if err != nil {
			return err
		}
		if err := g.Start(ctx); err != nil {
			return err
		}
		t.gate, t.ownGate = g, true
	}
	cons, err := t.js.CreateOrUpdateConsumer(ctx, t.cfg.Names.StatusStream(), jetstream.ConsumerConfig{
		Durable:       t.cfg.Durable,
		Description:   "jetsms campaign tracker: counts campaign jobs' statuses into their records",
		FilterSubject: t.cfg.Names.StatusAll(),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       trackerAckWait,
		MaxAckPending: 4 * t.cfg.MaxBatch,
	})
	if err != nil {
		t.stopGate()
		return fmt.Errorf("campaign tracker consumer on %s: %w", t.cfg.Names.StatusStream(), err)
	}
	cc, err := cons.Consume(t.receive)
	if err != nil {
		t.stopGate()
		return fmt.Errorf("campaign tracker: consume %s: %w", t.cfg.Names.StatusStream(), err)
	}
	t.mu.Lock()
	t.cc = cc
	t.mu.Unlock()
	go t.loop()
	return nil
}

// Stop is graceful first: it stops pulling, counts the events in hand and acks
// them, and returns. If ctx ends first it stops at once (events not yet counted
// are delivered again later, to this or another tracker) and still waits for the
// loop. It is safe twice and without Start.
func (t *Tracker) Stop(ctx context.Context) error {
	t.stopOnce.Do(func() {
		t.mu.Lock()
		started, cc := t.started, t.cc
		t.started = true // a Start after Stop fails
		t.mu.Unlock()
		if cc == nil {
			// Never ran (or Start failed before consuming).
			t.hardStop()
			if started {
				t.stopGate()
			}
			return
		}
		cc.Drain()
		select {
		case <-cc.Closed():
			close(t.quit)
		case <-ctx.Done():
			cc.Stop()
			t.hardStop()
			t.stopErr = ctx.Err()
		}
		select {
		case <-t.done:
		case <-ctx.Done():
			t.hardStop()
			<-t.done
			t.stopErr = ctx.Err()
		}
		t.stopGate()
	})
	return t.stopErr
}

func (t *Tracker) stopGate() {
	if t.ownGate {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = t.gate.Stop(sctx)
	}
}

// campaignKey finds the event's campaign field: its first "campaign" key, since
// text inside a JSON string cannot hold an unescaped quote.
var campaignKey = []byte(`"campaign":`)

// receive takes one event from the consumer.
func (t *Tracker) receive(m jetstream.Msg) {
	data := m.Data()
	if i := bytes.Index(data, campaignKey); i < 0 || bytes.HasPrefix(data[i+len(campaignKey):], []byte(`""`)) {
		_ = m.Ack() // not a campaign's job
		return
	}
	var ev struct {
		JobID     string     `json:"job_id"`
		MessageID string     `json:"message_id"`
		Status    job.Status `json:"status"`
		Final     bool       `json:"final"`
		Campaign  string     `json:"campaign"`
		Duplicate bool       `json:"duplicate"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.Campaign == "" || ev.Duplicate {
		_ = m.Ack() // a duplicate's event is about another message, not the row's job
		return
	}
	name, row, ok := ParseJobID(ev.JobID)
	if !ok || name != ev.Campaign {
		_ = m.Ack() // published to the campaign's subject by other means
		return
	}
	mk := mark{row: row, sent: ev.Status == job.StatusAccepted || ev.MessageID != ""}
	if ev.Final {
		mk.final = ev.Status
	}
	if !mk.sent && mk.final == "" {
		_ = m.Ack() // retrying: nothing to count
		return
	}
	select {
	case t.in <- tracked{msg: m, campaign: name, mark: mk}:
	case <-t.hardCtx.Done():
		_ = m.Nak() // a hard stop: handed back
	}
}

func (t *Tracker) loop() {
	defer close(t.done)
	flush := time.NewTicker(t.cfg.FlushInterval)
	defer flush.Stop()
	reconcile := time.NewTicker(t.cfg.ReconcileInterval)
	defer reconcile.Stop()
	batch := make([]tracked, 0, t.cfg.MaxBatch)
	t.reconcileAll()
	for {
		select {
		case <-t.hardCtx.Done():
			// A hard stop: the events not counted are handed back (any that
			// still slip in are delivered again after the ack wait).
			for _, tr := range batch {
				_ = tr.msg.Nak()
			}
			for {
				select {
				case tr := <-t.in:
					_ = tr.msg.Nak()
				default:
					return
				}
			}
		case <-t.quit:
			for {
				select {
				case tr := <-t.in:
					batch = append(batch, tr)
					continue
				default:
				}
				break
			}
			t.flush(batch)
			return
		case tr := <-t.in:
			batch = append(batch, tr)
			if len(batch) >= t.cfg.MaxBatch {
				t.flush(batch)
				batch = batch[:0]
			}
		case <-flush.C:
			if len(batch) > 0 {
				t.flush(batch)
				batch = batch[:0]
			}
		case <-reconcile.C:
			t.reconcileAll()
		}
	}
}

// flush counts a batch and acks it; when counting fails the events are released
// to be counted again after nakDelay (a tally never counts one twice).
func (t *Tracker) flush(batch []tracked) {
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(t.hardCtx, flushTimeout)
	defer cancel()
	if err := t.count(ctx, batch); err != nil {
		// Wait longer after each failure in a row: an update that keeps failing
		// is not tried again in a tight loop.
		delay := flushRetryDelay(t.failures)
		t.failures++
		if !errors.Is(err, context.Canceled) {
			t.log.Warn("campaign events not counted; they are delivered again", zap.Int("events", len(batch)),
				zap.Duration("delay", delay), zap.Error(err))
		}
		for _, tr := range batch {
			_ = tr.msg.NakWithDelay(delay)
		}
		return
	}
	t.failures = 0
	for _, tr := range batch {
		_ = tr.msg.Ack()
	}
}

// count applies a batch: per campaign, each block's marks in its tally, then the
// blocks' counts in the record.
func (t *Tracker) count(ctx context.Context, batch []tracked) error {
	byCampaign := make(map[string]map[int][]mark)
	for _, tr := range batch {
		chunks := byCampaign[tr.campaign]
		if chunks == nil {
			chunks = make(map[int][]mark)
			byCampaign[tr.campaign] = chunks
		}
		c, _ := chunkOf(tr.mark.row)
		chunks[c] = append(chunks[c], tr.mark)
	}
	for name, chunks := range byCampaign {
		st, err := t.gate.State(ctx, name)
		if err != nil {
			return err
		}
		if st == StateUnknown {
			continue // no record: a campaign subject used by hand
		}
		// Only the campaign's rows count: an event of a job published to the
		// campaign's subject with a row beyond the file (a forged or mistaken id)
		// is dropped, so the record and its tallies stay bounded by the file.
		need := 0
		for _, marks := range chunks {
			for _, m := range marks {
				need = max(need, m.row)
			}
		}
		limit, err := t.gate.rowLimit(ctx, name, need)
		if err != nil {
			return err
		}
		counts := make(map[int]ChunkCounts, len(chunks))
		for c, marks := range chunks {
			marks = slices.DeleteFunc(marks, func(m mark) bool { return m.row > limit })
			if len(marks) == 0 {
				continue
			}
			t.writes.Add(1)
			cc, err := t.cfg.Store.applyMarks(ctx, name, c, marks)
			if err != nil {
				return err
			}
			counts[c] = cc
		}
		if len(counts) == 0 {
			continue
		}
		t.writes.Add(1)
		if _, err := t.cfg.Store.absorb(ctx, name, counts); err != nil {
			return err
		}
	}
	return nil
}

// reconcileAll recounts the campaigns that may have ended unnoticed: a process
// died between a tally and its record, or publishing ended after the last event.
func (t *Tracker) reconcileAll() {
	for _, name := range t.gate.unsettled() {
		ctx, cancel := context.WithTimeout(t.hardCtx, flushTimeout)
		_, err := t.cfg.Store.reconcile(ctx, name)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			t.log.Warn("campaign not reconciled", zap.String("campaign", name), zap.Error(err))
		}
	}
}

// flushRetryDelay is how long events wait to be counted again after failures
// flushes in a row failed before this one: nakDelay doubling, at most nakDelayMax.
func flushRetryDelay(failures int) time.Duration {
	return min(nakDelay<<min(failures, 6), nakDelayMax)
}
