package resolve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// Defaults of Config.
const (
	ResolveWithinDefault = 2 * time.Minute
	RetryDelayDefault    = 500 * time.Millisecond
	RetryDelayMax        = 15 * time.Second
	ConcurrencyDefault   = 32
	// MaxDeliverMarginDefault is how many deliveries beyond those of
	// ResolveWithin a stored callback gets before it is dead-lettered: with the
	// delays growing to RetryDelayMax, minutes of failures.
	MaxDeliverMarginDefault = 20
	// stepTimeout bounds one NATS call of a handler.
	stepTimeout = 10 * time.Second
	ackWait     = 30 * time.Second
)

// Config configures a Resolver.
type Config struct {
	Names     subjects.Names
	Ledger    *ledger.Ledger
	OptOuts   *optout.List
	Publisher *events.Publisher
	// ResolveWithin is how long a receipt whose message id is not in the ledger
	// is retried before it is published without a job. Default
	// ResolveWithinDefault.
	ResolveWithin time.Duration
	// RetryDelay is the first delay of such a retry; it doubles up to
	// RetryDelayMax. Default RetryDelayDefault.
	RetryDelay time.Duration
	// Concurrency is how many callbacks are handled at once. Default
	// ConcurrencyDefault.
	Concurrency int
	// MaxDeliver bounds the deliveries of one stored callback: one whose
	// resolving still fails then is dead-lettered (reason callback_failed) by the
	// max-deliveries watcher the workers use too. Zero means enough deliveries
	// to retry an unmatched receipt for ResolveWithin, plus
	// MaxDeliverMarginDefault; a value below that is refused.
	MaxDeliver int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Metrics, when set, counts receipts, their lag and lookups that missed.
	Metrics *metrics.Metrics
}

// Stats counts what a Resolver did.
type Stats struct {
	// Published: receipts that moved a job and were published.
	Published int64
	// Unchanged: receipts that changed nothing (repeated, or behind a final
	// status).
	Unchanged int64
	// Retried: lookups that missed and were retried later.
	Retried int64
	// Unmatched: receipts published without a job after ResolveWithin.
	Unmatched int64
	// Inbound: inbound messages published; OptOuts and OptIns the list changes.
	Inbound, OptOuts, OptIns int64
	// Failed: handlings released after a NATS error.
	Failed int64
	// DeadLettered: stored callbacks dead-lettered (reason callback_failed).
	DeadLettered int64
}

// Resolver consumes the callbacks stream. Start it once; Stop it once or more.
type Resolver struct {
	cfg Config
	js  jetstream.JetStream
	log *zap.Logger

	published, unchanged, retried, unmatched atomic.Int64
	inbound, optOuts, optIns, failed         atomic.Int64
	deadLettered                             atomic.Int64

	mu      sync.Mutex
	cc      jetstream.ConsumeContext
	watcher sync.WaitGroup
	work    []chan jetstream.Msg // one queue per handler; a message's receipts share one
	workers sync.WaitGroup
	stopped bool
	// run is the handlers' context; a hard stop cancels it.
	run       context.Context
	cancelRun context.CancelFunc
	// The consume callbacks in progress: the work queues close only once none
	// runs and none can start.
	feeding callbacks
}

