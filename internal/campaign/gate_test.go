package campaign

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/job"
)

// gate starts a gate over the bundle's store.
func (b *bundle) gate(t *testing.T) *Gate {
	t.Helper()
	g, err := NewGate(b.store, b.log)
	require.NoError(t, err)
	require.NoError(t, g.Start(t.Context()))
	t.Cleanup(func() { require.NoError(t, g.Stop(context.Background())) })
	return g
}

// seeWait bounds how long sees waits: a failure timeout only. The gate learns a
// known campaign's changes from its watch (milliseconds on an idle machine) and
// never reads such a campaign again, so a change that does not come by the watch
// does not come at all.
const seeWait = 10 * time.Second

// sees waits for the gate to report want for the campaign.
func sees(t *testing.T, g *Gate, name string, want State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), seeWait)
	defer cancel()
	got, err := g.WaitFor(ctx, name, func(s State) bool { return s == want })
	require.NoError(t, err, "the gate still says %q, not %q, after %s", got, want, seeWait)
	st, err := g.State(t.Context(), name)
	require.NoError(t, err)
	require.Equal(t, want, st)
}

func TestControl(t *testing.T) {
	t.Parallel()

	t.Run("PauseResumeAndCancelReachTheGateByItsWatch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		g := b.gate(t)
		b.campaign(t, "spring", 10)
		sees(t, g, "spring", StateRunning)

		rec, err := b.store.Pause(t.Context(), "spring")
		require.NoError(t, err)
		require.Equal(t, StatePaused, rec.State)
		require.NotNil(t, rec.PausedAt)
		sees(t, g, "spring", StatePaused)

		// Pausing twice changes nothing.
		rec, err = b.store.Pause(t.Context(), "spring")
		require.NoError(t, err)
		require.Equal(t, StatePaused, rec.State)

		rec, err = b.store.Resume(t.Context(), "spring")
		require.NoError(t, err)
		require.Equal(t, StateRunning, rec.State, "a fully published campaign resumes running")
		require.NotNil(t, rec.ResumedAt)
		sees(t, g, "spring", StateRunning)

		rec, err = b.store.Cancel(t.Context(), "spring")
		require.NoError(t, err)
		require.Equal(t, StateCancelled, rec.State)
		require.NotNil(t, rec.CancelledAt)
		sees(t, g, "spring", StateCancelled)

		_, err = b.store.Resume(t.Context(), "spring")
		require.ErrorIs(t, err, ErrState)
		_, err = b.store.Pause(t.Context(), "spring")
		require.ErrorIs(t, err, ErrState)
		rec, err = b.store.Cancel(t.Context(), "spring")
		require.NoError(t, err, "cancelling twice changes nothing")
		require.Equal(t, StateCancelled, rec.State)
	})

	t.Run("ResumeGoesBackToPublishingWhileTheFileIsNotPublished", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := b.publisher(t, nil)
		p.killAt = 10
		_, err := p.Send(t.Context(), spec("spring"), bytesReader(recipients(100, 0)))
		require.ErrorIs(t, err, errKilled)
		_, err = b.store.Pause(t.Context(), "spring")
		require.NoError(t, err)
		rec, err := b.store.Resume(t.Context(), "spring")
		require.NoError(t, err)
		require.Equal(t, StatePublishing, rec.State)
	})

	t.Run("DoneCampaignsCannotBeCancelledOrPaused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.campaign(t, "spring", 1)
		b.tracker(t)
		b.event(t, "spring", 1, job.StatusReceived, "m-1")
		b.waitRecord(t, "spring", "done", func(r *Record) bool { return r.State == StateDone })
		_, err := b.store.Cancel(t.Context(), "spring")
		require.ErrorIs(t, err, ErrState)
		_, err = b.store.Pause(t.Context(), "spring")
		require.ErrorIs(t, err, ErrState)
		_, err = b.store.Pause(t.Context(), "nobody")
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("GateKnowsCampaignsStoredBeforeItStartedAndAfter", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.campaign(t, "before", 1)
		_, err := b.store.Pause(t.Context(), "before")
		require.NoError(t, err)
		g := b.gate(t)
		st, err := g.State(t.Context(), "before")
		require.NoError(t, err)
		require.Equal(t, StatePaused, st, "loaded by Start, before it returns")

		for _, name := range []string{"", "nobody", "not a key!"} {
			st, err = g.State(t.Context(), name)
			require.NoError(t, err)
			require.Equal(t, StateUnknown, st, name)
		}
		st, err = g.State(t.Context(), "after")
		require.NoError(t, err)
		require.Equal(t, StateUnknown, st)
		b.campaign(t, "after", 1)
		sees(t, g, "after", StateRunning) // the watch ends the remembered miss
	})

	t.Run("GateNeedsStartAndStopsTwice", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		g, err := NewGate(b.store, nil)
		require.NoError(t, err)
		_, err = g.State(t.Context(), "spring")
		require.ErrorIs(t, err, ErrNotStarted)
		require.NoError(t, g.Stop(t.Context()))
		require.NoError(t, g.Stop(t.Context()))
	})

	t.Run("ListsCampaignsOldestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.campaign(t, "first", 2)
		b.campaign(t, "second", 3)
		recs, err := b.store.List(t.Context())
		require.NoError(t, err)
		require.Len(t, recs, 2)
		require.Equal(t, "first", recs[0].Name)
		require.Equal(t, "second", recs[1].Name)
		require.Equal(t, 3, recs[1].Totals.Jobs)
	})
}
