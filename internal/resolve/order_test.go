package resolve_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/job"
)

// TestNoEventAfterTheFinalOneWhenTheLedgerWriteFails: a receipt whose ledger
// write fails (a timeout, a crash or a hard stop between the two) publishes no
// event for a status the ledger does not hold, so a later receipt (the sent that
// comes after the received) cannot publish a non-final event after the final
// one; the final receipt applied again (its redelivery) publishes it.
func TestNoEventAfterTheFinalOneWhenTheLedgerWriteFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t, resolve.Config{})
	ctx := context.Background()
	j := otp("order-1")
	f.accept(t, j, uuid1)

	// The ledger refuses every write (a message larger than its stream takes)
	// while it can still be read.
	kvStream := "KV_" + f.env.Names.LedgerBucket()
	setMaxMsgSize := func(n int32) {
		t.Helper()
		s, err := f.env.JS.Stream(ctx, kvStream)
		require.NoError(t, err)
		cfg := s.CachedInfo().Config
		cfg.MaxMsgSize = n
		_, err = f.env.JS.UpdateStream(ctx, cfg)
		require.NoError(t, err)
	}
	setMaxMsgSize(16)
	at := time.Now().UTC()
	received := resolve.Change{MessageID: uuid1, Status: job.StatusReceived, At: at}
	_, err := resolve.Apply(ctx, f.ledger, f.pub, j.ID, received)
	require.Error(t, err, "the ledger write fails")
	_, err = resolve.Apply(ctx, f.ledger, f.pub, j.ID, resolve.Change{MessageID: uuid1, Status: job.StatusSent, At: at.Add(time.Millisecond)})
	require.Error(t, err, "the ledger write fails")

	setMaxMsgSize(-1)
	// The received receipt handed back is applied again, then the sent one.
	moved, err := resolve.Apply(ctx, f.ledger, f.pub, j.ID, received)
	require.NoError(t, err)
	require.True(t, moved)
	moved, err = resolve.Apply(ctx, f.ledger, f.pub, j.ID, resolve.Change{MessageID: uuid1, Status: job.StatusSent, At: at.Add(2 * time.Millisecond)})
	require.NoError(t, err)
	require.False(t, moved, "received is final")
	f.waitEvent(t, j.ID, job.StatusReceived)
	// A marker after them: every event of the job is in the stream before it.
	require.NoError(t, f.pub.Status(ctx, job.Event{JobID: "marker", Status: job.StatusAccepted, At: time.Now()}))
	f.waitEvent(t, "marker", job.StatusAccepted)
	require.Equal(t, []job.Status{job.StatusReceived}, statuses(brokertest.EventsOf(f.status.Msgs(), j.ID)),
		"one event, the final one, and nothing after it")
}

// TestReceiptOfAnEarlierCopyOfAResentJob: a job sent again after a submission of
// unknown outcome (duplicate_risk) may be at the gateway twice; the receipts of
// the copy whose answer was lost carry the job id as reference and belong to the
// job even once its acceptance is recorded under the other copy's message id
// (they were published without a job before). A job that was never resent keeps
// the strict rule: such a receipt waits for its message id and ends unmatched.
func TestReceiptOfAnEarlierCopyOfAResentJob(t *testing.T) {
	t.Parallel()
	const first, second = "11111111-24cf-4fa2-9a8a-888c30653305", "22222222-24cf-4fa2-9a8a-888c30653305"
	record := func(t *testing.T, f *fixture, id string, resent bool) {
		t.Helper()
		j := job.Job{ID: id, Destination: "+64211234567", Content: "hi", Lane: "default", Segments: 1}
		e := ledger.FromJob(&j, time.Now())
		e.Attempts, e.DuplicateRisk = 2, resent
		e.AddMessageID(second)
		e.Set(job.StatusReceived, time.Now(), "", "")
		_, err := f.ledger.Create(context.Background(), e)
		require.NoError(t, err)
		require.NoError(t, f.ledger.Index(context.Background(), second, j.ID))
	}

	t.Run("Resent", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{ResolveWithin: 300 * time.Millisecond, RetryDelay: 50 * time.Millisecond})
		record(t, f, "resent", true)
		f.receipt(t, dlr.Receipt{MessageID: first, Status: "sent", Reference: "resent", API: dlr.APIv2})
		f.receipt(t, dlr.Receipt{MessageID: first, Status: "received", Reference: "resent", API: dlr.APIv2})
		e := f.entry(t, "resent", func(e *ledger.Entry) bool { return len(e.MessageIDs) == 2 })
		require.ElementsMatch(t, []string{first, second}, e.MessageIDs)
		require.Equal(t, job.StatusReceived, e.Status)
		require.Eventually(t, func() bool {
			got, err := f.ledger.Lookup(context.Background(), first)
			return err == nil && got == "resent"
		}, 10*time.Second, 5*time.Millisecond, "the first copy's message id indexed")
		require.Eventually(t, func() bool { return f.res.Stats().Unchanged == 2 }, 10*time.Second, 5*time.Millisecond)
		require.Zero(t, f.res.Stats().Unmatched)
	})

	t.Run("NotResent", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, resolve.Config{ResolveWithin: 300 * time.Millisecond, RetryDelay: 50 * time.Millisecond})
		record(t, f, "once", false)
		f.receipt(t, dlr.Receipt{MessageID: first, Status: "received", Reference: "once", API: dlr.APIv2})
		require.Eventually(t, func() bool { return f.res.Stats().Unmatched == 1 }, 10*time.Second, 5*time.Millisecond)
		e, _, err := f.ledger.Get(context.Background(), "once")
		require.NoError(t, err)
		require.Equal(t, []string{second}, e.MessageIDs, "a receipt of another message never lands on the job")
	})
}
