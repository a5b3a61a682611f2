package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/events"
	"github.com/jetsms/jetsms/job"
)

// jobRun is one delivery of one job being handled.
type jobRun struct {
	lane     *lane
	msg      jetstream.Msg
	meta     *jetstream.MsgMetadata
	job      job.Job
	attempts int  // submissions so far, across deliveries as far as known
	dupRisk  bool // an earlier submission's outcome is unknown
}

// Errors that end the retry loop early.
var (
	errExpired   = errors.New("expires passed before the job could be sent")
	errExhausted = errors.New("attempts exhausted")
)

// handle takes one job from fetched to acked, released or ended. ctx is cancelled
// only by a hard stop; recording the outcome still runs after that. freeSlot gives
// the job's submission slot back: it is called as soon as the gateway has answered
// for the last time, so recording the outcome (events, ack) never holds a slot.
func (w *Worker) handle(ctx context.Context, l *lane, m jetstream.Msg, freeSlot func()) {
	defer freeSlot()
	defer w.tracker.remove(m)
	meta, err := m.Metadata()
	if err != nil {
		// Not a JetStream delivery: nothing to record it against.
		w.log.Error("job without JetStream metadata, terminated", zap.String("subject", m.Subject()), zap.Error(err))
		_ = m.Term()
		return
	}
	r := &jobRun{lane: l, msg: m, meta: meta}
	r.attempts, r.dupRisk = w.attempts.take(meta.Sequence.Stream)

	if err := w.decode(r); err != nil {
		w.end(ctx, r, job.StatusFailed, events.ReasonInvalidJob, err.Error(), "")
		return
	}
	if r.attempts == 0 && meta.NumDelivered > uint64(3*w.cfg.MaxAttempts) {
		// Delivered far more often than attempts allow, yet this worker knows of none
		// of them: something crashes while handling it. Stop the loop.
		w.end(ctx, r, job.StatusFailed, events.ReasonRetriesExhausted,
			fmt.Sprintf("delivered %d times without an outcome", meta.NumDelivered), "")
		return
	}
	w.submit(ctx, r, freeSlot)
}

