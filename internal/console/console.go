package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/secret"
	"github.com/jetsms/jetsms/internal/subjects"
)

// Path is where the console is served on the admin listener.
const Path = "/console/"

// The console's generated credentials, used when admin.username and
// admin.password are not configured: the user GeneratedUser with the password
// kept in PasswordFile of the data directory (nats.embedded.store_dir, mode
// 0600, reused at restart).
const (
	GeneratedUser = "admin"
	PasswordFile  = "admin.password"
)

// Defaults of Config.
const (
	// PageSizeDefault is how many rows a list page shows.
	PageSizeDefault = 50
	// TimeoutDefault bounds the NATS reads of one page.
	TimeoutDefault = 10 * time.Second
)

// csrfCookie is the session cookie that holds the CSRF token; csrfField is the
// hidden form field that must repeat it.
const (
	csrfCookie = "jetsms_console_csrf"
	csrfField  = "csrf"
)

// Backlog reads each lane's backlog (metrics.BacklogCollector).
type Backlog interface {
	Lanes() []metrics.LaneBacklog
}

// Worker is what the overview shows of this process's worker (worker.Worker).
type Worker interface {
	CircuitOpen() (bool, string)
	InFlight() int
	ConcurrencyLimit() int
}

// Rate is this process's share of the account's rate (ratelimit.Adaptive).
type Rate interface {
	Rate() float64
	Ceiling() float64
}

// Gateway looks a message up at the gateway (the REST clients).
type Gateway interface {
	Get(ctx context.Context, messageID string) (dispatcher.Message, error)
}

// Config is what the console reads and acts on.
type Config struct {
	// Names are the streams' and buckets' names; Lanes the configured lanes.
	Names subjects.Names
	Lanes []string
	// Conn and JS reach NATS: streams and consumer info through JS, the live
	// status and inbound subjects through Conn.
	Conn *nats.Conn
	JS   jetstream.JetStream
	// Ledger, OptOuts and Campaigns are the process's open buckets.
	Ledger    *ledger.Ledger
	OptOuts   *optout.List
	Campaigns *campaign.Store
	// Backlog reads the lanes' backlog. Required.
	Backlog Backlog
	// Worker and Rate are this process's worker and its rate; nil in a process
	// that does not send (jetsms receiver).
	Worker Worker
	Rate   Rate
	// AccountRate is rate.per_second, the account's whole rate.
	AccountRate float64
	// Gateway, optional, answers "the gateway's record" on a job's page.
	Gateway Gateway
	// Username and Password are the credentials every page needs. Required.
	Username string
	Password secret.Secret
	// Redact hides phone numbers and message text everywhere (log.redact).
	Redact bool
	// Version is shown in the footer.
	Version string
	// PageSize is how many rows a list page shows; default PageSizeDefault.
	PageSize int
	// Timeout bounds one page's NATS reads; default TimeoutDefault.
	Timeout time.Duration
}

//go:embed assets
var assets embed.FS

// Console is the console's http.Handler, with the status subscription that
// feeds its charts.
type Console struct {
	cfg   Config
	log   *zap.Logger
	mux   *http.ServeMux
	h     http.Handler
	user  [sha256.Size]byte
	pass  [sha256.Size]byte
	pages map[string]*template.Template

	series *series

	mu      sync.Mutex
	subs    []*nats.Subscription
	done    chan struct{}
	stopped bool
}

// New checks cfg and returns the console. Start subscribes to the status subjects
// that feed its charts.
func New(cfg Config, log *zap.Logger) (*Console, error) {
	if log == nil {
		log = zap.NewNop()
	}
	switch {
	case cfg.Conn == nil || cfg.JS == nil:
		return nil, errors.New("console: a NATS connection is required")
	case cfg.Ledger == nil || cfg.OptOuts == nil || cfg.Campaigns == nil:
		return nil, errors.New("console: the ledger, opt-out list and campaign store are required")
	case cfg.Backlog == nil:
		return nil, errors.New("console: a backlog reader is required")
	case cfg.Username == "" || !cfg.Password.IsSet():
		return nil, errors.New("console: admin.username and admin.password (configured or generated) are required")
	case len(cfg.Lanes) == 0:
		return nil, errors.New("console: at least one lane is required")
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = PageSizeDefault
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = TimeoutDefault
	}
	c := &Console{cfg: cfg, log: log.Named("console"), mux: http.NewServeMux(), series: newSeries(time.Now), done: make(chan struct{})}
	c.user = sha256.Sum256([]byte(cfg.Username))
	c.pass = sha256.Sum256([]byte(cfg.Password.Reveal()))
	pages, err := c.parsePages()
	if err != nil {
		return nil, err
	}
	c.pages = pages
	c.routes()
	// Cross-origin POSTs are refused by the browser's own Sec-Fetch-Site / Origin
	// headers first; the session token then covers browsers that send neither.
	cop := http.NewCrossOriginProtection()
	c.h = cop.Handler(c.mux)
	return c, nil
}

