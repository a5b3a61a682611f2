package app

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/admin"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/ratelimit"
	"github.com/jetsms/jetsms/worker"
)

// The components' start and stop functions, in the order of New's list.

// startEmbedded starts the embedded NATS server when no URL is configured.
func (a *App) startEmbedded(context.Context) error {
	a.natsURL = a.cfg.NATS.URL
	if a.natsURL != "" {
		return nil
	}
	emb, err := broker.StartEmbedded(broker.EmbeddedConfig{
		StoreDir:     a.cfg.NATS.Embedded.StoreDir,
		Listen:       a.cfg.NATS.Embedded.Listen,
		SyncAlways:   a.cfg.NATS.Embedded.Sync.Always,
		SyncInterval: a.cfg.NATS.Embedded.Sync.Interval,
		// The server requires auth: nats.* credentials when set, else a password
		// it generates in store_dir (which ConnectConfig finds).
		Auth: broker.Credentials{User: a.cfg.NATS.User, Password: a.cfg.NATS.Password, Token: a.cfg.NATS.Token},
	}, a.log)
	if err != nil {
		return err
	}
	a.emb = emb
	a.natsURL = emb.ClientURL()
	a.log.Info("embedded NATS started", zap.String("url", a.natsURL),
		zap.String("store_dir", a.cfg.NATS.Embedded.StoreDir), zap.Stringer("sync", a.cfg.NATS.Embedded.Sync),
		zap.String("user", broker.EmbeddedUser), zap.String("password_file", emb.PasswordFile()))
	return nil
}

func (a *App) stopEmbedded(context.Context) error {
	if a.emb != nil {
		a.emb.Stop()
	}
	return nil
}

// startConnection connects to NATS, makes sure of the streams and opens the
// buckets: the job ledger (the send guard, and how receipts find their job), the
// opt-out list and the campaign records. It also registers the backlog metric,
// read from the consumers when scraped.
func (a *App) startConnection(ctx context.Context) (err error) {
	nc, err := broker.Connect(ctx, ConnectConfig(a.cfg, a.natsURL, "jetsms"), a.log)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// A component that fails to start is not stopped: close what opened.
			_ = a.stopConnection(ctx)
		}
	}()
	a.nc = nc
	if a.js, err = jetstream.New(nc); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if err := broker.EnsureStreams(ctx, a.js, broker.StreamsConfig{
		Names: a.names, JobsMaxBytes: a.cfg.Streams.JobsMaxBytes, MaxAge: a.cfg.Streams.MaxAge, Replicas: a.cfg.Streams.Replicas,
	}); err != nil {
		return err
	}
	// The ledger has a connection of its own. The send guard's claim is a round
	// trip made while the job holds its submission slot, right before its POST;
	// on the shared connection its answer queues behind the job deliveries,
	// acknowledgements and events that connection carries. On its own
	// connection the claim took about 1 ms less through a 20 ms gateway at 64
	// in flight (BenchmarkPipelineOnly, 2026-12-03: 2.8–3.1 ms against
	// 3.6–4.9 ms), and the slot with it.
	if a.ncLedger, err = broker.Connect(ctx, ConnectConfig(a.cfg, a.natsURL, "jetsms-ledger"), a.log); err != nil {
		return err
	}
	jsLedger, err := jetstream.New(a.ncLedger)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if a.ledger, err = OpenLedger(ctx, jsLedger, a.cfg, a.names); err != nil {
		return err
	}
	if a.optOuts, err = optout.Open(ctx, a.js, optout.Config{Bucket: a.names.OptOutBucket(), Replicas: a.cfg.Streams.Replicas}); err != nil {
		return err
	}
	if a.campaigns, err = campaign.Open(ctx, a.js, campaign.StoreConfig{Bucket: a.names.CampaignBucket(), Replicas: a.cfg.Streams.Replicas}); err != nil {
		return err
	}
	a.pub = events.New(a.js, a.names)
	if a.backlog, err = metrics.NewBacklogCollector(a.js, a.names, a.cfg.Lanes); err != nil {
		return err
	}
	return a.m.Register(a.backlog)
}

func (a *App) stopConnection(context.Context) error {
	for _, nc := range a.Conns() {
		if nc != nil {
			_ = nc.FlushTimeout(5 * time.Second)
			nc.Close()
		}
	}
	return nil
}