// New checks cfg and returns a Resolver that is not yet running.
func New(cfg Config, js jetstream.JetStream, log *zap.Logger) (*Resolver, error) {
	if js == nil || cfg.Ledger == nil || cfg.Publisher == nil {
		return nil, errors.New("resolve: jetstream, ledger and publisher are required")
	}
	if cfg.ResolveWithin < 0 || cfg.RetryDelay < 0 || cfg.Concurrency < 0 || cfg.MaxDeliver < 0 {
		return nil, errors.New("resolve: resolve_within, retry delay, concurrency and max deliver must not be negative")
	}
	if cfg.ResolveWithin == 0 {
		cfg.ResolveWithin = ResolveWithinDefault
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = RetryDelayDefault
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = ConcurrencyDefault
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxDeliver == 0 {
		cfg.MaxDeliver = deliveriesWithin(cfg.ResolveWithin, cfg.RetryDelay) + MaxDeliverMarginDefault
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Resolver{cfg: cfg, js: js, log: log.Named("resolve")}, nil
}

// deliveriesWithin is how many deliveries an unmatched receipt takes, with the
// growing retry delay, before ResolveWithin has passed.
func deliveriesWithin(within, first time.Duration) int {
	n := 1
	for elapsed := time.Duration(0); elapsed < within; n++ {
		elapsed += retryDelay(first, uint64(n))
	}
	return n
}

// Start creates or updates the durable consumer of the callbacks stream and
// starts handling. ctx bounds the set-up only.
func (r *Resolver) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cc != nil || r.stopped {
		return errors.New("resolve: already started")
	}
	n := r.cfg.Names
	cons, err := r.js.CreateOrUpdateConsumer(ctx, n.CallbacksStream(), jetstream.ConsumerConfig{
		Durable:       n.ResolverConsumer(),
		Description:   "jetsms receipt and inbound resolver",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    r.cfg.MaxDeliver,
		MaxAckPending: 4 * r.cfg.Concurrency * 8,
	})
	if err != nil {
		return fmt.Errorf("resolve: consumer of %s: %w", n.CallbacksStream(), err)
	}
	r.run, r.cancelRun = context.WithCancel(context.Background())
	// Callbacks that reached MaxDeliver are dead-lettered by the watcher the
	// workers use for jobs, on its own filter of the advisories stream; it ends
	// with the handlers' context.
	run := r.run
	r.watcher.Go(func() {
		broker.WatchMaxDeliveries(run, r.js, broker.MaxDeliveriesConfig{
			Stream:      n.AdvisoriesStream(),
			Durable:     n.Consumer("callbacks_maxdeliver"),
			Description: "jetsms resolvers: dead-letter callbacks that reached max deliveries",
			Filter:      n.CallbackMaxDeliveriesAdvisories(),
			Retry:       RetryDelayMax,
		}, r.log, r.deadLetterUndelivered)
	})
	r.work = make([]chan jetstream.Msg, r.cfg.Concurrency)
	for i := range r.work {
		q := make(chan jetstream.Msg, 4)
		r.work[i] = q
		r.workers.Go(func() {
			for m := range q {
				if r.run.Err() != nil {
					_ = m.Nak() // a hard stop: handed back, not handled
					continue
				}
				r.handle(m)
			}
		})
	}
	cc, err := cons.Consume(r.enqueue,
		jetstream.PullMaxMessages(2*r.cfg.Concurrency),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				r.log.Debug("consume callbacks", zap.Error(err))
			}
		}))
	if err != nil {
		r.feeding.close()
		r.closeWork()
		r.workers.Wait()
		r.cancelRun()
		r.watcher.Wait()
		return fmt.Errorf("resolve: consume %s: %w", n.CallbacksStream(), err)
	}
	r.cc = cc
	return nil
}

// enqueue is the consume callback: it queues m for its handler, or hands it back
// once the resolver stops hard or has closed its queues.
func (r *Resolver) enqueue(m jetstream.Msg) {
	if !r.feeding.enter() {
		_ = m.Nak()
		return
	}
	defer r.feeding.leave()
	select {
	case r.work[r.shard(m)] <- m:
	case <-r.run.Done():
		_ = m.Nak()
	}
}

// Stop stops taking callbacks and lets those in hand finish, then returns once
// every goroutine of the resolver has ended. Safe twice and without Start.
//
// When ctx ends first (a hard stop) the handlers' NATS calls are cancelled and
// every callback not resolved is handed back (nak) for the next start; Stop still
// waits for the handlers, and returns ctx's error.
func (r *Resolver) Stop(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.cc == nil {
		r.stopped = true
		return nil
	}
	r.stopped = true
	// Graceful: stop pulling and take what was pulled.
	hard := drain(ctx, r.cc, r.cancelRun)
	// No callback may send on a queue once it is closed: wait for those in
	// progress (after a hard stop none blocks), and let none start.
	awaitOrHard(ctx, r.feeding.close, hard)
	r.closeWork()
	awaitOrHard(ctx, r.workers.Wait, hard)
	r.cancelRun()
	r.watcher.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("resolve: stop: %w", ctx.Err())
	}
	return nil
}

func (r *Resolver) closeWork() {
	for _, q := range r.work {
		close(q)
	}
}

// shard picks the handler of a stored callback: the same for every receipt of
// one gateway message (their Nats-Msg-Id is dlr:<message id>:<status>), so that
// they are resolved in the order they were stored — sent before received.
func (r *Resolver) shard(m jetstream.Msg) int {
	key := m.Headers().Get(jetstream.MsgIDHeader)
	if i := strings.LastIndexByte(key, ':'); i > 0 && strings.HasPrefix(key, "dlr:") {
		key = key[:i]
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(r.work)))
}

