// Package deadletter reads the dead-letter stream and replays letters to the
// subjects they came from: the code behind `jetsms dead list|replay` and the
// console's dead-letter page.
//
// # Guarantees
//
// A replayed letter is published with the Nats-Msg-Id "<job>:replay:<seq>" and
// Jetsms-Replay: <seq>, so replaying it twice (two operators, a retried request)
// is one replay within the jobs stream's duplicate window, and a job the gateway
// accepted before is not sent again (the worker's ledger guard). The letter is
// removed from the dead-letter stream only after the replay is stored.
package deadletter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/events"
)

// Filter selects dead letters; empty fields select all.
type Filter struct {
	Reason, Job string
	// Limit is the most letters returned (0: all).
	Limit int
	// From is the first dead-letter sequence read (0: the stream's first).
	From uint64
	// Seqs, when set, selects only these sequences.
	Seqs map[uint64]bool
	// Scan bounds the letters read, matching or not (0: no bound), so that a
	// page of a selective filter over a long stream stays quick.
	Scan int
}

// Match reports whether m passes the filter's reason, job and sequences.
func (f Filter) Match(m *jetstream.RawStreamMsg) bool {
	return (f.Reason == "" || m.Header.Get(events.HeaderReason) == f.Reason) &&
		(f.Job == "" || m.Header.Get(events.HeaderJobID) == f.Job) &&
		(f.Seqs == nil || f.Seqs[m.Sequence])
}

// Read returns the stored dead letters on subject (names.DeadAll() or
// names.Dead(lane)) that f selects, oldest first, reading the stream once up to
// its current end. next is the sequence to read from when the limit or the scan
// bound cut the reading short, else 0.
func Read(ctx context.Context, stream jetstream.Stream, subject string, f Filter) (letters []*jetstream.RawStreamMsg, next uint64, err error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("dead-letter stream: %w", err)
	}
	last := info.State.LastSeq
	seq := max(info.State.FirstSeq, f.From)
	for scanned := 0; seq <= last && seq > 0; scanned++ {
		if f.Scan > 0 && scanned >= f.Scan {
			next = seq
			break
		}
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			if IsNoMessage(err) {
				break
			}
			return nil, 0, fmt.Errorf("read dead letters: %w", err)
		}
		if m.Sequence > last {
			break
		}
		seq = m.Sequence + 1
		if f.Match(m) {
			letters = append(letters, m)
			if f.Limit > 0 && len(letters) >= f.Limit {
				if seq <= last {
					next = seq
				}
				break
			}
		}
	}
	return letters, next, nil
}

// IsNoMessage reports whether err says there is no (further) message.
func IsNoMessage(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrMsgNotFound) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound
}

// Replay publishes a dead letter to the subject it came from, marked as a replay
// (Jetsms-Replay: its dead-letter sequence, so replaying it twice is one replay),
// and then removes it from the dead-letter stream.
func Replay(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, m *jetstream.RawStreamMsg) error {
	subject := m.Header.Get(events.HeaderSubject)
	jobID := m.Header.Get(events.HeaderJobID)
	if subject == "" || jobID == "" {
		return fmt.Errorf("dead letter %d has no %s or %s header", m.Sequence, events.HeaderSubject, events.HeaderJobID)
	}
	seq := strconv.FormatUint(m.Sequence, 10)
	hdr := nats.Header{}
	for k, v := range m.Header {
		switch k {
		case events.HeaderReason, events.HeaderError, events.HeaderSubject, events.HeaderJobID, events.HeaderOriginalMsgID,
			jetstream.MsgIDHeader, events.HeaderReplay:
			continue
		}
		hdr[k] = v
	}
	hdr.Set(jetstream.MsgIDHeader, jobID+":replay:"+seq)
	hdr.Set(events.HeaderReplay, seq)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, &nats.Msg{Subject: subject, Data: m.Data, Header: hdr}); err != nil {
		return fmt.Errorf("replay job %s: %w", jobID, err)
	}
	if err := stream.DeleteMsg(pctx, m.Sequence); err != nil {
		return fmt.Errorf("job %s replayed, but its dead letter %d not removed: %w", jobID, m.Sequence, err)
	}
	return nil
}

// Counts are dead letters counted by reason and lane.
type Counts struct {
	// ByReason maps reason to lane to count.
	ByReason map[string]map[string]int
	// Read is how many letters were counted; Complete says they were all of them.
	Read     int
	Complete bool
}

// Count counts the stored dead letters on subject by reason and lane, reading at
// most limit of them, oldest first, as one stream of headers (an ordered consumer
// with HeadersOnly), so the bodies never travel. lane maps a letter's original
// subject to its lane.
func Count(ctx context.Context, js jetstream.JetStream, streamName, subject string, limit int, lane func(subject string) string) (Counts, error) {
	c := Counts{ByReason: make(map[string]map[string]int)}
	stream, err := js.Stream(ctx, streamName)
	if err != nil {
		return c, fmt.Errorf("dead-letter stream: %w", err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return c, fmt.Errorf("dead-letter stream: %w", err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		c.Complete = true
		return c, nil
	}
	cons, err := js.OrderedConsumer(ctx, streamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject}, HeadersOnly: true, InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return c, fmt.Errorf("count dead letters: %w", err)
	}
	want := min(total, uint64(max(limit, 0)))
	for uint64(c.Read) < want {
		batch, err := cons.Fetch(int(min(want-uint64(c.Read), 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return c, fmt.Errorf("count dead letters: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			c.Read++
			reason := m.Headers().Get(events.HeaderReason)
			l := lane(m.Headers().Get(events.HeaderSubject))
			if c.ByReason[reason] == nil {
				c.ByReason[reason] = make(map[string]int)
			}
			c.ByReason[reason][l]++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return c, fmt.Errorf("count dead letters: %w", err)
		}
		if got == 0 {
			break
		}
	}
	c.Complete = uint64(c.Read) >= total
	return c, nil
}
