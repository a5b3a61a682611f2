package resolve_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/job"
)

type fixture struct {
	env     *brokertest.Env
	ledger  *ledger.Ledger
	optOuts *optout.List
	pub     *events.Publisher
	res     *resolve.Resolver
	status  *brokertest.Watcher
	inbound *brokertest.Watcher
}

func newFixture(t *testing.T, cfg resolve.Config) *fixture {
	t.Helper()
	env := brokertest.Run(t)
	ctx := context.Background()
	led, err := ledger.Open(ctx, env.JS, ledger.Config{Bucket: env.Names.LedgerBucket()})
	require.NoError(t, err)
	list, err := optout.Open(ctx, env.JS, optout.Config{Bucket: env.Names.OptOutBucket()})
	require.NoError(t, err)
	f := &fixture{env: env, ledger: led, optOuts: list, pub: events.New(env.JS, env.Names)}
	cfg.Names, cfg.Ledger, cfg.OptOuts, cfg.Publisher = env.Names, led, list, f.pub
	f.res, err = resolve.New(cfg, env.JS, zaptest.NewLogger(t))
	require.NoError(t, err)
	f.status = brokertest.Watch(t, env.JS, env.Names.StatusStream())
	f.inbound = brokertest.Watch(t, env.JS, env.Names.InboundStream())
	require.NoError(t, f.res.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, f.res.Stop(ctx))
	})
	return f
}

// accept records a job as the worker does when the gateway accepted it.
func (f *fixture) accept(t *testing.T, j job.Job, messageID string) {
	t.Helper()
	ctx := context.Background()
	e := ledger.FromJob(&j, time.Now())
	e.Attempts = 1
	e.AddMessageID(messageID)
	e.Set(job.StatusAccepted, time.Now(), "", "")
	_, err := f.ledger.Create(ctx, e)
	require.NoError(t, err)
	require.NoError(t, f.ledger.Index(ctx, messageID, j.ID))
}

// receipt stores a receipt on the callbacks stream as the receiver does.
func (f *fixture) receipt(t *testing.T, rc dlr.Receipt) {
	t.Helper()
	f.receiptAs(t, rc, dlr.ReceiptMsgID(rc))
}

// receiptAs stores a receipt with its own Nats-Msg-Id, as a repeat that arrives
// after the stream's duplicate window is stored.
func (f *fixture) receiptAs(t *testing.T, rc dlr.Receipt, msgID string) {
	t.Helper()
	if rc.ReceivedAt.IsZero() {
		rc.ReceivedAt = time.Now().UTC()
	}
	data, err := json.Marshal(rc)
	require.NoError(t, err)
	_, err = f.env.JS.PublishMsg(context.Background(), &nats.Msg{
		Subject: f.env.Names.CallbackDLR(), Data: data,
		Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}},
	})
	require.NoError(t, err)
}

func (f *fixture) inboundMsg(t *testing.T, in dlr.Inbound) {
	t.Helper()
	in.ReceivedAt = time.Now().UTC()
	data, err := json.Marshal(in)
	require.NoError(t, err)
	_, err = f.env.JS.PublishMsg(context.Background(), &nats.Msg{
		Subject: f.env.Names.CallbackMO(), Data: data,
		Header: nats.Header{jetstream.MsgIDHeader: []string{dlr.InboundMsgID(in)}},
	})
	require.NoError(t, err)
}