// Stats returns the counts so far.
func (r *Resolver) Stats() Stats {
	return Stats{
		Published: r.published.Load(), Unchanged: r.unchanged.Load(), Retried: r.retried.Load(),
		Unmatched: r.unmatched.Load(), Inbound: r.inbound.Load(), OptOuts: r.optOuts.Load(),
		OptIns: r.optIns.Load(), Failed: r.failed.Load(), DeadLettered: r.deadLettered.Load(),
	}
}

func (r *Resolver) handle(m jetstream.Msg) {
	ctx := r.run
	var err error
	switch m.Subject() {
	case r.cfg.Names.CallbackDLR():
		err = r.receipt(ctx, m)
	case r.cfg.Names.CallbackMO():
		err = r.inboundMsg(ctx, m)
	default:
		r.log.Warn("callback on an unknown subject, dropped", zap.String("subject", redact.Cut(m.Subject())))
		_ = m.Term()
		return
	}
	if err != nil && ctx.Err() != nil {
		_ = m.Nak() // a hard stop: handed back
		return
	}
	if errors.Is(err, subjects.ErrInvalidName) {
		// It can never succeed: a value from before the receiver's limits.
		r.deadLetter(ctx, m.Subject(), m.Data(), m.Headers(), seqOf(m), err.Error(), func() error { return m.Term() })
		return
	}
	if err != nil {
		r.failed.Add(1)
		r.cfg.Metrics.PublishFailed(metrics.PublishStatus)
		delivered := uint64(1)
		if meta, merr := m.Metadata(); merr == nil {
			delivered = meta.NumDelivered
		}
		r.log.Warn("callback not resolved; retried later", zap.String("subject", redact.Cut(m.Subject())),
			zap.Uint64("delivered", delivered), zap.Error(err))
		_ = m.NakWithDelay(retryDelay(r.cfg.RetryDelay, delivered))
	}
}

func seqOf(m jetstream.Msg) uint64 {
	if meta, err := m.Metadata(); err == nil {
		return meta.Sequence.Stream
	}
	return 0
}

// deadLetterUndelivered dead-letters the stored callback an advisory names: its
// resolving failed MaxDeliver times.
func (r *Resolver) deadLetterUndelivered(ctx context.Context, a broker.MaxDeliveries) error {
	raw, s, err := broker.LoadUndelivered(ctx, r.js, a)
	if err != nil || raw == nil {
		return err // nil: resolved meanwhile
	}
	why := fmt.Sprintf("callback_failed: delivered %d times without being resolved (max deliveries)", a.Deliveries)
	if !r.deadLetter(ctx, raw.Subject, raw.Data, raw.Header, raw.Sequence, why, func() error {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stepTimeout)
		defer cancel()
		return s.DeleteMsg(dctx, raw.Sequence)
	}) {
		return errors.New("dead letter not stored")
	}
	return nil
}

// deadLetter copies a stored callback to <prefix>.dead._callbacks with reason
// callback_failed, then removes it with remove. It reports whether the dead
// letter was stored; when not, the callback stays for a later try.
func (r *Resolver) deadLetter(ctx context.Context, subject string, data []byte, hdr nats.Header, seq uint64, why string, remove func() error) bool {
	msgID := hdr.Get(jetstream.MsgIDHeader)
	if msgID == "" {
		msgID = "callback"
	}
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	err := r.cfg.Publisher.DeadLetter(sctx, events.Dead{
		Lane: events.DeadCallbacks, JobID: msgID, Subject: subject, Data: data, Header: hdr,
		StreamSeq: seq, Reason: events.ReasonCallbackFailed, Error: why,
	})
	if err != nil {
		r.log.Warn("failed callback not dead-lettered; kept", zap.String("msg_id", redact.Cut(msgID)), zap.Error(err))
		return false
	}
	r.deadLettered.Add(1)
	r.log.Warn("callback dead-lettered", zap.String("msg_id", redact.Cut(msgID)), zap.String("reason", redact.Cut(why)))
	if err := remove(); err != nil {
		r.log.Warn("dead-lettered callback not removed", zap.String("msg_id", redact.Cut(msgID)), zap.Error(err))
	}
	return true
}

