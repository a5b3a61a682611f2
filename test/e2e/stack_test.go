package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/app"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/ratelimit"
	"github.com/jetsms/jetsms/worker"
)

// The credentials the callback receiver requires; the simulator's callback URLs
// carry them, as the URLs configured at the gateway do.
const (
	callbackUser = "modica"
	callbackPass = "callback-secret"
)

// concurrency is the worker's submissions in flight.
const concurrency = 64

// options are what a test changes in the stack.
type options struct {
	// sim configures receipts and faults; its callback URLs are filled in.
	sim gwsim.Config
	// simCallbackPass is the password in the simulator's callback URLs; empty
	// means the receiver's own.
	simCallbackPass string
	// publishTimeout is the receiver's; zero means its default.
	publishTimeout time.Duration
	// storeDir is the NATS store, for a test that restarts the server on it;
	// empty means a new temporary directory.
	storeDir string
	// wrapSender, when set, stands between the worker and the dispatcher; it
	// gets the stack as built so far (tap, simulator).
	wrapSender func(next worker.Sender, s *stack) worker.Sender
	// limiter paces the worker; nil means unlimited.
	limiter worker.Limiter
	// onAccept, when set, is also told of every message the simulator accepts,
	// after the stack has recorded it.
	onAccept func(gwsim.Message)
	// reconcileAfter is the reconciler's wait (and the ledger's hold after a
	// schedule); zero means the configuration's default.
	reconcileAfter time.Duration
	// worker, when set, adjusts the worker's configuration.
	worker func(*worker.Config)
}

// stack is a jetsms process built by internal/app, as cmd/jetsms builds it, with
// the simulator as the gateway over real HTTP: NATS (brokertest's embedded server,
// which a test may stop and start again), the contract's streams, the ledger,
// the opt-out list, the callback receiver behind a real http.Server on a loopback
// port (with the tap in front), the resolver, the reconciler, the campaign gate
// and tracker, and the worker.
type stack struct {
	app      *app.App
	env      *brokertest.Env
	names    subjects.Names
	ledger   *ledger.Ledger
	optOuts  *optout.List
	receiver *dlr.Receiver
	// callbacksURL is the receiver's base URL, without credentials.
	callbacksURL string
	tap          *tap
	sim          *gwsim.Simulator
	gwURL        string // the simulator's server URL, without a base path
	resolver     *resolve.Resolver
	recon        *resolve.Reconciler
	worker       *worker.Worker
	status       *eventLog
	inbound      *brokertest.Watcher
	// The campaign bucket, the worker's gate and the tracker.
	campaigns *campaign.Store
	gate      *campaign.Gate
	tracker   *campaign.Tracker

	mu   sync.Mutex
	sent map[string][]gwsim.Message // messages the simulator accepted, by reference
}

