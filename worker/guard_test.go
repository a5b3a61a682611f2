package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/worker"
)

// publishWith stores job j on lane with extra headers and its own Nats-Msg-Id.
func (b *bundle) publishWith(t *testing.T, lane string, j job.Job, msgID string, hdr map[string]string) {
	t.Helper()
	data, err := json.Marshal(j)
	require.NoError(t, err)
	m := &nats.Msg{Subject: b.env.Names.Send(lane), Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}
	for k, v := range hdr {
		m.Header.Set(k, v)
	}
	_, err = b.env.JS.PublishMsg(context.Background(), m)
	require.NoError(t, err)
}

func statuses(evs []job.Event) []job.Status {
	out := make([]job.Status, len(evs))
	for i, ev := range evs {
		out[i] = ev.Status
	}
	return out
}

func (b *bundle) entry(t *testing.T, id string) *ledger.Entry {
	t.Helper()
	e, _, err := b.cfg.Ledger.Get(context.Background(), id)
	require.NoError(t, err)
	return e
}

func TestSendGuard(t *testing.T) {
	t.Parallel()

	t.Run("AJobPublishedTwiceIsSentOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		j := validJob("twice")
		b.publishWith(t, "default", j, "twice-a", nil)
		b.waitStatus(t, j.ID, job.StatusAccepted)
		b.publishWith(t, "default", j, "twice-b", nil)
		b.waitDrained(t)
		require.Equal(t, 1, b.arrived(j.ID))
		evs := b.waitStatus(t, j.ID, job.StatusDuplicate)
		require.Equal(t, []job.Status{job.StatusAccepted, job.StatusDuplicate}, statuses(evs),
			"the second copy stores the same accepted event, which is deduplicated, and a notice that it was a duplicate")
		require.True(t, evs[1].Duplicate)
		require.False(t, evs[1].Final)
		require.Equal(t, evs[0].MessageID, evs[1].MessageID)
		e := b.entry(t, j.ID)
		require.Equal(t, job.StatusAccepted, e.Status)
		require.Equal(t, 1, e.Attempts)
		require.NotEmpty(t, e.MessageID)
	})

	t.Run("TwoWorkersGivenOneJobSendItOnce", func(t *testing.T) {
		t.Parallel()
		// A slow gateway keeps the first submission in flight while the second
		// copy is taken, by the other worker or the same one.
		b := setup(t, options{sim: gwsim.Config{Latency: 300 * time.Millisecond}, noRun: true})
		b.start(t)
		b.start(t)
		for i := range 5 {
			j := validJob("pair-" + string(rune('a'+i)))
			b.publishWith(t, "priority", j, j.ID+"-1", nil)
			b.publishWith(t, "priority", j, j.ID+"-2", nil)
		}
		for i := range 5 {
			b.waitStatus(t, "pair-"+string(rune('a'+i)), job.StatusAccepted)
		}
		b.waitDrained(t)
		for i := range 5 {
			require.Equal(t, 1, b.arrived("pair-"+string(rune('a'+i))))
		}
	})

	t.Run("UnknownOutcomeUnderTheFailPolicyIsNeverResent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{worker: worker.Config{LaneOptions: map[string]worker.LaneOptions{"bulk": {Ambiguous: worker.AmbiguousFail}}}})
		b.sim.Inject(gwsim.FaultAcceptThenReset)
		j := validJob("unknown-fail")
		b.publishJob(t, "bulk", j)
		evs := b.waitFinal(t, j.ID)
		final := evs[len(evs)-1]
		require.Equal(t, job.StatusFailed, final.Status)
		require.Equal(t, worker.ErrorOutcomeUnknown, final.Error)
		require.Equal(t, string(events.ReasonOutcomeUnknown), b.deadLetter(t, j.ID).Header.Get(events.HeaderReason))
		require.Equal(t, 1, b.arrived(j.ID))

		// Published again once its ledger entry is final (written just after the
		// final event; a copy that comes between the two is ended again, with the
		// same final event, deduplicated), it is not sent again.
		require.Eventually(t, func() bool { return b.entry(t, j.ID).Status.Final() }, 20*time.Second, 10*time.Millisecond,
			"the ledger entry final")
		b.publishWith(t, "bulk", j, "unknown-fail-again", nil)
		b.waitDrained(t)
		require.Equal(t, 1, b.arrived(j.ID))
		// The notice is stored before the job is terminated; the test's copy of
		// the status stream may not have it yet.
		again := b.waitStatus(t, j.ID, job.StatusDuplicate)
		require.Len(t, again, len(evs)+1, "only a notice that it was a duplicate")
		require.Equal(t, job.StatusDuplicate, again[len(evs)].Status)
		require.True(t, again[len(evs)].Duplicate)
	})

	t.Run("HoldAcksAJobWhoseReceiptCame", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{worker: worker.Config{LaneOptions: map[string]worker.LaneOptions{
			"default": {Ambiguous: worker.AmbiguousHold, HoldFor: time.Second, HoldThen: worker.AmbiguousFail},
		}}})
		b.sim.Inject(gwsim.FaultAcceptThenReset)
		j := validJob("hold-receipt")
		b.publishJob(t, "default", j)
		b.waitStatus(t, j.ID, job.StatusRetrying)
		msgID := b.messageID(j.ID)
		// The receipt resolver matches a receipt by the job's reference and
		// records it, as it does for a held job.
		_, err := b.cfg.Ledger.Modify(context.Background(), j.ID, func(e *ledger.Entry) (*ledger.Entry, error) {
			e.AddMessageID(msgID)
			e.Advance(job.StatusSent, time.Now(), "")
			return e, nil
		})
		require.NoError(t, err)
		evs := b.waitStatus(t, j.ID, job.StatusAccepted)
		b.waitDrained(t)
		require.Equal(t, 1, b.arrived(j.ID))
		require.Equal(t, []job.Status{job.StatusRetrying, job.StatusAccepted}, statuses(evs))
		require.Equal(t, msgID, evs[1].MessageID)
	})

	t.Run("HoldThenFailsWithoutAReceipt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{worker: worker.Config{LaneOptions: map[string]worker.LaneOptions{
			"default": {Ambiguous: worker.AmbiguousHold, HoldFor: 500 * time.Millisecond, HoldThen: worker.AmbiguousFail},
		}}})
		b.sim.Inject(gwsim.FaultAcceptThenReset)
		j := validJob("hold-none")
		b.publishJob(t, "default", j)
		evs := b.waitFinal(t, j.ID)
		require.Equal(t, []job.Status{job.StatusRetrying, job.StatusFailed}, statuses(evs))
		require.Equal(t, worker.ErrorOutcomeUnknown, evs[1].Error)
		require.Equal(t, 1, b.arrived(j.ID))
	})

	t.Run("ACrashBetweenSendingAndRecordingFollowsThePolicy", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{noRun: true})
		long := time.Now().Add(-time.Hour)
		for _, id := range []string{"crashed-resend", "crashed-fail"} {
			// What a worker killed during its request leaves behind.
			j := validJob(id)
			e := ledger.FromJob(&j, long)
			e.Attempts = 1
			e.Set(ledger.StateSubmitting, long, "", "")
			e.Owner, e.Since = "dead-worker", long
			_, err := b.cfg.Ledger.Create(context.Background(), e)
			require.NoError(t, err)
		}
		b.publishJob(t, "default", validJob("crashed-resend"))
		b.publishJob(t, "bulk", validJob("crashed-fail"))
		b.cfg.LaneOptions = map[string]worker.LaneOptions{"bulk": {Ambiguous: worker.AmbiguousFail}}
		b.start(t)

		evs := b.waitStatus(t, "crashed-resend", job.StatusAccepted)
		require.True(t, evs[0].DuplicateRisk)
		require.Equal(t, 2, evs[0].Attempts)
		require.Equal(t, 1, b.arrived("crashed-resend"))

		evs = b.waitFinal(t, "crashed-fail")
		require.Equal(t, job.StatusFailed, evs[0].Status)
		require.Equal(t, worker.ErrorOutcomeUnknown, evs[0].Error)
		require.Zero(t, b.arrived("crashed-fail"))
	})

	t.Run("ASubmittingMarkOfALiveWorkerHoldsOthersOff", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{worker: worker.Config{SubmitLease: 2 * time.Second}})
		j := validJob("leased")
		e := ledger.FromJob(&j, time.Now())
		now := time.Now()
		e.Set(ledger.StateSubmitting, now, "", "")
		e.Owner, e.Since = "other-worker", now
		_, err := b.cfg.Ledger.Create(context.Background(), e)
		require.NoError(t, err)
		b.publishJob(t, "priority", j)
		// Until the lease runs out nothing is sent; then the outcome counts as
		// unknown and priority resends, flagged.
		evs := b.waitStatus(t, j.ID, job.StatusAccepted)
		require.GreaterOrEqual(t, time.Since(now), 2*time.Second)
		require.True(t, evs[0].DuplicateRisk)
		require.Equal(t, 1, b.arrived(j.ID))
	})

	t.Run("OptedOutNumbersAreSuppressedOnMarketingLanesOnly", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{noRun: true})
		list, err := optout.Open(context.Background(), b.env.JS, optout.Config{Bucket: b.env.Names.OptOutBucket()})
		require.NoError(t, err)
		require.NoError(t, list.Add(context.Background(), optout.Record{Number: "+64211234567", At: time.Now()}))
		b.cfg.OptOuts = list
		b.cfg.LaneOptions = map[string]worker.LaneOptions{"bulk": {Marketing: true}}
		b.start(t)
		b.publishJob(t, "bulk", validJob("promo"))
		b.publishJob(t, "priority", validJob("otp"))
		evs := b.waitFinal(t, "promo")
		require.Equal(t, job.StatusSuppressed, evs[0].Status)
		require.True(t, evs[0].Final)
		b.waitStatus(t, "otp", job.StatusAccepted)
		b.waitDrained(t)
		require.Zero(t, b.arrived("promo"))
		require.Equal(t, 1, b.arrived("otp"))
		require.Equal(t, job.StatusSuppressed, b.entry(t, "promo").Status)
	})

	t.Run("AJobOlderThanItsLanesMaximumAgeExpires", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{noRun: true})
		b.publishJob(t, "bulk", validJob("stale"))
		b.cfg.LaneOptions = map[string]worker.LaneOptions{"bulk": {MaxAge: time.Nanosecond}}
		b.start(t)
		evs := b.waitFinal(t, "stale")
		require.Equal(t, job.StatusExpired, evs[0].Status)
		require.Contains(t, evs[0].Error, "maximum age")
		require.Equal(t, string(events.ReasonExpired), b.deadLetter(t, "stale").Header.Get(events.HeaderReason))
		require.Zero(t, b.arrived("stale"))
	})

	t.Run("AReplayedDeadLetterIsSentOnlyIfItNeverWas", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		b.sim.Inject(gwsim.FaultInvalidAttrib)
		j := validJob("replayed")
		b.publishJob(t, "default", j)
		evs := b.waitFinal(t, j.ID)
		require.Equal(t, job.StatusFailed, evs[0].Status)

		// Published again without a replay mark: it ended, so it is not sent.
		b.waitDrained(t)
		b.publishWith(t, "default", j, "replayed-copy", nil)
		b.waitDrained(t)
		require.Zero(t, b.arrived(j.ID))

		// Replayed: a new life, sent once.
		b.publishWith(t, "default", j, "replayed-1", map[string]string{events.HeaderReplay: "1"})
		b.waitStatus(t, j.ID, job.StatusAccepted)
		b.waitDrained(t)
		require.Equal(t, 1, b.arrived(j.ID))

		// Replayed again after it was accepted: not sent.
		b.publishWith(t, "default", j, "replayed-2", map[string]string{events.HeaderReplay: "2"})
		b.waitDrained(t)
		require.Equal(t, 1, b.arrived(j.ID))
	})

	t.Run("AJobPastMaxDeliveriesEndsFromTheAdvisory", func(t *testing.T) {
		t.Parallel()
		// A job held off by another worker's lease for good keeps being released;
		// after MaxDeliver deliveries JetStream stops, and the advisory ends it.
		b := setup(t, options{worker: worker.Config{SubmitLease: time.Hour, MaxDeliver: 3}})
		j := validJob("undeliverable")
		now := time.Now()
		e := ledger.FromJob(&j, now)
		e.Set(ledger.StateSubmitting, now, "", "")
		e.Owner, e.Since = "stuck-worker", now
		_, err := b.cfg.Ledger.Create(context.Background(), e)
		require.NoError(t, err)
		b.publishJob(t, "default", j)
		evs := b.waitFinal(t, j.ID)
		require.Equal(t, job.StatusFailed, evs[0].Status)
		require.Contains(t, evs[0].Error, "delivered 3 times")
		require.Equal(t, string(events.ReasonRetriesExhausted), b.deadLetter(t, j.ID).Header.Get(events.HeaderReason))
		b.waitDrained(t)
		require.Zero(t, b.arrived(j.ID))
	})
}

