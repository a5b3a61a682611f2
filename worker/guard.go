package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"go.uber.org/zap"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/job"
)

// The ambiguity policies of LaneOptions.Ambiguous: what a lane does with a job
// whose last submission's outcome is unknown.
const (
	AmbiguousResend = "resend" // send again, flagged duplicate_risk
	AmbiguousFail   = "fail"   // end failed with outcome_unknown; never resent
	AmbiguousHold   = "hold"   // wait HoldFor for a receipt, then HoldThen
)

// LaneOptions are one lane's policies. The zero value resends jobs of unknown
// outcome, is not marketing and has no maximum age.
type LaneOptions struct {
	// Marketing lanes' jobs to an opted-out number end suppressed.
	Marketing bool
	// Ambiguous is AmbiguousResend (default), AmbiguousFail or AmbiguousHold.
	Ambiguous string
	// HoldFor is how long AmbiguousHold waits for a receipt; HoldThen is what it
	// does when none came (AmbiguousResend or AmbiguousFail).
	HoldFor  time.Duration
	HoldThen string
	// MaxAge ends a job older than this (since it was published) expired instead
	// of sending it; 0 means no limit.
	MaxAge time.Duration
	// MinShare is the fraction of the rate the lane gets while it has work,
	// whatever the lanes above it want.
	MinShare float64
	// Broadcast sends the lane's jobs through Config.Batcher, which gathers jobs
	// with identical content and options into one gateway request.
	Broadcast bool
}

func (w *Worker) laneOptions(name string) LaneOptions {
	o := w.cfg.LaneOptions[name]
	if o.Ambiguous == "" {
		o.Ambiguous = AmbiguousResend
	}
	if o.HoldFor <= 0 {
		o.HoldFor = HoldForDefault
	}
	if o.HoldThen == "" {
		o.HoldThen = AmbiguousResend
	}
	return o
}

// lookedUp reads the job's ledger entry, if not read yet, and settles the job if
// the entry says so. It returns true when this delivery needs nothing more.
func (w *Worker) lookedUp(ctx context.Context, r *jobRun) bool {
	if r.loaded {
		return false
	}
	return !w.load(ctx, r) || w.settled(ctx, r)
}

// load reads the job's ledger entry. When the ledger cannot be read the job is
// released and load returns false: nothing is sent unguarded.
func (w *Worker) load(ctx context.Context, r *jobRun) bool {
	r.loaded = true
	rctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	e, rev, err := w.ledger.Get(rctx, r.job.ID)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return true
	case err != nil:
		w.log.Warn("ledger not readable; job released", zap.String("job_id", r.job.ID), zap.Error(err))
		w.release(r, w.cfg.ReleaseDelayMin)
		return false
	}
	r.entry, r.rev = e, rev
	r.attempts, r.dupRisk = e.Attempts, e.DuplicateRisk
	return true
}

// settled decides a job whose ledger entry shows it was handled before. It
// returns true when the job needs nothing more from this delivery.
func (w *Worker) settled(ctx context.Context, r *jobRun) bool {
	e := r.entry
	if e == nil {
		return false
	}
	now := w.cfg.Now()
	if e.Digest != "" && e.Digest != r.digest {
		// Another job under this id: this one is refused, the other's entry and
		// events are left alone.
		w.duplicateID(ctx, r)
		return true
	}
	switch {
	case e.Accepted():
		// Sent before (a lost ack, a crash after recording, a re-published job):
		// store its accepted event again, which deduplicates, and ack.
		w.duplicateNotice(ctx, r)
		w.acceptedBefore(ctx, r)
		return true
	case e.Status.Final():
		replay := r.msg.Headers().Get(events.HeaderReplay)
		if replay != "" && replay != e.Replay && e.Error != ErrorOutcomeUnknown {
			// A dead letter replayed by an operator: a new life of a job that was
			// never sent.
			r.replay, r.attempts, r.dupRisk = replay, 0, false
			return false
		}
		// Ended before; its final event is stored. Only the message is left.
		w.duplicateNotice(ctx, r)
		w.cfg.Metrics.JobDone(r.job.Lane, metrics.JobDuplicateSkipped)
		if err := r.msg.Term(); err != nil {
			w.log.Warn("terminate ended job", zap.String("job_id", r.job.ID), zap.Error(err))
		}
		return true
	case e.Status == ledger.StateSubmitting && now.Sub(e.Since) < w.cfg.SubmitLease:
		// Another worker is submitting it now (the same job published twice, or a
		// redelivery while the first is still in flight): wait until its outcome is
		// recorded or its lease runs out, looking again now and then.
		w.release(r, min(w.cfg.SubmitLease-now.Sub(e.Since)+time.Second, w.cfg.ReleaseDelayMin))
		return true
	case e.Status == ledger.StateSubmitting || e.Status == ledger.StateUnknown:
		return w.ambiguous(ctx, r, now)
	}
	return false
}

