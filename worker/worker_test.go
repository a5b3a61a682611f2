package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/ratelimit"
	"github.com/jetsms/jetsms/worker"
)

var lanes = []string{"priority", "default", "bulk"}

// bundle is what a worker test needs: a real JetStream server, the simulator over
// real HTTP, a worker, and watchers on the status and dead-letter streams.
type bundle struct {
	env      *brokertest.Env
	sim      *gwsim.Simulator
	sender   worker.Sender
	cfg      worker.Config
	status   *brokertest.Watcher
	dead     *brokertest.Watcher
	mu       sync.Mutex
	limiter  worker.Limiter
	order    []string          // references in the order the gateway accepted them
	arrivals map[string]int    // accepted submissions per reference (the job id)
	lastID   map[string]string // the gateway's id of the last one
	quiet    bool
}

type options struct {
	sim    gwsim.Config
	worker worker.Config
	noRun  bool
	// limiter replaces the unlimited one.
	limiter worker.Limiter
	// quiet logs nothing (a fuzz target's workers must not log to its F).
	quiet bool
}

func setup(t testing.TB, opt options) *bundle {
	t.Helper()
	env := brokertest.Run(t)
	sim, err := gwsim.New(opt.sim)
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	var sender worker.Sender
	if opt.sim.API == gwsim.APIv1 {
		v1, err := dispatcher.NewRESTv1(dispatcher.Config{URL: srv.URL + gwsim.BasePathV1, Timeout: 5 * time.Second})
		require.NoError(t, err)
		t.Cleanup(v1.Close)
		sender = v1
		if opt.worker.Batcher == nil {
			bt, err := dispatcher.NewBatcher(v1, dispatcher.BatchConfig{MaxSize: 50, MaxWait: 300 * time.Millisecond})
			require.NoError(t, err)
			require.NoError(t, bt.Start(context.Background()))
			t.Cleanup(func() { require.NoError(t, bt.Stop(context.Background())) })
			opt.worker.Batcher = bt
		}
	} else {
		v2, err := dispatcher.NewRESTv2(dispatcher.Config{URL: srv.URL + gwsim.BasePath, Timeout: 5 * time.Second})
		require.NoError(t, err)
		t.Cleanup(v2.Close)
		sender = v2
	}

	b := &bundle{env: env, sim: sim, sender: sender, arrivals: map[string]int{}, lastID: map[string]string{}, limiter: opt.limiter,
		quiet: opt.quiet}
	sim.OnAccept(func(m gwsim.Message) {
		b.mu.Lock()
		b.arrivals[m.Reference]++
		b.order = append(b.order, m.Reference)
		b.lastID[m.Reference] = m.ID
		b.mu.Unlock()
	})
	cfg := opt.worker
	cfg.Names = env.Names
	if cfg.Ledger == nil {
		led, err := ledger.Open(context.Background(), env.JS, ledger.Config{Bucket: env.Names.LedgerBucket()})
		require.NoError(t, err)
		cfg.Ledger = led
	}
	if cfg.Lanes == nil {
		cfg.Lanes = lanes
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.ReleaseDelayMin == 0 {
		cfg.ReleaseDelayMin = 200 * time.Millisecond
	}
	if cfg.StraySweepInterval == 0 {
		cfg.StraySweepInterval = 100 * time.Millisecond
	}
	b.cfg = cfg
	b.status = brokertest.Watch(t, env.JS, env.Names.StatusStream())
	b.dead = brokertest.Watch(t, env.JS, env.Names.DeadStream())
	if !opt.noRun {
		b.start(t)
	}
	return b
}

// start runs a new worker on the bundle's server and simulator, stopped at cleanup.
func (b *bundle) start(t testing.TB) *worker.Worker {
	t.Helper()
	lim := b.limiter
	if lim == nil {
		unlimited, err := ratelimit.New(ratelimit.Config{PerSecond: math.Inf(1), Burst: 1})
		require.NoError(t, err)
		lim = unlimited
	}
	log := zap.NewNop()
	if !b.quiet {
		log = zaptest.NewLogger(t)
	}
	w, err := worker.New(b.cfg, b.env.JS, b.sender, lim, events.New(b.env.JS, b.env.Names), log)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, w.Stop(ctx))
	})
	return w
}

