package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/app"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/ratelimit"
	"github.com/jetsms/jetsms/worker"
)

// concurrency is the in-flight submissions of every measurement, as issue targets
// are stated at 64.
const concurrency = 64

// syncInterval is the embedded server's flush interval in benchmarks: NATS's own
// default, as a standard deployment runs. BENCH_SYNC=always measures jetsms's own
// default instead (every write synced before it is acknowledged).
const syncInterval = 2 * time.Minute

func syncAlways() bool { return os.Getenv("BENCH_SYNC") == "always" }

// syncSetting says in words which setting this run uses.
func syncSetting() string {
	if syncAlways() {
		return "syncing every write (sync: always, jetsms's default)"
	}
	return fmt.Sprintf("syncing every %s (the NATS default; jetsms's own default is sync always)", syncInterval)
}

// jobsMaxBytes caps the jobs stream in benchmarks, well above the largest backlog
// they store. A worker run as a process must be given the same cap, or its
// EnsureStreams sets the stream back to jetsms's default.
const jobsMaxBytes = 8 << 30

// jobBody is a typical one-segment job.
const jobBody = `{"destination":"+64211234567","content":"Your code is 123456","metadata":{"tenant":"acme"}}`

// server is an embedded JetStream server with the contract's streams.
type server struct {
	emb   *broker.Embedded // nil when the server runs as a process (proc)
	proc  *child
	url   string
	nc    *nats.Conn
	js    jetstream.JetStream
	names subjects.Names
}