// ambiguous applies the lane's policy to a job whose last submission's outcome is
// unknown; it returns true when the job is not to be sent now.
func (w *Worker) ambiguous(ctx context.Context, r *jobRun, now time.Time) bool {
	policy := r.opts.Ambiguous
	if policy == AmbiguousHold {
		if left := r.opts.HoldFor - now.Sub(r.entry.Updated); left > 0 {
			w.release(r, left)
			return true
		}
		policy = r.opts.HoldThen
	}
	if policy == AmbiguousFail {
		w.end(ctx, r, job.StatusFailed, events.ReasonOutcomeUnknown, ErrorOutcomeUnknown,
			"the last submission's outcome is unknown")
		return true
	}
	r.dupRisk = true
	return false
}

// suppressed ends a marketing lane's job to an opted-out number. It returns true
// when the job was ended or released.
func (w *Worker) suppressed(ctx context.Context, r *jobRun) bool {
	if !r.opts.Marketing || w.cfg.OptOuts == nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	out, err := w.cfg.OptOuts.Has(rctx, r.job.Destination)
	if err != nil {
		w.log.Warn("opt-out list not readable; job released", zap.String("job_id", r.job.ID), zap.Error(err))
		w.release(r, w.cfg.ReleaseDelayMin)
		return true
	}
	if out {
		w.end(ctx, r, job.StatusSuppressed, "", "", "the destination opted out")
	}
	return out
}

// claim moves the job's entry to submitting by compare-and-set and counts the
// attempt. errBusy means another writer moved the entry first.
func (w *Worker) claim(ctx context.Context, r *jobRun, now time.Time) error {
	if !r.loaded {
		// First try: create the entry, which succeeds for a new job.
		err := w.save(ctx, r, now)
		if !errors.Is(err, errBusy) {
			r.loaded = err == nil
			return err
		}
		if w.lookedUp(ctx, r) {
			return errSettled
		}
		if r.attempts >= w.cfg.MaxAttempts {
			return errExhausted
		}
	}
	return w.save(ctx, r, now)
}

// save writes the claim over the entry as read (creating it when there is none).
func (w *Worker) save(ctx context.Context, r *jobRun, now time.Time) error {
	e := r.entry
	if e == nil || r.replay != "" {
		e = r.newEntry(now)
		if r.entry != nil {
			e.Created, e.History = r.entry.Created, r.entry.History
		}
		e.Replay = r.replay
		r.replay = ""
	}
	if e.Accepted() {
		// A receipt showed the job accepted since it was read (note found it
		// so): never claimed, nor sent, again.
		return errBusy
	}
	next := *e
	next.Attempts = r.attempts + 1
	next.DuplicateRisk = r.dupRisk
	next.Set(ledger.StateSubmitting, now, "", "")
	next.Owner, next.Since = w.cfg.Owner, now.UTC()
	rctx, cancel := context.WithTimeout(ctx, finishTimeout)
	defer cancel()
	rev, err := w.ledger.Save(rctx, &next, r.rev)
	if errors.Is(err, ledger.ErrConflict) {
		return errBusy
	}
	if err != nil {
		return &ledgerError{err}
	}
	r.entry, r.rev = &next, rev
	r.attempts = next.Attempts
	return nil
}

// note records the outcome of a submission that was not accepted: StateQueued
// (refused, nothing sent) or StateUnknown. A note that cannot be written leaves
// the entry submitting, which later deliveries treat as unknown: the safe side.
// When the entry changed meanwhile because a receipt showed the job accepted
// (a submission whose answer was lost but whose receipt came), note returns that
// entry: the submission was accepted after all.
func (w *Worker) note(ctx context.Context, r *jobRun, st job.Status, cause error) *ledger.Entry {
	code, detail := describe(cause)
	next := *r.entry
	next.DuplicateRisk = r.dupRisk || st == ledger.StateUnknown && next.DuplicateRisk
	next.Set(st, w.cfg.Now(), detail, code)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	rev, err := w.ledger.Update(rctx, &next, r.rev)
	if errors.Is(err, ledger.ErrConflict) {
		if e, erev, gerr := w.ledger.Get(rctx, r.job.ID); gerr == nil && e.Accepted() {
			r.entry, r.rev = e, erev
			return e
		}
	}
	if err != nil {
		w.log.Warn("ledger not updated after a submission", zap.String("job_id", r.job.ID),
			zap.String("state", string(st)), zap.Error(err))
		return nil
	}
	r.entry, r.rev = &next, rev
	return nil
}

