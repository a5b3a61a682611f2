//go:build linux

package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/worker"
)

// Settings every case shares.
const (
	gatewayUser     = "chaos"
	gatewayPassword = "chaos-secret"
	callbackUser    = "gateway"
	callbackPass    = "callback-secret"
	// workerGrace is the worker's grace period; the rig stops it when all is done,
	// so nothing should be in flight by then.
	workerGrace = 10 * time.Second
	// syncInterval is the NATS server's sync setting where a case does not test
	// durability: what the README advises for speed.
	syncInterval = 100 * time.Millisecond
	// publishWindow is how many job publishes may await their PubAck at once.
	publishWindow = 2000
	// stepTimeout bounds one NATS call of the rig.
	stepTimeout = 30 * time.Second
	// stallTimeout fails a case early when no job got its final event for this
	// long: longer than the worker's submit lease (2 × gateway.timeout + 5 s, 25 s
	// by default) plus a few release delays.
	stallTimeout = 150 * time.Second
	// quietTimeout fails the wait, once every job has its final event, for the
	// jobs stream, the receipts and the resolver to drain, when what is left has
	// not changed for this long: longer than the longest release delay, since a
	// job released with one comes back only to be acked.
	quietTimeout = worker.NakDelayMax + time.Minute
	// pollEvery is the period of the checks of stream and simulator state that
	// have no event to wait on.
	pollEvery = 100 * time.Millisecond
	// progressEvery is how often a case logs how far it is.
	progressEvery = 15 * time.Second
)

// rigConfig is one case's set-up.
type rigConfig struct {
	// name is the case's name: its row in the summary and its job ids' prefix.
	name string
	jobs int
	// lane the jobs are published on.
	lane string
	// syncAlways makes the NATS server sync every write (cases about
	// durability); otherwise it syncs every syncInterval.
	syncAlways bool
	// sim holds the simulator's faults and receipt settings; the rig sets the
	// credentials, the receipt URL and what it needs for counting.
	sim gwsim.Config
	// workerArgs are flags added to the worker's command line.
	workerArgs []string
	// faults break something when the simulator has accepted the given number of
	// submissions; see fault.
	faults []fault
}

// fault is something a case breaks while jobs are being sent. breakIt runs in the
// simulator's handler of the at-th accepted submission, before that submission is
// answered (so a killed worker never learns it was accepted); repair runs on the
// test's goroutine afterwards.
type fault struct {
	name    string
	at      int64
	breakIt func(r *rig) error
	repair  func(t *testing.T, r *rig)
}

// rig is one case's world: a NATS server, the simulator, the jetsms worker
// processes, and the accounting.
type rig struct {
	cfg      rigConfig
	storeDir string
	natsAddr string // host:port, kept across restarts
	cbAddr   string // the workers' callback listener, kept across restarts
	logDir   string

	natsConf string // the server's configuration file

	srvMu sync.Mutex
	srv   *proc   // the NATS server process running now, nil while stopped
	srvs  []*proc // every NATS server process started

	nc    *nats.Conn
	js    jetstream.JetStream
	names subjects.Names

	sim    *gwsim.Simulator
	simURL string

	arrivals []atomic.Int32 // accepted submissions per job index
	accepted atomic.Int64   // accepted submissions in all
	strays   atomic.Int64   // accepted submissions that are no job of the case
	nextFlt  atomic.Int32   // index of the next fault to break
	broken   chan faultDone // breakIt's outcome, for the test's goroutine

	finals *finalWatch

	wMu       sync.Mutex
	worker    *proc
	workers   []*proc
	began     time.Time
	cpuBefore time.Duration // processCPU when the case began
}

type faultDone struct {
	index int
	err   error
}

