package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/worker"
)

// finalMix gives every message one of the five final statuses (exact binary
// fractions, so they add up to 1).
var finalMix = gwsim.DLRMix{Received: 0.5, Rejected: 0.125, Expired: 0.125, Failed: 0.125, Dead: 0.125}

var finalStatuses = []job.Status{job.StatusReceived, job.StatusRejected, job.StatusExpired, job.StatusFailed, job.StatusDead}

// makeJobs returns n jobs over every lane, some in a campaign, each with metadata
// of its own. With ownReference, every other job carries a reference of its own
// (not its id), so its receipts can be matched by the gateway's message id only.
func makeJobs(prefix string, n int, ownReference bool) []testJob {
	lanes := []string{"priority", "default", "bulk"}
	out := make([]testJob, n)
	for i := range n {
		id := fmt.Sprintf("%s-%05d", prefix, i)
		j := testJob{
			Job: job.Job{
				ID:          id,
				Destination: fmt.Sprintf("+6421%07d", i),
				Content:     "Message " + strconv.Itoa(i),
				Metadata:    map[string]string{"tenant": "t" + strconv.Itoa(i%7), "seq": strconv.Itoa(i), "job": id},
			},
			lane: lanes[i%len(lanes)],
		}
		if i%4 == 0 {
			j.campaign = "camp" + strconv.Itoa(i%3)
		}
		if ownReference && i%2 == 0 {
			j.Reference = "order-" + strconv.Itoa(i)
		}
		out[i] = j
	}
	return out
}

// reference is what the gateway echoes for the job: its reference, else its id.
func (j testJob) reference() string {
	if j.Reference != "" {
		return j.Reference
	}
	return j.ID
}

// countStatus counts the events of each status.
func countStatus(evs []job.Event) map[job.Status]int {
	out := map[job.Status]int{}
	for _, ev := range evs {
		out[ev.Status]++
	}
	return out
}

func statusesOf(evs []job.Event) []job.Status {
	out := make([]job.Status, len(evs))
	for i, ev := range evs {
		out[i] = ev.Status
	}
	return out
}

// The sizes of TestReceipts' many-jobs case: `make test` runs receiptJobs, which
// still gives every lane, campaign and final status dozens of jobs; make chaos
// runs receiptJobsLarge (-e2e.large).
const (
	receiptJobs      = 1000
	receiptJobsLarge = 5000
	receiptJobsShort = 500
)