// markAccepted records the gateway's acceptance. A receipt may have moved the
// entry on meanwhile: then the message id is added to what is there.
func (w *Worker) markAccepted(ctx context.Context, r *jobRun, res dispatcher.Result) error {
	now := w.cfg.Now()
	if next := r.acceptedEntry(res, now); next != nil {
		rev, err := w.ledger.Update(ctx, next, r.rev)
		if err == nil {
			r.entry, r.rev = next, rev
			return nil
		}
		if !errors.Is(err, ledger.ErrConflict) {
			return err
		}
	}
	e, err := w.ledger.Modify(ctx, r.job.ID, func(e *ledger.Entry) (*ledger.Entry, error) {
		if e == nil {
			e = r.newEntry(now)
		}
		r.accept(e, res, now)
		return e, nil
	})
	if err == nil {
		r.entry = e
	}
	return err
}

// acceptedEntry is the job's entry as read or written last, moved to accepted
// by res; nil when there is none.
func (r *jobRun) acceptedEntry(res dispatcher.Result, now time.Time) *ledger.Entry {
	if r.entry == nil {
		return nil
	}
	next := *r.entry
	next.History = append([]ledger.Change(nil), r.entry.History...)
	next.MessageIDs = append([]string(nil), r.entry.MessageIDs...)
	r.accept(&next, res, now)
	return &next
}

// accept moves e to accepted by res.
func (r *jobRun) accept(e *ledger.Entry, res dispatcher.Result, now time.Time) {
	e.AddMessageID(res.MessageID)
	e.Attempts = max(e.Attempts, r.attempts)
	e.DuplicateRisk = e.DuplicateRisk || r.dupRisk
	if e.Advance(job.StatusAccepted, now, res.Detail) {
		e.History[len(e.History)-1].MessageID = res.MessageID
	} else {
		e.Owner, e.Since = "", time.Time{}
	}
}

// markEnded records a final status decided by jetsms. An entry a receipt has
// meanwhile shown accepted is left as it is.
func (w *Worker) markEnded(ctx context.Context, r *jobRun, st job.Status, errText, detail string) error {
	now := w.cfg.Now()
	_, err := w.ledger.Modify(ctx, r.job.ID, func(e *ledger.Entry) (*ledger.Entry, error) {
		switch {
		case e == nil:
			e = r.newEntry(now)
		case e.Accepted():
			return nil, nil
		}
		e.Attempts = max(e.Attempts, r.attempts)
		if r.replay != "" {
			e.Replay = r.replay
		}
		e.Set(st, now, detail, errText)
		return e, nil
	})
	return err
}

// acceptedBefore stores the accepted event of a job the ledger shows accepted,
// and acks it.
func (w *Worker) acceptedBefore(ctx context.Context, r *jobRun) {
	ev := w.event(r, job.StatusAccepted)
	ev.MessageID = r.entry.MessageID
	ev.Attempts = r.entry.Attempts
	ev.DuplicateRisk = r.entry.DuplicateRisk
	if err := w.record(ctx, func(ctx context.Context) error { return w.pub.Status(ctx, ev) }); err != nil {
		w.log.Error("accepted event not stored; job left for redelivery", zap.String("job_id", r.job.ID), zap.Error(err))
		return
	}
	w.log.Debug("job accepted before; acked without sending", zap.String("job_id", r.job.ID),
		zap.String("message_id", r.entry.MessageID))
	w.cfg.Metrics.JobDone(r.job.Lane, metrics.JobDuplicateSkipped)
	if err := r.msg.Ack(); err != nil {
		w.log.Warn("ack accepted job", zap.String("job_id", r.job.ID), zap.Error(err))
	}
}

// isLedgerUnavailable reports whether err came from a ledger that could not be
// reached (as opposed to a gateway outcome).
func isLedgerUnavailable(err error) bool {
	var le *ledgerError
	return errors.As(err, &le)
}

// ledgerError marks errors of ledger writes made before a submission.
type ledgerError struct{ err error }

func (e *ledgerError) Error() string { return "ledger: " + e.err.Error() }
func (e *ledgerError) Unwrap() error { return e.err }

// newEntry is the job's first ledger entry, with the digest of the job as it was
// decoded and the stream sequence of this message.
func (r *jobRun) newEntry(now time.Time) *ledger.Entry {
	e := ledger.FromJobDigest(&r.job, r.digest, now)
	e.Seq = r.meta.Sequence.Stream
	return e
}

