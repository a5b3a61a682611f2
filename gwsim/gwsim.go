package gwsim

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and fixed limits of the simulator.
const (
	// BasePath is the path prefix of the real gateway's base URL. The simulator
	// serves its routes both at the server root and under this prefix.
	BasePath = "/rest/sms/v2"
	// RetryAfterDefault is the Retry-After of 429 and 503 answers when
	// Config.RetryAfter is zero.
	RetryAfterDefault = time.Second
	// HangForDefault is how long a timeout fault holds a request when
	// Config.HangFor is zero.
	HangForDefault = 30 * time.Second
	// KeepDefault is how many accepted messages are kept for GET /messages when
	// Config.Keep is zero.
	KeepDefault = 100_000
	// MaxBodyBytes is the largest POST /messages body read; a larger one is answered
	// 413.
	MaxBodyBytes = 64 << 10
	// ScheduleLimit is how far ahead a message may be scheduled: a scheduled time
	// this far ahead or further is refused.
	ScheduleLimit = 60 * 24 * time.Hour
	// StatusAccepted is the status of every message the simulator accepts.
	StatusAccepted = "accepted"
	// ClassDefault is the class of a message sent without one.
	ClassDefault = "mt_message"
)

// ErrInvalidConfig is wrapped by every error New returns.
var ErrInvalidConfig = errors.New("gwsim: invalid config")

// Config sets up a Simulator. The zero Config is a gateway without authentication,
// latency or faults.
type Config struct {
	// Username and Password are the HTTP Basic credentials every request except
	// GET /healthz must carry. When both are empty no credentials are checked.
	Username, Password string
	// Latency is added before answering each POST /messages request (not to
	// timeout and reset faults, which have their own timing). Must be >= 0.
	Latency time.Duration
	// Jitter adds a uniformly random extra latency in [0, Jitter). Must be >= 0.
	Jitter time.Duration
	// Faults is the random fault mix, drawn once per POST /messages request that
	// has no injected fault queued. Must pass Mix.Validate.
	Faults Mix
	// RetryAfter is sent with 429 and 503 answers in whole seconds, rounded up and
	// at least 1. Zero means RetryAfterDefault; must be >= 0.
	RetryAfter time.Duration
	// HangFor is how long a timeout fault holds a request before closing the
	// connection unanswered; the hold ends earlier when the client goes away or
	// Close is called. Zero means HangForDefault; must be >= 0.
	HangFor time.Duration
	// Keep is how many accepted messages are kept for GET /messages?id=, oldest
	// dropped first. Zero means KeepDefault; below zero keeps none.
	Keep int
	// Now is the clock used for scheduled-time checks and Message.At. Nil means
	// time.Now.
	Now func() time.Time
}

// Message is an accepted message as the simulator keeps it. SMSClass, Scheduled and
// Expires are shared by every copy handed out and must be treated as read-only.
type Message struct {
	ID          string     // UUID the gateway answered with
	Source      string     // as sent; "" when absent
	Destination string     // as sent, international format
	Content     string     // as sent
	Reference   string     // as sent; "" when absent
	Class       string     // as sent, or ClassDefault when absent
	Mask        string     // as sent; "" when absent
	SMSClass    *int       // 0–3, nil when absent
	Scheduled   *time.Time // nil when absent
	Expires     *time.Time // nil when absent
	Status      string     // always StatusAccepted
	At          time.Time  // Config.Now() when it was accepted
}

// Stats are the simulator's counters since New. Every POST /messages request counts
// in Requests and in at most one of Accepted, Rejected, Unauthorized or a fault of
// Faults — except the accept-then faults, which count in both Accepted and Faults.
// A request whose body could not be read (the client went away) counts in Requests
// only.
type Stats struct {
	Requests     int64           // POST /messages requests received
	Accepted     int64           // messages accepted (202, or an accept-then fault)
	Rejected     int64           // 400, 413 and 422 answers to invalid requests
	Unauthorized int64           // 401 answers to missing or wrong credentials
	Faults       map[Fault]int64 // faults that took effect, by kind; zero kinds absent
	Lookups      int64           // GET /messages requests, whatever the answer
	Held         int64           // requests being held by a hang fault right now
}

// Simulator is an http.Handler that behaves like the REST v2 gateway. Build it with
// New; it is safe for concurrent use.
type Simulator struct {
	authHeader string // "Basic <base64>", "" when no credentials are checked
	username   string
	password   string
	latency    time.Duration
	jitter     time.Duration
	hangFor    time.Duration
	retryAfter []string // Retry-After header value
	mix        []threshold
	store      *store
	now        func() time.Time

	onAccept atomic.Pointer[func(Message)]

	injectMu sync.Mutex
	injected []Fault
	pending  atomic.Int64 // len(injected), read without the lock

	done      chan struct{} // closed by Close
	closeOnce sync.Once

	requests     atomic.Int64
	accepted     atomic.Int64
	rejected     atomic.Int64
	unauthorized atomic.Int64
	lookups      atomic.Int64
	held         atomic.Int64
	faults       [numFaults]atomic.Int64

	hooks *testHooks // nil outside tests
}