// startAdmin serves the admin listener: /metrics, and /healthz and /readyz,
// which report the NATS connection (and, once it runs, the worker's circuit).
func (a *App) startAdmin(ctx context.Context) error {
	a.admin.Handle("GET /metrics", a.m.Handler())
	conns := a.Conns()
	a.admin.ReadyUnless(admin.ReasonNATSDisconnected, func() bool {
		return slices.ContainsFunc(conns, func(nc *nats.Conn) bool { return !nc.IsConnected() })
	})
	a.admin.LiveUnless(admin.ReasonNATSClosed, func() bool { return slices.ContainsFunc(conns, (*nats.Conn).IsClosed) })
	return a.admin.Start(ctx)
}

func (a *App) stopAdmin(ctx context.Context) error { return a.admin.Stop(ctx) }

// startListener builds the callback receiver and binds its listener.
func (a *App) startListener(context.Context) error {
	var err error
	a.receiver, err = dlr.New(dlr.Config{
		Username: a.cfg.Callbacks.Username, Password: a.cfg.Callbacks.Password,
		AllowUnauthenticated: a.cfg.Callbacks.AllowUnauthenticated, AllowFrom: a.cfg.Callbacks.AllowFromPrefixes(),
		PublishTimeout: a.opt.CallbackPublishTimeout, Now: a.opt.Now, Metrics: a.m,
	}, a.js, a.names, a.log)
	if err != nil {
		return fmt.Errorf("callbacks: %w", err)
	}
	a.ln = a.opt.CallbackListener
	if a.ln == nil {
		if a.ln, err = net.Listen("tcp", a.cfg.Callbacks.Listen); err != nil {
			return fmt.Errorf("callbacks.listen: %w", err)
		}
	}
	a.callbackURL = "http://" + loopbackAddr(a.ln.Addr())
	return nil
}

// stopListener closes the listener, should the HTTP server not have served it.
func (a *App) stopListener(context.Context) error {
	if a.ln != nil {
		_ = a.ln.Close()
	}
	return nil
}

// startSandbox starts the built-in simulator when the gateway is "sandbox",
// sending its receipts to this process's receiver.
func (a *App) startSandbox(context.Context) error {
	a.gatewayURL = a.cfg.Gateway.URL
	if a.opt.GatewayURL != "" {
		a.gatewayURL = a.opt.GatewayURL
		return nil
	}
	if !a.cfg.IsSandbox() {
		return nil
	}
	sb, err := StartSandbox(a.cfg, a.callbackURL, a.log)
	if err != nil {
		return err
	}
	a.sandbox = sb
	a.gatewayURL = sb.URL
	a.log.Warn("gateway: built-in simulator, no SMS leaves this machine; set gateway.url, gateway.username and gateway.password to send for real",
		zap.String("url", a.gatewayURL))
	return nil
}

func (a *App) stopSandbox(context.Context) error {
	if a.sandbox != nil {
		a.sandbox.Stop()
	}
	return nil
}

// startGateway builds the client of gateway.api.
func (a *App) startGateway(context.Context) error {
	gw, err := NewGateway(a.cfg, a.gatewayURL, a.cfg.Worker.Concurrency)
	if err != nil {
		return err
	}
	a.gateway = gw
	return nil
}

func (a *App) stopGateway(context.Context) error {
	if a.gateway != nil {
		a.gateway.Close()
	}
	return nil
}

// startBatcher starts the batcher that gathers the jobs of broadcast lanes into
// REST v1 broadcasts, when the gateway speaks v1 and a lane asks for it.
func (a *App) startBatcher(ctx context.Context) error {
	v1, ok := a.gateway.(*dispatcher.RESTv1)
	if a.role != RoleWorker || !ok || len(a.cfg.Lane.Broadcast) == 0 {
		return nil
	}
	b, err := dispatcher.NewBatcher(v1, dispatcher.BatchConfig{MaxSize: a.cfg.Gateway.BroadcastMax, MaxWait: a.cfg.Gateway.BroadcastWait})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := b.Start(ctx); err != nil {
		return err
	}
	a.batcher = b
	return nil
}

func (a *App) stopBatcher(ctx context.Context) error {
	if a.batcher == nil {
		return nil
	}
	return a.batcher.Stop(ctx)
}

