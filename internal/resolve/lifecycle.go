package resolve

import (
	"context"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// callbacks counts the consume callbacks in progress and closes the door on new
// ones, so that Stop knows when no callback runs or can start.
type callbacks struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// enter reports whether a callback may run; if so, it must call leave.
func (c *callbacks) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

func (c *callbacks) leave() { c.wg.Done() }

// close lets no callback start and waits for those in progress.
func (c *callbacks) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wg.Wait()
}

// awaitOrHard runs wait to its end; should ctx end first, it calls hard, which
// makes wait end soon, and still waits.
func awaitOrHard(ctx context.Context, wait, hard func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		hard()
		<-done
	}
}

// drain stops cc gracefully: it stops pulling and waits until what was pulled is
// handed to the handlers, unless ctx ends first; then it stops hard: cancelRun
// cancels the handlers' context and cc stops at once. It returns that hard stop,
// for the caller's later waits (awaitOrHard); it runs once.
func drain(ctx context.Context, cc jetstream.ConsumeContext, cancelRun context.CancelFunc) (hard func()) {
	hard = sync.OnceFunc(func() {
		cancelRun()
		cc.Stop()
	})
	cc.Drain()
	select {
	case <-cc.Closed():
	case <-ctx.Done():
		hard()
	}
	return hard
}