// waitEvent waits for an event of jobID in status st.
func (f *fixture) waitEvent(t *testing.T, jobID string, st job.Status) job.Event {
	t.Helper()
	var found job.Event
	f.status.WaitFor(t, 10*time.Second, string(st)+" of "+jobID, func(ms []brokertest.Msg) bool {
		for _, ev := range brokertest.EventsOf(ms, jobID) {
			if ev.Status == st {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// entry waits until the job's ledger entry satisfies cond, watching the bucket.
func (f *fixture) entry(t *testing.T, jobID string, cond func(*ledger.Entry) bool) *ledger.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := f.env.JS.KeyValue(ctx, f.env.Names.LedgerBucket())
	require.NoError(t, err)
	w, err := kv.Watch(ctx, "j."+jobID) // ids of plain letters and '-' are their own key
	require.NoError(t, err)
	defer func() { _ = w.Stop() }()
	for {
		select {
		case kve := <-w.Updates():
			if kve == nil {
				continue // the end of the initial values
			}
			var e ledger.Entry
			require.NoError(t, json.Unmarshal(kve.Value(), &e))
			if cond(&e) {
				return &e
			}
		case <-ctx.Done():
			t.Fatalf("ledger entry of %s never met the condition", jobID)
		}
	}
}

func otp(id string) job.Job {
	return job.Job{ID: id, Destination: "+64211234567", Content: "code 1", Lane: "priority", Campaign: "c1",
		Metadata: map[string]string{"tenant": "acme"}, Segments: 1}
}

const uuid1 = "1e41f423-24cf-4fa2-9a8a-888c30653305"

func TestResolver(t *testing.T) {
	t.Parallel()

	t.Run("AReceiptBecomesTheJobsEvent", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{})
		f.accept(t, otp("otp-1"), uuid1)
		f.receipt(t, dlr.Receipt{MessageID: uuid1, Status: "received", Detail: "+64211234567", API: dlr.APIv2})
		ev := f.waitEvent(t, "otp-1", job.StatusReceived)
		require.True(t, ev.Final)
		require.Equal(t, uuid1, ev.MessageID)
		require.Equal(t, "priority", ev.Lane)
		require.Equal(t, "c1", ev.Campaign)
		require.Equal(t, map[string]string{"tenant": "acme"}, ev.Metadata)
		require.Equal(t, "+64211234567", ev.Detail)
		require.Equal(t, 1, ev.Attempts)
		f.entry(t, "otp-1", func(e *ledger.Entry) bool { return e.Status == job.StatusReceived })
	})

	t.Run("AReceiptBeforeTheAcceptIsRecordedStillResolves", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{RetryDelay: 50 * time.Millisecond})
		f.receipt(t, dlr.Receipt{MessageID: uuid1, Status: "sent"})
		// Counters have no event to await.
		require.Eventually(t, func() bool { return f.res.Stats().Retried > 0 }, 10*time.Second, 5*time.Millisecond)
		f.accept(t, otp("early"), uuid1)
		ev := f.waitEvent(t, "early", job.StatusSent)
		require.Equal(t, map[string]string{"tenant": "acme"}, ev.Metadata)
		require.Zero(t, f.res.Stats().Unmatched)
	})

	t.Run("RepeatedAndReorderedReceiptsLeaveTheFinalStatusFinal", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{})
		f.accept(t, otp("order"), uuid1)
		f.receipt(t, dlr.Receipt{MessageID: uuid1, Status: "received", ReceivedAt: time.Now().UTC()})
		f.waitEvent(t, "order", job.StatusReceived)
		// The same receipt again after the duplicate window would have passed
		// (another receive time), then the earlier one, late.
		f.receiptAs(t, dlr.Receipt{MessageID: uuid1, Status: "received", Detail: "again"}, "after-the-window")
		f.receipt(t, dlr.Receipt{MessageID: uuid1, Status: "sent"})
		require.Eventually(t, func() bool { return f.res.Stats().Unchanged == 2 }, 10*time.Second, 10*time.Millisecond)
		evs := brokertest.EventsOf(f.status.Msgs(), "order")
		require.Len(t, evs, 1)
		e, _, err := f.ledger.Get(context.Background(), "order")
		require.NoError(t, err)
		require.Equal(t, job.StatusReceived, e.Status)
		require.Len(t, e.History, 2, "accepted, received")
	})

	t.Run("AReceiptMatchesByTheJobIdAsReference", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{})
		// The worker claimed the job but never learnt the message id (a timeout).
		j := otp("by-ref")
		e := ledger.FromJob(&j, time.Now())
		e.Set(ledger.StateUnknown, time.Now(), "", "timeout")
		_, err := f.ledger.Create(context.Background(), e)
		require.NoError(t, err)
		f.receipt(t, dlr.Receipt{MessageID: uuid1, Status: "received", Reference: "by-ref"})
		ev := f.waitEvent(t, "by-ref", job.StatusReceived)
		require.Equal(t, uuid1, ev.MessageID)
		e = f.entry(t, "by-ref", func(e *ledger.Entry) bool { return e.Status == job.StatusReceived })
		require.True(t, e.Accepted(), "the receipt shows the job was sent")
	})

	t.Run("AReceiptNoJobClaimsIsPublishedAfterTheWindow", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{ResolveWithin: 300 * time.Millisecond, RetryDelay: 50 * time.Millisecond})
		f.receipt(t, dlr.Receipt{MessageID: "12345", Status: "Delivered To Network", Reference: "nobody", API: dlr.APIv1})
		msgs := f.status.WaitFor(t, 10*time.Second, "the unmatched receipt", func(ms []brokertest.Msg) bool { return len(ms) == 1 })
		require.Equal(t, f.env.Names.Status(events.StatusOther), msgs[0].Subject, "a status that is no subject token")
		ev := brokertest.Events(msgs)[0]
		require.Empty(t, ev.JobID)
		require.Equal(t, "12345", ev.MessageID)
		require.Equal(t, job.Status("Delivered To Network"), ev.Status, "kept as it came")
		require.Eventually(t, func() bool { return f.res.Stats().Unmatched == 1 }, 10*time.Second, 5*time.Millisecond)
	})

	t.Run("InboundStopOptsOutAndStartOptsBackIn", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{})
		f.accept(t, otp("promo"), uuid1)
		f.inboundMsg(t, dlr.Inbound{ID: "mo-1", Source: "+64211234567", Destination: "2021", Content: " stop ", ReplyTo: uuid1, Operator: "Spark"})
		msgs := f.inbound.WaitFor(t, 10*time.Second, "the inbound event", func(ms []brokertest.Msg) bool { return len(ms) == 1 })
		require.Equal(t, "sms.inbound.2021", msgs[0].Subject)
		var in events.Inbound
		require.NoError(t, json.Unmarshal(msgs[0].Data, &in))
		require.Equal(t, "promo", in.ReplyToJob)
		require.Equal(t, uuid1, in.ReplyTo)
		require.Equal(t, "Spark", in.Operator)
		out, err := f.optOuts.Has(context.Background(), "+64211234567")
		require.NoError(t, err)
		require.True(t, out)

		f.inboundMsg(t, dlr.Inbound{ID: "mo-2", Source: "+64211234567", Destination: "2021", Content: "START"})
		f.inbound.WaitFor(t, 10*time.Second, "the second inbound event", func(ms []brokertest.Msg) bool { return len(ms) == 2 })
		out, err = f.optOuts.Has(context.Background(), "+64211234567")
		require.NoError(t, err)
		require.False(t, out)
	})
}

