package campaign

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/job"
)

// waitRecord follows a campaign's record until cond holds, and returns it. Its
// 30 s are a failure timeout: the trackers may still be counting a backlog of
// hundreds of events, which on a busy machine under -race takes seconds.
func (b *bundle) waitRecord(t *testing.T, name, what string, cond func(*Record) bool) *Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	recs, err := b.store.Watch(ctx, name)
	require.NoError(t, err)
	var last *Record
	for {
		select {
		case rec, ok := <-recs:
			if !ok {
				t.Fatalf("timed out waiting for %s; last record: %+v", what, last)
			}
			last = rec
			if cond(rec) {
				return rec
			}
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; last record: %+v", what, last)
		}
	}
}

// tracker starts a tracker that flushes and reconciles often.
func (b *bundle) tracker(t *testing.T) *Tracker {
	t.Helper()
	tr, err := NewTracker(TrackerConfig{
		Names: b.env.Names, Store: b.store, FlushInterval: 10 * time.Millisecond, ReconcileInterval: 100 * time.Millisecond,
	}, b.env.JS, b.log)
	require.NoError(t, err)
	require.NoError(t, tr.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, tr.Stop(ctx))
	})
	return tr
}

// event publishes one status event of a campaign's row.
func (b *bundle) event(t *testing.T, name string, row int, st job.Status, messageID string) {
	t.Helper()
	ev := job.Event{
		JobID: JobID(name, row), MessageID: messageID, Status: st, Final: st.Final(),
		Campaign: name, Lane: "bulk", Segments: 1, At: time.Now(),
	}
	require.NoError(t, events.New(b.env.JS, b.env.Names).Status(t.Context(), ev))
}

// campaign publishes a campaign of n good rows.
func (b *bundle) campaign(t *testing.T, name string, n int) *Record {
	t.Helper()
	res, err := b.publisher(t, nil).Send(t.Context(), spec(name), bytes.NewReader(recipients(n, 0)))
	require.NoError(t, err)
	return res.Record
}

