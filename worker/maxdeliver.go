package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/job"
)

// watchMaxDeliver ends jobs JetStream stopped delivering because they reached the
// consumers' MaxDeliver — a handler that crashes every time, say — with the
// watcher the resolver shares (broker.WatchMaxDeliveries).
func (w *Worker) watchMaxDeliver(ctx context.Context) {
	n := w.cfg.Names
	broker.WatchMaxDeliveries(ctx, w.js, broker.MaxDeliveriesConfig{
		Stream:      n.AdvisoriesStream(),
		Durable:     n.MaxDeliverConsumer(), // on the advisories stream, apart from the lanes
		Description: "jetsms workers: end jobs that reached max deliveries",
		Filter:      n.MaxDeliveriesAdvisories(),
		Retry:       w.cfg.ReleaseDelayMin,
	}, w.log, w.endUndeliverable)
}

// endUndeliverable ends the job an advisory names: failed with retries_exhausted,
// unless the ledger shows it accepted or ended before.
func (w *Worker) endUndeliverable(ctx context.Context, a broker.MaxDeliveries) error {
	raw, s, err := broker.LoadUndelivered(ctx, w.js, a)
	if err != nil || raw == nil {
		return err // nil: acked or ended meanwhile
	}
	m := &storedMsg{raw: raw, stream: s, deliveries: a.Deliveries}
	meta, _ := m.Metadata()
	r := &jobRun{msg: m, meta: meta}
	if lane, _, ok := w.cfg.Names.ParseSend(raw.Subject); ok && w.laneSet[lane] {
		r.opts = w.laneOptions(lane)
	}
	if reason, err := w.decode(r); err != nil {
		w.refuse(ctx, r, reason, err.Error())
		return nil
	}
	if !w.load(ctx, r) {
		return errors.New("ledger not readable")
	}
	switch e := r.entry; {
	case e != nil && e.Accepted():
		w.acceptedBefore(ctx, r)
		return nil
	case e != nil && e.Status.Final():
		return m.Term()
	}
	w.log.Warn("job reached max deliveries; ended", zap.String("job_id", r.job.ID), zap.Uint64("deliveries", a.Deliveries))
	w.end(ctx, r, job.StatusFailed, events.ReasonRetriesExhausted,
		fmt.Sprintf("retries_exhausted: delivered %d times without an outcome (max deliveries)", a.Deliveries), "")
	return nil
}

// storedMsg is a job read from the stream by sequence, as a jetstream.Msg whose
// Ack and Term delete it from the stream (it will not be delivered again) and whose
// Nak does nothing.
type storedMsg struct {
	raw        *jetstream.RawStreamMsg
	stream     jetstream.Stream
	deliveries uint64
}

func (m *storedMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{
		Sequence:     jetstream.SequencePair{Stream: m.raw.Sequence},
		NumDelivered: m.deliveries,
		Stream:       m.stream.CachedInfo().Config.Name,
		Timestamp:    m.raw.Time,
	}, nil
}
func (m *storedMsg) Data() []byte                     { return m.raw.Data }
func (m *storedMsg) Headers() nats.Header             { return m.raw.Header }
func (m *storedMsg) Subject() string                  { return m.raw.Subject }
func (m *storedMsg) Reply() string                    { return "" }
func (m *storedMsg) Ack() error                       { return m.remove() }
func (m *storedMsg) DoubleAck(context.Context) error  { return m.remove() }
func (m *storedMsg) Nak() error                       { return nil }
func (m *storedMsg) NakWithDelay(time.Duration) error { return nil }
func (m *storedMsg) InProgress() error                { return nil }
func (m *storedMsg) Term() error                      { return m.remove() }
func (m *storedMsg) TermWithReason(string) error      { return m.remove() }

func (m *storedMsg) remove() error {
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	return m.stream.DeleteMsg(ctx, m.raw.Sequence)
}

var _ jetstream.Msg = (*storedMsg)(nil)
