package resolve_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/job"
)

// blackHole takes the status stream away and answers no publish to a status
// subject, so a handler that publishes an event waits until its context ends. It
// returns a channel told of each publish and a function that puts the stream
// back.
func blackHole(t *testing.T, env *brokertest.Env) (<-chan string, func()) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, env.JS.DeleteStream(ctx, env.Names.StatusStream()))
	seen := make(chan string, 1000)
	sub, err := env.Conn.Subscribe(env.Names.Status("*"), func(m *nats.Msg) { seen <- m.Subject })
	require.NoError(t, err)
	require.NoError(t, env.Conn.Flush())
	return seen, func() {
		require.NoError(t, sub.Unsubscribe())
		require.NoError(t, env.Conn.Flush())
		require.NoError(t, broker.EnsureStreams(ctx, env.JS, broker.StreamsConfig{Names: env.Names}))
	}
}

func receive(t *testing.T, ch <-chan string, what string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		return ""
	}
}

// TestStopWithWorkInFlight stops each consumer of this package hard while it
// handles work: Stop returns only once its goroutines are done (goleak checks at
// the end), nothing is published after it returns, and the work in hand is
// handed back, so the next start takes it at once (well before the consumers'
// ack wait would redeliver it).
func TestStopWithWorkInFlight(t *testing.T) {
	t.Parallel()

	t.Run("Resolver", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{})
		require.NoError(t, f.res.Stop(context.Background())) // the fixture's; this test runs its own
		log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))

		// One handler, so the receipts behind the first fill its queue and the
		// consume callback waits to hand over the next: a stop then meets a handler
		// in a publish, a full queue and a callback blocked on it.
		const n = 20
		for i := range n {
			f.accept(t, otp(fmt.Sprintf("stop-%d", i)), fmt.Sprintf("msg-%d", i))
		}
		published, restore := blackHole(t, f.env)
		newResolver := func() *resolve.Resolver {
			res, err := resolve.New(resolve.Config{
				Names: f.env.Names, Ledger: f.ledger, OptOuts: f.optOuts, Publisher: events.New(f.env.JS, f.env.Names),
				Concurrency: 1, RetryDelay: 10 * time.Millisecond,
			}, f.env.JS, log)
			require.NoError(t, err)
			require.NoError(t, res.Start(context.Background()))
			return res
		}
		res := newResolver()
		for i := range n {
			f.receipt(t, dlr.Receipt{MessageID: fmt.Sprintf("msg-%d", i), Status: "received", API: dlr.APIv2})
		}
		receive(t, published, "a handler to publish")

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, res.Stop(ctx), context.DeadlineExceeded)
		// Nothing is published once Stop has returned.
		require.NoError(t, f.env.Conn.Flush())
		before := len(published)
		require.NoError(t, f.env.Conn.Flush())
		require.Len(t, published, before)

		// The receipt in hand was handed back: the next resolver resolves it.
		restore()
		status := brokertest.Watch(t, f.env.JS, f.env.Names.StatusStream())
		res = newResolver()
		t.Cleanup(func() { require.NoError(t, res.Stop(context.Background())) })
		status.WaitFor(t, 20*time.Second, "the receipt in hand at the stop resolved", func(ms []brokertest.Msg) bool {
			return len(brokertest.EventsOf(ms, "stop-0")) > 0
		})
	})

	t.Run("Reconciler", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{})
		j := otp("late")
		f.accept(t, j, uuid1)
		require.NoError(t, f.pub.Status(context.Background(), job.Event{
			JobID: j.ID, Status: job.StatusAccepted, MessageID: uuid1, At: time.Now(),
		}))
		gw := &stuckGateway{entered: make(chan struct{}, 1)}
		rec, err := resolve.NewReconciler(resolve.ReconcilerConfig{
			Names: f.env.Names, Ledger: f.ledger, Publisher: f.pub, Gateway: gw, After: time.Nanosecond,
		}, f.env.JS, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
		require.NoError(t, err)
		require.NoError(t, rec.Start(context.Background()))
		select {
		case <-gw.entered:
		case <-time.After(20 * time.Second):
			t.Fatal("timed out waiting for the look-up")
		}

		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, rec.Stop(ctx), context.DeadlineExceeded)
		require.True(t, gw.returned.Load(), "the look-up ended before Stop returned")

		// The event in hand was handed back: the next reconciler takes it at
		// once (the gateway knows nothing now: the job ends expired).
		rec, err = resolve.NewReconciler(resolve.ReconcilerConfig{
			Names: f.env.Names, Ledger: f.ledger, Publisher: f.pub, Gateway: notFound{}, After: time.Nanosecond,
		}, f.env.JS, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
		require.NoError(t, err)
		require.NoError(t, rec.Start(context.Background()))
		t.Cleanup(func() { require.NoError(t, rec.Stop(context.Background())) })
		ev := f.waitEvent(t, j.ID, job.StatusExpired)
		require.Equal(t, resolve.DetailNoReceipt, ev.Detail)
	})
}

// stuckGateway's look-ups wait for their context to end.
type stuckGateway struct {
	entered  chan struct{}
	returned atomic.Bool
}

func (g *stuckGateway) Get(ctx context.Context, _ string) (dispatcher.Message, error) {
	g.returned.Store(false)
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	g.returned.Store(true)
	return dispatcher.Message{}, ctx.Err()
}

// notFound knows no message.
type notFound struct{}

func (notFound) Get(context.Context, string) (dispatcher.Message, error) {
	return dispatcher.Message{}, dispatcher.ErrNotFound
}
