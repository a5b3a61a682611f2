// Package events publishes job status events and dead letters to JetStream, and
// returns only once JetStream has stored them.
package events

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// Reason says why a job was dead-lettered (header Jetsms-Reason).
type Reason string

// The dead-letter reasons of docs/contract.md.
const (
	ReasonInvalidJob       Reason = "invalid_job"
	ReasonGatewayRejected  Reason = "gateway_rejected"
	ReasonRetriesExhausted Reason = "retries_exhausted"
	ReasonUnknownLane      Reason = "unknown_lane"
	ReasonExpired          Reason = "expired"
	// ReasonOutcomeUnknown: the lane's ambiguity policy is fail and the job's
	// last submission's outcome is unknown.
	ReasonOutcomeUnknown Reason = "outcome_unknown"
	// ReasonInvalidSubject: the subject is not sms.send.<lane>[.<campaign>] with
	// valid tokens (e.g. the literal sms.send.* or sms.send.>).
	ReasonInvalidSubject Reason = "invalid_subject"
	// ReasonDuplicateID: a job with the same id and other content was handled
	// before; this one is not sent.
	ReasonDuplicateID Reason = "duplicate_id"
	// ReasonNotCampaignRow: a job on a campaign's subject that is not one of the
	// campaign's rows.
	ReasonNotCampaignRow Reason = "not_campaign_row"
	// ReasonCallbackFailed: a stored gateway callback (DLR or MO) whose
	// resolving failed every time, up to the resolver's max deliveries, or
	// cannot succeed (a value that cannot be a NATS name). It is dead-lettered
	// on DeadCallbacks with its callback's Nats-Msg-Id as the job id.
	ReasonCallbackFailed Reason = "callback_failed"
)

// DeadCallbacks is the lane token of dead-lettered callbacks:
// <prefix>.dead._callbacks. No configured lane has it (a lane name does not
// start with '_').
const DeadCallbacks = "_callbacks"

// Dead-letter headers. The original message's headers are kept, except that its
// Nats-Msg-Id moves to HeaderOriginalMsgID (the dead-letter stream deduplicates on
// its own id).
const (
	HeaderReason        = "Jetsms-Reason"
	HeaderError         = "Jetsms-Error"
	HeaderSubject       = "Jetsms-Subject"
	HeaderJobID         = "Jetsms-Job-Id"
	HeaderOriginalMsgID = "Jetsms-Msg-Id"
	// HeaderReplay marks a job published again from the dead-letter stream; its
	// value (the dead letter's stream sequence) is unique per replay.
	HeaderReplay = "Jetsms-Replay"
)

// Publisher publishes to the status and dead-letter streams. It is safe for
// concurrent use.
type Publisher struct {
	js    jetstream.JetStream
	names subjects.Names
}

// New returns a publisher for the streams named by names.
func New(js jetstream.JetStream, names subjects.Names) *Publisher {
	return &Publisher{js: js, names: names}
}

// Status publishes ev to <prefix>.status.<status> with Nats-Msg-Id set by MsgID, and
// returns once the status stream has stored it. A re-published event (same MsgID
// within the stream's duplicate window) is stored once.
func (p *Publisher) Status(ctx context.Context, ev job.Event) error {
	return p.StatusAsync(ev).Wait(ctx)
}

// StatusAsync is Status without waiting: it publishes ev and returns the write
// to wait for. Writes published one after another go out together and are
// answered together.
func (p *Publisher) StatusAsync(ev job.Event) *Pending {
	msg := &nats.Msg{
		Subject: p.names.Status(statusToken(ev.Status)),
		Data:    encodeEvent(&ev),
		Header:  nats.Header{jetstream.MsgIDHeader: []string{MsgID(ev)}},
	}
	if ev.TraceParent != "" {
		msg.Header[job.TraceParentHeader] = []string{ev.TraceParent}
	}
	f, err := p.js.PublishMsgAsync(msg)
	return &Pending{f: f, err: err, status: ev.Status, jobID: ev.JobID}
}

