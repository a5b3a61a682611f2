package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/campaignstate"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// jobRun is one delivery of one job being handled.
type jobRun struct {
	lane     *lane
	opts     LaneOptions
	msg      jetstream.Msg
	meta     *jetstream.MsgMetadata
	job      job.Job
	attempts int  // submissions so far, across deliveries and replicas
	dupRisk  bool // an earlier submission's outcome is unknown
	// entry is the job's ledger entry as last read or written (nil: none yet),
	// rev its revision.
	entry *ledger.Entry
	rev   uint64
	// replay is the Jetsms-Replay header of a replayed dead letter that starts a
	// new life of an ended job.
	replay string
	// loaded: the ledger entry has been read (or created by this delivery).
	loaded bool
	// unscheduled: a 422 made this delivery drop the job's schedule and resend.
	unscheduled bool
	// digest is job.Job.Digest of the job as decoded (before the worker
	// changes anything, such as a scheduled time now due).
	digest string
	// metaErr is why the delivery has no JetStream metadata (meta is nil).
	metaErr error
	// reason and decodeErr say why the job must not be sent (decode).
	reason    events.Reason
	decodeErr error
}

// Errors that end the retry loop early.
var (
	errExpired   = errors.New("expires passed before the job could be sent")
	errTooOld    = errors.New("older than the lane's maximum age")
	errExhausted = errors.New("attempts exhausted")
	// errBusy: the ledger entry changed between reading and claiming it; the job
	// is released and decided again on its next delivery.
	errBusy = errors.New("ledger entry changed by another worker")
	// errSettled: the claim found the job handled before and settled it.
	errSettled = errors.New("settled by its ledger entry")
)

// ErrorOutcomeUnknown is the error of a job failed by the fail policy.
const ErrorOutcomeUnknown = "outcome_unknown"

// handle takes one job from fetched to acked, released or ended. ctx is cancelled
// only by a hard stop; recording the outcome still runs after that. freeSlot gives
// the job's submission slot back: it is called as soon as the gateway has answered
// for the last time, so recording the outcome (events, ack) never holds a slot.
// r is the delivery as prepare decoded it.
func (w *Worker) handle(ctx context.Context, r *jobRun, freeSlot func()) {
	defer freeSlot()
	defer w.tracker.remove(r.msg)
	if r.meta == nil {
		// Not a JetStream delivery: nothing to record it against.
		w.log.Error("job without JetStream metadata, terminated", zap.String("subject", redact.Cut(r.msg.Subject())), zap.Error(r.metaErr))
		_ = r.msg.Term()
		return
	}
	if r.decodeErr != nil {
		w.refuse(ctx, r, r.reason, r.decodeErr.Error())
		return
	}
	if w.notCampaignRow(ctx, r) || w.campaignHeld(ctx, r) || w.suppressed(ctx, r) || w.destinationFull(ctx, r) {
		return
	}
	// The scheduler took one rate token; a job of several segments takes the rest
	// when the rate counts segments.
	if extra := r.tokens(w.cfg) - 1; extra > 0 {
		if err := w.limit.Wait(ctx, extra); err != nil {
			w.release(r, 0)
			return
		}
		w.shares.Took(r.lane.index, extra)
	}
	// The ledger entry is read only when the claim before the first submission
	// finds one: most jobs are new, and a create is one round trip.
	w.submit(ctx, r, freeSlot)
}

// prepare reads a fetched job's delivery metadata and decodes it, once: the
// result decides whether the job is queued for a slot (refused) and is what
// handle works on.
func (w *Worker) prepare(l *lane, m jetstream.Msg) *jobRun {
	r := &jobRun{lane: l, opts: w.laneOptions(l.name), msg: m}
	meta, err := m.Metadata()
	if err != nil {
		r.metaErr = err
		return r
	}
	r.meta = meta
	r.reason, r.decodeErr = w.decode(r)
	return r
}

