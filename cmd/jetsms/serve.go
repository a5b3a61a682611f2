package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/ratelimit"
	"github.com/jetsms/jetsms/worker"
)

// setupTimeout bounds start-up steps that talk to NATS.
const setupTimeout = 30 * time.Second

// loadConfig parses a command's flags and loads the configuration. prepare may set
// the command's own defaults and flags.
func loadConfig(name string, args []string, stderr io.Writer, prepare func(*flag.FlagSet, *config.Flags)) (config.Config, error) {
	fs := flag.NewFlagSet("jetsms "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.RegisterFlags(fs)
	if prepare != nil {
		prepare(fs, flags)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config.Config{}, err
		}
		return config.Config{}, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "jetsms %s: unexpected argument %q\n", name, fs.Arg(0))
		return config.Config{}, errUsage
	}
	return flags.Load(os.LookupEnv)
}

// runAll is `jetsms run`: everything in one process — the worker, the callback
// receiver and resolver — with embedded NATS (unless nats.url is set) and the
// built-in simulator (unless a gateway account is configured).
func runAll(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, err := loadConfig("run", args, stderr, func(_ *flag.FlagSet, f *config.Flags) {
		// The quick start sends to the built-in simulator until a gateway is set.
		f.SetDefault("gateway.url", config.SandboxURL)
	})
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr, roleWorker)
}

// runWorker is `jetsms worker`: as configured, with no sandbox default. A worker
// also receives and resolves callbacks, so every replica can sit behind the
// gateway's callback URL.
func runWorker(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, err := loadConfig("worker", args, stderr, nil)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr, roleWorker)
}

// runReceiver is `jetsms receiver`: the callback receiver, the resolver and the
// reconciler, without sending.
func runReceiver(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, err := loadConfig("receiver", args, stderr, nil)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, stderr, roleReceiver)
}

// role is what a process runs besides the callback receiver and resolver.
type role int

const (
	roleWorker   role = iota // sends jobs too
	roleReceiver             // receives and resolves only
)