func TestPoisonCallbacks(t *testing.T) {
	t.Parallel()

	t.Run("ACallbackThatFailsEveryTimeIsDeadLetteredAfterMaxDeliveries", func(t *testing.T) {
		t.Parallel()
		const maxDeliver = 3
		f := newFixture(t, resolve.Config{MaxDeliver: maxDeliver, RetryDelay: 10 * time.Millisecond})
		dead := brokertest.Watch(t, f.env.JS, f.env.Names.DeadStream())
		// Without the inbound stream every try to publish the MO fails.
		ctx := context.Background()
		require.NoError(t, f.env.JS.DeleteStream(ctx, f.env.Names.InboundStream()))
		f.inboundMsg(t, dlr.Inbound{ID: "mo-poison", Source: "+64211234567", Destination: "2021", Content: "hello"})

		letters := dead.WaitFor(t, 30*time.Second, "the poison callback's dead letter", func(ms []brokertest.Msg) bool { return len(ms) >= 1 })
		require.Len(t, letters, 1)
		l := letters[0]
		require.Equal(t, "sms.dead._callbacks", l.Subject)
		require.Equal(t, string(events.ReasonCallbackFailed), l.Header.Get(events.HeaderReason))
		require.Equal(t, "mo:mo-poison", l.Header.Get(events.HeaderJobID))
		require.Equal(t, f.env.Names.CallbackMO(), l.Header.Get(events.HeaderSubject))
		require.Contains(t, l.Header.Get(events.HeaderError), fmt.Sprintf("delivered %d times", maxDeliver))
		var in dlr.Inbound
		require.NoError(t, json.Unmarshal(l.Data, &in), "the callback as it was stored")
		require.Equal(t, "mo-poison", in.ID)
		require.Equal(t, int64(maxDeliver), f.res.Stats().Failed)
		require.Eventually(t, func() bool { return f.res.Stats().DeadLettered == 1 }, 10*time.Second, 5*time.Millisecond)

		// It is gone from the callbacks stream: it is not redelivered for ever.
		s, err := f.env.JS.Stream(ctx, f.env.Names.CallbacksStream())
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			info, err := s.Info(ctx)
			return err == nil && info.State.Msgs == 0
		}, 10*time.Second, 10*time.Millisecond)
	})

	t.Run("AStoredValueThatCannotBeANameIsDeadLetteredAtOnceAndTheConnectionStays", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{})
		dead := brokertest.Watch(t, f.env.JS, f.env.Names.DeadStream())
		// Stored as a receiver without limits stored it: 4,000 digits would make
		// a subject past the server's control line.
		long := strings.Repeat("9", 4000)
		f.inboundMsg(t, dlr.Inbound{ID: "mo-long", Source: "+" + long, Destination: long, Content: "STOP"})
		letters := dead.WaitFor(t, 10*time.Second, "the dead letter", func(ms []brokertest.Msg) bool { return len(ms) >= 1 })
		require.Equal(t, string(events.ReasonCallbackFailed), letters[0].Header.Get(events.HeaderReason))
		require.Contains(t, letters[0].Header.Get(events.HeaderError), "invalid NATS name")
		require.NotContains(t, letters[0].Header.Get(events.HeaderError), long[:100], "no number in the error")

		// The connection is still open, and the next callback resolves.
		require.True(t, f.env.Conn.IsConnected())
		f.inboundMsg(t, dlr.Inbound{ID: "mo-ok", Source: "+64211234567", Destination: "2021", Content: "hi"})
		f.inbound.WaitFor(t, 10*time.Second, "the next inbound event", func(ms []brokertest.Msg) bool { return len(ms) == 1 })
		require.True(t, f.env.Conn.IsConnected())
		require.Zero(t, f.env.Conn.Stats().Reconnects)
	})
}