func (b *bundle) messageID(ref string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastID[ref]
}

func (b *bundle) arrived(ref string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.arrivals[ref]
}

// publish stores raw job bytes on subject with the given Nats-Msg-Id (none if "").
func (b *bundle) publish(t testing.TB, subject string, data []byte, msgID string) {
	t.Helper()
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	_, err := b.env.JS.PublishMsg(context.Background(), m)
	require.NoError(t, err)
}

func (b *bundle) publishJob(t testing.TB, lane string, j job.Job) {
	t.Helper()
	data, err := json.Marshal(j)
	require.NoError(t, err)
	b.publish(t, b.env.Names.Send(lane), data, j.ID)
}

// waitFinal waits for the job's final event and returns all its events.
func (b *bundle) waitFinal(t *testing.T, jobID string) []job.Event {
	t.Helper()
	msgs := b.status.WaitFor(t, 20*time.Second, "final event of "+jobID, func(ms []brokertest.Msg) bool {
		_, ok := brokertest.Final(ms, jobID)
		return ok
	})
	return brokertest.EventsOf(msgs, jobID)
}

// waitStatus waits for an event of the job in status st and returns the job's events.
func (b *bundle) waitStatus(t *testing.T, jobID string, st job.Status) []job.Event {
	t.Helper()
	msgs := b.status.WaitFor(t, 20*time.Second, string(st)+" event of "+jobID, func(ms []brokertest.Msg) bool {
		for _, ev := range brokertest.EventsOf(ms, jobID) {
			if ev.Status == st {
				return true
			}
		}
		return false
	})
	return brokertest.EventsOf(msgs, jobID)
}

// waitAccepted waits until every id has an accepted event. It fails when none of
// them got one for stall: how long a backlog takes to drain depends on the
// machine's speed, a drain that stopped does not. Each event is decoded once.
func (b *bundle) waitAccepted(t testing.TB, ids []string, stall time.Duration) []brokertest.Msg {
	t.Helper()
	left := make(map[string]bool, len(ids))
	for _, id := range ids {
		left[id] = true
	}
	var msgs []brokertest.Msg
	next := 0 // messages decoded so far
	for len(left) > 0 {
		before := len(left)
		msgs = b.status.WaitFor(t, stall, fmt.Sprintf("one more of %d accepted events (%d so far)", len(ids), len(ids)-before),
			func(ms []brokertest.Msg) bool {
				for _, ev := range brokertest.Events(ms[next:]) {
					if ev.Status == job.StatusAccepted {
						delete(left, ev.JobID)
					}
				}
				next = len(ms)
				return len(left) < before
			})
	}
	return msgs
}

