package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/job"
)

// shortCode is the number handsets reply to.
const shortCode = "2021"

// sendMO sends an inbound message through the simulator and waits for its
// inbound event.
func (s *stack) sendMO(t *testing.T, mo gwsim.MO) (events.Inbound, brokertest.Msg) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id, err := s.sim.SendMO(ctx, mo)
	require.NoError(t, err, "the receiver answered 200 once it stored the MO")
	var found brokertest.Msg
	s.inbound.WaitFor(t, 20*time.Second, "the inbound event of MO "+id, func(msgs []brokertest.Msg) bool {
		for _, m := range msgs {
			if m.Header.Get(jetstream.MsgIDHeader) == id { // the gateway's id, as the contract says
				found = m
				return true
			}
		}
		return false
	})
	var in events.Inbound
	require.NoError(t, json.Unmarshal(found.Data, &in))
	require.Equal(t, id, in.ID)
	return in, found
}

func TestInbound(t *testing.T) {
	t.Parallel()

	t.Run("StopSuppressesBulkButNotPriorityUntilStart", func(t *testing.T) {
		t.Parallel()
		const number = "+64211234567"
		s := setup(t, options{})
		ctx := context.Background()

		// A message the handset will answer.
		welcome := testJob{Job: job.Job{ID: "welcome-1", Destination: number, Content: "Welcome to ACME",
			Metadata: map[string]string{"tenant": "acme"}}, lane: "priority"}
		s.publish(t, welcome)
		accepted := s.status.waitStatus(t, welcome.ID, job.StatusAccepted)

		// STOP, in reply to it: an inbound event on the short code's subject, with
		// the job it answers, and the number is on the opt-out list.
		in, msg := s.sendMO(t, gwsim.MO{Source: number, Destination: shortCode, Content: "STOP", ReplyTo: accepted.MessageID})
		subject, err := s.names.Inbound(shortCode)
		require.NoError(t, err)
		require.Equal(t, subject, msg.Subject)
		require.Equal(t, number, in.Source)
		require.Equal(t, shortCode, in.Destination)
		require.Equal(t, "STOP", in.Content)
		require.Equal(t, accepted.MessageID, in.ReplyTo)
		require.Equal(t, welcome.ID, in.ReplyToJob)
		require.Equal(t, welcome.ID, in.Reference, "the gateway echoes the reference jetsms sent: the job id")
		out, err := s.optOuts.Has(ctx, number)
		require.NoError(t, err)
		require.True(t, out, "the list changes before the inbound event is published")
		require.Equal(t, int64(1), s.resolver.Stats().OptOuts)

		// A bulk (marketing) job to the number ends suppressed without reaching
		// the gateway; a priority one is sent.
		promo := testJob{Job: job.Job{ID: "promo-1", Destination: number, Content: "Spring sale",
			Metadata: map[string]string{"tenant": "acme", "offer": "spring"}}, lane: "bulk", campaign: "spring"}
		otp := testJob{Job: job.Job{ID: "otp-1", Destination: number, Content: "Your code is 123456",
			Metadata: map[string]string{"tenant": "acme", "user": "42"}}, lane: "priority"}
		s.publish(t, promo, otp)
		final := s.status.waitFinal(t, promo.ID)
		require.Equal(t, job.StatusSuppressed, final.Status)
		var p problems
		checkIdentity(&p, final, promo, "")
		p.check(t)
		require.Equal(t, []job.Status{job.StatusSuppressed}, statusesOf(s.status.of(promo.ID)))
		// The worker writes the ledger entry after the final event.
		var e *ledger.Entry
		eventually(t, 10*time.Second, "the ledger entry of "+promo.ID, func() bool {
			e, _, err = s.ledger.Get(ctx, promo.ID)
			return err == nil
		})
		require.Equal(t, job.StatusSuppressed, e.Status)
		require.Empty(t, e.MessageID)

		otpFinal := s.status.waitFinal(t, otp.ID)
		require.Equal(t, job.StatusReceived, otpFinal.Status)
		require.Len(t, s.sentTo(otp.ID), 1)
		require.Equal(t, []job.Status{job.StatusAccepted, job.StatusSent, job.StatusReceived}, sortedLifecycle(s.status.of(otp.ID)))
		checkIdentity(&p, otpFinal, otp, s.sentTo(otp.ID)[0].ID)
		p.check(t)
		// The suppressed job has its final event: it will never be sent.
		require.Empty(t, s.sentTo(promo.ID), "a suppressed job never reaches the gateway")

		// START opts the number back in: the next bulk job is sent.
		in, _ = s.sendMO(t, gwsim.MO{Source: number, Destination: shortCode, Content: "start"})
		require.Empty(t, in.ReplyTo)
		require.Empty(t, in.ReplyToJob)
		out, err = s.optOuts.Has(ctx, number)
		require.NoError(t, err)
		require.False(t, out)
		promo2 := testJob{Job: job.Job{ID: "promo-2", Destination: number, Content: "Summer sale",
			Metadata: map[string]string{"tenant": "acme", "offer": "summer"}}, lane: "bulk", campaign: "summer"}
		s.publish(t, promo2)
		final = s.status.waitFinal(t, promo2.ID)
		require.Equal(t, job.StatusReceived, final.Status)
		require.Len(t, s.sentTo(promo2.ID), 1)
		checkIdentity(&p, final, promo2, s.sentTo(promo2.ID)[0].ID)
		p.check(t)
		rs := s.resolver.Stats()
		require.Equal(t, int64(2), rs.Inbound)
		require.Equal(t, int64(1), rs.OptIns)
	})
}

// sortedLifecycle is the statuses of the events in lifecycle order (accepted,
// then receipts), as the events of one job may be stored in another order.
func sortedLifecycle(evs []job.Event) []job.Status {
	rank := func(st job.Status) int {
		switch {
		case st == job.StatusAccepted:
			return 0
		case st.Final():
			return 2
		}
		return 1
	}
	out := statusesOf(evs)
	slices.SortStableFunc(out, func(a, b job.Status) int { return rank(a) - rank(b) })
	return out
}