// serve runs the components of role until ctx ends, then stops them in order. A
// stop asked for during start-up is a clean exit too.
func serve(ctx context.Context, cfg config.Config, stderr io.Writer, r role) (err error) {
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	defer func() {
		if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
			log.Info("stopped during start-up")
			err = nil
		}
	}()
	names, err := subjects.New(cfg.Streams.Prefix)
	if err != nil {
		return fmt.Errorf("streams.prefix: %w", err)
	}

	// NATS: the embedded server when no URL is configured. It stops last, after
	// everything that publishes to it.
	natsURL := cfg.NATS.URL
	if natsURL == "" {
		emb, err := broker.StartEmbedded(broker.EmbeddedConfig{
			StoreDir:     cfg.NATS.Embedded.StoreDir,
			Listen:       cfg.NATS.Embedded.Listen,
			SyncAlways:   cfg.NATS.Embedded.Sync.Always,
			SyncInterval: cfg.NATS.Embedded.Sync.Interval,
		}, log)
		if err != nil {
			return err
		}
		defer emb.Stop()
		natsURL = emb.ClientURL()
		log.Info("embedded NATS started", zap.String("url", natsURL),
			zap.String("store_dir", cfg.NATS.Embedded.StoreDir), zap.Stringer("sync", cfg.NATS.Embedded.Sync))
	}
	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	defer cancelSetup()
	nc, err := broker.Connect(setupCtx, connectConfig(cfg, natsURL, "jetsms"), log)
	if err != nil {
		return err
	}
	// The connection closes after everything that publishes has stopped, so every
	// event of a job in flight is flushed first.
	defer func() { _ = nc.FlushTimeout(5 * time.Second); nc.Close() }()
	// Liveness (issue 12): a connection the server closed for good ends ctx, so
	// everything stops, and the process exits non-zero (forced after
	// broker.ExitAfterDefault) for its supervisor to restart; /healthz fails.
	ctx, connWatch := broker.Watch(ctx, nc, broker.WatchConfig{}, log)
	defer func() { connWatch.Stop(); err = connWatch.Err(err) }()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := broker.EnsureStreams(setupCtx, js, broker.StreamsConfig{
		Names: names, JobsMaxBytes: cfg.Streams.JobsMaxBytes, MaxAge: cfg.Streams.MaxAge, Replicas: cfg.Streams.Replicas,
	}); err != nil {
		return err
	}
	// The job ledger (the send guard, and how receipts find their job) and the
	// opt-out list.
	led, err := openLedger(setupCtx, js, cfg, names)
	if err != nil {
		return err
	}
	optOuts, err := optout.Open(setupCtx, js, optout.Config{Bucket: names.OptOutBucket(), Replicas: cfg.Streams.Replicas})
	if err != nil {
		return err
	}
	pub := events.New(js, names)

	// Metrics, served on /metrics; the backlog per lane is read from the
	// consumers when scraped.
	m := metrics.New()
	m.SetBuildInfo(versionString())
	m.InitLanes(cfg.Lanes...)
	backlog, err := metrics.NewBacklogCollector(js, names, cfg.Lanes)
	if err != nil {
		return err
	}
	if err := m.Register(backlog); err != nil {
		return err
	}

	// The HTTP listener: callbacks, health and readiness. It is bound now, so the
	// simulator below knows where to send receipts, and serves once all is set.
	// Callbacks are authenticated by default (issue 12): the built-in simulator
	// gets generated credentials, which its callback URLs carry.
	if _, err := cfg.SandboxCallbackCredentials(); err != nil {
		return err
	}
	receiver, err := dlr.New(dlr.Config{Username: cfg.Callbacks.Username, Password: cfg.Callbacks.Password, Metrics: m,
		AllowUnauthenticated: cfg.Callbacks.AllowUnauthenticated, AllowFrom: cfg.Callbacks.AllowFromPrefixes()}, js, names, log)
	if err != nil {
		return fmt.Errorf("callbacks: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Callbacks.Listen)
	if err != nil {
		return fmt.Errorf("callbacks.listen: %w", err)
	}
	health := &health{nc: nc, live: connWatch.Alive}
	httpSrv, err := dlr.NewServer(dlr.ServerConfig{Addr: ln.Addr().String()}, routes(receiver, health, m.Handler()), log)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("callbacks: %w", err)
	}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("callback server", zap.Error(err))
		}
	}()
	// The HTTP server stops first on the way out (readiness already false): it
	// answers the callbacks in hand, each stored before its 200, and takes no more,
	// so the resolver, which stops later, sees every callback it stored. On an
	// error during start-up the deferred call stops it.
	stopHTTP := sync.OnceFunc(func() {
		health.ready.Store(false)
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(sctx)
		<-httpDone
	})
	defer stopHTTP()
	callbackURL := "http://" + loopbackAddr(ln.Addr())

	// The built-in simulator, when the gateway is "sandbox". It stops after the
	// worker, so in-flight submissions get their answers, and sends its receipts to
	// this process's receiver.
	gatewayURL := cfg.Gateway.URL
	if cfg.IsSandbox() {
		url, stopSim, err := startSandbox(cfg, callbackURL, log)
		if err != nil {
			return err
		}
		defer stopSim()
		gatewayURL = url
		log.Warn("gateway: built-in simulator, no SMS leaves this machine; set gateway.url, gateway.username and gateway.password to send for real",
			zap.String("url", gatewayURL))
	}
	sender, err := newGateway(cfg, gatewayURL, cfg.Worker.Concurrency)
	if err != nil {
		return err
	}
	defer sender.Close()

	// The resolver and the reconciler: consumers, stopped (deferred) after the
	// HTTP server and the worker, so what those stored is resolved while they run;
	// anything left is resolved at the next start.
	res, err := resolve.New(resolve.Config{
		Names: names, Ledger: led, OptOuts: optOuts, Publisher: pub, ResolveWithin: cfg.Callbacks.ResolveWithin,
		Metrics: m,
	}, js, log)
	if err != nil {
		return err
	}
	if err := res.Start(setupCtx); err != nil {
		return err
	}
	defer stopWithin(log, "resolver", res.Stop)
	rec, err := resolve.NewReconciler(resolve.ReconcilerConfig{
		Names: names, Ledger: led, Publisher: pub, Gateway: sender, After: cfg.Callbacks.ReconcileAfter,
		Metrics: m,
	}, js, log)
	if err != nil {
		return err
	}
	if err := rec.Start(setupCtx); err != nil {
		return err
	}
	defer stopWithin(log, "reconciler", rec.Stop)

	// Campaigns: the gate (each campaign's state, from a watch, for the worker)
	// and the tracker that keeps their records' counts from the status events.
	campaigns, err := campaign.Open(setupCtx, js, campaign.StoreConfig{Bucket: names.CampaignBucket(), Replicas: cfg.Streams.Replicas})
	if err != nil {
		return err
	}
	gate, err := campaign.NewGate(campaigns, log)
	if err != nil {
		return err
	}
	if err := gate.Start(setupCtx); err != nil {
		return err
	}
	defer stopWithin(log, "campaign gate", gate.Stop)
	tracker, err := campaign.NewTracker(campaign.TrackerConfig{Names: names, Store: campaigns, Gate: gate}, js, log)
	if err != nil {
		return err
	}
	if err := tracker.Start(setupCtx); err != nil {
		return err
	}
	defer stopWithin(log, "campaign tracker", tracker.Stop)

	// The worker: started last, stopped first.
	var w *worker.Worker
	if r == roleWorker {
		// The account's rate: adaptive (cut on 429/503, climbing back), and
		// divided among the replicas that announce themselves in the replicas
		// bucket. The share stops after the worker, handing its part back.
		limiter, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{
			PerSecond: cfg.Rate.PerSecond, Burst: cfg.Rate.Burst,
			OnChange: func(c ratelimit.Change) {
				log.Info("rate changed", zap.String("reason", string(c.Reason)), zap.Float64("per_second", c.PerSecond),
					zap.Float64("ceiling", c.Ceiling), zap.Int("burst", c.Burst))
				m.RateChanged(string(c.Reason))
				m.SetRate(c.PerSecond)
				m.SetRateCeiling(c.Ceiling)
				if c.Ceiling > 0 {
					// Each replica's ceiling is the account's rate divided among them.
					m.SetReplicas(int(math.Round(cfg.Rate.PerSecond / c.Ceiling)))
				}
			},
		})
		if err != nil {
			return fmt.Errorf("rate: %w", err)
		}
		m.SetRate(limiter.Rate())
		m.SetRateCeiling(limiter.Ceiling())
		m.SetReplicas(1)
		if cfg.Rate.Shared {
			share, err := ratelimit.NewShare(ratelimit.ShareConfig{Bucket: names.ReplicasBucket()}, js, limiter, log)
			if err != nil {
				return fmt.Errorf("rate: %w", err)
			}
			if err := share.Start(setupCtx); err != nil {
				return fmt.Errorf("rate: %w", err)
			}

			defer stopWithin(log, "rate share", share.Stop)
		}
		w, err = worker.New(worker.Config{
			Names: names, Lanes: cfg.Lanes, LaneOptions: laneOptions(cfg),
			Concurrency: cfg.Worker.Concurrency, ConcurrencyMin: cfg.Worker.ConcurrencyMin,
			MaxAttempts: cfg.Worker.MaxAttempts, AckWait: cfg.Worker.AckWait, MaxSegments: cfg.Jobs.MaxSegments,
			Ledger: led, OptOuts: optOuts, SubmitLease: submitLease(cfg),
			RateInSegments: cfg.Rate.Unit == config.RateUnitSegments,
			Destination:    worker.DestinationLimit{Max: cfg.Rate.DestinationMax, Window: cfg.Rate.DestinationWindow},
			Batcher:        batcher(cfg, sender),
			Campaigns:      gate,
			Metrics:        m,
			OnCircuit:      m.SetCircuitOpen,
			LogDetails:     !cfg.Log.Redact,
		}, js, sender, limiter, pub, log)
		if err != nil {
			return err
		}
		if err := w.Start(setupCtx); err != nil {
			return err
		}
		open := w.CircuitOpen
		health.circuit.Store(&open)
	}
	cancelSetup()
	health.ready.Store(true)
	log.Info("jetsms running", zap.String("version", versionString()), zap.String("nats", redact.URL(natsURL)),
		zap.String("callbacks", callbackURL+dlr.PathDLR), zap.Bool("sending", w != nil),
		zap.String("jobs", names.SendAll()), zap.Float64("rate_per_second", cfg.Rate.PerSecond))

	<-ctx.Done()
	health.ready.Store(false)
	stopHTTP()
	if w == nil {
		log.Info("stopping")
		return nil
	}
	// The grace period ends early on a second SIGINT or SIGTERM: jobs still in
	// flight are then cancelled and handed back to NATS. The second signal is
	// listened for before the line that invites it is logged.
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), cfg.Worker.GracePeriod)
	defer cancelGrace()
	stopCtx, cancelStop := signal.NotifyContext(graceCtx, syscall.SIGINT, syscall.SIGTERM)
	defer cancelStop()
	log.Info("stopping: finishing jobs in flight; a second signal stops at once", zap.Duration("grace_period", cfg.Worker.GracePeriod))
	if err := w.Stop(stopCtx); err != nil {
		// Jobs cut off were handed back to NATS; that is a clean exit too.
		log.Warn("grace period over", zap.Error(err))
	}
	return nil
}