// deadLetter waits for the job's dead-letter copy.
func (b *bundle) deadLetter(t *testing.T, jobID string) brokertest.Msg {
	t.Helper()
	var found brokertest.Msg
	b.dead.WaitFor(t, 20*time.Second, "dead letter of "+jobID, func(ms []brokertest.Msg) bool {
		for _, m := range ms {
			if m.Header.Get(events.HeaderJobID) == jobID {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// pendingJobs is how many jobs the jobs stream still holds.
func (b *bundle) pendingJobs(t *testing.T) uint64 {
	t.Helper()
	s, err := b.env.JS.Stream(context.Background(), b.env.Names.JobsStream())
	require.NoError(t, err)
	info, err := s.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

// waitDrained waits until the jobs stream is empty: every job acked or terminated.
// Acks carry no event to wait on, so this polls the stream's state.
func (b *bundle) waitDrained(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return b.pendingJobs(t) == 0 }, 20*time.Second, 20*time.Millisecond,
		"jobs stream not drained")
}

func validJob(id string) job.Job {
	return job.Job{ID: id, Destination: "+64211234567", Content: "Your code is 123456", Metadata: map[string]string{"tenant": "acme"}}
}

func TestWorker(t *testing.T) {
	t.Parallel()

	t.Run("SendsEveryJobOnceAcrossLanes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{worker: worker.Config{Concurrency: 64}})
		const n = 1000
		ids := make([]string, 0, n)
		futures := make([]jetstream.PubAckFuture, 0, n)
		for i := range n {
			lane := lanes[i%len(lanes)]
			j := validJob(fmt.Sprintf("job-%s-%04d", lane, i))
			j.Metadata = map[string]string{"i": fmt.Sprint(i)}
			data, err := json.Marshal(j)
			require.NoError(t, err)
			f, err := b.env.JS.PublishMsgAsync(&nats.Msg{Subject: b.env.Names.Send(lane), Data: data,
				Header: nats.Header{jetstream.MsgIDHeader: []string{j.ID}}})
			require.NoError(t, err)
			futures = append(futures, f)
			ids = append(ids, j.ID)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				require.NoError(t, err)
			}
		}
		msgs := b.waitAccepted(t, ids, 60*time.Second)
		b.waitDrained(t)

		accepted := map[string]job.Event{}
		for _, ev := range brokertest.Events(msgs) {
			if ev.Status == job.StatusAccepted {
				_, dup := accepted[ev.JobID]
				require.False(t, dup, "two accepted events for %s", ev.JobID)
				accepted[ev.JobID] = ev
			}
		}
		for i, id := range ids {
			require.Equal(t, 1, b.arrived(id), "gateway submissions of %s", id)
			ev := accepted[id]
			require.NotEmpty(t, ev.MessageID)
			require.Equal(t, lanes[i%len(lanes)], ev.Lane)
			require.Equal(t, map[string]string{"i": fmt.Sprint(i)}, ev.Metadata)
			require.Equal(t, 1, ev.Attempts)
			require.Equal(t, 1, ev.Segments)
			require.False(t, ev.Final)
			require.Equal(t, "+64211234567", ev.Destination)
		}
		require.EqualValues(t, n, b.sim.Stats().Accepted)
	})

	t.Run("DrainsASingleLaneBacklogWithoutStalling", func(t *testing.T) {
		t.Parallel()
		// One busy lane with a small queue makes the scheduler empty the queue and
		// wait often, the moment a lost wake-up would stall the drain for good
		// (the held jobs' deadlines keep being extended). Several rounds, each a
		// fresh backlog.
		b := setup(t, options{worker: worker.Config{Concurrency: 4, QueuePerLane: 4}})
		for round := range 5 {
			const n = 400
			ids := make([]string, n)
			futures := make([]jetstream.PubAckFuture, n)
			for i := range n {
				ids[i] = fmt.Sprintf("solo-%d-%03d", round, i)
				data, err := json.Marshal(validJob(ids[i]))
				require.NoError(t, err)
				futures[i], err = b.env.JS.PublishMsgAsync(&nats.Msg{Subject: b.env.Names.Send("bulk"), Data: data,
					Header: nats.Header{jetstream.MsgIDHeader: []string{ids[i]}}})
				require.NoError(t, err)
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					require.NoError(t, err)
				}
			}
			b.waitAccepted(t, ids, 30*time.Second)
		}
		b.waitDrained(t)
	})

	t.Run("InvalidJobsFailWithTheRuleAndAreDeadLettered", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		cases := []struct {
			name, body, rule string
		}{
			{"local-number", `{"destination":"0211234567","content":"hi"}`, "is a local number; use international format"},
			{"missing-destination", `{"content":"hi"}`, "destination: is required"},
			{"empty-content", `{"destination":"+64211234567","content":""}`, "content:"},
			{"not-json", `this is not json`, "job:"},
			{"bad-utf8", "{\"destination\":\"+64211234567\",\"content\":\"caf\xe9\"}", "UTF-8"},
			{"sms-class", `{"destination":"+64211234567","content":"hi","sms_class":7}`, "sms_class:"},
			{"scheduled-no-zone", `{"destination":"+64211234567","content":"hi","scheduled":"2030-01-01T10:00:00"}`, "scheduled:"},
			{"metadata-number", `{"destination":"+64211234567","content":"hi","metadata":{"a":1}}`, "metadata:"},
			{"too-long", `{"destination":"+64211234567","content":"` + strings.Repeat("a", 1531) + `"}`, "content:"},
			{"bad-id", `{"id":"has space","destination":"+64211234567","content":"hi"}`, "id:"},
		}
		for _, c := range cases {
			b.publish(t, b.env.Names.Send("default"), []byte(c.body), "invalid-"+c.name)
		}
		for _, c := range cases {
			// The bad-id job's own id is unusable, so it is known by its header id.
			id := "invalid-" + c.name
			evs := b.waitFinal(t, id)
			final := evs[len(evs)-1]
			require.Equal(t, job.StatusFailed, final.Status, c.name)
			require.Contains(t, final.Error, c.rule, c.name)
			require.Len(t, evs, 1, "%s: only the final event", c.name)
			dead := b.deadLetter(t, id)
			require.Equal(t, string(events.ReasonInvalidJob), dead.Header.Get(events.HeaderReason), c.name)
			require.Equal(t, c.body, string(dead.Data), "%s: dead letter is the job as published", c.name)
			require.Equal(t, "sms.send.default", dead.Header.Get(events.HeaderSubject))
			require.Equal(t, "sms.dead.default", dead.Subject)
		}
		b.waitDrained(t)
		require.Zero(t, b.sim.Stats().Requests, "an invalid job must never reach the gateway")
	})

	t.Run("RetriesOn503ThenAccepts", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		b.sim.Inject(gwsim.Fault503, gwsim.Fault503)
		b.publishJob(t, "priority", validJob("otp-1"))
		evs := b.waitStatus(t, "otp-1", job.StatusAccepted)
		require.Len(t, evs, 3)
		for i, st := range []job.Status{job.StatusRetrying, job.StatusRetrying, job.StatusAccepted} {
			require.Equal(t, st, evs[i].Status)
			require.Equal(t, i+1, evs[i].Attempts)
		}
		require.Equal(t, "http_503", evs[0].Error)
		require.False(t, evs[2].DuplicateRisk)
		require.Equal(t, 1, b.arrived("otp-1"))
		require.EqualValues(t, 3, b.sim.Stats().Requests)
	})

	t.Run("InvalidAttribFailsWithoutRetry", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		b.sim.Inject(gwsim.FaultInvalidAttrib)
		b.publishJob(t, "default", validJob("bad-attr"))
		evs := b.waitFinal(t, "bad-attr")
		require.Len(t, evs, 1)
		require.Equal(t, job.StatusFailed, evs[0].Status)
		require.Equal(t, "invalid_attrib", evs[0].Error)
		require.Equal(t, 1, evs[0].Attempts)
		dead := b.deadLetter(t, "bad-attr")
		require.Equal(t, string(events.ReasonGatewayRejected), dead.Header.Get(events.HeaderReason))
		require.Equal(t, "invalid_attrib", dead.Header.Get(events.HeaderError))
		b.waitDrained(t)
		require.EqualValues(t, 1, b.sim.Stats().Requests)
	})

	t.Run("UnknownOutcomeIsResentWithDuplicateRisk", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		b.sim.Inject(gwsim.FaultAcceptThenReset)
		b.publishJob(t, "default", validJob("maybe-twice"))
		evs := b.waitStatus(t, "maybe-twice", job.StatusAccepted)
		require.Equal(t, job.StatusRetrying, evs[0].Status)
		accepted := evs[len(evs)-1]
		require.True(t, accepted.DuplicateRisk, "events: %+v", evs)
		require.Equal(t, 2, accepted.Attempts)
		require.Equal(t, 2, b.arrived("maybe-twice"), "the gateway took it twice, and the event says it may have")
	})

	t.Run("ExhaustedAttemptsFailAndDeadLetter", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{worker: worker.Config{MaxAttempts: 3}})
		b.sim.Inject(gwsim.Fault500, gwsim.Fault503, gwsim.Fault500)
		b.publishJob(t, "bulk", validJob("never"))
		evs := b.waitFinal(t, "never")
		final := evs[len(evs)-1]
		require.Equal(t, job.StatusFailed, final.Status)
		require.Contains(t, final.Error, "retries_exhausted")
		require.Equal(t, 3, final.Attempts)
		dead := b.deadLetter(t, "never")
		require.Equal(t, string(events.ReasonRetriesExhausted), dead.Header.Get(events.HeaderReason))
		require.EqualValues(t, 3, b.sim.Stats().Requests)
	})

	t.Run("LongRetryAfterReleasesTheJobAndKeepsCounting", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{sim: gwsim.Config{RetryAfter: 3 * time.Second}})
		b.sim.Inject(gwsim.Fault429)
		start := time.Now()
		b.publishJob(t, "bulk", validJob("slow-down"))
		evs := b.waitStatus(t, "slow-down", job.StatusAccepted)
		require.GreaterOrEqual(t, time.Since(start), 3*time.Second, "Retry-After honoured")
		require.Equal(t, job.StatusRetrying, evs[0].Status)
		require.Equal(t, "http_429", evs[0].Error)
		require.Equal(t, 2, evs[len(evs)-1].Attempts, "attempts count across the release")
	})

	t.Run("UnknownLaneIsDeadLettered", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		b.publish(t, "sms.send.nolane", []byte(`{"destination":"+64211234567","content":"hi"}`), "stray-1")
		b.publish(t, "sms.send.nolane.campaign-x", []byte(`{"destination":"+64211234567","content":"hi"}`), "stray-2")
		for _, id := range []string{"stray-1", "stray-2"} {
			evs := b.waitFinal(t, id)
			require.Equal(t, job.StatusFailed, evs[0].Status)
			require.Contains(t, evs[0].Error, `lane: "nolane" is not configured (lanes: priority, default, bulk)`)
			dead := b.deadLetter(t, id)
			require.Equal(t, string(events.ReasonUnknownLane), dead.Header.Get(events.HeaderReason))
			require.Equal(t, "sms.dead.nolane", dead.Subject)
		}
		b.waitDrained(t)
		require.Zero(t, b.sim.Stats().Requests)
	})

	t.Run("ExpiredJobIsNotSent", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		j := validJob("too-late")
		past := time.Now().Add(-time.Minute)
		j.Expires = &past
		b.publishJob(t, "default", j)
		evs := b.waitFinal(t, "too-late")
		require.Equal(t, job.StatusExpired, evs[0].Status)
		dead := b.deadLetter(t, "too-late")
		require.Equal(t, string(events.ReasonExpired), dead.Header.Get(events.HeaderReason))
		require.Zero(t, b.sim.Stats().Requests)
	})

	t.Run("JobWithoutIDTakesTheMsgIDHeader", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		b.publish(t, "sms.send.default", []byte(`{"destination":"+64211234567","content":"hi"}`), "from-header")
		evs := b.waitStatus(t, "from-header", job.StatusAccepted)
		require.Equal(t, "from-header", evs[0].JobID)
		require.Equal(t, 1, b.arrived("from-header"), "the id is the gateway reference")
	})

	t.Run("CampaignComesFromTheSubject", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		data, err := json.Marshal(validJob("camp-1"))
		require.NoError(t, err)
		b.publish(t, "sms.send.bulk.spring-sale", data, "camp-1")
		evs := b.waitStatus(t, "camp-1", job.StatusAccepted)
		require.Equal(t, "bulk", evs[0].Lane)
		require.Equal(t, "spring-sale", evs[0].Campaign)
	})

	t.Run("SlowGatewayKeepsTheJobAndSendsItOnce", func(t *testing.T) {
		t.Parallel()
		// The gateway takes longer than the ack deadline: the worker must keep
		// extending it, or JetStream would hand the job out again.
		b := setup(t, options{
			sim:    gwsim.Config{Latency: 2500 * time.Millisecond},
			worker: worker.Config{AckWait: time.Second},
		})
		b.publishJob(t, "priority", validJob("slow"))
		b.waitStatus(t, "slow", job.StatusAccepted)
		b.waitDrained(t)
		require.EqualValues(t, 1, b.sim.Stats().Requests)
		cons, err := b.env.JS.Consumer(context.Background(), b.env.Names.JobsStream(), b.env.Names.Consumer("priority"))
		require.NoError(t, err)
		info, err := cons.Info(context.Background())
		require.NoError(t, err)
		require.Zero(t, info.NumRedelivered)
	})

	t.Run("StoppedMidBatchThenRestartedSendsTheRest", func(t *testing.T) {
		t.Parallel()
		// The first worker gets rate tokens for a third of the jobs only, and then
		// waits for more with the rest fetched: it is stopped there, mid-batch,
		// however slowly this test runs. The second gets tokens without limit.
		const n = 300
		lim := &quotaLimiter{quota: n / 3, open: make(chan struct{})}
		b := setup(t, options{sim: gwsim.Config{Latency: 20 * time.Millisecond}, worker: worker.Config{Concurrency: 8},
			limiter: lim, noRun: true})
		first := b.start(t)
		ids := make([]string, n)
		for i := range n {
			ids[i] = fmt.Sprintf("batch-%03d", i)
			b.publishJob(t, lanes[i%3], validJob(ids[i]))
		}
		require.Eventually(t, func() bool { return b.sim.Stats().Accepted >= n/3 }, 30*time.Second, 5*time.Millisecond,
			"a third taken by the gateway")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, first.Stop(ctx))
		require.EqualValues(t, n/3, b.sim.Stats().Accepted, "the first worker sent only what it had tokens for")
		left := b.pendingJobs(t)
		require.Greater(t, left, uint64(0), "stopped mid-batch")
		close(lim.open)
		b.start(t)
		b.waitAccepted(t, ids, 60*time.Second)
		b.waitDrained(t)
		for _, id := range ids {
			require.Equal(t, 1, b.arrived(id), "gateway submissions of %s", id)
		}
	})

	t.Run("StopWaitsForJobsInFlight", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{sim: gwsim.Config{Latency: 300 * time.Millisecond}, noRun: true})
		w := b.start(t)
		entered := make(chan struct{}, 5)
		b.sim.OnAccept(func(gwsim.Message) { entered <- struct{}{} })
		ids := []string{"inflight-1", "inflight-2", "inflight-3"}
		for _, id := range ids {
			b.publishJob(t, "default", validJob(id))
		}
		// Wait until the gateway holds all three, then stop.
		require.Eventually(t, func() bool { return b.sim.Stats().Requests == 3 }, 10*time.Second, 5*time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, w.Stop(ctx))
		// Every job in flight finished and was recorded before Stop returned.
		msgs := b.status.WaitFor(t, 5*time.Second, "accepted events", func(ms []brokertest.Msg) bool { return len(ms) >= 3 })
		for _, id := range ids {
			evs := brokertest.EventsOf(msgs, id)
			require.Len(t, evs, 1)
			require.Equal(t, job.StatusAccepted, evs[0].Status)
		}
		require.Zero(t, b.pendingJobs(t))
	})

	t.Run("NewRefusesBadConfig", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{noRun: true})
		lim, err := ratelimit.New(ratelimit.Config{PerSecond: 1, Burst: 1})
		require.NoError(t, err)
		pub := events.New(b.env.JS, b.env.Names)
		for _, c := range []struct {
			cfg  worker.Config
			want string
		}{
			{worker.Config{Names: b.env.Names}, "lanes"},
			{worker.Config{Names: b.env.Names, Lanes: lanes}, "ledger are required"},
			{worker.Config{Names: b.env.Names, Lanes: []string{"a", "a"}}, `"a" appears twice`},
			{worker.Config{Names: b.env.Names, Lanes: []string{"a.b"}}, "lanes"},
			{worker.Config{Names: b.env.Names, Lanes: lanes, Concurrency: -1}, "concurrency"},
			{worker.Config{Names: b.env.Names, Lanes: lanes, LaneOptions: map[string]worker.LaneOptions{"bulk": {Ambiguous: "maybe"}}},
				`lane bulk: ambiguous policy "maybe" must be resend, fail or hold`},
		} {
			if !strings.Contains(c.want, "ledger") {
				c.cfg.Ledger = b.cfg.Ledger
			}
			_, err := worker.New(c.cfg, b.env.JS, b.sender, lim, pub, nil)
			require.ErrorContains(t, err, c.want)
		}
	})
}

// quotaLimiter hands out tokens for quota submissions, then none until open is
// closed: it holds a worker at a known point of a batch, whatever the machine's
// speed.
type quotaLimiter struct {
	quota int64
	taken atomic.Int64
	open  chan struct{}
}

func (q *quotaLimiter) Wait(ctx context.Context, _ int) error {
	if q.taken.Add(1) <= q.quota {
		return nil
	}
	select {
	case <-q.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
