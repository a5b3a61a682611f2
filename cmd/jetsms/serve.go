package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/app"
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