// stopWithin stops a component, giving it a few seconds.
func stopWithin(log *zap.Logger, name string, stop func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := stop(ctx); err != nil {
		log.Warn("stop "+name, zap.Error(err))
	}
}

// health answers /healthz and /readyz.
type health struct {
	nc    *nats.Conn
	live  func() bool // the NATS connection can serve: broker.ConnWatch.Alive
	ready atomic.Bool
	// circuit, once the worker runs, says whether it stopped taking jobs.
	circuit atomic.Pointer[func() (bool, string)]
}

// circuitOpen is why the worker's circuit is open, or "".
func (h *health) circuitOpen() string {
	f := h.circuit.Load()
	if f == nil {
		return ""
	}
	if open, why := (*f)(); open {
		return why
	}
	return ""
}

// routes is the HTTP API of docs/contract.md ("Gateway callbacks").
func routes(receiver http.Handler, h *health, metricsHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler)
	mux.Handle(dlr.PathDLR, receiver)
	mux.Handle(dlr.PathMO, receiver)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if h.live != nil && !h.live() {
			http.Error(w, "not live: nats_connection_lost", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !h.ready.Load():
			http.Error(w, "not ready: starting or stopping", http.StatusServiceUnavailable)
		case !h.nc.IsConnected():
			http.Error(w, "not ready: NATS is not connected", http.StatusServiceUnavailable)
		case h.circuitOpen() != "":
			http.Error(w, "not ready: gateway circuit open: "+h.circuitOpen(), http.StatusServiceUnavailable)
		default:
			_, _ = io.WriteString(w, "ready\n")
		}
	})
	return mux
}