func setup(t *testing.T, opt options) *stack {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	dir := opt.storeDir
	if dir == "" {
		dir = t.TempDir()
	}
	env := brokertest.Start(t, dir)
	s := &stack{env: env, names: env.Names, sent: map[string][]gwsim.Message{}, tap: newTap()}
	s.status = watchEvents(t, env.JS, env.Names.StatusStream())
	s.inbound = brokertest.Watch(t, env.JS, env.Names.InboundStream())

	// The callback listener, bound first so the simulator knows where to send
	// receipts and MOs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.callbacksURL = "http://" + ln.Addr().String()
	pass := callbackPass
	if opt.simCallbackPass != "" {
		pass = opt.simCallbackPass
	}
	base := &url.URL{Scheme: "http", Host: ln.Addr().String(), User: url.UserPassword(callbackUser, pass)}
	simCfg := opt.sim
	simCfg.DLRURL = base.JoinPath(dlr.PathDLR).String()
	simCfg.MOURL = base.JoinPath(dlr.PathMO).String()
	if simCfg.CallbackBackoff == 0 {
		simCfg.CallbackBackoff = 20 * time.Millisecond
	}
	if simCfg.CallbackBackoffMax == 0 {
		simCfg.CallbackBackoffMax = 200 * time.Millisecond
	}
	s.sim, err = gwsim.New(simCfg)
	require.NoError(t, err)
	s.sim.OnAccept(func(m gwsim.Message) {
		s.mu.Lock()
		s.sent[m.Reference] = append(s.sent[m.Reference], m)
		s.mu.Unlock()
		if opt.onAccept != nil {
			opt.onAccept(m)
		}
	})
	gw := httptest.NewServer(s.sim)
	t.Cleanup(gw.Close)
	s.gwURL = gw.URL
	t.Cleanup(s.sim.Close) // first: ends held requests and stops the callbacks

	// The process, with the configuration's defaults (lanes, lane options: bulk is
	// marketing), the callback credentials, and what a test must change: the
	// gateway, a limiter (unlimited, so that thousands of jobs fit in a test,
	// unless the test paces it), the tap, and short retry delays.
	cfg := config.Default()
	cfg.NATS.URL = env.URL
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.NATS.Embedded.StoreDir = t.TempDir() // where the console keeps its password
	cfg.Callbacks.Username, cfg.Callbacks.Password = callbackUser, callbackPass
	cfg.Worker.Concurrency, cfg.Worker.ConcurrencyMin = concurrency, concurrency
	if opt.reconcileAfter > 0 {
		cfg.Callbacks.ReconcileAfter = opt.reconcileAfter
	}
	lim := opt.limiter
	if lim == nil {
		lim, err = ratelimit.New(ratelimit.Config{PerSecond: math.Inf(1), Burst: 1})
		require.NoError(t, err)
	}
	o := app.Options{
		Logger: log, CallbackListener: ln, GatewayURL: gw.URL + gwsim.BasePath, Limiter: lim,
		WrapCallbacks: func(h http.Handler) http.Handler {
			s.tap.next = h
			return s.tap
		},
		CallbackPublishTimeout: opt.publishTimeout,
		ResolveRetryDelay:      20 * time.Millisecond,
		ReleaseDelayMin:        200 * time.Millisecond,
	}
	if opt.wrapSender != nil {
		o.WrapGateway = func(next worker.Sender) worker.Sender { return opt.wrapSender(next, s) }
	}
	o.WorkerConfig = opt.worker
	s.app, err = app.New(cfg, app.RoleWorker, o)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.app.Start(ctx))
	t.Cleanup(func() { stop(t, s.app.Stop) })
	s.ledger, s.optOuts, s.receiver, s.resolver = s.app.Ledger(), s.app.OptOuts(), s.app.Receiver(), s.app.Resolver()
	s.campaigns, s.gate, s.tracker = s.app.Campaigns(), s.app.Gate(), s.app.Tracker()
	s.recon, s.worker = s.app.Reconciler(), s.app.Worker()
	return s
}

func stop(t *testing.T, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, fn(ctx))
}

// testJob is a job as a producer publishes it, and where.
type testJob struct {
	job.Job
	lane, campaign string
}

func (j testJob) subject(n subjects.Names) string {
	if j.campaign != "" {
		s, err := n.SendCampaign(j.lane, j.campaign)
		if err != nil {
			panic(err) // the tests' own names
		}
		return s
	}
	return n.Send(j.lane)
}

// publish stores the jobs on their lanes, with the job id as Nats-Msg-Id.
func (s *stack) publish(t *testing.T, jobs ...testJob) {
	t.Helper()
	for i, j := range jobs {
		if i%1000 == 999 {
			s.publishDone(t)
		}
		data, err := json.Marshal(j.Job)
		require.NoError(t, err)
		_, err = s.env.JS.PublishMsgAsync(&nats.Msg{
			Subject: j.subject(s.names), Data: data,
			Header: nats.Header{jetstream.MsgIDHeader: []string{j.ID}},
		})
		require.NoError(t, err)
	}
	s.publishDone(t)
}

func (s *stack) publishDone(t *testing.T) {
	t.Helper()
	select {
	case <-s.env.JS.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("jobs not stored within 30s")
	}
}

// sentTo returns the messages the simulator accepted with the reference.
func (s *stack) sentTo(ref string) []gwsim.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gwsim.Message(nil), s.sent[ref]...)
}

// streamMsgs is how many messages a stream holds now.
func (s *stack) streamMsgs(t *testing.T, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.env.JS.Stream(ctx, name)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	return info.State.Msgs
}

// settle waits until nothing is left to happen: the simulator has no receipt
// pending, the worker no job, the resolver no stored callback, and the status
// log has seen every event stored.
func (s *stack) settle(t *testing.T, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "the simulator to have no receipt pending", func() bool {
		return s.sim.Stats().ReceiptsPending == 0
	})
	eventually(t, timeout, "the jobs stream to be empty", func() bool {
		return s.streamMsgs(t, s.names.JobsStream()) == 0
	})
	eventually(t, timeout, "every stored callback to be resolved", func() bool {
		return s.streamMsgs(t, s.names.CallbacksStream()) == 0
	})
	stored := s.streamMsgs(t, s.names.StatusStream())
	s.status.waitFor(t, timeout, fmt.Sprintf("the status log to see the %d stored events", stored), func() bool {
		return uint64(len(s.status.all)) >= stored
	})
}

