package campaign

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/job"
)

// TestTrackerIgnoresForgedRows publishes events of jobs whose ids name rows far
// beyond a campaign's file (as jobs published to its subject by hand make) and a
// duplicate's failed event: the counts, the record's size and the tracker's writes
// stay those of the campaign's real rows.
func TestTrackerIgnoresForgedRows(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tr := b.tracker(t)
	require.Equal(t, StateRunning, b.campaign(t, "spring", 2).State)

	pub := events.New(b.env.JS, b.env.Names)
	// Each forged row names a block of rows of its own: were they counted, 200
	// blocks would take the record well past the 4 KiB checked below (a block's
	// counts are some 50 bytes). Each event is a publish awaited in turn, so the
	// count is kept small for a busy machine.
	const forged = 200
	for i := range forged {
		for _, st := range []job.Status{job.StatusAccepted, job.StatusFailed} {
			ev := job.Event{JobID: JobID("spring", 1_000_000_000+i*ChunkRows), MessageID: "m", Status: st,
				Final: st.Final(), Campaign: "spring", At: time.Now()}
			require.NoError(t, pub.Status(t.Context(), ev))
		}
	}
	// A duplicate's failed event names row 2 but is not row 2's job.
	require.NoError(t, pub.Status(t.Context(), job.Event{JobID: JobID("spring", 2), Status: job.StatusFailed,
		Final: true, Campaign: "spring", Duplicate: true, Seq: 99, At: time.Now()}))
	// Row 1's own final event comes last: once it is counted, every event
	// before it has been seen.
	b.event(t, "spring", 1, job.StatusReceived, "m-1")

	rec := b.waitRecord(t, "spring", "row 1 final", func(r *Record) bool { return r.Counts.Final >= 1 })
	require.Equal(t, 1, rec.Counts.Final, "forged rows and the duplicate count nothing: %+v", rec)
	require.Equal(t, 1, rec.Counts.Sent)
	require.Equal(t, map[job.Status]int{job.StatusReceived: 1}, rec.Counts.ByStatus)
	require.Len(t, rec.Chunks, 1)
	data, err := json.Marshal(rec)
	require.NoError(t, err)
	require.Less(t, len(data), 4096, "the record stays small")
	require.EqualValues(t, 2, tr.writes.Load(), "one tally and one record write, for row 1 only")
}

func TestGateHasRow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.campaign(t, "spring", 3)
	g, err := NewGate(b.store, b.log)
	require.NoError(t, err)
	require.NoError(t, g.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, g.Stop(context.Background())) })

	for id, want := range map[string]bool{
		"spring:1": true, "spring:3": true, "spring:4": false, "spring:0": false, "spring:999999999999": false,
		"autumn:1": false, "hello": false, "spring:01": false,
	} {
		known, ok, err := g.HasRow(t.Context(), "spring", id)
		require.NoError(t, err)
		require.True(t, known)
		require.Equal(t, want, ok, id)
	}
	known, ok, err := g.HasRow(t.Context(), "nosuch", "nosuch:5")
	require.NoError(t, err)
	require.False(t, known)
	require.True(t, ok, "a campaign without a record: sent as any other job")
}

func TestFlushRetryDelayGrows(t *testing.T) {
	t.Parallel()
	var got []time.Duration
	for f := range 9 {
		got = append(got, flushRetryDelay(f))
	}
	require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, time.Minute, time.Minute, time.Minute}, got)
}
