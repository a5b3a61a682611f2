package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/admin"
	"github.com/jetsms/jetsms/internal/app"
	"github.com/jetsms/jetsms/internal/broker"
)

// loadConfig parses a command's flags and loads the configuration. prepare may set
// the command's own defaults and flags.
func loadConfig(name string, args []string, stderr io.Writer, prepare func(*flag.FlagSet, *config.Flags)) (config.Config, error) {
	fs := flag.NewFlagSet("jetsms "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.RegisterFlags(fs)
	if prepare != nil {
		prepare(fs, flags)
	}
	fs.Usage = func() { commandUsage(fs) }
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

// commandUsage is a command's -h: its own flags (and --config) first, then every
// setting under a heading.
func commandUsage(fs *flag.FlagSet) {
	isSetting := map[string]bool{}
	for _, s := range config.Settings() {
		isSetting[s.Name] = true
	}
	own := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	settings := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		dst := own
		if isSetting[f.Name] {
			dst = settings
		}
		dst.Var(f.Value, f.Name, f.Usage)
		dst.Lookup(f.Name).DefValue = f.DefValue // not the value a flag before -h set
	})
	out := fs.Output()
	own.SetOutput(out)
	settings.SetOutput(out)
	fmt.Fprintf(out, "Usage: %s [flags]\n\nFlags:\n", fs.Name())
	own.PrintDefaults()
	fmt.Fprintln(out, "\nSettings (a flag overrides its JETSMS_* environment variable, which overrides the config file):")
	settings.PrintDefaults()
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
type role = app.Role

const (
	roleWorker   = app.RoleWorker   // sends jobs too
	roleReceiver = app.RoleReceiver // receives and resolves only
)

// serve runs the process of role (internal/app has its parts and their order)
// until ctx ends, then stops it. A stop asked for during start-up is a clean exit
// too.
func serve(ctx context.Context, cfg config.Config, stderr io.Writer, r role) (err error) {
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	a, err := app.New(cfg, r, app.Options{Logger: log, Version: versionString()})
	if err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			log.Info("stopped during start-up")
			return nil
		}
		return err
	}
	// A connection the server closed for good ends ctx, so everything stops, and
	// the process exits non-zero (forced after broker.ExitAfterDefault) for its
	// supervisor to restart; /healthz fails once the connection is closed, or has
	// been down for broker.DownMaxDefault. The watch stops before the process
	// closes the connection itself. Every connection of the process is watched.
	var watches []*broker.ConnWatch
	for _, nc := range a.Conns() {
		var w *broker.ConnWatch
		ctx, w = broker.Watch(ctx, nc, broker.WatchConfig{}, log)
		watches = append(watches, w)
	}
	defer func() {
		for _, w := range watches {
			err = w.Err(err)
		}
	}()
	a.Admin().LiveUnless(admin.ReasonNATSDown, func() bool {
		return slices.ContainsFunc(watches, func(w *broker.ConnWatch) bool { return !w.Alive() })
	})

	<-ctx.Done()
	// The grace period ends early on a second SIGINT or SIGTERM: jobs still in
	// flight are then cancelled and handed back to NATS. The second signal is
	// listened for before the line that invites it is logged.
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), cfg.Worker.GracePeriod)
	defer cancelGrace()
	stopCtx, cancelStop := signal.NotifyContext(graceCtx, syscall.SIGINT, syscall.SIGTERM)
	defer cancelStop()
	if r == roleWorker {
		log.Info("stopping: finishing jobs in flight; a second signal stops at once", zap.Duration("grace_period", cfg.Worker.GracePeriod))
	} else {
		log.Info("stopping")
	}
	for _, w := range watches {
		w.Stop()
	}
	// Every component's error is logged as it stops; jobs cut off at the end of
	// the grace period were handed back to NATS, which is a clean exit too.
	_ = a.Stop(stopCtx)
	return nil
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
	sb, err := app.StartSandbox(cfg, "", log)
	if err != nil {
		return err
	}
	log.Info("gateway simulator listening", zap.String("url", sb.URL),
		zap.Duration("latency", cfg.Sandbox.Latency), zap.String("faults", cfg.Sandbox.Faults))
	<-ctx.Done()
	sb.Stop()
	return nil
}

// runConfig is `jetsms config`: the effective configuration, secrets redacted. It
// needs no config file, data directory or gateway credentials: when credentials
// are missing it says so after the output, since `jetsms worker` would refuse to
// start without them.
func runConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	// Checked as `jetsms worker` would check it, but for the gateway credentials.
	cfg, err := loadConfig("config", args, stderr, func(_ *flag.FlagSet, f *config.Flags) { f.Client() })
	if err != nil {
		return err
	}
	if _, err := io.WriteString(stdout, cfg.Redacted()); err != nil {
		return err
	}
	if !cfg.IsSandbox() && (cfg.Gateway.Username == "" || cfg.Gateway.Password == "") {
		fmt.Fprintln(stderr, "jetsms config: note: gateway.username and gateway.password are not set; "+
			"jetsms worker needs them (jetsms run uses the built-in simulator instead)")
	}
	return nil
}

// natsHeader builds a header with one value per key.
func natsHeader(kv ...string) nats.Header {
	h := nats.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}
