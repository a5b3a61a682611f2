// Package app is jetsms's composition root: it builds a process from the
// configuration as an ordered list of components, starts them in order and stops
// them in reverse. cmd/jetsms and the test suites run the process through it, so
// there is one wiring of the parts.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	"github.com/jetsms/jetsms/internal/console"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/ratelimit"
	"github.com/jetsms/jetsms/worker"
)

// SetupTimeout bounds the start of the whole process: the steps that talk to NATS
// and start the consumers.
const SetupTimeout = 30 * time.Second

// StopTimeoutDefault is how long each component other than the worker is given
// to stop.
const StopTimeoutDefault = 10 * time.Second

// Role is what a process runs besides the callback receiver and the resolver.
type Role int

// The roles.
const (
	// RoleWorker sends jobs too (`jetsms run`, `jetsms worker`).
	RoleWorker Role = iota
	// RoleReceiver receives and resolves only (`jetsms receiver`).
	RoleReceiver
)

// Options are what a caller changes in the process the configuration describes.
// cmd/jetsms sets only Logger and Version; tests set what they must to watch or
// pace the process. The zero value is the configured process.
type Options struct {
	// Logger is the process's logger; nil logs nothing.
	Logger *zap.Logger
	// Version is reported in the build-info metric and the start line.
	Version string
	// CallbackListener, when set, is where the callbacks are served instead of
	// callbacks.listen; the process closes it when it stops.
	CallbackListener net.Listener
	// WrapCallbacks, when set, stands in front of the callback receiver on the
	// callback routes.
	WrapCallbacks func(http.Handler) http.Handler
	// GatewayURL, when set, is the gateway the process sends to instead of
	// gateway.url; the built-in simulator is not started.
	GatewayURL string
	// WrapGateway, when set, stands between the worker and the gateway client.
	WrapGateway func(worker.Sender) worker.Sender
	// Limiter, when set, paces the worker instead of the configured adaptive
	// limiter (and its share among replicas).
	Limiter worker.Limiter
	// Now, when set, is the clock of the worker, the resolver, the reconciler and
	// the receiver.
	Now func() time.Time
	// ReleaseDelayMin, ResolveRetryDelay and CallbackPublishTimeout, when set,
	// shorten the worker's first release delay, the resolver's first retry delay
	// and the receiver's wait for JetStream (see worker.Config, resolve.Config,
	// dlr.Config), so a test sees retries in milliseconds.
	ReleaseDelayMin        time.Duration
	ResolveRetryDelay      time.Duration
	CallbackPublishTimeout time.Duration
	// WorkerConfig, when set, adjusts the worker's configuration after the
	// process has built it (a test's circuit probe times, say).
	WorkerConfig func(*worker.Config)
	// StopTimeout is how long each component other than the worker is given to
	// stop; zero means StopTimeoutDefault.
	StopTimeout time.Duration
}

// component is one part of the process. start builds and starts it; stop, when
// set, stops it and returns only when it has stopped.
type component struct {
	name  string
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
	// grace: stop gets the caller's context (the worker finishes the jobs in hand
	// within the grace period); the others get Options.StopTimeout each.
	grace bool
}

// App is one jetsms process. Build it with New, run it with Start and Stop.
type App struct {
	cfg   config.Config
	role  Role
	opt   Options
	log   *zap.Logger
	names subjects.Names
	m     *metrics.Metrics

	comps []component

	mu      sync.Mutex
	started int // how many of comps have started

	// admin serves /metrics, /healthz and /readyz apart from the callbacks; its
	// settings are checked in New, before anything starts.
	admin *admin.Server

	// Set by the components as they start; read once Start has returned.
	emb     *broker.Embedded
	natsURL string
	nc      *nats.Conn
	js      jetstream.JetStream
	// ncLedger carries the job ledger's reads and writes alone (see
	// startConnection).
	ncLedger    *nats.Conn
	ledger      *ledger.Ledger
	optOuts     *optout.List
	pub         *events.Publisher
	campaigns   *campaign.Store
	ln          net.Listener
	receiver    *dlr.Receiver
	callbackURL string
	sandbox     *Sandbox
	gatewayURL  string
	gateway     Gateway
	batcher     *dispatcher.Batcher
	resolver    *resolve.Resolver
	reconciler  *resolve.Reconciler
	gate        *campaign.Gate
	tracker     *campaign.Tracker
	limiter     worker.Limiter
	share       *ratelimit.Share
	worker      *worker.Worker
	backlog     *metrics.BacklogCollector
	console     *console.Console
	httpSrv     *http.Server
	httpDone    chan struct{}
	handlers    handlerGate
}

