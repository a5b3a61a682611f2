package worker

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// tracker extends the ack deadline of every message the worker holds: each one
// not signalled for a period gets an in-progress signal, whether it waits in a
// queue, for a rate token or for the gateway.
type tracker struct {
	period time.Duration
	mu     sync.Mutex
	held   map[jetstream.Msg]time.Time // when each was last signalled (or fetched)
}

func newTracker(period time.Duration) *tracker {
	return &tracker{period: period, held: make(map[jetstream.Msg]time.Time)}
}

func (t *tracker) add(m jetstream.Msg) {
	t.mu.Lock()
	t.held[m] = time.Now()
	t.mu.Unlock()
}

func (t *tracker) remove(m jetstream.Msg) {
	t.mu.Lock()
	delete(t.held, m)
	t.mu.Unlock()
}

// run signals progress until ctx ends. It checks at half the period, so no message
// goes longer than 1.5 periods (half the ack wait) without a signal.
func (t *tracker) run(ctx context.Context) {
	tick := time.NewTicker(t.period / 2)
	defer tick.Stop()
	var due []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due = due[:0]
			t.mu.Lock()
			for m, last := range t.held {
				if now.Sub(last) >= t.period {
					due = append(due, m)
					t.held[m] = now
				}
			}
			t.mu.Unlock()
			for _, m := range due {
				// An error means the message was acked meanwhile, or the connection
				// is down (then the server will redeliver it anyway).
				_ = m.InProgress()
			}
		}
	}
}