// newRig starts the server and the simulator, declares the streams and starts
// following the status stream. No worker runs yet.
func newRig(t *testing.T, cfg rigConfig) *rig {
	t.Helper()
	r := &rig{
		cfg: cfg, storeDir: filepath.Join(t.TempDir(), "nats"), logDir: t.ArtifactDir(),
		natsAddr: freeAddr(t), cbAddr: freeAddr(t),
		arrivals: make([]atomic.Int32, cfg.jobs),
		broken:   make(chan faultDone, len(cfg.faults)),
		began:    time.Now(), cpuBefore: processCPU(),
	}
	r.natsConf = r.writeNATSConfig(t)
	r.startServer(t)

	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	nc, err := broker.Connect(ctx, broker.ConnectConfig{URL: "nats://" + r.natsAddr, Name: "chaos " + cfg.name}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	r.nc = nc
	if r.js, err = jetstream.New(nc); err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	if r.names, err = subjects.New(subjects.PrefixDefault); err != nil {
		t.Fatal(err)
	}
	// As the worker declares them, so its own EnsureStreams changes nothing.
	if err := broker.EnsureStreams(ctx, r.js, broker.StreamsConfig{
		Names: r.names, JobsMaxBytes: config.JobsMaxBytesDefault, MaxAge: config.MaxAgeDefault, Replicas: config.ReplicasDefault,
	}); err != nil {
		t.Fatalf("streams: %v", err)
	}

	simCfg := cfg.sim
	simCfg.Username, simCfg.Password = gatewayUser, gatewayPassword
	simCfg.Keep = -1 // GET is not used; keep the memory flat
	simCfg.DLRURL = (&url.URL{
		Scheme: "http", User: url.UserPassword(callbackUser, callbackPass), Host: r.cbAddr, Path: dlr.PathDLR,
	}).String()
	// While a worker is down or NATS is away the receiver refuses receipts; they
	// come again soon after it is back.
	simCfg.CallbackBackoff = 50 * time.Millisecond
	simCfg.CallbackBackoffMax = time.Second
	// Receipts are posted one at a time per sender; more senders keep the
	// simulator, which runs under the race detector here, from being what makes
	// receipts late.
	simCfg.CallbackSenders = 64
	sim, err := gwsim.New(simCfg)
	if err != nil {
		t.Fatalf("simulator: %v", err)
	}
	sim.OnAccept(r.onAccept)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	t.Cleanup(sim.Close) // first: ends held requests, so hs.Close does not wait for them
	r.sim, r.simURL = sim, hs.URL+gwsim.BasePath

	r.tap(t)
	r.finals = watchFinals(t, r)
	r.logProgress(t)
	return r
}

// freeAddr returns a loopback host:port that was free a moment ago; the rig keeps
// it for a listener that restarts (NATS, a worker's callbacks). It is taken below
// the kernel's ephemeral range, so that no outgoing connection of the many the
// cases make gets it meanwhile. No two calls in this process return the same
// port, even when the first caller has not bound it yet.
func freeAddr(t *testing.T) string {
	t.Helper()
	low := ephemeralLow()
	for range 200 {
		port := portFloor + rand.IntN(low-portFloor)
		if !handOut(port) {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		return addr
	}
	t.Fatalf("no free port between %d and %d", portFloor, low)
	return ""
}

var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// handOut reserves port for one caller of freeAddr; false when another has it.
func handOut(port int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports[port] {
		return false
	}
	if handedOut.ports == nil {
		handedOut.ports = make(map[int]bool)
	}
	handedOut.ports[port] = true
	return true
}

// portFloor is the lowest port freeAddr picks.
const portFloor = 20000

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when it
// cannot be read).
func ephemeralLow() int {
	const fallback = 32768
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return fallback
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= portFloor+1000 {
		return fallback
	}
	return low
}

// writeNATSConfig writes the NATS server's configuration file: the rig's
// address and store, and its sync setting.
func (r *rig) writeNATSConfig(t *testing.T) string {
	t.Helper()
	sync := syncInterval.String()
	if r.cfg.syncAlways {
		sync = "always"
	}
	conf := fmt.Sprintf("server_name: chaos\nlisten: %q\njetstream {\n  store_dir: %q\n  sync_interval: %q\n}\n",
		r.natsAddr, r.storeDir, sync)
	path := filepath.Join(r.logDir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServer starts the NATS server process on the rig's address and store and
// waits until it is ready.
func (r *rig) startServer(t *testing.T) {
	t.Helper()
	r.srvMu.Lock()
	k := len(r.srvs) + 1
	r.srvMu.Unlock()
	p := startProc(t, fmt.Sprintf("nats-server %d", k), filepath.Join(r.logDir, fmt.Sprintf("nats-%d.log", k)),
		natsServerBin, nil, []string{"-c", r.natsConf})
	if _, err := p.waitText(0, "Server is ready", startTimeout); err != nil {
		t.Fatalf("%s: %v\n%s", p.name, err, p.tailText())
	}
	r.srvMu.Lock()
	r.srv = p
	r.srvs = append(r.srvs, p)
	r.srvMu.Unlock()
}

// stopServer shuts the NATS server down gracefully (SIGTERM) and waits until it
// has exited.
func (r *rig) stopServer() error {
	r.srvMu.Lock()
	p := r.srv
	r.srv = nil
	r.srvMu.Unlock()
	if p == nil {
		return errors.New("the NATS server is not running")
	}
	err := p.stop()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		// Its exit code after SIGTERM is not what this is about; that it has
		// exited is.
		return nil
	}
	return err
}

// syncLabel says how the case's server syncs, for the summary.
func (r *rig) syncLabel() string {
	if r.cfg.syncAlways {
		return "always"
	}
	return "every " + syncInterval.String()
}

// jobID is the id of the case's i-th job: the case's name and the index, so that
// the checker knows every id and an id names its case.
func (r *rig) jobID(i int) string { return fmt.Sprintf("%s-%06d", r.cfg.name, i) }

// jobIndex is the index of one of the case's job ids, or -1.
func (r *rig) jobIndex(id string) int {
	rest, ok := strings.CutPrefix(id, r.cfg.name+"-")
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(rest)
	if err != nil || i < 0 || i >= r.cfg.jobs || r.jobID(i) != id {
		return -1
	}
	return i
}

// onAccept counts an accepted submission by its reference, which the dispatcher
// sets to the job id (the jobs have no reference of their own), and breaks the
// next fault when its turn has come.
func (r *rig) onAccept(m gwsim.Message) {
	n := r.accepted.Add(1)
	if i := r.jobIndex(m.Reference); i >= 0 {
		r.arrivals[i].Add(1)
	} else {
		r.strays.Add(1)
	}
	k := r.nextFlt.Load()
	if int(k) >= len(r.cfg.faults) || n < r.cfg.faults[k].at || !r.nextFlt.CompareAndSwap(k, k+1) {
		return
	}
	err := r.cfg.faults[k].breakIt(r)
	r.broken <- faultDone{index: int(k), err: err}
}

// publish stores every job of the case on the jobs stream, each with its id as
// Nats-Msg-Id, and returns once all are acknowledged.
func (r *rig) publish(t *testing.T) {
	t.Helper()
	subject := r.names.Send(r.cfg.lane)
	for start := 0; start < r.cfg.jobs; start += publishWindow {
		end := min(start+publishWindow, r.cfg.jobs)
		acks := make([]jetstream.PubAckFuture, 0, end-start)
		for i := start; i < end; i++ {
			id := r.jobID(i)
			body := fmt.Sprintf(`{"id":%q,"destination":"+6421%07d","content":"chaos job %s"}`, id, i, id)
			f, err := r.js.PublishAsync(subject, []byte(body), jetstream.WithMsgID(id))
			if err != nil {
				t.Fatalf("publish %s: %v", id, err)
			}
			acks = append(acks, f)
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publish %s: %v", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			case <-time.After(stepTimeout):
				t.Fatalf("publish %s: no PubAck within %s", f.Msg().Header.Get(jetstream.MsgIDHeader), stepTimeout)
			}
		}
	}
}

// workerEnv and workerArgs are the command line of the case's workers; secrets go
// in the environment, as the flags' help advises.
func (r *rig) workerEnv() []string {
	return []string{"JETSMS_GATEWAY_PASSWORD=" + gatewayPassword, "JETSMS_CALLBACKS_PASSWORD=" + callbackPass}
}

func (r *rig) workerArgs() []string {
	args := []string{
		"--nats.url", "nats://" + r.natsAddr,
		"--gateway.url", r.simURL,
		"--gateway.username", gatewayUser,
		"--callbacks.listen", r.cbAddr,
		"--admin.listen", "127.0.0.1:0", // the workers run side by side
		"--callbacks.username", callbackUser,
		"--log.format", "json",
		"--log.level", "info",
		// The account's rate is not what is tested: keep it out of the way.
		"--rate.per_second", "100000",
		"--rate.burst", "1000",
		// A killed worker's jobs come back after this.
		"--worker.ack_wait", "5s",
		"--worker.grace_period", workerGrace.String(),
	}
	return append(args, r.cfg.workerArgs...)
}

// startWorker starts the case's next worker process and waits until it runs.
func (r *rig) startWorker(t *testing.T) *proc {
	t.Helper()
	r.wMu.Lock()
	id := len(r.workers) + 1
	r.wMu.Unlock()
	w := startWorker(t, fmt.Sprintf("worker %d", id), filepath.Join(r.logDir, fmt.Sprintf("worker-%d.log", id)), r.workerEnv(), r.workerArgs())
	r.wMu.Lock()
	r.worker = w
	r.workers = append(r.workers, w)
	r.wMu.Unlock()
	return w
}

// current is the worker that runs now (or ran last).
func (r *rig) current() *proc {
	r.wMu.Lock()
	defer r.wMu.Unlock()
	return r.worker
}

// killWorker is a fault's breakIt: SIGKILL to the running worker.
func killWorker(r *rig) error { return r.current().kill() }

// restartWorker is a fault's repair: a new worker process on the same NATS and
// callback address.
func restartWorker(t *testing.T, r *rig) { r.startWorker(t) }

// run starts the first worker, then breaks and repairs each fault in turn as the
// simulator reaches it, and waits until every job has its final event. It reports
// (with t.Errorf, so the verdict still runs) a fault that never came or jobs that
// never ended.
func (r *rig) run(t *testing.T) {
	t.Helper()
	r.startWorker(t)
	for k := range r.cfg.faults {
		var d faultDone
		select {
		case d = <-r.broken:
		case <-r.finals.done:
			t.Errorf("every job ended before fault %d of %d came: %d submissions accepted", k+1, len(r.cfg.faults), r.accepted.Load())
			return
		case <-r.finals.stall:
			t.Errorf("no job ended for %s while waiting for fault %d of %d: %d of %d jobs ended, %d submissions accepted\n%s",
				stallTimeout, k+1, len(r.cfg.faults), r.finals.ended(), r.cfg.jobs, r.accepted.Load(), r.current().tailText())
			return
		}
		f := r.cfg.faults[d.index]
		if d.err != nil {
			t.Fatalf("fault %q: %v", f.name, d.err)
		}
		t.Logf("%s: fault %q broke at %d accepted submissions (%s in)", r.cfg.name, f.name, r.accepted.Load(), time.Since(r.began).Round(time.Millisecond))
		f.repair(t, r)
	}
	r.awaitFinals(t)
}

// awaitFinals waits until every job has a final event on the status stream. It
// reports, rather than stops at, jobs that never end, so the verdict can name them.
func (r *rig) awaitFinals(t *testing.T) bool {
	t.Helper()
	select {
	case <-r.finals.done:
		return true
	case <-r.finals.stall:
		t.Errorf("no job ended for %s: %d of %d jobs have a final event, %d submissions accepted\n%s",
			stallTimeout, r.finals.ended(), r.cfg.jobs, r.accepted.Load(), r.current().tailText())
		return false
	}
}

// settle waits, once every job has ended, until nothing is left moving: the jobs
// stream is empty, the simulator has no receipt pending and the resolver has
// taken every stored callback. It fails when what is left stops changing for
// quietTimeout: at make chaos's sizes on a busy machine, draining the receipts
// alone takes many minutes, so a bound on the whole wait would fail a case that
// is still progressing (the test's own timeout bounds it). Then it stops the
// worker gracefully and requires a clean exit.
func (r *rig) settle(t *testing.T) {
	t.Helper()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	quiet := time.NewTimer(quietTimeout)
	defer quiet.Stop()
	var last string
	for {
		why := r.busy(context.Background())
		if why == "" {
			break
		}
		if why != last {
			last = why
			quiet.Reset(quietTimeout)
		}
		select {
		case <-quiet.C:
			t.Errorf("still busy, with no change for %s, after every job ended: %s", quietTimeout, why)
			return
		case <-tick.C:
		}
	}
	w := r.current()
	if err := w.stop(); err != nil {
		t.Errorf("%s: %v\n%s", w.name, err, w.tailText())
	}
}

// logProgress logs, every progressEvery until the case ends, how many
// submissions were accepted, receipts are pending at the simulator, stored
// callbacks are not yet resolved, and jobs have their final event.
func (r *rig) logProgress(t *testing.T) {
	t.Helper()
	stop, cancelStop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(progressEvery)
		defer tick.Stop()
		for {
			select {
			case <-stop.Done():
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(stop, progressEvery)
			unresolved := r.unresolved(ctx)
			cancel()
			if stop.Err() != nil {
				return
			}
			st := r.sim.Stats()
			t.Logf("%s at %s: %d submissions accepted, %d receipts pending at the simulator, %s, %d of %d jobs ended",
				r.cfg.name, time.Since(r.began).Round(time.Second), r.accepted.Load(), st.ReceiptsPending, unresolved,
				r.finals.ended(), r.cfg.jobs)
		}
	}()
	t.Cleanup(func() { cancelStop(); <-done })
}

// unresolved says how many stored callbacks the resolver has not taken or not
// finished.
func (r *rig) unresolved(ctx context.Context) string {
	cbs, err := r.js.Stream(ctx, r.names.CallbacksStream())
	if err != nil {
		return "callbacks: " + err.Error()
	}
	var pending, unacked uint64
	for name := range cbs.ConsumerNames(ctx).Name() {
		cons, err := cbs.Consumer(ctx, name)
		if err != nil {
			return "callbacks: " + err.Error()
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			return "callbacks: " + err.Error()
		}
		pending, unacked = pending+ci.NumPending, unacked+uint64(ci.NumAckPending)
	}
	return fmt.Sprintf("%d callbacks stored and not taken, %d taken and not done", pending, unacked)
}

// busy says what is still moving, or "".
func (r *rig) busy(ctx context.Context) string {
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	jobs, err := r.js.Stream(sctx, r.names.JobsStream())
	if err != nil {
		return "jobs stream: " + err.Error()
	}
	info, err := jobs.Info(sctx)
	if err != nil {
		return "jobs stream: " + err.Error()
	}
	if info.State.Msgs > 0 {
		return fmt.Sprintf("%d jobs still on the jobs stream", info.State.Msgs)
	}
	if st := r.sim.Stats(); st.ReceiptsPending > 0 {
		return fmt.Sprintf("%d receipts pending at the simulator", st.ReceiptsPending)
	}
	cbs, err := r.js.Stream(sctx, r.names.CallbacksStream())
	if err != nil {
		return "callbacks stream: " + err.Error()
	}
	for name := range cbs.ConsumerNames(sctx).Name() {
		cons, err := cbs.Consumer(sctx, name)
		if err != nil {
			return "callbacks consumer: " + err.Error()
		}
		ci, err := cons.Info(sctx)
		if err != nil {
			return "callbacks consumer: " + err.Error()
		}
		if ci.NumPending > 0 || ci.NumAckPending > 0 {
			return fmt.Sprintf("callbacks consumer %s: %d pending, %d unacknowledged", name, ci.NumPending, ci.NumAckPending)
		}
	}
	return ""
}

// finalWatch follows the status stream as it is written and tells when every job
// of the case has a final event. The verdict reads the stream again from the
// start; this is only for knowing when to look.
type finalWatch struct {
	jobs  int
	index func(string) int

	mu       sync.Mutex
	seen     []bool // a final event was seen, per job
	count    int
	last     time.Time // of the last job that got its final event
	progress chan struct{}
	done     chan struct{} // closed once every job has a final event
	stall    chan struct{} // closed once none got one for stallTimeout
}

func watchFinals(t *testing.T, r *rig) *finalWatch {
	t.Helper()
	f := &finalWatch{
		jobs: r.cfg.jobs, index: r.jobIndex, seen: make([]bool, r.cfg.jobs),
		last: time.Now(), progress: make(chan struct{}), done: make(chan struct{}), stall: make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	cons, err := r.js.OrderedConsumer(ctx, r.names.StatusStream(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("follow the status stream: %v", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { f.add(m.Data()) })
	if err != nil {
		t.Fatalf("follow the status stream: %v", err)
	}
	t.Cleanup(cc.Stop)
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() { defer close(exited); f.watchdog(stallTimeout, quit) }()
	t.Cleanup(func() { close(quit); <-exited })
	return f
}

func (f *finalWatch) add(data []byte) {
	var ev struct {
		JobID  string `json:"job_id"`
		Status string `json:"status"`
	}
	if json.Unmarshal(data, &ev) != nil || !isFinal(ev.Status) {
		return
	}
	i := f.index(ev.JobID)
	if i < 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen[i] {
		return
	}
	f.seen[i] = true
	f.count++
	f.last = time.Now()
	close(f.progress)
	f.progress = make(chan struct{})
	if f.count == f.jobs {
		close(f.done)
	}
}

// ended is how many jobs have a final event so far.
func (f *finalWatch) ended() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// watchdog closes f.stall once no job has got its final event for d; it returns
// then, when every job has ended, or when quit is closed.
func (f *finalWatch) watchdog(d time.Duration, quit <-chan struct{}) {
	for {
		f.mu.Lock()
		wait, progress := time.Until(f.last.Add(d)), f.progress
		f.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-f.done:
			timer.Stop()
			return
		case <-quit:
			timer.Stop()
			return
		case <-progress:
			timer.Stop()
		case <-timer.C:
			close(f.stall)
			return
		}
	}
}
