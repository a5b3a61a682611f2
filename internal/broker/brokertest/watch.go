package brokertest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/job"
)

// Msg is a stored message as a Watcher saw it.
type Msg struct {
	Subject string
	Data    []byte
	Header  nats.Header
}

// Watcher records every message of a stream, from its start, as it is stored.
type Watcher struct {
	mu      sync.Mutex
	msgs    []Msg
	changed chan struct{} // closed and replaced on every new message
}

// Watch follows stream with an ordered consumer until the test ends.
func Watch(t testing.TB, js jetstream.JetStream, stream string) *Watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	w := &Watcher{changed: make(chan struct{})}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		w.mu.Lock()
		w.msgs = append(w.msgs, Msg{Subject: m.Subject(), Data: m.Data(), Header: m.Headers()})
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	})
	require.NoError(t, err)
	t.Cleanup(cc.Stop)
	return w
}

// Msgs returns a copy of what was seen so far.
func (w *Watcher) Msgs() []Msg {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Msg(nil), w.msgs...)
}

// WaitFor blocks until cond, called with everything seen so far, returns true; the
// test fails if that takes longer than timeout. cond is re-checked on each new message.
func (w *Watcher) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]Msg) bool) []Msg {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		msgs, changed := w.msgs, w.changed
		ok := cond(msgs)
		w.mu.Unlock()
		if ok {
			return append([]Msg(nil), msgs...)
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s; saw %d messages", timeout, what, len(msgs))
		}
	}
}

// Events decodes status events.
func Events(msgs []Msg) []job.Event {
	out := make([]job.Event, 0, len(msgs))
	for _, m := range msgs {
		var ev job.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// EventsOf returns the events of one job, in the order stored.
func EventsOf(msgs []Msg, jobID string) []job.Event {
	var out []job.Event
	for _, ev := range Events(msgs) {
		if ev.JobID == jobID {
			out = append(out, ev)
		}
	}
	return out
}

// Final returns the job's final event, if it has one.
func Final(msgs []Msg, jobID string) (job.Event, bool) {
	for _, ev := range EventsOf(msgs, jobID) {
		if ev.Final {
			return ev, true
		}
	}
	return job.Event{}, false
}
