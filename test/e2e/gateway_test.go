package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/worker"
)

// The tests of this file hold jetsms to the gateway's documents where the
// simulator used to be more lenient than the gateway: scheduling, a wrong
// configuration, receipts matched by reference, and answers that prove nothing.

// TestScheduledJobWaitsForItsTime: a job scheduled 48 h ahead is accepted and
// kept "accepted" by the gateway until its time. The reconciler, due seconds
// after the acceptance, must not end it expired; its receipt, sent once the
// gateway's clock reaches the schedule, must end it.
func TestScheduledJobWaitsForItsTime(t *testing.T) {
	t.Parallel()
	var ahead atomic.Int64 // how far the gateway's clock is ahead of real time
	s := setup(t, options{
		sim:            gwsim.Config{Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }},
		reconcileAfter: time.Second,
	})
	at := time.Now().Add(48 * time.Hour)
	j := testJob{Job: job.Job{ID: "later-1", Destination: "+64211234501", Content: "in two days", Scheduled: &at}, lane: "default"}
	s.publish(t, j)
	acc := s.status.waitStatus(t, j.ID, job.StatusAccepted)

	eventually(t, 30*time.Second, "the reconciler to put the scheduled job off", func() bool {
		return s.recon.Stats().Waiting > 0
	})
	require.Zero(t, s.recon.Stats().Expired)
	require.False(t, hasFinal(s.status.of(j.ID)), "not ended before its time: %+v", s.status.of(j.ID))
	m, ok := s.sim.Message(acc.MessageID)
	require.True(t, ok)
	require.Equal(t, gwsim.StatusAccepted, m.Status, "the gateway keeps it accepted until its time")
	require.NotNil(t, m.Scheduled)
	require.WithinDuration(t, at, *m.Scheduled, time.Microsecond, "sent with its schedule, fraction and all")
	e, _, err := s.ledger.Get(context.Background(), j.ID)
	require.NoError(t, err)
	require.True(t, e.Waiting(time.Now()), "jetsms get shows it waiting for its time")

	// The gateway's clock reaches the schedule: the message goes out and its
	// receipts come.
	ahead.Store(int64(48*time.Hour + time.Second))
	s.sim.ReleaseDue()
	final := s.status.waitFinal(t, j.ID)
	require.Equal(t, job.StatusReceived, final.Status)
	require.Equal(t, acc.MessageID, final.MessageID)
}

// TestScheduleNearlyNowIsSent: a schedule that is (nearly) now when the job is
// submitted goes without "scheduled"; a 422 for a schedule the gateway finds in
// the past is retried once without it, and the retrying event keeps the
// gateway's own code.
func TestScheduleNearlyNowIsSent(t *testing.T) {
	t.Parallel()

	t.Run("300msAhead", func(t *testing.T) {
		t.Parallel()
		s := setup(t, options{})
		at := time.Now().Add(300 * time.Millisecond)
		j := testJob{Job: job.Job{ID: "soon-1", Destination: "+64211234502", Content: "now-ish", Scheduled: &at}, lane: "default"}
		s.publish(t, j)
		final := s.status.waitFinal(t, j.ID)
		require.Equal(t, job.StatusReceived, final.Status, "%+v", s.status.of(j.ID))
		sent := s.sentTo(j.ID)
		require.Len(t, sent, 1)
		require.Nil(t, sent[0].Scheduled, "sent as now")
	})

	t.Run("422IsRetriedOnceWithoutTheSchedule", func(t *testing.T) {
		t.Parallel()
		// The gateway's clock is a minute ahead of the worker's.
		s := setup(t, options{sim: gwsim.Config{Now: func() time.Time { return time.Now().Add(time.Minute) }}})
		at := time.Now().Add(30 * time.Second)
		j := testJob{Job: job.Job{ID: "skewed-1", Destination: "+64211234503", Content: "skew", Scheduled: &at}, lane: "default"}
		s.publish(t, j)
		final := s.status.waitFinal(t, j.ID)
		require.Equal(t, job.StatusReceived, final.Status, "%+v", s.status.of(j.ID))
		retrying := s.status.waitStatus(t, j.ID, job.StatusRetrying)
		require.Equal(t, "invalid_attrib", retrying.Error, "the gateway's own code, not one of jetsms's")
		sent := s.sentTo(j.ID)
		require.Len(t, sent, 1)
		require.Nil(t, sent[0].Scheduled)
	})
}

