package main

import (
	"context"
	"net/http"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/admin"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/console"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/ratelimit"
	"github.com/jetsms/jetsms/worker"
)

// consoleParts are the process's components the console reads (issue 17).
type consoleParts struct {
	names     subjects.Names
	nc        *nats.Conn
	js        jetstream.JetStream
	ledger    *ledger.Ledger
	optOuts   *optout.List
	campaigns *campaign.Store
	backlog   *metrics.BacklogCollector
	worker    *worker.Worker      // nil in a process that does not send
	limiter   *ratelimit.Adaptive // nil likewise
	gateway   console.Gateway
}

// startConsole serves the console on the admin listener under console.Path and
// returns the function that stops it. Its credentials are admin.username and
// admin.password when set, else the user console.GeneratedUser with a password
// generated on first start in nats.embedded.store_dir (mode 0600, reused), as the
// embedded server's is. When that password cannot be kept (a read-only data
// directory) the process runs without the console and says so.
func startConsole(ctx context.Context, cfg config.Config, p consoleParts, adm *admin.Server, log *zap.Logger) (func(context.Context) error, error) {
	user, password, passwordFile := cfg.Admin.Username, cfg.Admin.Password, ""
	if user == "" {
		pw, err := broker.LoadOrCreatePassword(cfg.NATS.Embedded.StoreDir, console.PasswordFile)
		if err != nil {
			log.Warn("console not served: it needs admin.username and admin.password, or a password it keeps in nats.embedded.store_dir",
				zap.Error(err))
			return func(context.Context) error { return nil }, nil
		}
		user, password = console.GeneratedUser, pw
		passwordFile = filepath.Join(cfg.NATS.Embedded.StoreDir, console.PasswordFile)
	}
	cc := console.Config{
		Names: p.names, Lanes: cfg.Lanes, Conn: p.nc, JS: p.js,
		Ledger: p.ledger, OptOuts: p.optOuts, Campaigns: p.campaigns, Backlog: p.backlog,
		AccountRate: cfg.Rate.PerSecond, Gateway: p.gateway,
		Username: user, Password: password, Redact: cfg.Log.Redact, Version: versionString(),
	}
	// Typed nils would pass as set interfaces: only a running worker is shown.
	if p.worker != nil {
		cc.Worker = p.worker
	}
	if p.limiter != nil {
		cc.Rate = p.limiter
	}
	con, err := console.New(cc, log)
	if err != nil {
		return nil, err
	}
	if err := con.Start(ctx); err != nil {
		return nil, err
	}
	adm.Handle(console.Path, con)
	// The admin address alone leads to the console.
	adm.Handle("GET /{$}", http.RedirectHandler(console.Path, http.StatusSeeOther))
	fields := []zap.Field{zap.String("url", "http://"+adm.Addr()+console.Path), zap.String("user", user)}
	if passwordFile != "" {
		fields = append(fields, zap.String("password_file", passwordFile))
	} else {
		fields = append(fields, zap.String("password", "admin.password"))
	}
	log.Info("console", fields...)
	return con.Stop, nil
}