// receipt resolves one delivery receipt. It acks, naks or terms m itself unless
// it returns an error.
func (r *Resolver) receipt(ctx context.Context, m jetstream.Msg) error {
	var rc dlr.Receipt
	if err := json.Unmarshal(m.Data(), &rc); err != nil || rc.MessageID == "" {
		// Not the body: it may hold a destination number.
		r.log.Error("stored receipt cannot be read, dropped", zap.Int("bytes", len(m.Data())), zap.Error(err))
		_ = m.Term()
		return nil
	}
	jobID, byRef, err := r.findJob(ctx, rc.MessageID, rc.Reference)
	if err != nil {
		return err
	}
	var moved bool
	if jobID != "" {
		moved, err = Apply(ctx, r.cfg.Ledger, r.cfg.Publisher, jobID, Change{
			MessageID: rc.MessageID, Status: normalStatus(rc.Status), Detail: rc.Detail, At: rc.ReceivedAt,
			byReference: byRef,
		})
		if errors.Is(err, errNotThisJob) {
			// The job found by reference turned out accepted under another id
			// meanwhile: wait for the index instead.
			jobID, err = "", nil
		}
		if err != nil {
			return err
		}
		if byRef && jobID != "" {
			// Index the message id now: when the submission's answer was lost
			// nothing else will, and the job's later receipts (and a reply's
			// reply_to) must find the job by it. When the answer comes after all,
			// the worker writes the same index.
			if err := r.index(ctx, rc.MessageID, jobID); err != nil {
				return err
			}
		}
	}
	if jobID == "" {
		meta, merr := m.Metadata()
		if merr == nil && r.cfg.Now().Sub(meta.Timestamp) < r.cfg.ResolveWithin {
			// The worker may not have recorded the message id yet.
			r.retried.Add(1)
			r.cfg.Metrics.LedgerLookupMissed()
			r.cfg.Metrics.Receipt(metrics.ReceiptRetried)
			_ = m.NakWithDelay(retryDelay(r.cfg.RetryDelay, meta.NumDelivered))
			return nil
		}
		if err := r.publishUnmatched(ctx, rc); err != nil {
			return err
		}
		r.unmatched.Add(1)
		r.cfg.Metrics.Receipt(metrics.ReceiptUnmatched)
		r.log.Warn("receipt for a message no job is known by; published without a job id",
			zap.String("message_id", rc.MessageID), zap.String("status", rc.Status))
		_ = m.Ack()
		return nil
	}
	if moved {
		r.published.Add(1)
		r.cfg.Metrics.Receipt(metrics.ReceiptPublished)
		r.cfg.Metrics.ObserveReceiptLag(r.cfg.Now().Sub(rc.ReceivedAt))
	} else {
		r.unchanged.Add(1)
		r.cfg.Metrics.Receipt(metrics.ReceiptUnchanged)
	}
	_ = m.Ack()
	return nil
}

// findJob returns the job a receipt belongs to, or "" when none is known yet,
// and whether it was found by reference.
//
// The message id decides: its index is written as the acceptance is recorded,
// and a receipt that comes first waits for it (ResolveWithin). The reference is
// a fallback, for a receipt that overtakes the acceptance and for a submission
// whose answer was lost (its message id is never indexed otherwise): jetsms
// sends the job id as the reference when the producer gave none, so a receipt
// whose reference is the id of a job that had none belongs to that job, as long
// as that job's acceptance is not recorded under another message id (unless the
// job was sent again after an unknown outcome, see referenceMatches) and no
// producer gave another job that string as its reference. A producer's own
// reference proves nothing.
func (r *Resolver) findJob(ctx context.Context, messageID, reference string) (string, bool, error) {
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	jobID, err := r.cfg.Ledger.Lookup(sctx, messageID)
	if err == nil {
		return jobID, false, nil
	}
	if !errors.Is(err, ledger.ErrNotFound) {
		return "", false, err
	}
	if reference == "" {
		return "", false, nil
	}
	e, _, err := r.cfg.Ledger.Get(sctx, reference)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return "", false, nil
	case err != nil:
		return "", false, err
	case !referenceMatches(e, reference, messageID):
		return "", false, nil
	}
	// A producer may have given another job this string as its reference: then
	// the receipt may be that job's, and only its message id can tell.
	taken, err := r.cfg.Ledger.ReferenceTaken(sctx, reference)
	if err != nil || taken {
		return "", false, err
	}
	return e.JobID, true, nil
}