// New builds the process of role from cfg, which should have been checked
// (config.Flags.Load does). Nothing runs until Start.
func New(cfg config.Config, role Role, opt Options) (*App, error) {
	names, err := subjects.New(cfg.Streams.Prefix)
	if err != nil {
		return nil, fmt.Errorf("streams.prefix: %w", err)
	}
	log := opt.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if opt.StopTimeout <= 0 {
		opt.StopTimeout = StopTimeoutDefault
	}
	// Callbacks are authenticated by default: the built-in simulator gets
	// generated credentials, which its callback URLs carry.
	if opt.GatewayURL == "" {
		if _, err := cfg.SandboxCallbackCredentials(); err != nil {
			return nil, err
		}
	}
	adm, err := admin.New(admin.Config{Listen: cfg.Admin.Listen, Username: cfg.Admin.Username,
		Password: cfg.Admin.Password, AllowUnauthenticated: cfg.Admin.AllowUnauthenticated}, log)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, role: role, opt: opt, log: log, names: names, m: metrics.New(), admin: adm}
	a.m.SetBuildInfo(opt.Version)
	a.m.InitLanes(cfg.Lanes...)

	// The components in start order; they stop in the reverse order. Why each
	// stands where it does:
	a.comps = []component{
		// NATS first and last: everything else publishes to it or reads from it.
		{name: "embedded NATS", start: a.startEmbedded, stop: a.stopEmbedded},
		// The connection, the streams and the buckets. The connection closes after
		// everything that publishes has stopped, so every event of a job in flight
		// is flushed first.
		{name: "NATS connection", start: a.startConnection, stop: a.stopConnection},
		// The admin listener (metrics, health, readiness) serves from here on, so
		// probes see the start-up and the stop; it stops just before the
		// connection whose state /healthz and /readyz report.
		{name: "admin listener", start: a.startAdmin, stop: a.stopAdmin},
		// The callback listener is bound early, so the simulator below knows where
		// to send receipts; it is served only near the end (the kernel holds
		// connections meanwhile), once the parts it feeds run.
		{name: "callback listener", start: a.startListener, stop: a.stopListener},
		// The built-in simulator stops after the worker and the reconciler, so
		// submissions and look-ups in flight get their answers.
		{name: "sandbox", start: a.startSandbox, stop: a.stopSandbox},
		// The gateway client closes after everything that sends or looks up.
		{name: "gateway client", start: a.startGateway, stop: a.stopGateway},
		// The REST v1 broadcast batcher sends through the client, and stops after
		// the worker whose jobs it gathers.
		{name: "broadcast batcher", start: a.startBatcher, stop: a.stopBatcher},
		// The resolver and the reconciler stop after the HTTP server and the
		// worker, so what those stored is resolved while they run; anything left
		// is resolved at the next start.
		{name: "resolver", start: a.startResolver, stop: a.stopResolver},
		{name: "reconciler", start: a.startReconciler, stop: a.stopReconciler},
		// The campaign gate (each campaign's state, for the worker) stops after the
		// worker and the tracker that read it.
		{name: "campaign gate", start: a.startGate, stop: a.stopGate},
		{name: "campaign tracker", start: a.startTracker, stop: a.stopTracker},
		// The account's rate, shared among the replicas: it stops after the
		// worker, handing this replica's part back.
		{name: "rate", start: a.startRate, stop: a.stopRate},
		// The worker starts last of the consumers and stops first, within the
		// grace period; the parts above outlive its jobs in flight.
		{name: "worker", start: a.startWorker, stop: a.stopWorker, grace: true},
		// The operators' console on the admin listener reads the worker and the
		// rate, so it starts after them; it stops before them, ending its live
		// event streams.
		{name: "console", start: a.startConsole, stop: a.stopConsole},
		// The HTTP server stops before the worker: it answers the callbacks in
		// hand, each stored before its 200, and takes no more, so the resolver,
		// which stops later, sees every callback it stored.
		{name: "HTTP server", start: a.startHTTP, stop: a.stopHTTP},
		// Readiness goes true once all runs, and false first on the way out.
		{name: "readiness", start: a.startReady, stop: a.stopReady},
	}
	return a, nil
}