// refused reports whether the job will end without a submission — no
// JetStream metadata; invalid JSON, fields or subject; not a row of its
// campaign — so that it takes no rate token.
func (w *Worker) refused(r *jobRun) bool {
	if r.meta == nil || r.decodeErr != nil {
		return true
	}
	rows, ok := w.cfg.Campaigns.(CampaignRows)
	if r.job.Campaign == "" || !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	known, isRow, err := rows.HasRow(ctx, r.job.Campaign, r.job.ID)
	return err == nil && known && !isRow
}

// decode reads the job and fills in what the subject and headers say. When the
// job must not be sent it returns why: the dead-letter reason (invalid_subject or
// invalid_job) and an error naming every rule broken.
func (w *Worker) decode(r *jobRun) (events.Reason, error) {
	lane, campaign, _ := w.cfg.Names.ParseSend(r.msg.Subject())
	subjErr := w.checkSubject(r.msg.Subject())
	if subjErr != nil {
		// Tokens that cannot be names are not kept: the lane becomes
		// subjects.DeadOther (a metrics label, a dead-letter subject), the
		// campaign none; subjErr says why the job ends.
		if subjects.ValidateToken(lane) != nil {
			lane = subjects.DeadOther
		}
		if campaign != "" && campaignstate.ValidateName(campaign) != nil {
			campaign = ""
		}
	}
	published := r.meta.Timestamp
	d := job.Decoder{MaxSegments: w.cfg.MaxSegments, Now: func() time.Time { return published }}
	j, err := d.Decode(r.msg.Data())
	j.Lane, j.Campaign = lane, campaign
	// Every header that goes on the gateway request is checked here: an invalid
	// traceparent would make the request unbuildable, so it is dropped and the
	// job sent without it.
	if tp := r.msg.Headers().Get(job.TraceParentHeader); tp != "" {
		if tpErr := job.CheckTraceParent(tp); tpErr != nil {
			w.log.Debug("invalid traceparent dropped", zap.Uint64("stream_seq", r.meta.Sequence.Stream), zap.Error(tpErr))
		} else {
			j.TraceParent = tp
		}
	}
	if j.ID == "" {
		j.ID = fallbackID(r)
		if idErr := job.CheckID(j.ID); idErr != nil {
			err = joinProblems(err, fmt.Errorf("id (from the Nats-Msg-Id header): %w", idErr))
			j.ID = seqID(r)
		}
	}
	r.job = j
	r.digest = j.Digest()
	if subjErr != nil {
		return events.ReasonInvalidSubject, joinProblems(subjErr, err)
	}
	if err != nil {
		return events.ReasonInvalidJob, err
	}
	return "", nil
}

// joinProblems joins errors into one whose text lists them with "; ".
func joinProblems(errs ...error) error {
	var text []string
	var keep []error
	for _, e := range errs {
		if e != nil {
			text = append(text, e.Error())
			keep = append(keep, e)
		}
	}
	switch len(keep) {
	case 0:
		return nil
	case 1:
		return keep[0]
	}
	return &problems{text: strings.Join(text, "; "), errs: keep}
}

type problems struct {
	text string
	errs []error
}

func (p *problems) Error() string   { return p.text }
func (p *problems) Unwrap() []error { return p.errs }

// checkSubject says what is wrong with a job's subject, or returns nil: it must be
// sms.send.<lane> or sms.send.<lane>.<campaign>, the lane a token of letters,
// digits, '-' and '_', the campaign a valid campaign name. A subject holding the
// wildcards * or > as text (sms.send.*, sms.send.>) is stored by JetStream like
// any other, and is refused here.
func (w *Worker) checkSubject(subject string) error {
	lane, name, ok := w.cfg.Names.ParseSend(subject)
	bad := func(what string, err error) error {
		return fmt.Errorf("subject: %s is not %s: %s %w", redact.Quote(subject), w.cfg.Names.Send("<lane>")+"[.<campaign>]", what, err)
	}
	switch {
	case !ok:
		return fmt.Errorf("subject: %s is not %s[.<campaign>]", redact.Quote(subject), w.cfg.Names.Send("<lane>"))
	case subjects.ValidateToken(lane) != nil:
		return bad("its lane", subjects.ValidateToken(lane))
	case strings.HasPrefix(subject, w.cfg.Names.Send(lane)+".") && name == "":
		return bad("its campaign", errors.New("is empty"))
	case name != "" && campaignstate.ValidateName(name) != nil:
		return bad("its campaign", campaignstate.ValidateName(name))
	}
	return nil
}