// startResolver starts the resolver of stored callbacks.
func (a *App) startResolver(ctx context.Context) error {
	res, err := resolve.New(resolve.Config{
		Names: a.names, Ledger: a.ledger, OptOuts: a.optOuts, Publisher: a.pub,
		ResolveWithin: a.cfg.Callbacks.ResolveWithin, RetryDelay: a.opt.ResolveRetryDelay,
		Metrics: a.m, Now: a.opt.Now,
	}, a.js, a.log)
	if err != nil {
		return err
	}
	if err := res.Start(ctx); err != nil {
		return err
	}
	a.resolver = res
	return nil
}

func (a *App) stopResolver(ctx context.Context) error {
	if a.resolver == nil {
		return nil
	}
	return a.resolver.Stop(ctx)
}

// startReconciler starts the look-ups of jobs with no final receipt.
func (a *App) startReconciler(ctx context.Context) error {
	rec, err := resolve.NewReconciler(resolve.ReconcilerConfig{
		Names: a.names, Ledger: a.ledger, Publisher: a.pub, Gateway: a.gateway,
		After: a.cfg.Callbacks.ReconcileAfter, Metrics: a.m, Now: a.opt.Now,
	}, a.js, a.log)
	if err != nil {
		return err
	}
	if err := rec.Start(ctx); err != nil {
		return err
	}
	a.reconciler = rec
	return nil
}

func (a *App) stopReconciler(ctx context.Context) error {
	if a.reconciler == nil {
		return nil
	}
	return a.reconciler.Stop(ctx)
}

// startGate starts the campaign gate: each campaign's state, from a watch.
func (a *App) startGate(ctx context.Context) error {
	gate, err := campaign.NewGate(a.campaigns, a.log)
	if err != nil {
		return err
	}
	if err := gate.Start(ctx); err != nil {
		return err
	}
	a.gate = gate
	return nil
}

func (a *App) stopGate(ctx context.Context) error {
	if a.gate == nil {
		return nil
	}
	return a.gate.Stop(ctx)
}

// startTracker starts the tracker that keeps the campaigns' counts from the
// status events.
func (a *App) startTracker(ctx context.Context) error {
	tr, err := campaign.NewTracker(campaign.TrackerConfig{Names: a.names, Store: a.campaigns, Gate: a.gate}, a.js, a.log)
	if err != nil {
		return err
	}
	if err := tr.Start(ctx); err != nil {
		return err
	}
	a.tracker = tr
	return nil
}

func (a *App) stopTracker(ctx context.Context) error {
	if a.tracker == nil {
		return nil
	}
	return a.tracker.Stop(ctx)
}

