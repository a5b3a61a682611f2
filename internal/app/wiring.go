package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/worker"
)

// The translations of the configuration into the parts' own settings, shared by
// the process and the commands that reach NATS or the gateway on their own.

// Gateway is what jetsms needs of a gateway client: sending, and looking a
// message up for reconciliation and `jetsms get --gateway`.
type Gateway interface {
	worker.Sender
	resolve.Looker
	worker.Prober // checks the gateway without sending: at start and while the circuit is open
	Close()
}

// Both REST clients are gateways.
var (
	_ Gateway = (*dispatcher.RESTv2)(nil)
	_ Gateway = (*dispatcher.RESTv1)(nil)
)

// NewGateway is the client of gateway.api at url.
func NewGateway(cfg config.Config, url string, maxConns int) (Gateway, error) {
	dc := dispatcher.Config{
		URL: url, Username: cfg.Gateway.Username, Password: cfg.Gateway.Password,
		Timeout: cfg.Gateway.Timeout, MaxConns: maxConns,
	}
	var (
		gw  Gateway
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

// OpenLedger opens the job ledger bucket as configured.
func OpenLedger(ctx context.Context, js jetstream.JetStream, cfg config.Config, names subjects.Names) (*ledger.Ledger, error) {
	bucket := cfg.Ledger.Bucket
	if bucket == "" {
		bucket = names.LedgerBucket()
	}
	// A scheduled job's entry outlives its schedule by the reconciler's wait.
	return ledger.Open(ctx, js, ledger.Config{Bucket: bucket, Retention: cfg.Ledger.Retention, Replicas: cfg.Streams.Replicas,
		HoldAfterSchedule: cfg.Callbacks.ReconcileAfter})
}

// LaneOptions turns the configured lane options into the worker's.
func LaneOptions(cfg config.Config) map[string]worker.LaneOptions {
	out := make(map[string]worker.LaneOptions, len(cfg.Lanes))
	for _, l := range cfg.LaneConfigs() {
		out[l.Name] = worker.LaneOptions{
			Marketing: l.Marketing, Ambiguous: l.Ambiguous, HoldFor: l.HoldFor, HoldThen: l.HoldThen, MaxAge: l.MaxAge,
			MinShare: l.MinShare, Broadcast: l.Broadcast,
		}
	}
	return out
}

// SubmitLease outlasts one gateway request and the longest a worker spends
// recording its outcome while NATS is away (worker.RecordMax).
func SubmitLease(cfg config.Config) time.Duration {
	return cfg.Gateway.Timeout + worker.RecordMax + 5*time.Second
}

// ConnectConfig is how every command reaches NATS: url with the configured
// credentials and TLS files, else, for a URL of this machine, the embedded
// server's generated password from nats.embedded.store_dir.
func ConnectConfig(cfg config.Config, url, name string) broker.ConnectConfig {
	return broker.ConnectConfig{
		URL: url, Name: name,
		Creds: cfg.NATS.Creds, User: cfg.NATS.User, Password: cfg.NATS.Password, Token: cfg.NATS.Token,
		TLSCA: cfg.NATS.TLS.CA, TLSCert: cfg.NATS.TLS.Cert, TLSKey: cfg.NATS.TLS.Key,
		// The embedded server's generated password, for URLs of this machine.
		LocalCredentialsDir: cfg.NATS.Embedded.StoreDir,
	}
}

// Sandbox is the built-in gateway simulator served on sandbox.listen.
type Sandbox struct {
	// URL is the simulator's base URL, with the real gateway's base path of
	// gateway.api (the simulator serves its API there only).
	URL  string
	srv  *http.Server
	done chan struct{}
}

// StartSandbox serves the simulator on sandbox.listen, sending receipts and
// inbound messages to callbackURL (sandbox.callback_url when set; none when both
// are empty).
func StartSandbox(cfg config.Config, callbackURL string, log *zap.Logger) (*Sandbox, error) {
	mix, err := gwsim.ParseMix(cfg.Sandbox.Faults)
	if err != nil {
		return nil, fmt.Errorf("sandbox.faults: %w", err)
	}
	dlrMix, err := gwsim.ParseDLRMix(cfg.Sandbox.DLRMix)
	if err != nil {
		return nil, fmt.Errorf("sandbox.dlr_mix: %w", err)
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
			return nil, errors.New("sandbox.callback_url: must be an http(s) URL")
		}
		if base.User == nil && cfg.Callbacks.Username != "" {
			base.User = url.UserPassword(cfg.Callbacks.Username, cfg.Callbacks.Password.Reveal())
		}
		simCfg.DLRURL = base.JoinPath(dlr.PathDLR).String()
		simCfg.MOURL = base.JoinPath(dlr.PathMO).String()
	}
	sim, err := gwsim.New(simCfg)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Sandbox.Listen)
	if err != nil {
		sim.Close()
		return nil, fmt.Errorf("sandbox.listen: %w", err)
	}
	if log == nil {
		log = zap.NewNop()
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
	sb := &Sandbox{URL: "http://" + ln.Addr().String() + gwsim.BasePathFor(cfg.Gateway.API), srv: srv, done: make(chan struct{})}
	go func() {
		defer close(sb.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("sandbox server", zap.Error(err))
		}
	}()
	return sb, nil
}

// Stop stops the simulator and waits for its server.
func (sb *Sandbox) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = sb.srv.Shutdown(ctx)
	<-sb.done
}
