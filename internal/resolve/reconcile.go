package resolve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// Defaults of ReconcilerConfig.
const (
	ReconcileAfterDefault = 24 * time.Hour
	// reconcileRetry is how long a job waits when the gateway could not be asked.
	reconcileRetry = time.Minute
	// reconcileWaitMax caps one wait for a job that is not yet due, so a lowered
	// ReconcileAfter takes effect within it.
	reconcileWaitMax = time.Hour
)

// DetailNoReceipt is the detail of the expired event of a job for which no final
// receipt came and the gateway reported nothing final.
const DetailNoReceipt = "no_receipt"

// detailReconciled is the detail of a status the gateway reported to a look-up.
const detailReconciled = "reconciled"

// Looker asks the gateway for one message; see dispatcher.RESTv2.Get.
type Looker interface {
	Get(ctx context.Context, messageID string) (dispatcher.Message, error)
}

// ReconcilerConfig configures a Reconciler.
type ReconcilerConfig struct {
	Names     subjects.Names
	Ledger    *ledger.Ledger
	Publisher *events.Publisher
	Gateway   Looker
	// After is how long after its acceptance, or after its scheduled time when
	// that is later, a job without a final status is looked up. Default
	// ReconcileAfterDefault.
	After time.Duration
	// Metrics, when set, counts reconciled jobs by result.
	Metrics *metrics.Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ReconcileStats counts what a Reconciler did.
type ReconcileStats struct {
	// Final: jobs already final when due. Reported: jobs given the gateway's
	// final status. Expired: jobs ended expired with no_receipt. Waiting: looks
	// at scheduled jobs put off until their schedule plus After.
	Final, Reported, Expired, Waiting int64
}

// Reconciler follows accepted events, in the order they were stored, and looks up
// each job that is still not final After its acceptance. The accepted events are
// its queue: it writes nothing of its own per job.
type Reconciler struct {
	cfg ReconcilerConfig
	js  jetstream.JetStream
	log *zap.Logger

	final, reported, expired, waiting atomic.Int64

	mu      sync.Mutex
	cc      jetstream.ConsumeContext
	stopped bool
	// run is the look-ups' context; a hard stop cancels it.
	run       context.Context
	cancelRun context.CancelFunc
	// The consume callbacks in progress: Stop returns once none runs.
	handling callbacks
}

// NewReconciler checks cfg and returns a Reconciler that is not yet running.
func NewReconciler(cfg ReconcilerConfig, js jetstream.JetStream, log *zap.Logger) (*Reconciler, error) {
	if js == nil || cfg.Ledger == nil || cfg.Publisher == nil || cfg.Gateway == nil {
		return nil, errors.New("resolve: reconciler: jetstream, ledger, publisher and gateway are required")
	}
	if cfg.After < 0 {
		return nil, errors.New("resolve: reconciler: after must not be negative")
	}
	if cfg.After == 0 {
		cfg.After = ReconcileAfterDefault
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Reconciler{cfg: cfg, js: js, log: log.Named("reconcile")}, nil
}

// Start creates or updates the durable consumer of accepted events and starts.
func (r *Reconciler) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cc != nil || r.stopped {
		return errors.New("resolve: reconciler already started")
	}
	n := r.cfg.Names
	cons, err := r.js.CreateOrUpdateConsumer(ctx, n.StatusStream(), jetstream.ConsumerConfig{
		Durable:       n.ReconcilerConsumer(),
		Description:   "jetsms reconciler: looks up accepted jobs with no final receipt",
		FilterSubject: n.Status(string(job.StatusAccepted)),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxDeliver:    -1,
		MaxAckPending: 10_000,
	})
	if err != nil {
		return fmt.Errorf("resolve: reconciler consumer: %w", err)
	}
	// One at a time: the events come in time order, and a job not yet due means
	// none after it is either.
	r.run, r.cancelRun = context.WithCancel(context.Background())
	cc, err := cons.Consume(r.consume, jetstream.PullMaxMessages(64),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				r.log.Debug("consume accepted events", zap.Error(err))
			}
		}))
	if err != nil {
		r.cancelRun()
		return fmt.Errorf("resolve: reconciler consume: %w", err)
	}
	r.cc = cc
	return nil
}

// consume is the consume callback: it handles m unless the reconciler stopped,
// in which case m is handed back.
func (r *Reconciler) consume(m jetstream.Msg) {
	if !r.handling.enter() {
		_ = m.Nak()
		return
	}
	defer r.handling.leave()
	r.handle(m)
}

// Stop stops taking accepted events and lets the job in hand finish, then
// returns once no look-up runs. Safe twice and without Start.
//
// When ctx ends first (a hard stop) the look-up in hand is cancelled and its
// event handed back (nak) for the next start; Stop still waits for it to end,
// and returns ctx's error.
func (r *Reconciler) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.cc == nil {
		r.stopped = true
		return nil
	}
	r.stopped = true
	// Graceful: stop pulling and take what was pulled.
	hard := drain(ctx, r.cc, r.cancelRun)
	awaitOrHard(ctx, r.handling.close, hard)
	r.cancelRun()
	if ctx.Err() != nil {
		return fmt.Errorf("resolve: reconciler stop: %w", ctx.Err())
	}
	return nil
}