// decode reads the job and fills in what the subject and headers say.
func (w *Worker) decode(r *jobRun) error {
	lane, campaign, _ := w.cfg.Names.ParseSend(r.msg.Subject())
	published := r.meta.Timestamp
	d := job.Decoder{MaxSegments: w.cfg.MaxSegments, Now: func() time.Time { return published }}
	j, err := d.Decode(r.msg.Data())
	j.Lane, j.Campaign = lane, campaign
	if j.ID == "" {
		j.ID = fallbackID(r)
		if idErr := job.CheckID(j.ID); idErr != nil {
			err = errors.Join(err, fmt.Errorf("id (from the Nats-Msg-Id header): %w", idErr))
			j.ID = seqID(r)
		}
	}
	r.job = j
	return err
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
			if werr := w.limit.Wait(ctx, 1); werr != nil {
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
	if r.attempts >= w.cfg.MaxAttempts {
		return dispatcher.Result{}, backoff.Permanent(errExhausted)
	}
	if r.job.Scheduled != nil && !r.job.Scheduled.After(now) {
		// It was due while it waited in the queue: send it now rather than have the
		// gateway refuse a time in the past.
		r.job.Scheduled = nil
	}
	r.attempts++
	res, err := w.send.Send(ctx, &r.job)
	if err == nil {
		return res, nil
	}
	var gwErr *dispatcher.Error
	if !errors.As(err, &gwErr) {
		return res, backoff.Permanent(err)
	}
	switch gwErr.Kind {
	case dispatcher.KindUnknown:
		r.dupRisk = true
		return res, err
	case dispatcher.KindRetryable:
		return res, err
	}
	return res, backoff.Permanent(err)
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
	switch {
	case errors.Is(err, errExpired):
		w.end(ctx, r, job.StatusExpired, events.ReasonExpired, "expires passed before the job could be sent", "")
	case errors.Is(err, errExhausted):
		w.end(ctx, r, job.StatusFailed, events.ReasonRetriesExhausted,
			fmt.Sprintf("retries_exhausted: %d attempts", r.attempts), "")
	case ctx.Err() != nil:
		// Hard stop: hand the job back at once. A submission cut off after it was
		// written makes this a job of unknown outcome.
		w.release(r, 0)
	case errors.As(err, &gwErr) && gwErr.Kind == dispatcher.KindRejected:
		w.end(ctx, r, job.StatusFailed, events.ReasonGatewayRejected, gwErr.Code, gwErr.Description)
	case errors.As(err, &gwErr) && gwErr.Kind == dispatcher.KindUnauthorized:
		// The job is not at fault: do not count the attempt.
		r.attempts--
		w.log.Warn("gateway refused the credentials; job released", zap.String("job_id", r.job.ID), zap.Int("status", gwErr.StatusCode))
		w.retrying(ctx, r, err)
		w.release(r, UnauthorizedDelay)
	case errors.As(err, &gwErr):
		// Transient, but the waits grew long: release the job with a delay.
		if r.attempts >= w.cfg.MaxAttempts {
			w.end(ctx, r, job.StatusFailed, events.ReasonRetriesExhausted,
				fmt.Sprintf("retries_exhausted: %d attempts, last %s", r.attempts, gwErr.Code), gwErr.Description)
			return
		}
		w.retrying(ctx, r, err)
		w.release(r, nakDelay(w.cfg.ReleaseDelayMin, r.meta.NumDelivered, gwErr.RetryAfter))
	default:
		// Not a gateway outcome (e.g. the job could not be encoded): nothing was sent.
		w.end(ctx, r, job.StatusFailed, events.ReasonGatewayRejected, err.Error(), "")
	}
}

// accepted stores the accepted event, then acks.
func (w *Worker) accepted(ctx context.Context, r *jobRun, res dispatcher.Result) {
	ev := w.event(r, job.StatusAccepted)
	ev.MessageID = res.MessageID
	ev.Detail = res.Detail
	if err := w.record(ctx, func(ctx context.Context) error { return w.pub.Status(ctx, ev) }); err != nil {
		// The SMS went out but its event is not stored: leave the job unacked so it is
		// not forgotten.
		w.log.Error("accepted event not stored; job left for redelivery",
			zap.String("job_id", r.job.ID), zap.String("message_id", res.MessageID), zap.Error(err))
		return
	}
	if err := r.msg.Ack(); err != nil {
		w.log.Warn("ack accepted job", zap.String("job_id", r.job.ID), zap.Error(err))
	}
}

// end gives a job its final status: a dead-letter copy first, then the final event,
// then the message is terminated. If NATS cannot store them, the job is released
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
		if err := w.pub.DeadLetter(ctx, dead); err != nil {
			return err
		}
		return w.pub.Status(ctx, ev)
	})
	if err != nil {
		w.log.Error("final status not stored; job released", zap.String("job_id", r.job.ID), zap.Error(err))
		w.release(r, w.cfg.ReleaseDelayMin)
		return
	}
	w.log.Debug("job ended", zap.String("job_id", r.job.ID), zap.String("status", string(st)),
		zap.String("reason", string(reason)), zap.String("error", errText))
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
	}
}

// release hands the job back to JetStream for redelivery after delay, remembering
// its attempts for when it comes back to this worker.
func (w *Worker) release(r *jobRun, delay time.Duration) {
	w.attempts.put(r.meta.Sequence.Stream, r.attempts, r.dupRisk)
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
// has none, the lane token "_".
func laneToken(r *jobRun) string {
	if r.job.Lane != "" {
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
	return max(next, p.retryAfter)
}

func (p *retryPolicy) Reset() { p.exp.Reset(); p.retryAfter = 0 }