func (c *Console) routes() {
	static, _ := fs.Sub(assets, "assets/static")
	c.mux.Handle("GET "+Path+"static/", http.StripPrefix(Path+"static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET "+Path+"{$}", c.overview)
	c.mux.HandleFunc("GET "+Path+"campaigns", c.campaignList)
	c.mux.HandleFunc("GET "+Path+"campaigns/{name}", c.campaignPage)
	c.mux.HandleFunc("POST "+Path+"campaigns/{name}/{action}", c.campaignAction)
	c.mux.HandleFunc("GET "+Path+"dead", c.deadList)
	c.mux.HandleFunc("POST "+Path+"dead/replay", c.deadReplay)
	c.mux.HandleFunc("GET "+Path+"jobs", c.jobLookup)
	c.mux.HandleFunc("GET "+Path+"jobs/{id}", c.jobPage)
	c.mux.HandleFunc("GET "+Path+"events", c.eventsPage)
	c.mux.HandleFunc("GET "+Path+"events/stream", c.eventStream)
	c.mux.HandleFunc("GET "+Path+"optouts", c.optOutPage)
	c.mux.HandleFunc("POST "+Path+"optouts", c.optOutAction)
}

// ServeHTTP checks the credentials, then the CSRF token of a POST, and serves the
// page.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !c.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="jetsms console", charset="UTF-8"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost && !c.tokenValid(w, r) {
		http.Error(w, "forbidden: the form's session token is missing or wrong; reload the page and try again", http.StatusForbidden)
		return
	}
	c.h.ServeHTTP(w, r)
}

// authorized reports whether r carries the credentials, compared as hashes in
// constant time.
func (c *Console) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	return subtle.ConstantTimeCompare(u[:], c.user[:])&subtle.ConstantTimeCompare(p[:], c.pass[:]) == 1
}

// token returns the session's CSRF token, setting a new cookie when there is none.
func (c *Console) token(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	tok := base64.RawURLEncoding.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: tok, Path: Path, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	return tok
}

// tokenValid reports whether the POST's form field repeats the session cookie.
func (c *Console) tokenValid(w http.ResponseWriter, r *http.Request) bool {
	ck, err := r.Cookie(csrfCookie)
	if err != nil || ck.Value == "" {
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	form := r.PostFormValue(csrfField)
	return len(form) == len(ck.Value) && subtle.ConstantTimeCompare([]byte(form), []byte(ck.Value)) == 1
}

// Start subscribes to the status subjects that feed the overview's and the
// campaigns' charts; it returns once subscribed.
func (c *Console) Start(_ context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs != nil || c.stopped {
		return errors.New("console: already started")
	}
	sub, err := c.cfg.Conn.Subscribe(c.cfg.Names.StatusAll(), func(m *nats.Msg) { c.series.observe(m.Data) })
	if err != nil {
		return fmt.Errorf("console: subscribe %s: %w", c.cfg.Names.StatusAll(), err)
	}
	_ = sub.SetPendingLimits(65536, 64<<20)
	c.subs = append(c.subs, sub)
	return nil
}

// Stop ends the subscription and every live event stream in hand, so the admin
// listener's shutdown does not wait for them. Call it before stopping the admin
// listener. It is safe twice and without Start.
func (c *Console) Stop(_ context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	close(c.done)
	var errs []error
	for _, s := range c.subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("console: stop: %w", err)
	}
	return nil
}
