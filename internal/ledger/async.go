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
	f    jetstream.PubAckFuture
	err  error  // the write could not be published
	what string // for errors: "update ledger entry of job x"
	cas  bool   // a wrong revision is ErrConflict
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
			return 0, fmt.Errorf("%s: %w", p.what, ErrConflict)
		}
		return 0, fmt.Errorf("%s: %w", p.what, err)
	case <-ctx.Done():
		return 0, fmt.Errorf("%s: %w", p.what, ctx.Err())
	}
}

// failed is a Pending that could not be published.
func failed(what string, err error) *Pending {
	return &Pending{err: fmt.Errorf("%s: %w", what, err)}
}

// UpdateAsync is Update without waiting: it publishes e over revision rev and
// returns the write to wait for.
func (l *Ledger) UpdateAsync(e *Entry, rev uint64) *Pending {
	what := "update ledger entry of job " + e.JobID
	key, err := jobKey(e.JobID)
	if err != nil {
		return failed("update ledger entry of job "+redact.Quote(e.JobID), err)
	}
	f, err := l.js.PublishMsgAsync(&nats.Msg{Subject: l.subject + key, Data: e.encode()},
		jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(l.ttl(e.Scheduled)))
	if err != nil {
		return failed(what, err)
	}
	return &Pending{f: f, what: what, cas: true}
}

// CreateAsync is Create without waiting, for an entry without a Reference (whose
// record Create writes first): it publishes e as the first write of its key. A
// key that has been written before — even one whose entry has expired, which
// Create would take over — gives ErrConflict: call Create then.
func (l *Ledger) CreateAsync(e *Entry) *Pending {
	what := "create ledger entry of job " + e.JobID
	if e.Reference != "" {
		return failed(what, fmt.Errorf("an entry with a reference: %w", ErrConflict))
	}
	return l.UpdateAsync(e, 0).named(what)
}

func (p *Pending) named(what string) *Pending {
	if p.err == nil {
		p.what = what
	}
	return p
}

// IndexAsync is Index without waiting.
func (l *Ledger) IndexAsync(messageID, jobID string, opts ...IndexOption) *Pending {
	var o indexOptions
	for _, opt := range opts {
		opt(&o)
	}
	what := fmt.Sprintf("index message %s of job %s", redact.Quote(messageID), jobID)
	key, err := messageKey(messageID)
	if err != nil {
		return failed(what, err)
	}
	f, err := l.js.PublishMsgAsync(&nats.Msg{Subject: l.subject + key, Data: []byte(jobID)},
		jetstream.WithMsgTTL(l.ttl(o.scheduled)))
	if err != nil {
		return failed(what, err)
	}
	return &Pending{f: f, what: what}
}