func startServer(tb testing.TB) *server {
	tb.Helper()
	emb, err := broker.StartEmbedded(broker.EmbeddedConfig{
		StoreDir: tb.TempDir(), Listen: "127.0.0.1:0", SyncInterval: syncInterval, SyncAlways: syncAlways(),
		NoAuth: true, // loopback only; the benchmarks connect with the plain URL
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(emb.Stop)
	s := connectServer(tb, emb.ClientURL())
	s.emb = emb
	return s
}

// connectServer connects to the server at url and makes the contract's streams.
func connectServer(tb testing.TB, url string) *server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := broker.Connect(ctx, broker.ConnectConfig{URL: url, Name: "bench"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		tb.Fatal(err)
	}
	names, _ := subjects.New(subjects.PrefixDefault)
	if err := broker.EnsureStreams(ctx, js, broker.StreamsConfig{Names: names, JobsMaxBytes: jobsMaxBytes}); err != nil {
		tb.Fatal(err)
	}
	return &server{url: url, nc: nc, js: js, names: names}
}

// publishJobs stores n jobs on subject as fast as async publishing allows.
func (s *server) publishJobs(tb testing.TB, subject string, n int) {
	tb.Helper()
	data := []byte(jobBody)
	for i := range n {
		if i%4096 == 4095 {
			// Keep the async window under the client's limit: with sync always the
			// server answers at the disk's pace.
			<-s.js.PublishAsyncComplete()
		}
		if _, err := s.js.PublishMsgAsync(&nats.Msg{Subject: subject, Data: data,
			Header: nats.Header{jetstream.MsgIDHeader: []string{fmt.Sprintf("bench-%s-%d", subject, i)}}}); err != nil {
			tb.Fatal(err)
		}
	}
	select {
	case <-s.js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		tb.Fatal("publishing jobs did not complete")
	}
}

// gateway is the simulator behind a real HTTP server.
type gateway struct {
	sim  *gwsim.Simulator // nil when the simulator runs as a process (proc)
	proc *child
	url  string
}

// startSimulator starts a simulator configured by cfg behind a real HTTP server.
func startSimulator(tb testing.TB, cfg gwsim.Config) *gateway {
	tb.Helper()
	sim, err := gwsim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)
	tb.Cleanup(sim.Close)
	return &gateway{sim: sim, url: srv.URL + gwsim.BasePath}
}

// rawHTTP posts n copies of one message to the gateway from `concurrency`
// goroutines over keep-alive connections, with nothing in between: the HTTP ceiling.
func rawHTTP(tb testing.TB, gw *gateway, n int) float64 {
	tb.Helper()
	tr := &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	body := []byte(`{"destination":"+64211234567","content":"Your code is 123456","reference":"bench"}`)
	var next atomic.Int64
	var failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				resp, err := client.Post(gw.url+"/messages", "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failed.Load() > 0 {
		tb.Fatalf("raw HTTP: %d of %d requests failed", failed.Load(), n)
	}
	return float64(n) / elapsed.Seconds()
}

// rawConsume stores n messages on a stream of its own, then consumes and acks them
// all with a pull consumer: the JetStream ceiling.
func rawConsume(tb testing.TB, s *server, n int) float64 {
	tb.Helper()
	ctx := context.Background()
	stream, err := s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "RAW", Subjects: []string{"raw.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = s.js.DeleteStream(ctx, "RAW") }()
	s.publishJobs(tb, "raw.jobs", n)
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 10_000,
	})
	if err != nil {
		tb.Fatal(err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if got.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(2*concurrency))
	if err != nil {
		tb.Fatal(err)
	}
	<-done
	cc.Stop()
	waitEmpty(tb, stream)
	return float64(n) / time.Since(start).Seconds()
}

// waitEmpty waits until a work-queue stream holds nothing: every ack has landed.
func waitEmpty(tb testing.TB, stream jetstream.Stream) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		info, err := stream.Info(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatal("stream not drained")
}

// countAccepted counts accepted events from now on; done closes at the nth. The
// subscription (returned for its drop count) ends with the test.
func (s *server) countAccepted(tb testing.TB, n int) (*atomic.Int64, <-chan struct{}, *nats.Subscription) {
	tb.Helper()
	accepted := new(atomic.Int64)
	done := make(chan struct{})
	sub, err := s.nc.Subscribe(s.names.Status("accepted"), func(*nats.Msg) {
		if accepted.Add(1) == int64(n) {
			close(done)
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sub.Unsubscribe() })
	// The subscription must be known to the server before the first event.
	if err := s.nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	return accepted, done, sub
}

// result is one measurement: jobs/s, and the CPU time per job of the process
// that consumes the jobs and of the NATS server (zero when the server runs in
// this process), over the time from the consumer's start to the last ack.
type result struct {
	rate           float64
	worker, server time.Duration
	// claim and request, for a pipeline: the mean claim of the send guard and
	// the mean accepted gateway request, which together hold a submission slot.
	claim, request time.Duration
	// gateway is the simulator process's CPU per job, when it is a process.
	gateway time.Duration
}

func (r result) cpu() time.Duration { return r.worker + r.server }

// usage measures the CPU of this process, of the server and of the gateway
// (when it runs as a process) from now on.
type usage struct {
	s             *server
	gw            *gateway
	self, srv, gc time.Duration
	start         time.Time
	stopProfiling func()
}

// measure starts measuring; gw may be nil.
func measure(tb testing.TB, s *server, gw *gateway, name string) *usage {
	tb.Helper()
	u := &usage{s: s, gw: gw, stopProfiling: profile(tb, s, name)}
	u.self, u.start = selfCPU(), time.Now()
	if s.proc != nil {
		u.srv = s.proc.cpu(tb)
	}
	if gw != nil && gw.proc != nil {
		u.gc = gw.proc.cpu(tb)
	}
	return u
}

// done ends the measurement of n jobs.
func (u *usage) done(tb testing.TB, n int) result {
	tb.Helper()
	r := result{rate: float64(n) / time.Since(u.start).Seconds(), worker: (selfCPU() - u.self) / time.Duration(n)}
	if u.s.proc != nil {
		r.server = (u.s.proc.cpu(tb) - u.srv) / time.Duration(n)
	}
	if u.gw != nil && u.gw.proc != nil {
		r.gateway = (u.gw.proc.cpu(tb) - u.gc) / time.Duration(n)
	}
	u.stopProfiling()
	return r
}

// runPipeline stores n jobs, then starts a jetsms process and measures how fast
// they are all accepted by the gateway and recorded, and the CPU per job; name,
// when set, names its profiles (see profileDir). The jobs are done when the jobs
// stream is empty: a job is acked only once its acceptance is stored.
func runPipeline(tb testing.TB, s *server, gw *gateway, n int, name string) result {
	tb.Helper()
	ctx := context.Background()
	s.publishJobs(tb, s.names.Send("bulk"), n)
	stream, err := s.js.Stream(ctx, s.names.JobsStream())
	if err != nil {
		tb.Fatal(err)
	}

	lim, _ := ratelimit.New(ratelimit.Config{PerSecond: math.Inf(1), Burst: 1})
	before := gw.accepted(tb)
	u := measure(tb, s, gw, name)
	a := startApp(tb, s, gw, lim, concurrency, nil)
	w := a.Worker()
	var samples, inflight, queued int
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		<-tick.C
		samples++
		inflight += w.InFlight()
		queued += w.Queued()["bulk"]
		info, err := stream.Info(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d jobs left", info.State.Msgs, n)
		}
	}
	r := u.done(tb, n)
	r.claim = histogramMean(tb, a, "jetsms_ledger_claim_duration_seconds")
	r.request = histogramMean(tb, a, `jetsms_gateway_request_duration_seconds{outcome="accepted"}`)
	if os.Getenv("BENCH_VERBOSE") != "" && samples > 0 {
		fmt.Printf("  mean in flight %.1f of %d, mean queued %.1f\n", float64(inflight)/float64(samples), concurrency, float64(queued)/float64(samples))
	}
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := a.Stop(stopCtx); err != nil {
		tb.Fatal(err)
	}
	if got := gw.accepted(tb) - before; got != int64(n) {
		tb.Fatalf("gateway accepted %d messages for %d jobs", got, n)
	}
	return r
}

// startApp runs a jetsms process on s as cmd/jetsms builds it (internal/app),
// sending to gw, paced by lim, with at most conc submissions in flight. The lanes
// are the defaults, with no options but minShare (lane=share pairs, as
// lane.min_share), so every job goes straight to the gateway. The process stops
// with the test, if not before.
func startApp(tb testing.TB, s *server, gw *gateway, lim worker.Limiter, conc int, minShare []string) *app.App {
	tb.Helper()
	cfg := config.Default()
	cfg.NATS.URL = s.url
	cfg.Streams.JobsMaxBytes = jobsMaxBytes
	cfg.Callbacks.Listen = "127.0.0.1:0"
	cfg.Callbacks.AllowUnauthenticated = true // loopback only; no receipts in benchmarks
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.NATS.Embedded.StoreDir = tb.TempDir() // where the console keeps its password
	cfg.Worker.Concurrency = conc
	cfg.Lane.Marketing, cfg.Lane.Ambiguous, cfg.Lane.MinShare = nil, nil, minShare
	a, err := app.New(cfg, app.RoleWorker, app.Options{GatewayURL: gw.url, Limiter: lim})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = a.Stop(ctx)
	})
	return a
}