func TestTracker(t *testing.T) {
	t.Parallel()

	t.Run("CountsFollowEventsAndDoneOnlyWhenEveryJobIsFinal", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.tracker(t)
		require.Equal(t, StateRunning, b.campaign(t, "spring", 5).State)

		for row := 1; row <= 5; row++ {
			b.event(t, "spring", row, job.StatusAccepted, "m-"+string(rune('0'+row)))
		}
		rec := b.waitRecord(t, "spring", "5 sent", func(r *Record) bool { return r.Counts.Sent == 5 })
		require.Zero(t, rec.Counts.Final)
		require.Equal(t, StateRunning, rec.State)

		b.event(t, "spring", 1, job.StatusReceived, "m-1")
		b.event(t, "spring", 2, job.StatusReceived, "m-2")
		b.event(t, "spring", 3, job.StatusFailed, "")
		b.event(t, "spring", 4, job.StatusSuppressed, "")
		// A second final status of job 1 (a late receipt) counts nothing.
		b.event(t, "spring", 1, job.StatusRejected, "m-1")
		rec = b.waitRecord(t, "spring", "4 final", func(r *Record) bool { return r.Counts.Final == 4 })
		require.Equal(t, map[job.Status]int{job.StatusReceived: 2, job.StatusFailed: 1, job.StatusSuppressed: 1}, rec.Counts.ByStatus)
		require.Equal(t, 5, rec.Counts.Sent)
		require.Equal(t, 1, rec.Pending())
		require.Equal(t, StateRunning, rec.State, "not done while a job has no final status")
		require.Nil(t, rec.Ended)

		b.event(t, "spring", 5, job.StatusReceived, "m-5")
		rec = b.waitRecord(t, "spring", "done", func(r *Record) bool { return r.State == StateDone })
		require.Equal(t, 5, rec.Counts.Final)
		require.Equal(t, 3, rec.Counts.ByStatus[job.StatusReceived])
		require.NotNil(t, rec.Ended)
	})

	t.Run("ManyTrackersCountEachJobOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.tracker(t)
		b.tracker(t)
		b.tracker(t)
		const n = 300
		b.campaign(t, "spring", n)
		pub := events.New(b.env.JS, b.env.Names)
		for row := 1; row <= n; row++ {
			for _, st := range []job.Status{job.StatusAccepted, job.StatusReceived} {
				ev := job.Event{JobID: JobID("spring", row), MessageID: "m", Status: st, Final: st.Final(), Campaign: "spring", At: time.Now()}
				require.NoError(t, pub.Status(t.Context(), ev))
				// The same event again with another id (a replay beyond the
				// duplicate window): stored twice, counted once.
				ev.Detail = "again"
				ev.JobID = JobID("spring", row)
				require.NoError(t, storeEventAs(t, b, ev, "replay"))
			}
		}
		rec := b.waitRecord(t, "spring", "done", func(r *Record) bool { return r.State == StateDone })
		require.Equal(t, n, rec.Counts.Sent)
		require.Equal(t, n, rec.Counts.Final)
		require.Equal(t, map[job.Status]int{job.StatusReceived: n}, rec.Counts.ByStatus)
	})

	t.Run("CancelledCampaignStaysCancelledAndEnds", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.tracker(t)
		b.campaign(t, "spring", 3)
		b.event(t, "spring", 1, job.StatusAccepted, "m-1")
		b.event(t, "spring", 1, job.StatusReceived, "m-1")
		_, err := b.store.Cancel(t.Context(), "spring")
		require.NoError(t, err)
		b.event(t, "spring", 2, job.StatusCancelled, "")
		b.event(t, "spring", 3, job.StatusCancelled, "")
		rec := b.waitRecord(t, "spring", "ended", func(r *Record) bool { return r.Ended != nil })
		require.Equal(t, StateCancelled, rec.State)
		require.Equal(t, 1, rec.Counts.Sent)
		require.Equal(t, map[job.Status]int{job.StatusReceived: 1, job.StatusCancelled: 2}, rec.Counts.ByStatus)
	})

	t.Run("RecordCatchesUpWithItsTallies", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.campaign(t, "spring", 2)
		// A process counted both jobs in the tally and died before the record.
		_, err := b.store.applyMarks(t.Context(), "spring", 0, []mark{
			{row: 1, sent: true, final: job.StatusReceived}, {row: 2, final: job.StatusExpired},
		})
		require.NoError(t, err)
		b.tracker(t)
		rec := b.waitRecord(t, "spring", "done", func(r *Record) bool { return r.State == StateDone })
		require.Equal(t, 1, rec.Counts.Sent)
		require.Equal(t, 2, rec.Counts.Final)
	})

	t.Run("IgnoresOtherEvents", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.tracker(t)
		b.campaign(t, "spring", 1)
		pub := events.New(b.env.JS, b.env.Names)
		for _, ev := range []job.Event{
			{JobID: "order-1", Status: job.StatusReceived, Final: true, At: time.Now()},
			{JobID: "by-hand", Status: job.StatusReceived, Final: true, Campaign: "spring", At: time.Now()},
			{JobID: "nobody:1", Status: job.StatusReceived, Final: true, Campaign: "nobody", At: time.Now()},
			{JobID: "spring:1", Status: job.StatusRetrying, Campaign: "spring", Attempts: 1, At: time.Now(),
				Metadata: map[string]string{"campaign": ""}},
		} {
			require.NoError(t, pub.Status(t.Context(), ev))
		}
		b.event(t, "spring", 1, job.StatusExpired, "")
		rec := b.waitRecord(t, "spring", "done", func(r *Record) bool { return r.State == StateDone })
		require.Equal(t, map[job.Status]int{job.StatusExpired: 1}, rec.Counts.ByStatus)
		require.Zero(t, rec.Counts.Sent)
		_, _, err := b.store.Get(t.Context(), "nobody")
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("StopIsSafeTwiceAndWithoutStart", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tr, err := NewTracker(TrackerConfig{Names: b.env.Names, Store: b.store}, b.env.JS, nil)
		require.NoError(t, err)
		require.NoError(t, tr.Stop(t.Context()))
		require.NoError(t, tr.Stop(t.Context()))
		require.Error(t, tr.Start(t.Context()))
	})
}

// storeEventAs stores ev under another deduplication id, as a re-publish after
// the duplicate window would be stored.
func storeEventAs(t *testing.T, b *bundle, ev job.Event, suffix string) error {
	t.Helper()
	data, err := jsonEvent(ev)
	require.NoError(t, err)
	_, err = b.env.JS.PublishMsg(t.Context(), natsMsg(b.env.Names.Status(string(ev.Status)), data, events.MsgID(ev)+":"+suffix))
	return err
}