// startRate builds the worker's limiter: adaptive (cut on 429/503, climbing
// back), and with rate.shared divided among the replicas that announce
// themselves in the replicas bucket. Options.Limiter replaces both.
func (a *App) startRate(ctx context.Context) error {
	if a.role != RoleWorker {
		return nil
	}
	if a.opt.Limiter != nil {
		a.limiter = a.opt.Limiter
		return nil
	}
	cfg, m := a.cfg, a.m
	limiter, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{
		PerSecond: cfg.Rate.PerSecond, Burst: cfg.Rate.Burst,
		OnChange: func(c ratelimit.Change) {
			a.log.Info("rate changed", zap.String("reason", string(c.Reason)), zap.Float64("per_second", c.PerSecond),
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
	a.limiter = limiter
	if !cfg.Rate.Shared {
		return nil
	}
	share, err := ratelimit.NewShare(ratelimit.ShareConfig{Bucket: a.names.ReplicasBucket()}, a.js, limiter, a.log)
	if err != nil {
		return fmt.Errorf("rate: %w", err)
	}
	if err := share.Start(ctx); err != nil {
		return fmt.Errorf("rate: %w", err)
	}
	a.share = share
	return nil
}

func (a *App) stopRate(ctx context.Context) error {
	if a.share == nil {
		return nil
	}
	return a.share.Stop(ctx)
}

// startWorker starts the worker, which takes jobs and sends them.
func (a *App) startWorker(ctx context.Context) error {
	if a.role != RoleWorker {
		return nil
	}
	cfg := a.cfg
	var send worker.Sender = a.gateway
	if a.opt.WrapGateway != nil {
		send = a.opt.WrapGateway(send)
	}
	wcfg := worker.Config{
		Names: a.names, Lanes: cfg.Lanes, LaneOptions: LaneOptions(cfg),
		Concurrency: cfg.Worker.Concurrency, ConcurrencyMin: cfg.Worker.ConcurrencyMin,
		MaxAttempts: cfg.Worker.MaxAttempts, AckWait: cfg.Worker.AckWait, MaxSegments: cfg.Jobs.MaxSegments,
		Ledger: a.ledger, OptOuts: a.optOuts, SubmitLease: SubmitLease(cfg),
		RateInSegments:  cfg.Rate.Unit == config.RateUnitSegments,
		Destination:     worker.DestinationLimit{Max: cfg.Rate.DestinationMax, Window: cfg.Rate.DestinationWindow},
		Batcher:         a.batcherOrNil(),
		Campaigns:       a.gate,
		Metrics:         a.m,
		OnCircuit:       a.m.SetCircuitOpen,
		LogDetails:      !cfg.Log.Redact,
		ReleaseDelayMin: a.opt.ReleaseDelayMin,
		Now:             a.opt.Now,
	}
	if a.opt.WorkerConfig != nil {
		a.opt.WorkerConfig(&wcfg)
	}
	w, err := worker.New(wcfg, a.js, send, a.limiter, a.pub, a.log)
	if err != nil {
		return err
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	a.worker = w
	// While the circuit is open the worker takes no jobs: not ready (the worker's
	// log line says why).
	a.admin.ReadyUnless(admin.ReasonCircuitOpen, func() bool { open, _ := w.CircuitOpen(); return open })
	return nil
}

// batcherOrNil is the batcher as the worker's Sender: nil (not a nil pointer)
// when there is none.
func (a *App) batcherOrNil() worker.Sender {
	if a.batcher == nil {
		return nil
	}
	return a.batcher
}

// stopWorker stops the worker within ctx: jobs still in hand when it ends are
// cancelled and handed back to NATS.
func (a *App) stopWorker(ctx context.Context) error {
	if a.worker == nil {
		return nil
	}
	return a.worker.Stop(ctx)
}

// startHTTP serves the callbacks on the callback listener.
func (a *App) startHTTP(context.Context) error {
	var cb http.Handler = a.receiver
	if a.opt.WrapCallbacks != nil {
		cb = a.opt.WrapCallbacks(cb)
	}
	srv, err := dlr.NewServer(dlr.ServerConfig{Addr: a.ln.Addr().String()}, a.handlers.wrap(a.routes(cb)), a.log)
	if err != nil {
		return fmt.Errorf("callbacks: %w", err)
	}
	a.httpSrv = srv
	a.httpDone = make(chan struct{})
	go func() {
		defer close(a.httpDone)
		if err := srv.Serve(a.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("callback server", zap.Error(err))
		}
	}()
	return nil
}

// stopHTTP stops taking requests and waits for the requests in hand, each
// callback stored before its 200. Should ctx end first (a hard stop) the
// connections are closed, which cancels the requests' contexts, and it still
// waits for their handlers.
func (a *App) stopHTTP(ctx context.Context) error {
	if a.httpSrv == nil {
		return nil
	}
	err := a.httpSrv.Shutdown(ctx)
	if err != nil {
		_ = a.httpSrv.Close()
	}
	<-a.httpDone
	a.handlers.close()
	return err
}

// handlerGate counts the HTTP handlers running and, once closed, lets no more
// start, so that stopHTTP knows when none runs.
type handlerGate struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func (g *handlerGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		g.wg.Add(1)
		g.mu.Unlock()
		defer g.wg.Done()
		h.ServeHTTP(w, r)
	})
}

// close lets no handler start and waits for those running.
func (g *handlerGate) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
}

// startReady makes the process ready.
func (a *App) startReady(context.Context) error {
	a.admin.SetReady(true)
	a.log.Info("jetsms running", zap.String("version", a.opt.Version), zap.String("nats", redact.URL(a.natsURL)),
		zap.String("callbacks", a.callbackURL+dlr.PathDLR), zap.String("admin", "http://"+a.admin.Addr()),
		zap.Bool("sending", a.worker != nil),
		zap.String("jobs", a.names.SendAll()), zap.Float64("rate_per_second", a.cfg.Rate.PerSecond))
	return nil
}

func (a *App) stopReady(context.Context) error {
	a.admin.SetReady(false)
	return nil
}

// routes is the public HTTP API of docs/contract.md ("Gateway callbacks"): the
// callback paths only; anything else is 404. /metrics, /healthz and /readyz are
// on the admin listener.
func (a *App) routes(callbacks http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(dlr.PathDLR, callbacks)
	mux.Handle(dlr.PathMO, callbacks)
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