// gatewayClient is what the worker uses of a REST client.
type gatewayClient interface {
	worker.Sender
	worker.Prober
}

// switchable sends through one client and probes through another until fix is
// called; then both go to the fixed client. It stands for an operator who
// corrects gateway.url or gateway.api and restarts.
type switchable struct {
	send, probe atomic.Pointer[gatewayClient]
}

func newSwitchable(send, probe gatewayClient) *switchable {
	sw := &switchable{}
	sw.send.Store(&send)
	sw.probe.Store(&probe)
	return sw
}

func (sw *switchable) Send(ctx context.Context, j *job.Job) (dispatcher.Result, error) {
	return (*sw.send.Load()).Send(ctx, j)
}

func (sw *switchable) Probe(ctx context.Context) error { return (*sw.probe.Load()).Probe(ctx) }

func (sw *switchable) fix(c gatewayClient) {
	sw.send.Store(&c)
	sw.probe.Store(&c)
}

// TestMisconfiguredGatewayFailsNoJob: a wrong base path, plain HTTP answered by
// a redirect, and a REST v1 client at the REST v2 URL stop the worker with the
// circuit open and readiness false; no job fails or is sent, and after the fix
// every job is sent once.
func TestMisconfiguredGatewayFailsNoJob(t *testing.T) {
	t.Parallel()

	v2 := func(t *testing.T, url string) gatewayClient {
		c, err := dispatcher.NewRESTv2(dispatcher.Config{URL: url, Timeout: 5 * time.Second})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		return c
	}
	for _, tc := range []struct {
		name string
		sim  gwsim.Config
		// wrong returns the misconfigured client for sending and for probing.
		wrong func(t *testing.T, s *stack) (send, probe gatewayClient)
		// fix corrects the configuration.
		fix func(t *testing.T, s *stack, sw *switchable)
		// atStart: the start-up check finds it before any job is taken.
		atStart bool
	}{
		{
			name: "WrongBasePath", atStart: true,
			wrong: func(t *testing.T, s *stack) (gatewayClient, gatewayClient) {
				c := v2(t, s.gwURL+"/rest/v2")
				return c, c
			},
			fix: func(t *testing.T, s *stack, sw *switchable) { sw.fix(v2(t, s.gwURL+gwsim.BasePath)) },
		},
		{
			name: "PlainHTTPRedirected", atStart: true, sim: gwsim.Config{RedirectHTTPS: true},
			wrong: func(t *testing.T, s *stack) (gatewayClient, gatewayClient) {
				c := v2(t, s.gwURL+gwsim.BasePath)
				return c, c
			},
			// This test serves no TLS: the simulator stops redirecting, as the
			// gateway answers an https:// URL.
			fix: func(t *testing.T, s *stack, sw *switchable) { s.sim.SetRedirectHTTPS(false) },
		},
		{
			// REST v1 has no health endpoint: its probe (GET /messages/0) gets
			// the 404 of a missing message either way, so the first
			// submission's 406 finds it.
			name: "V1ClientAtTheV2URL",
			wrong: func(t *testing.T, s *stack) (gatewayClient, gatewayClient) {
				c, err := dispatcher.NewRESTv1(dispatcher.Config{URL: s.gwURL + gwsim.BasePath, Timeout: 5 * time.Second})
				require.NoError(t, err)
				t.Cleanup(c.Close)
				return c, c
			},
			fix: func(t *testing.T, s *stack, sw *switchable) { sw.fix(v2(t, s.gwURL+gwsim.BasePath)) },
		},
		{
			// The probe passes but the submissions go to a wrong path: the answer
			// to a submission opens the circuit too, and fails no job.
			name: "AnswerToASubmission",
			wrong: func(t *testing.T, s *stack) (gatewayClient, gatewayClient) {
				return v2(t, s.gwURL+"/rest/sms/v3"), v2(t, s.gwURL+gwsim.BasePath)
			},
			fix: func(t *testing.T, s *stack, sw *switchable) { sw.fix(v2(t, s.gwURL+gwsim.BasePath)) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opened := make(chan string, 64)
			var sw *switchable
			s := setup(t, options{
				sim: tc.sim,
				wrapSender: func(_ worker.Sender, st *stack) worker.Sender {
					sw = newSwitchable(tc.wrong(t, st))
					return sw
				},
				worker: func(c *worker.Config) {
					c.CircuitProbeMin, c.CircuitProbeMax = 20*time.Millisecond, 100*time.Millisecond
					c.OnCircuit = func(open bool) {
						if open {
							select {
							case opened <- "":
							default:
							}
						}
					}
				},
			})
			if tc.atStart {
				open, reason := s.worker.CircuitOpen()
				require.True(t, open, "the start-up check opens the circuit before a job is taken")
				require.Contains(t, reason, "check gateway.url")
			}
			jobs := make([]testJob, 20)
			for i := range jobs {
				jobs[i] = testJob{Job: job.Job{ID: fmt.Sprintf("%s-%02d", tc.name, i), Destination: fmt.Sprintf("+642112346%02d", i),
					Content: "hello"}, lane: "default"}
			}
			s.publish(t, jobs...)
			select {
			case <-opened:
			case <-time.After(30 * time.Second):
				require.FailNow(t, "the circuit did not open")
			}
			if tc.atStart {
				open, reason := s.worker.CircuitOpen()
				require.True(t, open, "readiness is false")
				require.Contains(t, reason, "the configuration is wrong, not the jobs")
				require.Zero(t, s.sim.Stats().Accepted, "no job was sent")
			}
			for _, j := range jobs {
				require.False(t, hasFinal(s.status.of(j.ID)), "%s: no job ends", j.ID)
			}

			tc.fix(t, s, sw)
			for _, j := range jobs {
				final := s.status.waitFinal(t, j.ID)
				require.Equal(t, job.StatusReceived, final.Status, "%s: %+v", j.ID, s.status.of(j.ID))
				require.Len(t, s.sentTo(j.ID), 1, "%s: sent once", j.ID)
				for _, ev := range s.status.of(j.ID) {
					require.NotEqual(t, job.StatusFailed, ev.Status)
				}
			}
			require.Zero(t, s.streamMsgs(t, s.names.DeadStream()), "nothing dead-lettered")
			open, _ := s.worker.CircuitOpen()
			require.False(t, open)
		})
	}
}