func TestReconciler(t *testing.T) {
	t.Parallel()
	f := newFixture(t, resolve.Config{})
	sim, err := gwsim.New(gwsim.Config{})
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	gw, err := dispatcher.NewRESTv2(dispatcher.Config{URL: srv.URL + gwsim.BasePath})
	require.NoError(t, err)
	ctx := context.Background()

	// One job the gateway knows (still "accepted" there: no final receipt), one it
	// does not, and one already final.
	known := otp("known")
	res, err := gw.Send(ctx, &known)
	require.NoError(t, err)
	for _, c := range []struct {
		j   job.Job
		msg string
	}{{known, res.MessageID}, {otp("unknown-at-gw"), uuid1}, {otp("done"), "9f0e1d2c-0000-4000-8000-000000000001"}} {
		f.accept(t, c.j, c.msg)
		ev := job.Event{JobID: c.j.ID, MessageID: c.msg, Status: job.StatusAccepted, At: time.Now().UTC()}
		require.NoError(t, f.pub.Status(ctx, ev))
	}
	f.receipt(t, dlr.Receipt{MessageID: "9f0e1d2c-0000-4000-8000-000000000001", Status: "received"})
	f.waitEvent(t, "done", job.StatusReceived)

	rec, err := resolve.NewReconciler(resolve.ReconcilerConfig{
		Names: f.env.Names, Ledger: f.ledger, Publisher: f.pub, Gateway: gw, After: 500 * time.Millisecond,
	}, f.env.JS, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.NoError(t, rec.Start(ctx))
	t.Cleanup(func() { require.NoError(t, rec.Stop(context.Background())) })

	for _, id := range []string{"known", "unknown-at-gw"} {
		ev := f.waitEvent(t, id, job.StatusExpired)
		require.Equal(t, resolve.DetailNoReceipt, ev.Detail)
		require.True(t, ev.Final)
	}
	require.Eventually(t, func() bool { return rec.Stats().Final == 1 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, []job.Status{job.StatusAccepted, job.StatusReceived}, statuses(brokertest.EventsOf(f.status.Msgs(), "done")),
		"a final job gets nothing more")
	require.Eventually(t, func() bool { return rec.Stats().Expired == 2 }, 10*time.Second, 5*time.Millisecond)
}

func statuses(evs []job.Event) []job.Status {
	out := make([]job.Status, len(evs))
	for i, ev := range evs {
		out[i] = ev.Status
	}
	return out
}