// eventually waits for cond, polled, where no event tells of the change (the
// counters of other packages, stream state); the test fails after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// watched is state guarded by mu whose every change wakes waiters.
type watched struct {
	mu      sync.Mutex
	changed chan struct{}
}

func (w *watched) init() { w.changed = make(chan struct{}) }

// update runs fn under the lock and wakes the waiters.
func (w *watched) update(fn func()) {
	w.mu.Lock()
	fn()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// waitFor blocks until cond, called under the lock, returns true, re-checking it
// on each change; the test fails after timeout.
func (w *watched) waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ok, changed := cond(), w.changed
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// waitProgress is waitFor for a long run: it fails only when nothing changed for
// stall, or when limit has passed in all, so a slow shared machine does not fail
// a run that is still moving.
func (w *watched) waitProgress(t *testing.T, stall, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.NewTimer(limit)
	defer end.Stop()
	quiet := time.NewTimer(stall)
	defer quiet.Stop()
	for {
		w.mu.Lock()
		ok, changed := cond(), w.changed
		w.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
			quiet.Reset(stall)
		case <-quiet.C:
			t.Fatalf("waiting for %s: nothing happened for %s", what, stall)
		case <-end.C:
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
	}
}

// eventLog is every status event stored, decoded once, in stream order.
type eventLog struct {
	watched
	all    []job.Event
	byJob  map[string][]job.Event
	finals int // jobs with a final event
}

// watchEvents follows the status stream with an ordered consumer until the test
// ends.
func watchEvents(t *testing.T, js jetstream.JetStream, stream string) *eventLog {
	t.Helper()
	l := &eventLog{byJob: map[string][]job.Event{}}
	l.init()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev job.Event
		err := json.Unmarshal(m.Data(), &ev)
		l.update(func() {
			if err != nil {
				ev = job.Event{Status: "undecodable: " + job.Status(err.Error())}
			}
			l.all = append(l.all, ev)
			if ev.Final && ev.JobID != "" && !hasFinal(l.byJob[ev.JobID]) {
				l.finals++
			}
			l.byJob[ev.JobID] = append(l.byJob[ev.JobID], ev)
		})
	})
	require.NoError(t, err)
	t.Cleanup(cc.Stop)
	return l
}

func hasFinal(evs []job.Event) bool {
	for _, ev := range evs {
		if ev.Final {
			return true
		}
	}
	return false
}

// of returns the job's events in stream order.
func (l *eventLog) of(jobID string) []job.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]job.Event(nil), l.byJob[jobID]...)
}

