package broker

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// Liveness defaults.
const (
	// ExitAfterDefault is how long a process whose NATS connection closed for
	// good has to stop in order before it is ended with exit code 1.
	ExitAfterDefault = 5 * time.Second
	// DownMaxDefault is how long the connection may be down (reconnecting)
	// before Alive reports false, so a liveness probe restarts a process that
	// cannot reach NATS any more.
	DownMaxDefault = 60 * time.Second
)

// ErrConnectionClosed is returned by ConnWatch.Err once the connection was closed
// for good while the process ran.
var ErrConnectionClosed = errors.New("nats: the connection was closed for good (the server ended it); exiting so the supervisor starts a new process")

// WatchConfig tunes a ConnWatch. Zero fields take their defaults.
type WatchConfig struct {
	// ExitAfter: see ExitAfterDefault. Negative never forces the exit.
	ExitAfter time.Duration
	// DownMax: see DownMaxDefault.
	DownMax time.Duration
	// Exit ends the process; default os.Exit. Tests set it.
	Exit func(code int)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// ConnWatch follows one connection for the process's liveness. A connection
// closed for good — the server ended it with an error nats.go does not
// reconnect after, or its reconnects gave up — cancels the context Watch
// returned, makes Alive false and Err non-nil, and, if the process has not
// exited ExitAfter later, ends it with exit code 1: a process that cannot talk
// to NATS any more never sits there looking healthy.
type ConnWatch struct {
	nc  *nats.Conn
	cfg WatchConfig
	log *zap.Logger

	mu        sync.Mutex
	closed    bool
	downSince time.Time // when this watch first saw the connection down; zero while up
	cancel    context.CancelFunc
	done      chan struct{} // closed by Stop: the process is exiting on its own
}

// Watch starts following nc (it sets nc's closed handler) and returns ctx's child
// that ends when the connection closes for good. Call Stop once the process
// stops on its own, before it closes the connection itself.
func Watch(ctx context.Context, nc *nats.Conn, cfg WatchConfig, log *zap.Logger) (context.Context, *ConnWatch) {
	if cfg.ExitAfter == 0 {
		cfg.ExitAfter = ExitAfterDefault
	}
	if cfg.DownMax <= 0 {
		cfg.DownMax = DownMaxDefault
	}
	if cfg.Exit == nil {
		cfg.Exit = os.Exit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = zap.NewNop()
	}
	child, cancel := context.WithCancel(ctx)
	w := &ConnWatch{nc: nc, cfg: cfg, log: log.Named("nats"), cancel: cancel, done: make(chan struct{})}
	nc.SetClosedHandler(func(*nats.Conn) { w.closedForGood() })
	if nc.IsClosed() {
		w.closedForGood()
	}
	return child, w
}

func (w *ConnWatch) closedForGood() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	select {
	case <-w.done:
		w.mu.Unlock()
		return // closed by the process on its way out
	default:
	}
	w.closed = true
	w.mu.Unlock()
	w.log.Error("NATS connection closed for good; stopping", zap.NamedError("last_error", w.nc.LastError()))
	w.cancel()
	if w.cfg.ExitAfter < 0 {
		return
	}
	go func() {
		t := time.NewTimer(w.cfg.ExitAfter)
		defer t.Stop()
		select {
		case <-t.C:
			w.log.Error("did not stop in time after the NATS connection closed; exiting", zap.Duration("after", w.cfg.ExitAfter))
			w.cfg.Exit(1)
		case <-w.done:
		}
	}()
}

// Alive reports whether the connection can still serve the process: not closed
// for good, and not down (reconnecting) for longer than DownMax. /healthz
// answers with it.
func (w *ConnWatch) Alive() bool {
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed || w.nc.IsClosed() {
		return false
	}
	if w.nc.IsConnected() {
		w.mu.Lock()
		w.downSince = time.Time{}
		w.mu.Unlock()
		return true
	}
	// Reconnecting: counted from the first probe that saw it down.
	return w.downFor() < w.cfg.DownMax
}

// downFor is how long the connection has been down, as far as this watch saw.
func (w *ConnWatch) downFor() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Now()
	if w.downSince.IsZero() {
		w.downSince = now
	}
	return now.Sub(w.downSince)
}

// Stop tells the watch that the process is stopping on its own: a close from
// now on is the process's own, and a pending forced exit is called off.
func (w *ConnWatch) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}

// Err returns ErrConnectionClosed when the connection closed for good while the
// process ran (whatever err says: the errors of a stop it caused are its
// consequences), else err: the process's exit status.
func (w *ConnWatch) Err(err error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrConnectionClosed
	}
	return err
}