func TestCircuitKeepsJobsQueuedThroughAnOutage(t *testing.T) {
	t.Parallel()

	// run starts an outage with begin, publishes jobs, waits for the circuit to
	// open, ends the outage with end and waits for every job to be accepted once.
	// While open, the circuit probes the gateway without sending a job.
	run := func(t *testing.T, begin, end func(*gwsim.Simulator)) (*bundle, []bool) {
		t.Helper()
		var mu sync.Mutex
		var changes []bool
		opened := make(chan struct{}, 1)
		b := setup(t, options{worker: worker.Config{
			Concurrency: 4, CircuitFailures: 5, CircuitProbeMin: 50 * time.Millisecond, CircuitProbeMax: 200 * time.Millisecond,
			OnCircuit: func(open bool) {
				mu.Lock()
				changes = append(changes, open)
				mu.Unlock()
				if open {
					select {
					case opened <- struct{}{}:
					default:
					}
				}
			},
		}})
		begin(b.sim)
		ids := make([]string, 12)
		for i := range ids {
			ids[i] = fmt.Sprintf("outage-%02d", i)
			b.publishJob(t, "default", validJob(ids[i]))
		}
		select {
		case <-opened:
		case <-time.After(30 * time.Second):
			require.FailNow(t, "the circuit did not open")
		}
		requests := b.sim.Stats().Requests
		end(b.sim)
		b.waitAccepted(t, ids, 30*time.Second)
		require.Equal(t, requests+int64(len(ids)), b.sim.Stats().Requests, "no job was sent as a probe")
		for _, id := range ids {
			for _, ev := range brokertest.EventsOf(b.status.Msgs(), id) {
				require.False(t, ev.Final, "%s: no job ends during the outage", id)
			}
			require.Equal(t, 1, b.arrived(id))
		}
		mu.Lock()
		defer mu.Unlock()
		return b, append([]bool(nil), changes...)
	}

	t.Run("WrongCredentials", func(t *testing.T) {
		t.Parallel()
		_, changes := run(t,
			func(s *gwsim.Simulator) { s.SetCredentials("app", "other") },
			func(s *gwsim.Simulator) { s.SetCredentials("", "") })
		require.Equal(t, []bool{true, false}, changes, "opened at the first 401, closed by a probe")
	})

	t.Run("FailingGateway", func(t *testing.T) {
		t.Parallel()
		_, changes := run(t,
			func(s *gwsim.Simulator) { s.SetOutage(true) },
			func(s *gwsim.Simulator) { s.SetOutage(false) })
		require.Equal(t, []bool{true, false}, changes)
	})
}