// waitStatus waits for an event of the job in status st and returns it.
func (l *eventLog) waitStatus(t *testing.T, jobID string, st job.Status) job.Event {
	t.Helper()
	var found job.Event
	l.waitFor(t, 20*time.Second, fmt.Sprintf("a %s event of %s", st, jobID), func() bool {
		for _, ev := range l.byJob[jobID] {
			if ev.Status == st {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// waitFinal waits for the job's final event and returns it.
func (l *eventLog) waitFinal(t *testing.T, jobID string) job.Event {
	t.Helper()
	var found job.Event
	l.waitFor(t, 20*time.Second, "the final event of "+jobID, func() bool {
		for _, ev := range l.byJob[jobID] {
			if ev.Final {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

// tap stands in front of the callback receiver and records what it answered, so
// a test knows exactly which receipts were stored. It can also hold DLR requests
// at the door until released.
type tap struct {
	watched
	next http.Handler
	// Under mu:
	stored    map[string][]string // statuses of DLRs answered 200, by message id, in order
	answers   map[int]int         // DLR answers by HTTP status
	moAnswers map[int]int         // MO answers by HTTP status
	gate      chan struct{}       // when set, DLR requests wait until it closes
	held      int                 // DLR requests that waited at the gate
}

// newTap is a tap whose next handler is set before it serves.
func newTap() *tap {
	tp := &tap{stored: map[string][]string{}, answers: map[int]int{}, moAnswers: map[int]int{}}
	tp.init()
	return tp
}

func (tp *tap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 2*dlr.MaxBodyBytes))
	if err != nil {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	isDLR := r.URL.Path == dlr.PathDLR
	if isDLR {
		var gate chan struct{}
		tp.update(func() {
			if gate = tp.gate; gate != nil {
				tp.held++
			}
		})
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
	}
	sw := &statusWriter{ResponseWriter: w}
	tp.next.ServeHTTP(sw, r)
	if sw.code == 0 {
		return // no answer: the client went away
	}
	var rc dlr.Receipt
	if isDLR && sw.code == http.StatusOK {
		rc, err = dlr.ParseReceipt(body)
		if err != nil {
			panic(fmt.Sprintf("the receiver stored a receipt the parser refuses: %v", err))
		}
	}
	tp.update(func() {
		if !isDLR {
			tp.moAnswers[sw.code]++
			return
		}
		tp.answers[sw.code]++
		if sw.code == http.StatusOK {
			tp.stored[rc.MessageID] = append(tp.stored[rc.MessageID], rc.Status)
		}
	})
}

// hold makes DLR requests wait at the door until release.
func (tp *tap) hold() { tp.update(func() { tp.gate = make(chan struct{}) }) }

func (tp *tap) release() {
	tp.update(func() {
		close(tp.gate)
		tp.gate = nil
	})
}

// storedFor returns the statuses stored for a message, in order.
func (tp *tap) storedFor(messageID string) []string {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]string(nil), tp.stored[messageID]...)
}

// storedTotal counts the receipts answered 200.
func (tp *tap) storedTotal() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return tp.answers[http.StatusOK]
}

// waitStored blocks until a receipt of the message has been answered 200.
func (tp *tap) waitStored(ctx context.Context, messageID string) error {
	for {
		tp.mu.Lock()
		ok, changed := len(tp.stored[messageID]) > 0, tp.changed
		tp.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// statusWriter remembers the status of the answer.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// problems collects the mismatches of a check over many jobs, so a failure shows
// how many jobs are wrong and how, not only the first.
type problems struct {
	list []string
}

func (p *problems) addf(format string, args ...any) {
	p.list = append(p.list, fmt.Sprintf(format, args...))
}

func (p *problems) check(t *testing.T) {
	t.Helper()
	if len(p.list) == 0 {
		return
	}
	show := p.list[:min(len(p.list), 25)]
	t.Fatalf("%d problems; the first %d:\n  %s", len(p.list), len(show), joinLines(show))
}

func joinLines(lines []string) string {
	var b bytes.Buffer
	for i, l := range lines {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(l)
	}
	return b.String()
}

// checkIdentity adds a problem for each field of ev that is not j's: job id,
// destination, lane, campaign, metadata and, when messageID is given, the
// gateway's message id.
func checkIdentity(p *problems, ev job.Event, j testJob, messageID string) {
	if ev.JobID != j.ID {
		p.addf("%s event of job %s carries job_id %q", ev.Status, j.ID, ev.JobID)
	}
	if ev.Destination != j.Destination || ev.Lane != j.lane || ev.Campaign != j.campaign {
		p.addf("%s event of job %s: destination/lane/campaign %q/%q/%q, want %q/%q/%q", ev.Status, j.ID,
			ev.Destination, ev.Lane, ev.Campaign, j.Destination, j.lane, j.campaign)
	}
	if !equalMaps(ev.Metadata, j.Metadata) {
		p.addf("%s event of job %s: metadata %v, want %v", ev.Status, j.ID, ev.Metadata, j.Metadata)
	}
	if messageID != "" && ev.MessageID != messageID {
		p.addf("%s event of job %s: message_id %q, want %q", ev.Status, j.ID, ev.MessageID, messageID)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// ledgerEntries reads the jobs' ledger entries, a few at a time.
func (s *stack) ledgerEntries(t *testing.T, jobs []testJob) map[string]*ledger.Entry {
	t.Helper()
	out := make(map[string]*ledger.Entry, len(jobs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, len(jobs))
	next := make(chan string)
	for range 8 {
		wg.Go(func() {
			for id := range next {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				e, _, err := s.ledger.Get(ctx, id)
				cancel()
				if err != nil {
					errs <- err
					continue
				}
				mu.Lock()
				out[id] = e
				mu.Unlock()
			}
		})
	}
	for _, j := range jobs {
		next <- j.ID
	}
	close(next)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	require.NoError(t, errors.Join(all...))
	return out
}