// loopbackAddr is addr as this host reaches it: an unspecified address (":8080")
// becomes 127.0.0.1.
func loopbackAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return addr.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

// gateway is what jetsms needs of a gateway client: sending, and looking a
// message up for reconciliation and `jetsms get --gateway`.
type gateway interface {
	worker.Sender
	resolve.Looker
	Close()
}

// Both REST clients are gateways.
var (
	_ gateway = (*dispatcher.RESTv2)(nil)
	_ gateway = (*dispatcher.RESTv1)(nil)
)

// newGateway is the client of gateway.api at url.
func newGateway(cfg config.Config, url string, maxConns int) (gateway, error) {
	dc := dispatcher.Config{
		URL: url, Username: cfg.Gateway.Username, Password: cfg.Gateway.Password,
		Timeout: cfg.Gateway.Timeout, MaxConns: maxConns,
	}
	var (
		gw  gateway
		err error
	)
	if cfg.Gateway.API == config.APIv1 {
		gw, err = dispatcher.NewRESTv1(dc)
	} else {
		gw, err = dispatcher.NewRESTv2(dc)
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	return gw, nil
}

// batcher gathers the jobs of broadcast lanes into REST v1 broadcasts, when the
// gateway speaks v1 and a lane asks for it.
func batcher(cfg config.Config, gw gateway) worker.Sender {
	v1, ok := gw.(*dispatcher.RESTv1)
	if !ok || len(cfg.Lane.Broadcast) == 0 {
		return nil
	}
	b, err := dispatcher.NewBatcher(v1, dispatcher.BatchConfig{MaxSize: cfg.Gateway.BroadcastMax, MaxWait: cfg.Gateway.BroadcastWait})
	if err != nil {
		return nil // the settings are checked: positive size and wait
	}
	return b
}

// openLedger opens the job ledger bucket as configured.
func openLedger(ctx context.Context, js jetstream.JetStream, cfg config.Config, names subjects.Names) (*ledger.Ledger, error) {
	bucket := cfg.Ledger.Bucket
	if bucket == "" {
		bucket = names.LedgerBucket()
	}
	return ledger.Open(ctx, js, ledger.Config{Bucket: bucket, Retention: cfg.Ledger.Retention, Replicas: cfg.Streams.Replicas})
}

// laneOptions turns the configured lane options into the worker's.
func laneOptions(cfg config.Config) map[string]worker.LaneOptions {
	out := make(map[string]worker.LaneOptions, len(cfg.Lanes))
	for _, l := range cfg.LaneConfigs() {
		out[l.Name] = worker.LaneOptions{
			Marketing: l.Marketing, Ambiguous: l.Ambiguous, HoldFor: l.HoldFor, HoldThen: l.HoldThen, MaxAge: l.MaxAge,
			MinShare: l.MinShare, Broadcast: l.Broadcast,
		}
	}
	return out
}

// submitLease outlasts one gateway request and the longest a worker spends
// recording its outcome while NATS is away (worker.RecordMax).
func submitLease(cfg config.Config) time.Duration {
	return cfg.Gateway.Timeout + worker.RecordMax + 5*time.Second
}

// connectConfig is how every command reaches NATS: url with the configured
// credentials and TLS files.
func connectConfig(cfg config.Config, url, name string) broker.ConnectConfig {
	return broker.ConnectConfig{
		URL: url, Name: name,
		Creds: cfg.NATS.Creds, User: cfg.NATS.User, Password: cfg.NATS.Password, Token: cfg.NATS.Token,
		TLSCA: cfg.NATS.TLS.CA, TLSCert: cfg.NATS.TLS.Cert, TLSKey: cfg.NATS.TLS.Key,
	}
}

// startSandbox serves the simulator on sandbox.listen and returns its base URL and a
// function that stops it.
func startSandbox(cfg config.Config, callbackURL string, log *zap.Logger) (string, func(), error) {
	mix, err := gwsim.ParseMix(cfg.Sandbox.Faults)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox.faults: %w", err)
	}
	dlrMix, err := gwsim.ParseDLRMix(cfg.Sandbox.DLRMix)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox.dlr_mix: %w", err)
	}
	simCfg := gwsim.Config{
		Username: cfg.Gateway.Username, Password: cfg.Gateway.Password.Reveal(),
		Latency: cfg.Sandbox.Latency, Faults: mix, DLRDelay: cfg.Sandbox.DLRDelay, DLRMix: dlrMix,
		API: cfg.Gateway.API,
	}
	if cfg.Sandbox.CallbackURL != "" {
		callbackURL = cfg.Sandbox.CallbackURL
	}
	if callbackURL != "" {
		base, err := url.Parse(strings.TrimSuffix(callbackURL, "/"))
		if err != nil {
			return "", nil, errors.New("sandbox.callback_url: must be an http(s) URL")
		}
		if base.User == nil && cfg.Callbacks.Username != "" {
			base.User = url.UserPassword(cfg.Callbacks.Username, cfg.Callbacks.Password.Reveal())
		}
		simCfg.DLRURL = base.JoinPath(dlr.PathDLR).String()
		simCfg.MOURL = base.JoinPath(dlr.PathMO).String()
	}
	sim, err := gwsim.New(simCfg)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Sandbox.Listen)
	if err != nil {
		return "", nil, fmt.Errorf("sandbox.listen: %w", err)
	}
	srv := &http.Server{
		Handler:           sim,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("sandbox")),
	}
	// Shutdown does not end requests the simulator holds on purpose (timeout
	// faults); closing the simulator does.
	srv.RegisterOnShutdown(sim.Close)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("sandbox server", zap.Error(err))
		}
	}()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}
	return "http://" + ln.Addr().String(), stop, nil
}

// runSandbox is `jetsms sandbox`: the simulator alone, until interrupted.
func runSandbox(ctx context.Context, args []string, _, stderr io.Writer) error {
	cfg, err := loadConfig("sandbox", args, stderr, func(_ *flag.FlagSet, f *config.Flags) {
		// gateway.username and gateway.password, when set, are the credentials the
		// simulator requires; the gateway's URL is not its business.
		f.Client()
	})
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	url, stop, err := startSandbox(cfg, "", log)
	if err != nil {
		return err
	}
	log.Info("gateway simulator listening", zap.String("url", url),
		zap.Duration("latency", cfg.Sandbox.Latency), zap.String("faults", cfg.Sandbox.Faults))
	<-ctx.Done()
	stop()
	return nil
}

// runConfig is `jetsms config`: the effective configuration, secrets redacted.
func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	// Checked as `jetsms worker` would check it.
	cfg, err := loadConfig("config", args, stderr, nil)
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, cfg.Redacted())
	return err
}

// natsHeader builds a header with one value per key.
func natsHeader(kv ...string) nats.Header {
	h := nats.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}