// size scales a workload: BENCH_SCALE=0.1 for a quick look.
func size(n int) int {
	if v := os.Getenv("BENCH_SCALE"); v != "" {
		var f float64
		if _, err := fmt.Sscanf(v, "%g", &f); err == nil && f > 0 {
			return max(1000, int(float64(n)*f))
		}
	}
	return n
}

// report prints one line of the results table.
func report(tb testing.TB, name string, value float64, unit, against string) {
	tb.Helper()
	line := fmt.Sprintf("%-44s %12.0f %-8s %s", name, value, unit, against)
	fmt.Println(strings.TrimRight(line, " "))
}

// caseScope is a testing.TB whose cleanups run when its measurement ends
// (end), not when the whole benchmark does: a case's servers, simulators and
// workers would otherwise go on running, and taking CPU, beside the next
// case's measurement.
type caseScope struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

// newCase returns a scope within tb; tb's end ends it too, should a case fail
// before its own end.
func newCase(tb testing.TB) *caseScope {
	c := &caseScope{TB: tb}
	tb.Cleanup(c.end)
	return c
}

// Cleanup registers f to run when the case ends, in reverse order.
func (c *caseScope) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleanups = append(c.cleanups, f)
}

// end runs the case's cleanups; safe twice.
func (c *caseScope) end() {
	c.mu.Lock()
	fns := c.cleanups
	c.cleanups = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// histogramMean reads the mean of the histogram series (name with its labels)
// from the process's own /metrics.
func histogramMean(tb testing.TB, a *app.App, series string) time.Duration {
	tb.Helper()
	resp, err := http.Get("http://" + a.AdminAddr() + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	name, labels, _ := strings.Cut(series, "{")
	if labels != "" {
		labels = "{" + labels
	}
	var sum, count float64
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(line, name+"_sum"+labels+" "); ok {
			sum, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
		if v, ok := strings.CutPrefix(line, name+"_count"+labels+" "); ok {
			count, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if count == 0 {
		tb.Fatalf("no %s in the process's metrics", series)
	}
	return time.Duration(sum / count * float64(time.Second))
}