// TestReceiptsBelongToTheirJob: 50 jobs whose producers' references are the ids
// of 50 other jobs (sent without a reference, so jetsms sends their ids), with
// receipts sent the moment each message is accepted and stored before the worker
// records any acceptance: no receipt lands on another job, and once the
// acceptances are recorded every job gets its own receipt and final status.
func TestReceiptsBelongToTheirJob(t *testing.T) {
	t.Parallel()
	const n = 50
	gate := make(chan struct{})
	s := setup(t, options{
		sim: gwsim.Config{DLRInterim: []string{}},
		wrapSender: func(next worker.Sender, s *stack) worker.Sender {
			return &lateAccept{next: next, tap: s.tap, gate: gate}
		},
		// Every job holds its slot until the gate opens.
		worker: func(c *worker.Config) { c.Concurrency, c.ConcurrencyMin = 2*n+8, 2*n+8 },
	})
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the worker stops, should the test fail first
	var jobs []testJob
	for i := range n {
		plain := testJob{Job: job.Job{ID: fmt.Sprintf("plain-%02d", i), Destination: fmt.Sprintf("+642112350%02d", i), Content: "a"},
			lane: "default"}
		clash := testJob{Job: job.Job{ID: fmt.Sprintf("clash-%02d", i), Destination: fmt.Sprintf("+642112360%02d", i), Content: "b",
			Reference: plain.ID}, lane: "default"}
		jobs = append(jobs, clash, plain)
	}
	s.publish(t, jobs...)
	s.tap.waitFor(t, 30*time.Second, "the receipt of every job stored", func() bool {
		return s.tap.answers[http.StatusOK] >= 2*n
	})
	eventually(t, 20*time.Second, "the resolver to handle every receipt once", func() bool {
		st := s.resolver.Stats()
		return st.Retried+st.Published+st.Unchanged >= 2*n
	})
	// own is the message the gateway accepted for each job.
	own := make(map[string]string, len(jobs))
	for _, j := range jobs {
		ref := j.Reference
		if ref == "" {
			ref = j.ID // jetsms sends the job id
		}
		for _, m := range s.sentTo(ref) {
			if m.Destination == j.Destination {
				own[j.ID] = m.ID
			}
		}
		require.NotEmpty(t, own[j.ID], j.ID)
	}
	checkOwn := func(when string) {
		t.Helper()
		for _, j := range jobs {
			for _, ev := range s.status.of(j.ID) {
				if ev.MessageID != "" {
					require.Equal(t, own[j.ID], ev.MessageID, "%s %s: an event of another job's message: %+v", j.ID, when, ev)
				}
			}
		}
	}
	checkOwn("before its acceptance is recorded")

	open()
	for _, j := range jobs {
		final := s.status.waitFinal(t, j.ID)
		require.Equal(t, job.StatusReceived, final.Status, "%s: %+v", j.ID, s.status.of(j.ID))
	}
	checkOwn("at the end")
	require.Zero(t, s.resolver.Stats().Unmatched)
}

