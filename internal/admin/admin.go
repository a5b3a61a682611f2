package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/loopback"
	"github.com/jetsms/jetsms/internal/secret"
)

// ListenDefault is admin.listen's default: reachable from this machine only.
const ListenDefault = "127.0.0.1:9090"

// Paths of the endpoints the server always has. PathHealth and PathReady are open
// to probes; every other path needs the credentials.
const (
	PathHealth = "/healthz"
	PathReady  = "/readyz"
)

// Reason codes of /healthz and /readyz answers: short, stable and free of internal
// error text.
const (
	ReasonStarting         = "starting"
	ReasonStopping         = "stopping"
	ReasonNATSDisconnected = "nats_disconnected"
	ReasonNATSClosed       = "nats_closed"
	ReasonNATSDown         = "nats_down"
	ReasonCircuitOpen      = "circuit_open"
)

// Realm is the HTTP Basic realm the server names when credentials are missing.
const Realm = "jetsms admin"

// Config configures the admin listener. Its error messages name the settings
// (admin.listen, admin.username, admin.password, admin.allow_unauthenticated).
type Config struct {
	// Listen is host:port; port 0 picks a free port. Default: ListenDefault.
	Listen string
	// Username and Password, both or neither, are the HTTP Basic credentials
	// every path but PathHealth and PathReady requires.
	Username string
	Password secret.Secret
	// AllowUnauthenticated lets Listen be beyond loopback without credentials:
	// then anyone who reaches the port can read the metrics and whatever else is
	// registered.
	AllowUnauthenticated bool
}

// check is one readiness or liveness condition: reason while failing reports true.
type check struct {
	reason  string
	failing func() bool
}

// state of the process as /readyz sees it.
const (
	stateStarting int32 = iota
	stateReady
	stateStopping
)

// Server is the admin listener's http.Handler and the server that runs it.
type Server struct {
	cfg  Config
	log  *zap.Logger
	mux  *http.ServeMux
	user [sha256.Size]byte
	pass [sha256.Size]byte

	state atomic.Int32

	mu     sync.Mutex
	ready  []check
	live   []check
	ln     net.Listener
	srv    *http.Server
	served chan struct{}
}

// New checks cfg and returns a server with /healthz and /readyz. It does not
// listen yet: Start does.
func New(cfg Config, log *zap.Logger) (*Server, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Listen == "" {
		cfg.Listen = ListenDefault
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, errors.New("admin.listen: must be host:port, such as 127.0.0.1:9090")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return nil, errors.New("admin.listen: must be host:port with a port number from 0 to 65535")
	}
	if (cfg.Username == "") != !cfg.Password.IsSet() {
		return nil, errors.New("admin.username: must be set together with admin.password")
	}
	if cfg.Username == "" && !loopback.Host(host) && !cfg.AllowUnauthenticated {
		return nil, fmt.Errorf("admin.listen: %q is reachable beyond this machine, so it needs admin.username and admin.password "+
			"(HTTP Basic; /healthz and /readyz stay open to probes), or admin.allow_unauthenticated: true to let anyone who reaches it read /metrics", cfg.Listen)
	}
	s := &Server{cfg: cfg, log: log.Named("admin"), mux: http.NewServeMux()}
	s.user = sha256.Sum256([]byte(cfg.Username))
	s.pass = sha256.Sum256([]byte(cfg.Password.Reveal()))
	s.mux.HandleFunc("GET "+PathHealth, s.serveHealth)
	s.mux.HandleFunc("GET "+PathReady, s.serveReady)
	return s, nil
}

// Handle registers h for pattern (http.ServeMux syntax, e.g. "GET /metrics"). It
// requires the credentials, when configured, like every path but /healthz and
// /readyz. Other components call it to add their pages; it may be called before
// or after Start.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ReadyUnless makes /readyz answer 503 with reason while failing reports true.
// Checks are asked in the order they were added; the first failing one is named.
func (s *Server) ReadyUnless(reason string, failing func() bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready = append(s.ready, check{reason, failing})
}

// LiveUnless makes /healthz answer 503 with reason while failing reports true,
// so the supervisor restarts the process.
func (s *Server) LiveUnless(reason string, failing func() bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live = append(s.live, check{reason, failing})
}

// SetReady says whether the process is ready to work: until the first true
// /readyz answers ReasonStarting, after a later false ReasonStopping.
func (s *Server) SetReady(ready bool) {
	switch {
	case ready:
		s.state.Store(stateReady)
	case s.state.Load() != stateStarting:
		s.state.Store(stateStopping)
	}
}

// ServeHTTP serves /healthz and /readyz to anyone and everything else to holders
// of the credentials.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != PathHealth && r.URL.Path != PathReady && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`", charset="UTF-8"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the credentials, or none are configured.
// Both parts are compared as hashes, in constant time.
func (s *Server) authorized(r *http.Request) bool {
	if s.cfg.Username == "" {
		return true
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	return subtle.ConstantTimeCompare(u[:], s.user[:])&subtle.ConstantTimeCompare(p[:], s.pass[:]) == 1
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if reason := s.failing(true); reason != "" {
		http.Error(w, "not live: "+reason, http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	reason := ""
	switch s.state.Load() {
	case stateStarting:
		reason = ReasonStarting
	case stateStopping:
		reason = ReasonStopping
	default:
		reason = s.failing(false)
	}
	if reason != "" {
		http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// failing is the reason of the first failing liveness (live) or readiness check,
// or "".
func (s *Server) failing(live bool) string {
	s.mu.Lock()
	checks := s.ready
	if live {
		checks = s.live
	}
	s.mu.Unlock()
	for _, c := range checks {
		if c.failing() {
			return c.reason
		}
	}
	return ""
}

// Start listens on Config.Listen and serves in the background; it returns once
// the listener is bound.
func (s *Server) Start(_ context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("admin: already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(s.log),
	}
	s.served = make(chan struct{})
	go func(srv *http.Server, done chan<- struct{}) {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("admin server", zap.Error(err))
		}
	}(s.srv, s.served)
	if s.cfg.Username == "" && !loopback.Host(hostOf(s.cfg.Listen)) {
		s.log.Warn("admin listener without credentials beyond loopback (admin.allow_unauthenticated): anyone who reaches it reads /metrics",
			zap.String("listen", ln.Addr().String()))
	}
	return nil
}

// Addr is the bound address, e.g. 127.0.0.1:9090, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop shuts the server down, letting requests in hand finish within ctx, and
// waits for it. It is safe twice and without Start.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv, served := s.srv, s.served
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
	}
	<-served
	if err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

func hostOf(hostport string) string {
	host, _, _ := net.SplitHostPort(hostport)
	return host
}