// referenceMatches reports whether a receipt with reference and messageID, not
// found by its message id, belongs to the job of entry e, found by reference.
//
// A job accepted under another message id matches only when it was sent again
// after a submission of unknown outcome (DuplicateRisk): then the gateway may hold
// more than one copy of it, and the copy whose answer was lost is never indexed
// by the worker. Without this its receipts (a resend accepted with its answer
// lost, after the receipt of an earlier copy showed the job accepted; or the
// receipt of the earlier copy resolved only after the resend's acceptance was
// recorded) waited out resolve_within and were published without a job.
func referenceMatches(e *ledger.Entry, reference, messageID string) bool {
	return e.Reference == "" && e.JobID == reference && // jetsms sent the job id as the reference
		(!e.Accepted() || e.DuplicateRisk || contains(e.MessageIDs, messageID))
}

// index records that messageID belongs to jobID, kept as long as the job's entry.
func (r *Resolver) index(ctx context.Context, messageID, jobID string) error {
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	e, _, err := r.cfg.Ledger.Get(sctx, jobID)
	if err != nil {
		return err
	}
	var at *time.Time
	if !e.Scheduled.IsZero() {
		at = &e.Scheduled
	}
	return r.cfg.Ledger.Index(sctx, messageID, jobID, ledger.Scheduled(at))
}

func (r *Resolver) publishUnmatched(ctx context.Context, rc dlr.Receipt) error {
	st := normalStatus(rc.Status)
	ev := job.Event{
		MessageID: rc.MessageID, Status: st, Final: st.Final(), Detail: rc.Detail,
		Reference: rc.Reference, At: rc.ReceivedAt.UTC(),
	}
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	return r.cfg.Publisher.Status(sctx, ev)
}

// inboundMsg publishes one inbound message and applies its keyword.
func (r *Resolver) inboundMsg(ctx context.Context, m jetstream.Msg) error {
	var in dlr.Inbound
	if err := json.Unmarshal(m.Data(), &in); err != nil || in.ID == "" {
		r.log.Error("stored inbound message cannot be read, dropped", zap.Error(err))
		_ = m.Term()
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	// The list changes before the event is published, so a consumer that sees the
	// STOP can rely on it.
	if in.Encoding == "" && r.cfg.OptOuts != nil && optout.Digits(in.Source) != "" {
		switch optout.KeywordAction(in.Content) {
		case optout.Stop:
			rec := optout.Record{Number: in.Source, At: in.ReceivedAt, Inbound: in.ID, Keyword: strings.ToUpper(strings.TrimSpace(in.Content))}
			if err := r.cfg.OptOuts.Add(sctx, rec); err != nil {
				return err
			}
			r.optOuts.Add(1)
			r.log.Info("number opted out", zap.String("inbound_id", in.ID), zap.String("keyword", rec.Keyword))
		case optout.Start:
			if err := r.cfg.OptOuts.Remove(sctx, in.Source); err != nil {
				return err
			}
			r.optIns.Add(1)
			r.log.Info("number opted back in", zap.String("inbound_id", in.ID))
		}
	}
	ev := events.Inbound{
		ID: in.ID, Source: in.Source, Destination: in.Destination, Content: in.Content,
		Operator: in.Operator, Encoding: in.Encoding, ReplyTo: in.ReplyTo, Reference: in.Reference,
		ReceivedAt: in.ReceivedAt.UTC(),
	}
	if in.ReplyTo != "" {
		jobID, err := r.cfg.Ledger.Lookup(sctx, in.ReplyTo)
		if err != nil && !errors.Is(err, ledger.ErrNotFound) {
			return err
		}
		ev.ReplyToJob = jobID
	}
	if err := r.cfg.Publisher.Inbound(sctx, ev); err != nil {
		return err
	}
	r.inbound.Add(1)
	_ = m.Ack()
	return nil
}

// retryDelay doubles first with each delivery, up to RetryDelayMax.
func retryDelay(first time.Duration, delivered uint64) time.Duration {
	d := first
	for i := uint64(1); i < delivered && d < RetryDelayMax; i++ {
		d *= 2
	}
	return min(d, RetryDelayMax)
}

// normalStatus is a gateway status as jetsms publishes it: a known status in
// lower case; any other kept as it came.
func normalStatus(s string) job.Status {
	lower := job.Status(strings.ToLower(strings.TrimSpace(s)))
	switch lower {
	case job.StatusAccepted, job.StatusSubmitted, job.StatusSent, job.StatusFrozen, job.StatusReceived,
		job.StatusRejected, job.StatusFailed, job.StatusDead, job.StatusExpired:
		return lower
	}
	return job.Status(s)
}
