package worker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/worker"
)

// receiptDuring is a Sender that, before its second submission goes out, does
// what the resolver does with the receipt of the first one: the first was
// accepted but its answer lost, and its receipt shows the job accepted (sent)
// while the second is on the wire.
type receiptDuring struct {
	next  worker.Sender
	b     *bundle
	led   *ledger.Ledger
	calls atomic.Int64
	t     *testing.T
}

func (s *receiptDuring) Send(ctx context.Context, j *job.Job) (dispatcher.Result, error) {
	if s.calls.Add(1) == 2 {
		first := s.b.messageID(j.ID)
		require.NotEmpty(s.t, first, "the first submission was accepted")
		e, rev, err := s.led.Get(ctx, j.ID)
		require.NoError(s.t, err)
		require.Equal(s.t, ledger.StateSubmitting, e.Status)
		e.AddMessageID(first)
		require.True(s.t, e.Advance(job.StatusSent, time.Now(), ""))
		_, err = s.led.Update(ctx, e, rev)
		require.NoError(s.t, err)
	}
	return s.next.Send(ctx, j)
}

// TestAReceiptSeenAfterARefusalStopsTheResends: a job whose first submission was
// accepted with its answer lost (a reset) is resent; the resend is refused (429),
// and meanwhile the first copy's receipt showed the job accepted. The job is
// accepted under the first copy's id and never sent a third time: a refusal
// that finds the entry accepted settles the job as an unknown outcome does, and
// no claim is made over an accepted entry (before, the next try claimed it back
// to submitting and sent the job again).
func TestAReceiptSeenAfterARefusalStopsTheResends(t *testing.T) {
	t.Parallel()
	b := setup(t, options{noRun: true})
	led, err := ledger.Open(context.Background(), b.env.JS, ledger.Config{Bucket: b.env.Names.LedgerBucket()})
	require.NoError(t, err)
	b.sender = &receiptDuring{next: b.sender, b: b, led: led, t: t}
	b.sim.Inject(gwsim.FaultAcceptThenReset, gwsim.Fault429)
	b.start(t)

	j := validJob("guard-1")
	b.publishJob(t, "priority", j)
	evs := b.waitStatus(t, j.ID, job.StatusAccepted)
	first := b.messageID(j.ID)
	var accepted job.Event
	for _, ev := range evs {
		if ev.Status == job.StatusAccepted {
			accepted = ev
		}
	}
	require.Equal(t, first, accepted.MessageID, "accepted under the first copy's id")
	b.waitDrained(t)
	require.Equal(t, 1, b.arrived(j.ID), "sent once: nothing after the receipt showed it accepted")
	e, _, err := led.Get(context.Background(), j.ID)
	require.NoError(t, err)
	require.Equal(t, []string{first}, e.MessageIDs)
	require.Equal(t, job.StatusSent, e.Status, "the receipt's status stays")
}