// publishedAgain reports whether this message is another publication of the job
// whose ledger entry r holds (not a redelivery of the message that made it, nor
// the copy of a paused campaign's job the worker stored again).
func (r *jobRun) publishedAgain() bool {
	e := r.entry
	if e == nil || e.Seq == 0 || e.Seq == r.meta.Sequence.Stream {
		return false
	}
	return !strings.Contains(r.msg.Headers().Get(jetstream.MsgIDHeader), parkedMsgID)
}

// duplicateNotice publishes the notice that a job handled before was published
// again with the same content and is not sent again: status duplicate, not final,
// with duplicate set, so it is never taken for the job's own status. A notice
// that cannot be stored is logged; the job is still settled.
func (w *Worker) duplicateNotice(ctx context.Context, r *jobRun) {
	if !r.publishedAgain() {
		return
	}
	ev := w.event(r, job.StatusDuplicate)
	ev.Duplicate, ev.Seq = true, r.meta.Sequence.Stream
	ev.MessageID = r.entry.MessageID
	ev.Attempts = r.entry.Attempts
	ev.Detail = fmt.Sprintf("published again (jobs-stream sequence %d, first %d) with the same content; not sent again: the job is %s",
		r.meta.Sequence.Stream, r.entry.Seq, r.entry.Status)
	if err := w.record(ctx, func(ctx context.Context) error { return w.pub.Status(ctx, ev) }); err != nil {
		w.log.Warn("duplicate notice not stored", zap.String("job_id", r.job.ID), zap.Error(err))
		w.cfg.Metrics.PublishFailed(metrics.PublishStatus)
	}
}

// duplicateID ends a job whose id another job with other content holds in the
// ledger: a dead letter (duplicate_id) and a failed event marked duplicate, so
// that it is not taken for the other job's final event; the ledger entry, which
// is the other job's, is left as it is.
func (w *Worker) duplicateID(ctx context.Context, r *jobRun) {
	errText := fmt.Sprintf("duplicate_id: id %q belongs to another job with other content (jobs-stream sequence %d); "+
		"this one (sequence %d) is not sent: give each job its own id", r.job.ID, r.entry.Seq, r.meta.Sequence.Stream)
	w.endOther(ctx, r, events.ReasonDuplicateID, string(events.ReasonDuplicateID), errText)
}

// refuse ends a job that is not sent because of what it is (invalid, on an
// invalid subject, not a row of its campaign). When its id belongs to a job of
// another message in the ledger, it ends as that message's duplicate (endOther):
// it must not give that job a failed final event.
func (w *Worker) refuse(ctx context.Context, r *jobRun, reason events.Reason, errText string) {
	rctx, cancel := context.WithTimeout(ctx, finishTimeout)
	e, _, err := w.ledger.Get(rctx, r.job.ID)
	cancel()
	if err == nil && e.Seq != 0 && e.Seq != r.meta.Sequence.Stream {
		w.endOther(ctx, r, reason, errText, errText)
		return
	}
	w.end(ctx, r, job.StatusFailed, reason, errText, "")
}

// endOther ends a message whose job id belongs to another message's job: a dead
// letter, and a failed event marked duplicate with this message's sequence; the
// ledger entry is not touched.
func (w *Worker) endOther(ctx context.Context, r *jobRun, reason events.Reason, errCode, errText string) {
	dead := events.Dead{
		Lane: laneToken(r), JobID: r.job.ID, Subject: r.msg.Subject(), Data: r.msg.Data(), Header: r.msg.Headers(),
		StreamSeq: r.meta.Sequence.Stream, Reason: reason, Error: errText,
	}
	ev := w.event(r, job.StatusFailed)
	ev.Error, ev.Detail = errCode, errText
	ev.Duplicate, ev.Seq = true, r.meta.Sequence.Stream
	ev.Attempts, ev.DuplicateRisk = 0, false
	err := w.record(ctx, func(ctx context.Context) error {
		if err := w.pub.DeadLetter(ctx, dead); err != nil {
			return err
		}
		return w.pub.Status(ctx, ev)
	})
	if err != nil {
		w.log.Error("end of a duplicate not stored; job released", zap.String("job_id", r.job.ID), zap.Error(err))
		w.cfg.Metrics.PublishFailed(metrics.PublishStatus)
		w.release(r, w.cfg.ReleaseDelayMin)
		return
	}
	w.cfg.Metrics.JobDone(laneToken(r), metrics.JobFailed)
	w.log.Debug("job ended; its id belongs to another job", zap.String("job_id", r.job.ID),
		zap.String("reason", string(reason)), zap.Uint64("stream_seq", r.meta.Sequence.Stream))
	if err := r.msg.Term(); err != nil {
		w.log.Warn("terminate duplicate job", zap.String("job_id", r.job.ID), zap.Error(err))
	}
}