// Start starts the components in order and returns once all run. On an error it
// stops those it started and returns the error; ctx ending during start-up gives
// its error.
func (a *App) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started > 0 {
		return errors.New("app: already started")
	}
	setupCtx, cancel := context.WithTimeout(ctx, SetupTimeout)
	defer cancel()
	for _, c := range a.comps {
		if err := c.start(setupCtx); err != nil {
			stopCtx, cancelStop := context.WithTimeout(context.Background(), a.opt.StopTimeout)
			_ = a.stopLocked(stopCtx) // logged; the start's error is the one to return
			cancelStop()
			if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
				return fmt.Errorf("%s: %w (%w)", c.name, err, ctx.Err())
			}
			return err
		}
		a.started++
	}
	return nil
}

// Stop stops the components that started, in reverse order, each returning only
// when it has stopped. ctx bounds the worker's stop (the grace period: jobs
// still in hand when it ends are handed back to NATS); every other component
// gets Options.StopTimeout. Stop logs each component's error and returns them all. It is
// safe twice and without Start.
func (a *App) Stop(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopLocked(ctx)
}

func (a *App) stopLocked(ctx context.Context) error {
	var errs []error
	for ; a.started > 0; a.started-- {
		c := a.comps[a.started-1]
		if c.stop == nil {
			continue
		}
		var err error
		if c.grace {
			err = c.stop(ctx)
		} else {
			sctx, cancel := context.WithTimeout(context.Background(), a.opt.StopTimeout)
			err = c.stop(sctx)
			cancel()
		}
		if err != nil {
			if c.grace {
				// Jobs cut off were handed back to NATS.
				a.log.Warn("grace period over", zap.String("component", c.name), zap.Error(err))
			} else {
				a.log.Warn("stop "+c.name, zap.Error(err))
			}
			errs = append(errs, fmt.Errorf("stop %s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// Conn is the process's NATS connection, once Start has returned.
func (a *App) Conn() *nats.Conn { return a.nc }

// Conns are all the process's NATS connections, Conn first, once Start has
// returned: a process is connected only when every one is.
func (a *App) Conns() []*nats.Conn { return []*nats.Conn{a.nc, a.ncLedger} }

// Names are the process's subjects, streams and buckets.
func (a *App) Names() subjects.Names { return a.names }

// NATSURL is the NATS server the process uses: nats.url or the embedded one's.
func (a *App) NATSURL() string { return a.natsURL }

// AdminAddr is the admin listener's host:port, once Start has returned.
func (a *App) AdminAddr() string { return a.admin.Addr() }

// Admin is the admin listener, on which further pages can be registered.
func (a *App) Admin() *admin.Server { return a.admin }

// CallbackURL is the base URL of the callback receiver as this host reaches it.
func (a *App) CallbackURL() string { return a.callbackURL }

// GatewayURL is the gateway the process sends to.
func (a *App) GatewayURL() string { return a.gatewayURL }

// The process's parts, once Start has returned.

// Ledger is the job ledger.
func (a *App) Ledger() *ledger.Ledger { return a.ledger }

// OptOuts is the opt-out list.
func (a *App) OptOuts() *optout.List { return a.optOuts }

// Campaigns is the campaign store.
func (a *App) Campaigns() *campaign.Store { return a.campaigns }

// Receiver is the callback receiver.
func (a *App) Receiver() *dlr.Receiver { return a.receiver }

// Resolver is the resolver of stored callbacks.
func (a *App) Resolver() *resolve.Resolver { return a.resolver }

// Reconciler looks up jobs with no final receipt.
func (a *App) Reconciler() *resolve.Reconciler { return a.reconciler }

// Gate is the campaign gate the worker asks.
func (a *App) Gate() *campaign.Gate { return a.gate }

// Tracker is the campaign tracker.
func (a *App) Tracker() *campaign.Tracker { return a.tracker }

// Worker is the worker; nil for RoleReceiver.
func (a *App) Worker() *worker.Worker { return a.worker }

// Metrics is the process's metrics.
func (a *App) Metrics() *metrics.Metrics { return a.m }