// TestAnswersThatProveNothing: a 502 or 504 after the request was written does
// not show the message was refused (a 504 from a proxy may follow the gateway's
// acceptance). The lane's ambiguity policy applies: resend with duplicate_risk
// on every later event, or fail with outcome_unknown.
func TestAnswersThatProveNothing(t *testing.T) {
	t.Parallel()

	t.Run("502ThenResendFlagsDuplicateRisk", func(t *testing.T) {
		t.Parallel()
		s := setup(t, options{})
		s.sim.Inject(gwsim.Fault502)
		j := testJob{Job: job.Job{ID: "gw502-0", Destination: "+64211234700", Content: "hi"}, lane: "default"}
		s.publish(t, j)
		final := s.status.waitFinal(t, j.ID)
		require.Equal(t, job.StatusReceived, final.Status)
		require.True(t, final.DuplicateRisk)
		require.Equal(t, "http_502", s.status.waitStatus(t, j.ID, job.StatusRetrying).Error)
		require.True(t, s.status.waitStatus(t, j.ID, job.StatusAccepted).DuplicateRisk, "every event after the unknown outcome is flagged")
		require.Len(t, s.sentTo(j.ID), 1)
	})

	t.Run("504ThenResendFlagsDuplicateRisk", func(t *testing.T) {
		t.Parallel()
		// Receipts come late enough for the resend to go first.
		s := setup(t, options{sim: gwsim.Config{DLRDelay: 5 * time.Second}})
		s.sim.Inject(gwsim.Fault504)
		j := testJob{Job: job.Job{ID: "gw504-1", Destination: "+64211234701", Content: "hi"}, lane: "default"}
		s.publish(t, j)
		final := s.status.waitFinal(t, j.ID)
		require.Equal(t, job.StatusReceived, final.Status)
		require.True(t, final.DuplicateRisk)
		acc := s.status.waitStatus(t, j.ID, job.StatusAccepted)
		require.True(t, acc.DuplicateRisk, "every event after the unknown outcome is flagged")
		require.Len(t, s.sentTo(j.ID), 2, "the gateway took it twice: the risk was real")
	})

	t.Run("502OnAFailLaneFailsOutcomeUnknown", func(t *testing.T) {
		t.Parallel()
		s := setup(t, options{})
		s.sim.Inject(gwsim.Fault502)
		j := testJob{Job: job.Job{ID: "gw502-1", Destination: "+64211234702", Content: "hi"}, lane: "bulk"}
		s.publish(t, j)
		final := s.status.waitFinal(t, j.ID)
		require.Equal(t, job.StatusFailed, final.Status)
		require.Equal(t, worker.ErrorOutcomeUnknown, final.Error)
		require.Empty(t, s.sentTo(j.ID))
	})
}

// TestOpenAPIReceiptShape: receipts in the OpenAPI page's StatusCallback shape
// ({"id","status","detail"}, no reference) reach their job like the REST v2
// page's.
func TestOpenAPIReceiptShape(t *testing.T) {
	t.Parallel()
	s := setup(t, options{sim: gwsim.Config{DLRShape: gwsim.DLRShapeID}})
	j := testJob{Job: job.Job{ID: "openapi-1", Destination: "+64211234801", Content: "hi", Reference: "order-9"}, lane: "default"}
	s.publish(t, j)
	final := s.status.waitFinal(t, j.ID)
	require.Equal(t, job.StatusReceived, final.Status)
	require.Equal(t, s.sentTo("order-9")[0].ID, final.MessageID)
}
