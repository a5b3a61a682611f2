package app

import (
	"context"
	"net/http"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/console"
)

// startConsole serves the operators' console on the admin listener under
// console.Path. Its credentials are admin.username and admin.password when set,
// else the user console.GeneratedUser with a password generated on first start
// in nats.embedded.store_dir (mode 0600, reused), as the embedded server's is.
// When that password cannot be kept (a read-only data directory) the process
// runs without the console and says so.
func (a *App) startConsole(ctx context.Context) error {
	cfg, log := a.cfg, a.log
	user, password, passwordFile := cfg.Admin.Username, cfg.Admin.Password, ""
	if user == "" {
		pw, err := broker.LoadOrCreatePassword(cfg.NATS.Embedded.StoreDir, console.PasswordFile)
		if err != nil {
			log.Warn("console not served: it needs admin.username and admin.password, or a password it keeps in nats.embedded.store_dir",
				zap.Error(err))
			return nil
		}
		user, password = console.GeneratedUser, pw
		passwordFile = filepath.Join(cfg.NATS.Embedded.StoreDir, console.PasswordFile)
	}
	cc := console.Config{
		Names: a.names, Lanes: cfg.Lanes, Conn: a.nc, JS: a.js,
		Ledger: a.ledger, OptOuts: a.optOuts, Campaigns: a.campaigns, Backlog: a.backlog,
		AccountRate: cfg.Rate.PerSecond, Gateway: a.gateway,
		Username: user, Password: password, Redact: cfg.Log.Redact, Version: a.opt.Version,
	}
	// Typed nils would pass as set interfaces: only a running worker is shown.
	if a.worker != nil {
		cc.Worker = a.worker
	}
	if r, ok := a.limiter.(console.Rate); ok {
		cc.Rate = r
	}
	con, err := console.New(cc, log)
	if err != nil {
		return err
	}
	if err := con.Start(ctx); err != nil {
		return err
	}
	a.console = con
	a.admin.Handle(console.Path, con)
	// The admin address alone leads to the console.
	a.admin.Handle("GET /{$}", http.RedirectHandler(console.Path, http.StatusSeeOther))
	fields := []zap.Field{zap.String("url", "http://"+a.admin.Addr()+console.Path), zap.String("user", user)}
	if passwordFile != "" {
		fields = append(fields, zap.String("password_file", passwordFile))
	} else {
		fields = append(fields, zap.String("password", "admin.password"))
	}
	log.Info("console", fields...)
	return nil
}

// stopConsole ends the console's live event streams, so that the admin
// listener's shutdown does not wait for them.
func (a *App) stopConsole(ctx context.Context) error {
	if a.console == nil {
		return nil
	}
	return a.console.Stop(ctx)
}
