package ledger

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/redact"
)

// Pending is a write published without waiting for JetStream's answer. Writes
// published one after another go out together, and their answers are awaited
// together: a caller with several writes (or several jobs' writes) to make pays
// one round trip instead of one each.
type Pending struct {
	f   jetstream.PubAckFuture
	err error // the write could not be published
	// what names the write in errors, built only when there is one: each job
	// makes several writes, and almost all of them succeed.
	what func() string
	cas  bool // a wrong revision is ErrConflict
}

// Wait returns the write's revision once JetStream has stored it, or the error
// the synchronous call would have returned (ErrConflict for a compare-and-set
// that lost). It returns ctx's error when ctx ends first; the write may then
// still be stored.
func (p *Pending) Wait(ctx context.Context) (uint64, error) {
	if p.err != nil {
		return 0, p.err
	}
	select {
	case ack := <-p.f.Ok():
		return ack.Sequence, nil
	case err := <-p.f.Err():
		if p.cas && isWrongRevision(err) {
			return 0, fmt.Errorf("%s: %w", p.what(), ErrConflict)
		}
		return 0, fmt.Errorf("%s: %w", p.what(), err)
	case <-ctx.Done():
		return 0, fmt.Errorf("%s: %w", p.what(), ctx.Err())
	}
}

// failed is a Pending that could not be published.
func failed(what string, err error) *Pending {
	return &Pending{err: fmt.Errorf("%s: %w", what, err)}
}

// UpdateAsync is Update without waiting: it publishes e over revision rev and
// returns the write to wait for.
func (l *Ledger) UpdateAsync(e *Entry, rev uint64) *Pending {
	return l.casAsync(e, rev, "update")
}

// casAsync publishes e over revision rev; verb names the write in errors.
func (l *Ledger) casAsync(e *Entry, rev uint64, verb string) *Pending {
	key, err := jobKey(e.JobID)
	if err != nil {
		return failed(verb+" ledger entry of job "+redact.Quote(e.JobID), err)
	}
	f, err := l.js.PublishMsgAsync(&nats.Msg{Subject: l.subject + key, Data: e.encode()},
		jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(l.ttl(e.Scheduled)))
	if err != nil {
		return failed(verb+" ledger entry of job "+e.JobID, err)
	}
	id := e.JobID
	return &Pending{f: f, what: func() string { return verb + " ledger entry of job " + id }, cas: true}
}

// IndexAsync is Index without waiting.
func (l *Ledger) IndexAsync(messageID, jobID string, opts ...IndexOption) *Pending {
	var o indexOptions
	for _, opt := range opts {
		opt(&o)
	}
	what := func() string { return fmt.Sprintf("index message %s of job %s", redact.Quote(messageID), jobID) }
	key, err := messageKey(messageID)
	if err != nil {
		return failed(what(), err)
	}
	f, err := l.js.PublishMsgAsync(&nats.Msg{Subject: l.subject + key, Data: []byte(jobID)},
		jetstream.WithMsgTTL(l.ttl(o.scheduled)))
	if err != nil {
		return failed(what(), err)
	}
	return &Pending{f: f, what: what}
}