// fallbackID is a job's id when its JSON has none: the Nats-Msg-Id header, else a
// UUID derived from the stream sequence, so every redelivery gets the same one.
func fallbackID(r *jobRun) string {
	if id := r.msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		return id
	}
	return seqID(r)
}

var idSpace = uuid.MustParse("6f1c3a52-7d8e-4b7a-9a43-0d6a3e6f2b11")

func seqID(r *jobRun) string {
	key := r.meta.Stream + ":" + strconv.FormatUint(r.meta.Sequence.Stream, 10)
	return uuid.NewSHA1(idSpace, []byte(key)).String()
}

// submit sends the job, retrying in process while waits are short, and records the
// outcome. The scheduler has already taken the rate token of the first submission.
func (w *Worker) submit(ctx context.Context, r *jobRun, freeSlot func()) {
	res, err := w.attempt(ctx, r)
	if err != nil && !isPermanent(err) {
		res, err = w.retry(ctx, r, err)
	}
	freeSlot()
	var perm *backoff.PermanentError
	if errors.As(err, &perm) {
		err = perm.Err
	}
	w.settle(ctx, r, res, err)
}

// retry retries a job whose first attempt failed with the transient error first,
// with the in-process policy; it returns the last outcome.
func (w *Worker) retry(ctx context.Context, r *jobRun, first error) (dispatcher.Result, error) {
	policy := newRetryPolicy()
	var res dispatcher.Result
	pending := first
	op := func() error {
		err := pending
		if err == nil {
			if werr := w.circuit.admit(ctx); werr != nil {
				return backoff.Permanent(werr)
			}
			if werr := w.limit.Wait(ctx, r.tokens(w.cfg)); werr != nil {
				return backoff.Permanent(werr)
			}
			res, err = w.attempt(ctx, r)
		}
		pending = nil
		var gwErr *dispatcher.Error
		if errors.As(err, &gwErr) {
			policy.retryAfter = gwErr.RetryAfter
		}
		return err
	}
	notify := func(err error, _ time.Duration) { w.retrying(ctx, r, err) }
	err := backoff.RetryNotify(op, backoff.WithContext(policy, ctx), notify)
	return res, err
}