// Stats returns the counts so far.
func (r *Reconciler) Stats() ReconcileStats {
	return ReconcileStats{Final: r.final.Load(), Reported: r.reported.Load(), Expired: r.expired.Load(), Waiting: r.waiting.Load()}
}

func (r *Reconciler) handle(m jetstream.Msg) {
	var ev job.Event
	if err := json.Unmarshal(m.Data(), &ev); err != nil || ev.JobID == "" {
		_ = m.Term()
		return
	}
	due := ev.At.Add(r.cfg.After)
	if wait := due.Sub(r.cfg.Now()); wait > 0 {
		_ = m.NakWithDelay(min(wait, reconcileWaitMax))
		return
	}
	ctx := r.run
	wait, err := r.reconcile(ctx, ev)
	if wait > 0 {
		// Scheduled: the gateway sends it at its time, and its receipts come after.
		r.waiting.Add(1)
		_ = m.NakWithDelay(min(wait, reconcileWaitMax))
		return
	}
	if err != nil {
		if ctx.Err() != nil {
			_ = m.Nak() // a hard stop: handed back
			return
		}
		r.log.Warn("job not reconciled; trying again later", zap.String("job_id", ev.JobID), zap.Error(err))
		_ = m.NakWithDelay(reconcileRetry)
		return
	}
	_ = m.Ack()
}

// reconcile looks the job up and ends it if no final status came. It returns
// how long to wait first when the job is scheduled and not yet due: its clock
// starts at the later of its acceptance and its scheduled time.
func (r *Reconciler) reconcile(ctx context.Context, ev job.Event) (time.Duration, error) {
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	e, _, err := r.cfg.Ledger.Get(sctx, ev.JobID)
	if errors.Is(err, ledger.ErrNotFound) {
		return 0, nil // past the ledger's retention: nothing left to reconcile
	}
	if err != nil {
		return 0, err
	}
	if e.Status.Final() {
		if n := len(e.History); n > 0 && e.History[n-1].MessageID == ev.MessageID &&
			(e.History[n-1].Detail == detailReconciled || e.History[n-1].Detail == DetailNoReceipt) {
			last := e.History[n-1]
			// Ended by a try for this very event that failed after the ledger
			// write (Apply writes the ledger first): its event may not be stored,
			// so the same change publishes it again (stored once).
			if _, err := Apply(ctx, r.cfg.Ledger, r.cfg.Publisher, ev.JobID, Change{
				MessageID: last.MessageID, Status: last.Status, Detail: last.Detail, At: last.At,
			}); err != nil {
				return 0, err
			}
		}
		r.final.Add(1)
		r.cfg.Metrics.Reconciled(metrics.ReconciledFinal)
		return 0, nil
	}
	now := r.cfg.Now()
	if wait := e.Scheduled.Add(r.cfg.After).Sub(now); !e.Scheduled.IsZero() && wait > 0 {
		return wait, nil
	}
	return 0, r.lookUp(ctx, sctx, ev, now)
}

// lookUp asks the gateway for a job that is due and not final, and applies
// what it says, or ends the job expired.
func (r *Reconciler) lookUp(ctx, sctx context.Context, ev job.Event, now time.Time) error {
	msg, err := r.cfg.Gateway.Get(sctx, ev.MessageID)
	switch {
	case errors.Is(err, dispatcher.ErrNotFound):
	case err != nil:
		return err
	case msg.Status == "":
		// The gateway keeps the message but tells no status (REST v1).
	default:
		st := normalStatus(msg.Status)
		if _, err := Apply(ctx, r.cfg.Ledger, r.cfg.Publisher, ev.JobID, Change{
			MessageID: ev.MessageID, Status: st, Detail: detailReconciled, At: now,
		}); err != nil {
			return err
		}
		if st.Final() {
			r.reported.Add(1)
			r.cfg.Metrics.Reconciled(metrics.ReconciledReported)
			return nil
		}
	}
	moved, err := Apply(ctx, r.cfg.Ledger, r.cfg.Publisher, ev.JobID, Change{
		MessageID: ev.MessageID, Status: job.StatusExpired, Detail: DetailNoReceipt, At: now,
	})
	if err != nil {
		return err
	}
	if moved {
		r.expired.Add(1)
		r.cfg.Metrics.Reconciled(metrics.ReconciledExpired)
		r.log.Info("no final receipt; job ended expired", zap.String("job_id", ev.JobID),
			zap.String("message_id", ev.MessageID), zap.Duration("after", r.cfg.After))
	}
	return nil
}