func TestReceipts(t *testing.T) {
	t.Parallel()

	t.Run("EveryReceiptOfManyJobsIsOneEventOfItsJob", func(t *testing.T) {
		t.Parallel()
		n := receiptJobs
		switch {
		case *large:
			n = receiptJobsLarge
		case testing.Short():
			n = receiptJobsShort
		}
		s := setup(t, options{sim: gwsim.Config{DLRMix: finalMix}})
		jobs := makeJobs("many", n, false)
		start := time.Now()
		s.publish(t, jobs...)
		s.status.waitProgress(t, 15*time.Second, 3*time.Minute, fmt.Sprintf("a final event for each of %d jobs", n), func() bool {
			return s.status.finals >= n
		})
		s.settle(t, 20*time.Second)
		t.Logf("%d jobs sent and their receipts resolved in %s", n, time.Since(start).Round(time.Millisecond))

		st := s.sim.Stats()
		require.EqualValues(t, n, st.Accepted, "each job is submitted once")
		require.EqualValues(t, 2*n, st.ReceiptsDelivered, "a sent and a final receipt each")
		require.Zero(t, st.ReceiptsDropped)
		require.EqualValues(t, 2*n, s.tap.storedTotal())

		var p problems
		seenFinal := map[job.Status]int{}
		for _, j := range jobs {
			sent := s.sentTo(j.ID)
			if len(sent) != 1 {
				p.addf("job %s reached the gateway %d times", j.ID, len(sent))
				continue
			}
			msgID := sent[0].ID
			evs := s.status.of(j.ID)
			for _, ev := range evs {
				checkIdentity(&p, ev, j, msgID)
				if ev.Attempts != 1 || ev.Segments != 1 || ev.DuplicateRisk || ev.Reference != j.Reference {
					p.addf("%s event of job %s: attempts %d, segments %d, duplicate_risk %t, reference %q",
						ev.Status, j.ID, ev.Attempts, ev.Segments, ev.DuplicateRisk, ev.Reference)
				}
			}
			// One event per status: accepted by jetsms, then each receipt stored.
			want := map[job.Status]int{job.StatusAccepted: 1}
			for _, rs := range s.tap.storedFor(msgID) {
				want[job.Status(rs)] = 1
			}
			if got := countStatus(evs); !maps.Equal(got, want) {
				p.addf("job %s: events %v, want one each of %v", j.ID, statusesOf(evs), slices.Sorted(maps.Keys(want)))
			}
			var finals []job.Event
			for _, ev := range evs {
				if ev.Final {
					finals = append(finals, ev)
				}
			}
			m, ok := s.sim.Message(msgID)
			switch {
			case !ok:
				p.addf("job %s: the simulator no longer knows message %s", j.ID, msgID)
			case len(finals) != 1:
				p.addf("job %s: %d final events %v", j.ID, len(finals), statusesOf(evs))
			case string(finals[0].Status) != m.Status:
				p.addf("job %s: final event %s, the simulator's last receipt %s", j.ID, finals[0].Status, m.Status)
			default:
				seenFinal[finals[0].Status]++
			}
		}
		p.check(t)
		for _, fs := range finalStatuses {
			require.Positive(t, seenFinal[fs], "the mix sends %s receipts: %v", fs, seenFinal)
		}
		rs := s.resolver.Stats()
		require.Zero(t, rs.Unmatched, "resolver stats %+v", rs)
		require.EqualValues(t, 2*n, rs.Published, "every stored receipt moved its job: %+v", rs)
		require.Len(t, s.status.of(""), 0, "no event without a job id")

		// The ledger agrees with the events.
		entries := s.ledgerEntries(t, jobs)
		for _, j := range jobs {
			e := entries[j.ID]
			final, ok := job.Event{}, false
			for _, ev := range s.status.of(j.ID) {
				if ev.Final {
					final, ok = ev, true
				}
			}
			if !ok {
				continue // reported above
			}
			if e.Status != final.Status || e.MessageID != final.MessageID {
				p.addf("ledger entry of %s: status %s message %s, final event %s message %s",
					j.ID, e.Status, e.MessageID, final.Status, final.MessageID)
			}
		}
		p.check(t)
	})

	t.Run("ReceiptsStoredBeforeTheAcceptIsRecordedResolve", func(t *testing.T) {
		t.Parallel()
		const n = 40
		// Every acceptance is held back from the worker until a receipt of the
		// message is stored, and then until the test opens the gate: the
		// simulator sends its receipts at once (DLRDelay 0), so each one is stored
		// before the worker writes the message id's index, the ledger entry and the
		// accepted event.
		gate := make(chan struct{})
		s := setup(t, options{
			sim: gwsim.Config{DLRMix: finalMix},
			wrapSender: func(next worker.Sender, s *stack) worker.Sender {
				return &lateAccept{next: next, tap: s.tap, gate: gate}
			},
		})
		var opened sync.Once
		open := func() { opened.Do(func() { close(gate) }) }
		t.Cleanup(open) // before the worker stops, should the test fail first
		jobs := makeJobs("early", n, true)
		var ownRef, byID []testJob
		for _, j := range jobs {
			if j.Reference != "" {
				ownRef = append(ownRef, j)
			} else {
				byID = append(byID, j)
			}
		}
		s.publish(t, jobs...)
		s.tap.waitFor(t, 20*time.Second, "both receipts of every job stored", func() bool {
			return s.tap.answers[http.StatusOK] >= 2*n
		})
		// A job without a reference of its own is found by its id, which the
		// gateway echoes as the reference: its receipts resolve before the worker
		// has recorded anything of the acceptance.
		for _, j := range byID {
			s.status.waitFinal(t, j.ID)
		}
		// The others can only be found by the message id, which is not recorded
		// yet: the resolver must retry them, not publish them unmatched.
		eventually(t, 20*time.Second, "the resolver to retry receipts it cannot match yet", func() bool {
			return s.resolver.Stats().Retried >= int64(len(ownRef))
		})
		for _, j := range ownRef {
			require.Empty(t, s.status.of(j.ID), "job %s has no event before its acceptance is recorded", j.ID)
		}
		require.Zero(t, s.resolver.Stats().Unmatched)

		open()
		s.status.waitFor(t, 30*time.Second, "a final event for every job", func() bool { return s.status.finals >= n })
		s.settle(t, 20*time.Second)

		var p problems
		for _, j := range jobs {
			sent := s.sentTo(j.reference())
			if len(sent) != 1 {
				p.addf("job %s reached the gateway %d times", j.ID, len(sent))
				continue
			}
			msgID := sent[0].ID
			stored := s.tap.storedFor(msgID)
			evs := s.status.of(j.ID)
			counts := countStatus(evs)
			for _, ev := range evs {
				checkIdentity(&p, ev, j, msgID)
				if ev.Status != job.StatusAccepted && !slices.Contains(stored, string(ev.Status)) {
					p.addf("job %s: event %s, but the stored receipts are %v", j.ID, ev.Status, stored)
				}
				if counts[ev.Status] > 1 {
					p.addf("job %s: %d %s events", j.ID, counts[ev.Status], ev.Status)
				}
			}
			m, _ := s.sim.Message(msgID)
			var finals []job.Status
			for _, ev := range evs {
				if ev.Final {
					finals = append(finals, ev.Status)
				}
			}
			if counts[job.StatusAccepted] != 1 || len(finals) != 1 || string(finals[0]) != m.Status {
				p.addf("job %s: events %v; want one accepted and one final %s", j.ID, statusesOf(evs), m.Status)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			e, _, err := s.ledger.Get(ctx, j.ID)
			indexed, ierr := s.ledger.Lookup(ctx, msgID)
			cancel()
			switch {
			case err != nil || ierr != nil:
				p.addf("job %s: ledger %v, index %v", j.ID, err, ierr)
			case string(e.Status) != m.Status || e.MessageID != msgID || indexed != j.ID:
				p.addf("job %s: ledger status %s message %s, index -> %q; want %s, %s, the job",
					j.ID, e.Status, e.MessageID, indexed, m.Status, msgID)
			}
		}
		p.check(t)
		rs := s.resolver.Stats()
		require.Zero(t, rs.Unmatched, "resolver stats %+v", rs)
		require.GreaterOrEqual(t, rs.Published+rs.Unchanged, int64(2*n), "every stored receipt handled: %+v", rs)
		require.Len(t, s.status.of(""), 0, "no event without a job id")
	})

	t.Run("DuplicatedAndReorderedReceiptsLeaveTheFinalStatusFinal", func(t *testing.T) {
		t.Parallel()
		const n = 300
		// Each message gets its final receipt first, then its "sent" one, and
		// each of them twice.
		s := setup(t, options{sim: gwsim.Config{
			DLRMix: finalMix, DLRDuplicate: true, DLRReorder: true, DLRDelay: 50 * time.Millisecond,
		}})
		jobs := makeJobs("reorder", n, false)
		s.publish(t, jobs...)
		s.status.waitFor(t, 30*time.Second, "a final event for every job", func() bool { return s.status.finals >= n })
		s.settle(t, 20*time.Second)
		st := s.sim.Stats()
		require.EqualValues(t, 4*n, st.ReceiptsDelivered, "two receipts a message, each twice")

		var p problems
		entries := s.ledgerEntries(t, jobs)
		acceptedLate := 0
		for _, j := range jobs {
			sent := s.sentTo(j.ID)
			if len(sent) != 1 {
				p.addf("job %s reached the gateway %d times", j.ID, len(sent))
				continue
			}
			msgID := sent[0].ID
			m, _ := s.sim.Message(msgID)
			if stored := s.tap.storedFor(msgID); len(stored) != 4 || stored[0] != m.Status || stored[2] != gwsim.StatusSent {
				p.addf("job %s: the receiver stored %v; want final, final, sent, sent", j.ID, stored)
			}
			evs := s.status.of(j.ID)
			finalAt := -1
			for i, ev := range evs {
				checkIdentity(&p, ev, j, msgID)
				switch {
				case ev.Final && finalAt >= 0:
					p.addf("job %s: a second final event: %v", j.ID, statusesOf(evs))
				case ev.Final:
					finalAt = i
				case finalAt >= 0 && ev.Status == job.StatusAccepted:
					// docs/contract.md: a final receipt can overtake the accepted event.
					acceptedLate++
				case finalAt >= 0:
					p.addf("job %s: non-final %s after the final event: %v", j.ID, ev.Status, statusesOf(evs))
				}
			}
			if finalAt < 0 || string(evs[finalAt].Status) != m.Status {
				p.addf("job %s: events %v; want one final %s", j.ID, statusesOf(evs), m.Status)
			}
			e := entries[j.ID]
			if string(e.Status) != m.Status {
				p.addf("job %s: ledger status %s, want %s", j.ID, e.Status, m.Status)
			}
			for i, c := range e.History {
				if c.Status.Final() && i != len(e.History)-1 {
					p.addf("job %s: ledger history moves on after its final status: %v", j.ID, e.History)
				}
			}
		}
		p.check(t)
		if acceptedLate > 0 {
			t.Logf("%d jobs had their accepted event after the final one (allowed by docs/contract.md)", acceptedLate)
		}
		require.Equal(t, int64(2*n), s.receiver.Stats().DLR.Duplicate, "every copy recognised as already stored")
		rs := s.resolver.Stats()
		require.Zero(t, rs.Unmatched, "resolver stats %+v", rs)
		require.EqualValues(t, n, rs.Published, "only the final receipts move a job: %+v", rs)
	})

	t.Run("ReceiverAnswers503WhileNATSIsDownAndTheRetryDeliversIt", func(t *testing.T) {
		t.Parallel()
		const n = 20
		dir := t.TempDir()
		var restarted *broker.Embedded
		t.Cleanup(func() { restarted.Stop() }) // last: everything else stops first
		s := setup(t, options{storeDir: dir, publishTimeout: 300 * time.Millisecond})

		// The receipts wait at the receiver's door until NATS is down.
		s.tap.hold()
		jobs := makeJobs("outage", n, false)
		s.publish(t, jobs...)
		s.status.waitFor(t, 20*time.Second, "every job accepted", func() bool {
			for _, j := range jobs {
				if countStatus(s.status.byJob[j.ID])[job.StatusAccepted] == 0 {
					return false
				}
			}
			return true
		})
		eventually(t, 10*time.Second, "every accepted job acked", func() bool {
			return s.streamMsgs(t, s.names.JobsStream()) == 0
		})
		s.tap.waitFor(t, 10*time.Second, "a receipt at the door", func() bool { return s.tap.held > 0 })

		s.env.Server.Stop()
		eventually(t, 10*time.Second, "the connection to notice NATS is gone", func() bool { return !s.env.Conn.IsConnected() })
		s.tap.release()
		s.tap.waitFor(t, 20*time.Second, "a 503 answer", func() bool {
			return s.tap.answers[http.StatusServiceUnavailable] > 0
		})
		eventually(t, 20*time.Second, "the simulator to send a receipt again", func() bool {
			return s.sim.Stats().ReceiptsRetried > 0
		})
		require.Zero(t, s.tap.storedTotal(), "nothing answered 200 while NATS is down")

		// The same store, the same port: every connection finds it again.
		host := strings.TrimPrefix(s.env.URL, "nats://")
		_, _, err := net.SplitHostPort(host)
		require.NoError(t, err)
		restarted, err = broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: dir, Listen: host, NoAuth: true},
			zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
		require.NoError(t, err)

		s.status.waitFor(t, 40*time.Second, "a final event for every job", func() bool { return s.status.finals >= n })
		s.settle(t, 20*time.Second)
		st := s.sim.Stats()
		require.EqualValues(t, 2*n, st.ReceiptsDelivered)
		require.Zero(t, st.ReceiptsDropped)
		rc := s.receiver.Stats().DLR
		require.Positive(t, rc.Unavailable)
		require.EqualValues(t, s.tap.answers[http.StatusServiceUnavailable], rc.Unavailable)

		var p problems
		for _, j := range jobs {
			sent := s.sentTo(j.ID)
			if len(sent) != 1 {
				p.addf("job %s reached the gateway %d times", j.ID, len(sent))
				continue
			}
			evs := s.status.of(j.ID)
			for _, ev := range evs {
				checkIdentity(&p, ev, j, sent[0].ID)
			}
			want := map[job.Status]int{job.StatusAccepted: 1, job.StatusSent: 1, job.StatusReceived: 1}
			if got := countStatus(evs); !maps.Equal(got, want) {
				p.addf("job %s: events %v, want accepted, sent, received", j.ID, statusesOf(evs))
			}
		}
		p.check(t)
		require.Zero(t, s.resolver.Stats().Unmatched)
	})

	t.Run("WrongCallbackCredentialsAre401AndMakeNoEvent", func(t *testing.T) {
		t.Parallel()
		const n = 3
		s := setup(t, options{simCallbackPass: "not-the-password", sim: gwsim.Config{CallbackGiveUp: time.Second}})
		jobs := makeJobs("badauth", n, false)
		s.publish(t, jobs...)
		for _, j := range jobs {
			s.status.waitStatus(t, j.ID, job.StatusAccepted)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := s.sim.SendMO(ctx, gwsim.MO{Source: "+64211234567", Destination: "2021", Content: "STOP"})
		require.ErrorIs(t, err, gwsim.ErrGaveUp)
		eventually(t, 20*time.Second, "the simulator to give every receipt up", func() bool {
			st := s.sim.Stats()
			return st.ReceiptsPending == 0 && st.ReceiptsDropped == 2*n
		})

		st := s.sim.Stats()
		require.Zero(t, st.ReceiptsDelivered)
		require.Positive(t, st.ReceiptsRetried)
		rs := s.receiver.Stats()
		require.Equal(t, dlr.Counts{Unauthorized: 2*n + st.ReceiptsRetried}, rs.DLR, "every attempt answered 401")
		require.Equal(t, dlr.Counts{Unauthorized: 1 + st.MORetried}, rs.MO)
		s.tap.mu.Lock()
		answers, moAnswers := maps.Clone(s.tap.answers), maps.Clone(s.tap.moAnswers)
		s.tap.mu.Unlock()
		require.Equal(t, map[int]int{http.StatusUnauthorized: int(rs.DLR.Unauthorized)}, answers)
		require.Equal(t, map[int]int{http.StatusUnauthorized: int(rs.MO.Unauthorized)}, moAnswers)

		// Nothing was stored, so nothing can be resolved: each job has its accepted
		// event alone, and the number is not opted out.
		s.settle(t, 10*time.Second)
		for _, name := range []string{s.names.CallbacksStream(), s.names.InboundStream()} {
			require.Zero(t, s.streamMsgs(t, name), name)
		}
		for _, j := range jobs {
			require.Equal(t, []job.Status{job.StatusAccepted}, statusesOf(s.status.of(j.ID)), j.ID)
		}
		require.Empty(t, s.status.of(""))
		out, err := s.optOuts.Has(ctx, "+64211234567")
		require.NoError(t, err)
		require.False(t, out)
	})
}

// lateAccept holds each accepted submission back from the worker until a
// receipt of the message has been stored and the gate is open.
type lateAccept struct {
	next worker.Sender
	tap  *tap
	gate <-chan struct{}
}

func (l *lateAccept) Send(ctx context.Context, j *job.Job) (dispatcher.Result, error) {
	res, err := l.next.Send(ctx, j)
	if err != nil {
		return res, err
	}
	if l.tap.waitStored(ctx, res.MessageID) == nil {
		select {
		case <-l.gate:
		case <-ctx.Done():
		}
	}
	return res, nil
}