// attempt submits the job once, unless it has expired or used its attempts. A
// transient failure is returned as it is; every other error is wrapped with
// backoff.Permanent, so that retry stops at it.
func (w *Worker) attempt(ctx context.Context, r *jobRun) (dispatcher.Result, error) {
	now := w.cfg.Now()
	if r.job.Expires != nil && !now.Before(*r.job.Expires) {
		return dispatcher.Result{}, backoff.Permanent(errExpired)
	}
	if r.opts.MaxAge > 0 && now.Sub(r.meta.Timestamp) > r.opts.MaxAge {
		return dispatcher.Result{}, backoff.Permanent(errTooOld)
	}
	if r.attempts >= w.cfg.MaxAttempts {
		return dispatcher.Result{}, backoff.Permanent(errExhausted)
	}
	if r.job.Scheduled != nil && r.job.Scheduled.Sub(now) < ScheduleLeadMin {
		// It is due, or nearly: send it now rather than have the gateway refuse a
		// time that is in the past by the time it arrives (422).
		r.job.Scheduled = nil
	}
	// The send guard: no request leaves before the ledger says this worker is
	// submitting the job.
	claimStart := time.Now()
	if err := w.claim(ctx, r, now); err != nil {
		return dispatcher.Result{}, backoff.Permanent(err)
	}
	sent := time.Now()
	w.cfg.Metrics.ObserveClaim(sent.Sub(claimStart))
	w.cfg.Metrics.SubmissionStarted()
	sender := w.send
	if r.opts.Broadcast && w.cfg.Batcher != nil {
		sender = w.cfg.Batcher
	}
	res, err := sender.Send(ctx, &r.job)
	took := time.Since(sent)
	w.cfg.Metrics.SubmissionDone()
	if ce := w.log.Check(zap.DebugLevel, "gateway answered"); ce != nil {
		fields := []zap.Field{zap.String("job_id", r.job.ID), zap.String("outcome", string(gatewayOutcome(err))),
			zap.Duration("took", took), zap.Int("attempt", r.attempts)}
		if r.job.TraceParent != "" {
			fields = append(fields, zap.String("traceparent", r.job.TraceParent))
		}
		ce.Write(fields...)
	}
	w.cfg.Metrics.ObserveGateway(gatewayOutcome(err), took)
	w.reportCircuit(err)
	w.slowDown(err)
	if err == nil {
		return res, nil
	}
	var gwErr *dispatcher.Error
	if !errors.As(err, &gwErr) {
		if e := w.note(ctx, r, ledger.StateQueued, err); e != nil {
			return acceptedBy(e), nil
		}
		return res, backoff.Permanent(err)
	}
	// A note that returns an entry found it accepted by a receipt of an earlier
	// submission (whose answer was lost): the job is accepted, whatever this
	// answer says, and is never sent again.
	switch gwErr.Kind {
	case dispatcher.KindUnknown:
		if e := w.note(ctx, r, ledger.StateUnknown, err); e != nil {
			// Its receipt came while the answer was lost: it was accepted.
			return acceptedBy(e), nil
		}
		if r.opts.Ambiguous != AmbiguousResend {
			return res, backoff.Permanent(err)
		}
		r.dupRisk = true
		return res, err
	case dispatcher.KindRetryable:
		if e := w.note(ctx, r, ledger.StateQueued, err); e != nil {
			return acceptedBy(e), nil
		}
		return res, err
	case dispatcher.KindRejected:
		if gwErr.StatusCode == http.StatusUnprocessableEntity && r.job.Scheduled != nil && !r.unscheduled {
			// The gateway found the schedule in the past (its clock ahead of ours):
			// send it once more, now, without one. The retrying event keeps the
			// gateway's own code.
			r.job.Scheduled, r.unscheduled = nil, true
			if e := w.note(ctx, r, ledger.StateQueued, err); e != nil {
				return acceptedBy(e), nil
			}
			return res, err
		}
	case dispatcher.KindUnauthorized, dispatcher.KindMisconfigured:
		// The job is not at fault: the attempt does not count.
		r.attempts--
		r.entry.Attempts = r.attempts
		if e := w.note(ctx, r, ledger.StateQueued, err); e != nil {
			return acceptedBy(e), nil
		}
	}
	return res, backoff.Permanent(err)
}

// acceptedBy is the result of a submission whose job entry e a receipt showed
// accepted.
func acceptedBy(e *ledger.Entry) dispatcher.Result {
	return dispatcher.Result{MessageID: e.MessageID, Status: string(job.StatusAccepted)}
}

// gatewayOutcome names a submission's outcome as the metrics do.
func gatewayOutcome(err error) metrics.GatewayOutcome {
	if err == nil {
		return metrics.GatewayAccepted
	}
	return metrics.GatewayOutcome(dispatcher.KindOf(err).String())
}

// tokens is how many rate tokens one submission of the job takes.
func (r *jobRun) tokens(cfg Config) int {
	if cfg.RateInSegments && r.job.Segments > 1 {
		return r.job.Segments
	}
	return 1
}