// Pending is an event published and not yet known to be stored.
type Pending struct {
	f      jetstream.PubAckFuture
	err    error
	status job.Status
	jobID  string
}

// Wait returns once the status stream has stored the event, or with the error
// that kept it from being stored, or ctx's error (the event may then still be
// stored).
func (w *Pending) Wait(ctx context.Context) error {
	err := w.err
	if err == nil {
		if err = awaitAck(ctx, w.f); err == nil {
			return nil
		}
	}
	return fmt.Errorf("publish %s event of job %s: %w", w.status, w.jobID, err)
}

// awaitAck waits for the answer to an asynchronous publish: nil once the stream
// has stored the message, its error, or ctx's.
func awaitAck(ctx context.Context, f jetstream.PubAckFuture) error {
	select {
	case <-f.Ok():
		return nil
	case err := <-f.Err():
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// StatusOther is the subject token of events whose status (as a gateway sent it)
// cannot be a subject token: sms.status._.
const StatusOther = "_"

// statusToken is the subject token of a status.
func statusToken(st job.Status) string {
	if subjects.ValidateToken(string(st)) != nil {
		return StatusOther
	}
	return string(st)
}

// MsgID is the deduplication id of an event: "<job id>:<status>", with the attempt
// number for retrying (it repeats once per attempt) and the gateway message id for
// an acceptance after an attempt of unknown outcome (the job may be accepted twice).
// A receipt that matched no job is "msg:<message id>:<status>". An event with
// Duplicate set adds ":dup:<jobs-stream sequence>" of the duplicate.
func MsgID(ev job.Event) string {
	if ev.JobID == "" {
		return "msg:" + ev.MessageID + ":" + string(ev.Status)
	}
	id := ev.JobID + ":" + string(ev.Status)
	switch {
	case ev.Duplicate:
		// About another message that reused the id: never the job's own event.
		id += ":dup:" + strconv.FormatUint(ev.Seq, 10)
	case ev.Status == job.StatusRetrying:
		id += ":" + strconv.Itoa(ev.Attempts)
	case ev.Status == job.StatusAccepted && ev.DuplicateRisk:
		id += ":" + ev.MessageID
	}
	return id
}

// Dead is a job to dead-letter: the message as it was published, and why.
type Dead struct {
	Lane    string // the lane token of the subject, even when the lane is unknown
	JobID   string
	Subject string // the subject the job was published to
	Data    []byte
	Header  nats.Header
	// StreamSeq is the job's sequence in the jobs stream: with JobID it makes the
	// dead letter's own Nats-Msg-Id, so a redelivered job is dead-lettered once.
	StreamSeq uint64
	Reason    Reason
	Error     string
}

// DeadLetter copies a job, as it was published, to <prefix>.dead.<lane> with the
// reason and error headers, and returns once it is stored.
func (p *Publisher) DeadLetter(ctx context.Context, d Dead) error {
	hdr := make(nats.Header, len(d.Header)+5)
	for k, v := range d.Header {
		hdr[k] = v
	}
	if orig := d.Header.Get(jetstream.MsgIDHeader); orig != "" {
		hdr.Set(HeaderOriginalMsgID, orig)
	}
	hdr.Set(jetstream.MsgIDHeader, d.JobID+":"+strconv.FormatUint(d.StreamSeq, 10))
	hdr.Set(HeaderReason, string(d.Reason))
	hdr.Set(HeaderError, oneLine(d.Error))
	hdr.Set(HeaderSubject, d.Subject)
	hdr.Set(HeaderJobID, d.JobID)
	msg := &nats.Msg{Subject: p.names.Dead(d.Lane), Data: d.Data, Header: hdr}
	if err := p.store(ctx, msg); err != nil {
		return fmt.Errorf("dead-letter job %s: %w", d.JobID, err)
	}
	return nil
}

func (p *Publisher) store(ctx context.Context, msg *nats.Msg) error {
	f, err := p.js.PublishMsgAsync(msg)
	if err != nil {
		return err
	}
	return awaitAck(ctx, f)
}

// oneLine makes text safe for a NATS header value, which ends at a line break.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}