// testHooks lets the package's tests wait for events instead of sleeping.
type testHooks struct {
	holdStarted func()
	holdEnded   func()
}

// New returns a simulator for cfg. It returns an error wrapping ErrInvalidConfig that
// names the field and the rule when a duration is negative or the fault mix is
// invalid.
func New(cfg Config) (*Simulator, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Latency", cfg.Latency},
		{"Jitter", cfg.Jitter},
		{"RetryAfter", cfg.RetryAfter},
		{"HangFor", cfg.HangFor},
	} {
		if d.v < 0 {
			return nil, fmt.Errorf("%w: %s %v: must be >= 0", ErrInvalidConfig, d.name, d.v)
		}
	}
	if err := cfg.Faults.Validate(); err != nil {
		return nil, fmt.Errorf("%w: Faults: %w", ErrInvalidConfig, err)
	}
	s := &Simulator{
		username: cfg.Username,
		password: cfg.Password,
		latency:  cfg.Latency,
		jitter:   cfg.Jitter,
		hangFor:  cfg.HangFor,
		mix:      cfg.Faults.thresholds(),
		now:      cfg.Now,
		done:     make(chan struct{}),
	}
	if cfg.Username != "" || cfg.Password != "" {
		s.authHeader = "Basic " + base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password))
	}
	if s.hangFor == 0 {
		s.hangFor = HangForDefault
	}
	if s.now == nil {
		s.now = time.Now
	}
	retryAfter := cfg.RetryAfter
	if retryAfter == 0 {
		retryAfter = RetryAfterDefault
	}
	secs := int64(retryAfter / time.Second)
	if retryAfter%time.Second != 0 || secs == 0 {
		secs++ // whole seconds, rounded up, at least 1
	}
	s.retryAfter = []string{strconv.FormatInt(secs, 10)}
	keep := cfg.Keep
	if keep == 0 {
		keep = KeepDefault
	}
	s.store = newStore(keep)
	return s, nil
}

// OnAccept sets fn to be called synchronously for every accepted message, before the
// client is answered; nil removes it. fn may run on many goroutines at once and
// delays the answer for as long as it runs. It may be set at any time; a request
// already past acceptance uses the fn set before.
func (s *Simulator) OnAccept(fn func(Message)) {
	if fn == nil {
		s.onAccept.Store(nil)
		return
	}
	s.onAccept.Store(&fn)
}

// Inject queues faults for the next len(faults) POST /messages requests, one each in
// order, ahead of the random mix; a later call queues behind an earlier one. Every
// POST /messages request takes its place in the queue, including one that turns
// out invalid or whose client goes away before its body is read. FaultNone in the
// queue gives one request no fault at all. Values that are not one of the Fault
// constants act as FaultNone.
func (s *Simulator) Inject(faults ...Fault) {
	if len(faults) == 0 {
		return
	}
	s.injectMu.Lock()
	s.injected = append(s.injected, faults...)
	s.pending.Store(int64(len(s.injected)))
	s.injectMu.Unlock()
}

// Stats returns a snapshot of the counters. The counters are read one by one, so a
// snapshot taken while requests run may be off by the requests in flight.
func (s *Simulator) Stats() Stats {
	st := Stats{
		Requests:     s.requests.Load(),
		Accepted:     s.accepted.Load(),
		Rejected:     s.rejected.Load(),
		Unauthorized: s.unauthorized.Load(),
		Lookups:      s.lookups.Load(),
		Held:         s.held.Load(),
		Faults:       make(map[Fault]int64),
	}
	for f := range s.faults {
		if n := s.faults[f].Load(); n > 0 {
			st.Faults[Fault(f)] = n
		}
	}
	return st
}

// Message returns the accepted message with the given id, if it is still kept (see
// Config.Keep).
func (s *Simulator) Message(id string) (Message, bool) {
	return s.store.get(id)
}

// Close ends every request the simulator holds — hang faults close their connection
// at once, latency waits end and answer — and makes later holds and waits end at
// once. The simulator still answers requests after Close. Call it before shutting
// the server down, for example with http.Server.RegisterOnShutdown(sim.Close):
// neither http.Server.Shutdown nor httptest.Server.Close ends a handler that is
// waiting. Close is safe to call more than once.
func (s *Simulator) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// nextFault returns the fault for one POST /messages request: the next injected one,
// else a draw from the mix.
func (s *Simulator) nextFault() Fault {
	if s.pending.Load() > 0 {
		s.injectMu.Lock()
		if len(s.injected) > 0 {
			f := s.injected[0]
			s.injected[0] = FaultNone
			s.injected = s.injected[1:]
			if len(s.injected) == 0 {
				s.injected = nil // let the backing array go
			}
			s.pending.Store(int64(len(s.injected)))
			s.injectMu.Unlock()
			if !f.valid() {
				return FaultNone
			}
			return f
		}
		s.injectMu.Unlock()
	}
	if len(s.mix) == 0 {
		return FaultNone
	}
	x := rand.Float64()
	for _, t := range s.mix {
		if x < t.upTo {
			return t.fault
		}
	}
	return FaultNone
}