// slowDown cuts the rate when the gateway says it is too much (429, or 503 with a
// Retry-After), if the limiter adapts.
func (w *Worker) slowDown(err error) {
	var gwErr *dispatcher.Error
	if !errors.As(err, &gwErr) {
		return
	}
	if gwErr.StatusCode == http.StatusTooManyRequests || gwErr.StatusCode == http.StatusServiceUnavailable && gwErr.RetryAfter > 0 {
		if s, ok := w.limit.(interface{ Slow(time.Duration) }); ok {
			s.Slow(gwErr.RetryAfter)
		}
	}
}

// destinationFull delays a job whose number has had its messages this window.
// It returns true when the job was released.
func (w *Worker) destinationFull(ctx context.Context, r *jobRun) bool {
	if w.dest == nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	wait, err := w.dest.take(rctx, r.job.Destination, w.cfg.Now())
	if err != nil {
		w.log.Warn("per-destination count not readable; job released", zap.String("job_id", r.job.ID), zap.Error(err))
		w.release(r, w.cfg.ReleaseDelayMin)
		return true
	}
	if wait == 0 {
		return false
	}
	ev := w.event(r, job.StatusRetrying)
	ev.Error = "destination_limit"
	ev.Detail = fmt.Sprintf("at most %d messages per %s to one number; delayed %s", w.cfg.Destination.Max,
		w.cfg.Destination.Window, wait.Round(time.Millisecond))
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer scancel()
	if err := w.pub.Status(sctx, ev); err != nil {
		w.log.Warn("retrying event not stored", zap.String("job_id", r.job.ID), zap.Error(err))
	}
	w.release(r, wait)
	return true
}

func isPermanent(err error) bool {
	var perm *backoff.PermanentError
	return errors.As(err, &perm)
}

// settle records the outcome of submit.
func (w *Worker) settle(ctx context.Context, r *jobRun, res dispatcher.Result, err error) {
	if err == nil {
		w.accepted(ctx, r, res)
		return
	}
	var gwErr *dispatcher.Error
	if (errors.Is(err, errExpired) || errors.Is(err, errTooOld)) && w.lookedUp(ctx, r) {
		// Sent before it expired, or being sent by another worker.
		return
	}
	switch {
	case errors.Is(err, errSettled):
		// The ledger showed the job handled before; that is done.
	case errors.Is(err, errExpired):
		w.end(ctx, r, job.StatusExpired, events.ReasonExpired, "expires passed before the job could be sent", "")
	case errors.Is(err, errTooOld):
		w.end(ctx, r, job.StatusExpired, events.ReasonExpired,
			fmt.Sprintf("older than the lane's maximum age of %s", r.opts.MaxAge), "")
	case errors.Is(err, errBusy):
		w.release(r, w.cfg.ReleaseDelayMin)
	case errors.Is(err, errExhausted):
		w.end(ctx, r, job.StatusFailed, events.ReasonRetriesExhausted,
			fmt.Sprintf("retries_exhausted: %d attempts", r.attempts), "")
	case ctx.Err() != nil:
		// Hard stop: hand the job back at once. A submission cut off after it was
		// written left the entry submitting or unknown: the next delivery applies
		// the lane's ambiguity policy.
		w.release(r, 0)
	case errors.As(err, &gwErr) && gwErr.Kind == dispatcher.KindUnknown:
		w.unknownOutcome(ctx, r, err)
	case errors.As(err, &gwErr) && gwErr.Kind == dispatcher.KindRejected:
		w.end(ctx, r, job.StatusFailed, events.ReasonGatewayRejected, gwErr.Code, gwErr.Description)
	case errors.As(err, &gwErr) && (gwErr.Kind == dispatcher.KindUnauthorized || gwErr.Kind == dispatcher.KindMisconfigured):
		// The circuit is open now and says why, once; the job waits in the queue.
		w.log.Debug("gateway refused the credentials or the configuration; job released", zap.String("job_id", r.job.ID), zap.Int("status", gwErr.StatusCode))
		w.retrying(ctx, r, err)
		w.release(r, w.cfg.ReleaseDelayMin)
	case errors.As(err, &gwErr):
		// Transient, but the waits grew long: release the job with a delay.
		if r.attempts >= w.cfg.MaxAttempts {
			w.end(ctx, r, job.StatusFailed, events.ReasonRetriesExhausted,
				fmt.Sprintf("retries_exhausted: %d attempts, last %s", r.attempts, gwErr.Code), gwErr.Description)
			return
		}
		w.retrying(ctx, r, err)
		w.release(r, nakDelay(w.cfg.ReleaseDelayMin, r.meta.NumDelivered, gwErr.RetryAfter))
	case errors.Is(err, ledger.ErrConflict) || isLedgerUnavailable(err):
		w.log.Warn("ledger not written; job released", zap.String("job_id", r.job.ID), zap.Error(err))
		w.release(r, w.cfg.ReleaseDelayMin)
	default:
		// Not a gateway outcome: the request could not be built from the job
		// (e.g. it could not be encoded). Nothing was sent, and the job, not the
		// gateway, is at fault: it ends here and never counts toward the circuit.
		w.end(ctx, r, job.StatusFailed, events.ReasonInvalidJob, "request not built: "+err.Error(), "")
	}
}

// unknownOutcome settles a job whose last submission's outcome is unknown and
// whose lane does not resend at once (or whose resends ran out of time in process).
func (w *Worker) unknownOutcome(ctx context.Context, r *jobRun, err error) {
	switch r.opts.Ambiguous {
	case AmbiguousFail:
		w.end(ctx, r, job.StatusFailed, events.ReasonOutcomeUnknown, ErrorOutcomeUnknown, describeDetail(err))
	case AmbiguousHold:
		w.retrying(ctx, r, err)
		w.release(r, r.opts.HoldFor)
	default:
		if r.attempts >= w.cfg.MaxAttempts {
			w.end(ctx, r, job.StatusFailed, events.ReasonRetriesExhausted,
				fmt.Sprintf("retries_exhausted: %d attempts, last outcome unknown", r.attempts), describeDetail(err))
			return
		}
		w.retrying(ctx, r, err)
		w.release(r, nakDelay(w.cfg.ReleaseDelayMin, r.meta.NumDelivered, 0))
	}
}

func describeDetail(err error) string {
	_, detail := describe(err)
	if detail == "" {
		return err.Error()
	}
	return detail
}

// accepted records the acceptance — the message id's index (so a receipt finds
// the job), the ledger entry and the accepted event — and then acks. The three
// writes are published together and awaited together (one round trip); a write
// that fails is made again on its own, retried while NATS is away (record).
func (w *Worker) accepted(ctx context.Context, r *jobRun, res dispatcher.Result) {
	ev := w.event(r, job.StatusAccepted)
	ev.MessageID = res.MessageID
	ev.Detail = res.Detail
	index := w.ledger.IndexAsync(res.MessageID, r.job.ID, ledger.Scheduled(r.job.Scheduled))
	event := w.pub.StatusAsync(ev)
	var mark *ledger.Pending
	next := r.acceptedEntry(res, w.cfg.Now())
	if next != nil {
		mark = w.ledger.UpdateAsync(next, r.rev)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	_, indexErr := index.Wait(wctx)
	eventErr := event.Wait(wctx)
	ledgerErr := errNoEntry
	if mark != nil {
		var rev uint64
		if rev, ledgerErr = mark.Wait(wctx); ledgerErr == nil {
			r.entry, r.rev = next, rev
		}
	}
	cancel()
	// What did not go through is written again on its own: the index and the
	// event are idempotent, and markAccepted reads the entry again when the
	// first write was stored after all (or a receipt moved it on).
	var wg sync.WaitGroup
	if indexErr != nil {
		wg.Go(func() {
			indexErr = w.record(ctx, func(ctx context.Context) error {
				return w.ledger.Index(ctx, res.MessageID, r.job.ID, ledger.Scheduled(r.job.Scheduled))
			})
		})
	}
	if eventErr != nil {
		wg.Go(func() {
			eventErr = w.record(ctx, func(ctx context.Context) error { return w.pub.Status(ctx, ev) })
		})
	}
	if ledgerErr != nil {
		ledgerErr = w.record(ctx, func(ctx context.Context) error { return w.markAccepted(ctx, r, res) })
	}
	wg.Wait()
	if err := errors.Join(indexErr, ledgerErr, eventErr); err != nil {
		// The SMS went out but what says so is not all stored: leave the job unacked
		// so it is not forgotten; its next delivery finds the ledger entry.
		w.log.Error("acceptance not recorded; job left for redelivery",
			zap.String("job_id", r.job.ID), zap.String("message_id", res.MessageID), zap.Error(err))
		w.cfg.Metrics.PublishFailed(metrics.PublishStatus)
		return
	}
	w.cfg.Metrics.JobDone(r.job.Lane, metrics.JobAccepted)
	if err := r.msg.Ack(); err != nil {
		w.log.Warn("ack accepted job", zap.String("job_id", r.job.ID), zap.Error(err))
	}
}

// errNoEntry: the job has no entry read or written by this delivery to update.
var errNoEntry = errors.New("no ledger entry in hand")

// end gives a job its final status: a dead-letter copy first (none when reason is
// empty), then the final event, then the ledger entry, then the message is
// terminated. If NATS cannot store them, the job is released
// for a later try instead, so nothing is lost.
func (w *Worker) end(ctx context.Context, r *jobRun, st job.Status, reason events.Reason, errText, detail string) {
	dead := events.Dead{
		Lane:      laneToken(r),
		JobID:     r.job.ID,
		Subject:   r.msg.Subject(),
		Data:      r.msg.Data(),
		Header:    r.msg.Headers(),
		StreamSeq: r.meta.Sequence.Stream,
		Reason:    reason,
		Error:     errText,
	}
	ev := w.event(r, st)
	ev.Error = errText
	ev.Detail = detail
	err := w.record(ctx, func(ctx context.Context) error {
		if reason != "" {
			if err := w.pub.DeadLetter(ctx, dead); err != nil {
				return err
			}
		}
		if err := w.pub.Status(ctx, ev); err != nil {
			return err
		}
		// Last, so that a job whose ledger entry is final has its final event.
		return w.markEnded(ctx, r, st, errText, detail)
	})
	if err != nil {
		w.log.Error("final status not stored; job released", zap.String("job_id", r.job.ID), zap.Error(err))
		w.cfg.Metrics.PublishFailed(metrics.PublishStatus)
		w.release(r, w.cfg.ReleaseDelayMin)
		return
	}
	w.cfg.Metrics.JobDone(laneToken(r), metrics.JobOutcome(st))
	fields := []zap.Field{zap.String("job_id", r.job.ID), zap.String("status", string(st)), zap.String("reason", string(reason))}
	if w.cfg.LogDetails {
		// The error may quote the job's destination or content.
		fields = append(fields, zap.String("error", errText))
	}
	w.log.Debug("job ended", fields...)
	if err := r.msg.Term(); err != nil {
		w.log.Warn("terminate ended job", zap.String("job_id", r.job.ID), zap.Error(err))
	}
}

// retrying publishes a retrying event for the last failed submission. A retrying
// event that cannot be stored is logged, not retried further: the job's next event
// still comes.
func (w *Worker) retrying(ctx context.Context, r *jobRun, cause error) {
	ev := w.event(r, job.StatusRetrying)
	ev.Error, ev.Detail = describe(cause)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err := w.pub.Status(sctx, ev); err != nil {
		w.log.Warn("retrying event not stored", zap.String("job_id", r.job.ID), zap.Error(err))
		w.cfg.Metrics.PublishFailed(metrics.PublishStatus)
	}
	w.cfg.Metrics.JobDone(r.job.Lane, metrics.JobRetrying)
}

// release hands the job back to JetStream for redelivery after delay. Its attempts
// are in the ledger.
func (w *Worker) release(r *jobRun, delay time.Duration) {
	w.cfg.Metrics.JobDone(laneToken(r), metrics.JobReleased)
	var err error
	if delay > 0 {
		err = r.msg.NakWithDelay(delay)
	} else {
		err = r.msg.Nak()
	}
	if err != nil {
		w.log.Warn("release job", zap.String("job_id", r.job.ID), zap.Error(err))
	}
}

// record runs a step that stores the job's outcome, retrying it while NATS is away,
// for a bounded time even after a hard stop.
func (w *Worker) record(ctx context.Context, step func(context.Context) error) error {
	ctx = context.WithoutCancel(ctx)
	sctx, cancel := context.WithTimeout(ctx, finishTimeout)
	err := step(sctx)
	cancel()
	if err == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, 3*finishTimeout)
	defer cancel()
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(50*time.Millisecond), backoff.WithMaxInterval(2*time.Second))
	return backoff.Retry(func() error {
		sctx, scancel := context.WithTimeout(rctx, finishTimeout)
		defer scancel()
		return step(sctx)
	}, backoff.WithContext(b, rctx))
}

func (w *Worker) event(r *jobRun, st job.Status) job.Event {
	ev := r.job.Event(st, w.cfg.Now())
	ev.Attempts = r.attempts
	ev.DuplicateRisk = r.dupRisk
	return ev
}

// laneToken is the lane to dead-letter under: the job's lane, or for a subject that
// has none or whose lane is not a valid token (sms.send.*), the lane token "_".
func laneToken(r *jobRun) string {
	if r.job.Lane != "" && subjects.ValidateToken(r.job.Lane) == nil {
		return r.job.Lane
	}
	return "_"
}

// describe splits a submission error into the event's error code and detail.
func describe(err error) (code, detail string) {
	var gwErr *dispatcher.Error
	if errors.As(err, &gwErr) {
		return gwErr.Code, gwErr.Description
	}
	return err.Error(), ""
}

// nakDelay is how long a released job waits: doubling with each delivery from
// first up to NakDelayMax, and never less than the gateway's Retry-After.
func nakDelay(first time.Duration, delivered uint64, retryAfter time.Duration) time.Duration {
	d := first
	for i := uint64(1); i < delivered && d < NakDelayMax; i++ {
		d *= 2
	}
	d = min(d, NakDelayMax)
	return max(d, retryAfter)
}

// retryPolicy is the in-process backoff: exponential from 100 ms, each wait at most
// QuickRetryMaxWait and all of them within QuickRetryBudget. A Retry-After within
// QuickRetryMaxWait is honoured; a longer one stops in-process retries so the job is
// released instead.
type retryPolicy struct {
	exp        *backoff.ExponentialBackOff
	retryAfter time.Duration
}

func newRetryPolicy() *retryPolicy {
	return &retryPolicy{exp: backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(QuickRetryMaxWait),
		backoff.WithMaxElapsedTime(QuickRetryBudget),
	)}
}

func (p *retryPolicy) NextBackOff() time.Duration {
	next := p.exp.NextBackOff()
	if next == backoff.Stop || p.retryAfter > QuickRetryMaxWait {
		return backoff.Stop
	}
	// The randomised wait can reach 1.5 × the backoff's MaxInterval.
	return max(min(next, QuickRetryMaxWait), p.retryAfter)
}

func (p *retryPolicy) Reset() { p.exp.Reset(); p.retryAfter = 0 }
