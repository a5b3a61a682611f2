package gwsim

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Defaults and fixed limits of the simulator.
const (
	// BasePath is the path prefix of the real gateway's REST v2 base URL. The
	// simulator serves its REST v2 routes both at the server root and under
	// this prefix.
	BasePath = "/rest/sms/v2"
	// BasePathV1 is the path prefix of the real gateway's REST v1 base URL. With
	// Config.API APIv1 the simulator serves its routes both at the server root
	// and under this prefix.
	BasePathV1 = "/rest/gateway"
	// BroadcastLimitDefault is the most destinations POST /messages/broadcast
	// takes when Config.BroadcastLimit is zero. The documents do not give the
	// real gateway's limit.
	BroadcastLimitDefault = 1000
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
	// StatusAccepted is the status of a message the simulator has accepted and sent
	// no receipt for yet.
	StatusAccepted = "accepted"
	// ClassDefault is the class of a message sent without one.
	ClassDefault = "mt_message"

	// CallbackSendersDefault is how many goroutines post callbacks when
	// Config.CallbackSenders is zero.
	CallbackSendersDefault = 16
	// CallbackQueueDefault is how many callbacks may be pending when
	// Config.CallbackQueue is zero.
	CallbackQueueDefault = 100_000
	// CallbackGiveUpDefault is how long a callback is retried when
	// Config.CallbackGiveUp is zero.
	CallbackGiveUpDefault = 5 * time.Minute
	// CallbackTimeoutDefault bounds each callback attempt when
	// Config.CallbackTimeout is zero.
	CallbackTimeoutDefault = 10 * time.Second
	// CallbackBackoffDefault is the first wait before retrying a callback when
	// Config.CallbackBackoff is zero.
	CallbackBackoffDefault = 100 * time.Millisecond
	// CallbackBackoffMaxDefault caps the wait between callback attempts when
	// Config.CallbackBackoffMax is zero.
	CallbackBackoffMaxDefault = 10 * time.Second
)

// BasePathFor returns the base path the simulator serves api under: BasePathV1
// for APIv1, BasePath otherwise.
func BasePathFor(api string) string {
	if api == APIv1 {
		return BasePathV1
	}
	return BasePath
}

// The APIs the simulator speaks, for Config.API.
const (
	// APIv2 is REST v2, the default: UUID ids, 202 Accepted.
	APIv2 = "v2"
	// APIv1 is REST v1: integer ids, 201 Created, POST /messages/broadcast.
	APIv1 = "v1"
)

// The receipt shapes of Config.DLRShape.
const (
	DLRShapeMessageID = "message_id"
	DLRShapeID        = "id"
)

// IDForm is how a REST v1 201 answer to POST /messages carries the new
// message's id. The REST v1 page shows the body both ways; the Location header
// is sent with every form.
type IDForm int

// The id forms of a REST v1 201 answer.
const (
	// IDBracketed sends the id in brackets, [12345], as the page's "On success"
	// shows it. It is the zero IDForm.
	IDBracketed IDForm = iota
	// IDBare sends the id alone, 12345.
	IDBare
	// IDLocationOnly sends no body: the id is only in the Location header.
	IDLocationOnly

	numIDForms // keep last
)

var idFormNames = [numIDForms]string{IDBracketed: "bracketed", IDBare: "bare", IDLocationOnly: "location"}

// String returns "bracketed", "bare" or "location", or IDForm(n) for other
// values.
func (f IDForm) String() string {
	if f >= 0 && f < numIDForms {
		return idFormNames[f]
	}
	return "IDForm(" + strconv.Itoa(int(f)) + ")"
}

// ErrInvalidConfig is wrapped by every error New returns.
var ErrInvalidConfig = errors.New("gwsim: invalid config")

// Config sets up a Simulator. The zero Config is a REST v2 gateway without
// authentication, latency or faults.
type Config struct {
	// API is the API the simulator speaks: APIv2 (also when empty) or APIv1.
	// One simulator speaks one API, as one gateway application is set up for
	// one; run two simulators to serve both.
	API string
	// V1IDForm is how a REST v1 201 answer carries the id; the zero value is
	// IDBracketed. Ignored under REST v2.
	V1IDForm IDForm
	// BroadcastLimit is the most destinations one REST v1 broadcast may name;
	// more are answered 400 broadcast_limit. Zero means BroadcastLimitDefault;
	// must be >= 0. Ignored under REST v2.
	BroadcastLimit int

	// Username and Password are the HTTP Basic credentials every request except
	// GET /healthz must carry. When both are empty no credentials are checked.
	Username, Password string
	// Latency is added before answering each POST /messages (and, under REST
	// v1, POST /messages/broadcast) request (not to timeout and reset faults,
	// which have their own timing). Must be >= 0.
	Latency time.Duration
	// Jitter adds a uniformly random extra latency in [0, Jitter). Must be >= 0.
	Jitter time.Duration
	// Faults is the random fault mix, drawn once per POST /messages or POST
	// /messages/broadcast request that has no injected fault queued. Must pass
	// Mix.Validate.
	Faults Mix
	// RetryAfter is sent with 429 and 503 answers in whole seconds, rounded up and
	// at least 1. Zero means RetryAfterDefault; must be >= 0.
	RetryAfter time.Duration
	// HangFor is how long a timeout fault holds a request before closing the
	// connection unanswered; the hold ends earlier when the client goes away or
	// Close is called. Zero means HangForDefault; must be >= 0.
	HangFor time.Duration
	// Keep is how many accepted messages are kept for GET /messages?id= (REST
	// v1: GET /messages/{id}), oldest dropped first. Zero means KeepDefault;
	// below zero keeps none.
	Keep int
	// Now is the clock used for scheduled-time checks, Message.At and the
	// release of a scheduled message's receipts. Nil means time.Now. Callbacks
	// otherwise keep real time whatever it is: a test that moves this clock to a
	// message's schedule calls ReleaseDue.
	Now func() time.Time

	// RedirectHTTPS answers every request that did not come over TLS with 301
	// to the same URL with https, as the gateway treats plain HTTP.
	RedirectHTTPS bool

	// DLRURL is where delivery receipts are POSTed. Credentials in it
	// (http://user:pass@host/path, special characters percent-encoded) are taken
	// out and sent as HTTP Basic. Empty: no receipts are sent and every message
	// stays "accepted". Must be an http or https URL with a host.
	DLRURL string
	// DLRDelay is the time from a message's acceptance to its first receipt. Zero
	// sends it at once, which can be before the client has read the 202. Must be
	// >= 0.
	DLRDelay time.Duration
	// DLRGap is the time from one receipt of a message being delivered (or given
	// up) to its next. Must be >= 0.
	DLRGap time.Duration
	// DLRJitter adds a uniformly random extra in [0, DLRJitter) to DLRDelay and
	// to each DLRGap. Must be >= 0.
	DLRJitter time.Duration
	// DLRInterim are the statuses of the receipts sent before the last one, in
	// order. Nil means one "sent" receipt; an empty non-nil slice sends the last
	// receipt alone. Each must be one of the Status constants of the DLR tables.
	DLRInterim []string
	// DLRMix draws each message's last status; the zero DLRMix makes every
	// message received. Must pass DLRMix.Validate.
	DLRMix DLRMix
	// DLRDuplicate sends every receipt twice, the copy right after the original
	// is delivered (or given up), as a gateway that calls again would.
	DLRDuplicate bool
	// DLRReorder sends a message's last receipt first and its interim ones after,
	// as receipts overtaking each other would arrive.
	DLRReorder bool
	// DLRShape is the REST v2 receipt body: DLRShapeMessageID (also when empty),
	// the REST v2 page's {"message_id","status","detail","reference"?}, or
	// DLRShapeID, the OpenAPI page's StatusCallback {"id","status","detail"}.
	// Ignored under REST v1.
	DLRShape string

	// MOURL is where SendMO and POST /sim/mo post inbound messages; credentials
	// in it are sent as HTTP Basic, as with DLRURL. Empty: SendMO returns
	// ErrNoMOURL.
	MOURL string

	// CallbackSenders is how many goroutines post callbacks (receipts and MOs),
	// sharing one keep-alive HTTP client. Zero means CallbackSendersDefault; must
	// be >= 0.
	CallbackSenders int
	// CallbackQueue bounds the callbacks pending at once: each message with
	// receipts still to deliver counts one, and each MO one. A message accepted
	// while the queue is full gets no receipts (they count in
	// Stats.ReceiptsDropped); an MO gets ErrQueueFull. Zero means
	// CallbackQueueDefault; must be >= 0.
	CallbackQueue int
	// CallbackGiveUp is how long a receipt or MO is retried: no attempt starts
	// later than this after its first. Zero means CallbackGiveUpDefault; must be
	// >= 0.
	CallbackGiveUp time.Duration
	// CallbackTimeout bounds each attempt, from connecting to reading the
	// answer. Zero means CallbackTimeoutDefault; must be >= 0.
	CallbackTimeout time.Duration
	// CallbackBackoff is the wait before the first retry; each later wait doubles,
	// up to CallbackBackoffMax, with ±50% jitter (never above the cap). Zero
	// means CallbackBackoffDefault; must be >= 0.
	CallbackBackoff time.Duration
	// CallbackBackoffMax caps the wait between attempts. Zero means
	// CallbackBackoffMaxDefault, raised to CallbackBackoff when that is larger;
	// must be >= 0.
	CallbackBackoffMax time.Duration
}

// Message is an accepted message as the simulator keeps it. SMSClass, Scheduled and
// Expires are shared by every copy handed out and must be treated as read-only.
type Message struct {
	ID          string     // the id the gateway answered with: a UUID, or (REST v1) a decimal integer
	Source      string     // as sent; "" when absent
	Destination string     // as sent, international format
	Content     string     // as sent
	Reference   string     // as sent; "" when absent
	Class       string     // as sent, or ClassDefault when absent
	Mask        string     // as sent; "" when absent
	SMSClass    *int       // 0–3, nil when absent
	Scheduled   *time.Time // nil when absent
	Expires     *time.Time // nil when absent
	// Status is StatusAccepted, then the status of the latest receipt the
	// simulator began to send for it; a final status (received, rejected, failed,
	// dead, expired) is never replaced by a non-final one. OnAccept always sees
	// StatusAccepted.
	Status string
	At     time.Time // Config.Now() when it was accepted
}

// Stats are the simulator's counters since New. Every POST /messages request counts
// in Requests and in at most one of Accepted, Rejected, Unauthorized or a fault of
// Faults — except the accept-then faults, which count in both Accepted and Faults.
// A request whose body could not be read (the client went away) counts in Requests
// only. A REST v1 POST /messages/broadcast request counts in Requests and
// Broadcasts, and like a POST /messages in at most one of Rejected, Unauthorized or
// a fault; when it is answered 201 (or an accept-then fault takes it), each
// destination counts one in Accepted or in BroadcastFailures.
//
// Every receipt scheduled counts in ReceiptsPending until it counts in
// ReceiptsDelivered or ReceiptsDropped; each copy under Config.DLRDuplicate is a
// receipt of its own. Every MO that SendMO validated ends in MODelivered or
// MODropped, unless it is still being attempted.
type Stats struct {
	Requests     int64           // POST /messages and /messages/broadcast requests received
	Accepted     int64           // messages accepted (202 or 201, or an accept-then fault)
	Rejected     int64           // 400, 413 and 422 answers to invalid requests
	Unauthorized int64           // 401 answers to missing or wrong credentials
	Faults       map[Fault]int64 // faults that took effect, by kind; zero kinds absent
	Lookups      int64           // GET /messages requests, whatever the answer
	Held         int64           // requests being held by a hang fault right now

	Broadcasts        int64 // POST /messages/broadcast requests received (REST v1)
	BroadcastFailures int64 // broadcast destinations answered with a "failure" result

	ReceiptsDelivered int64 // receipts the receiver answered 2xx
	ReceiptsRetried   int64 // receipt attempts after the first of each receipt
	ReceiptsDropped   int64 // receipts given up: CallbackGiveUp passed, queue full, or Close
	ReceiptsPending   int64 // receipts scheduled and not yet delivered or dropped
	MODelivered       int64 // MOs the receiver answered 2xx
	MORetried         int64 // MO attempts after the first of each MO
	MODropped         int64 // MOs not delivered: given up, queue full, Close, or the caller left
}

// Simulator is an http.Handler that behaves like the REST v2 gateway, or the REST
// v1 one (Config.API). Build it with New; it is safe for concurrent use.
type Simulator struct {
	v1             bool // speaks REST v1
	redirectHTTPS  atomic.Bool
	outage         atomic.Bool
	idForm         IDForm // of REST v1 201 answers
	broadcastLimit int
	lastID         atomic.Int64 // REST v1: the last integer id handed out

	creds      atomic.Pointer[credentials] // what requests must carry; SetCredentials swaps it
	latency    time.Duration
	jitter     time.Duration
	hangFor    time.Duration
	retryAfter []string // Retry-After header value
	mix        []threshold[Fault]
	store      *store
	now        func() time.Time

	onAccept atomic.Pointer[func(Message)]
	cb       *callbacks // nil when neither DLRURL nor MOURL is set

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

	broadcasts        atomic.Int64
	broadcastFailures atomic.Int64

	hooks *testHooks // nil outside tests
}

// testHooks lets the package's tests wait for events instead of sleeping. Nil
// fields are skipped.
type testHooks struct {
	holdStarted       func()
	holdEnded         func()
	callbackDelivered func() // a receipt or MO was delivered
	callbackFailed    func() // an attempt failed and its retry is queued
	callbackGaveUp    func() // a receipt or MO was given up
}

// New returns a simulator for cfg. It returns an error wrapping ErrInvalidConfig that
// names the field and the rule when API is not an API, V1IDForm not an IDForm, a
// duration or count is negative, a mix is invalid, a callback URL is not an http or
// https URL, or DLRInterim holds a status the DLR tables do not list.
//
// Under REST v1, integer ids count up from the time New runs in microseconds since
// 1970, so that a restarted simulator does not hand out recent ids again.
//
// When DLRURL or MOURL is set, New starts the callback goroutines; Close stops
// them.
func New(cfg Config) (*Simulator, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Latency", cfg.Latency},
		{"Jitter", cfg.Jitter},
		{"RetryAfter", cfg.RetryAfter},
		{"HangFor", cfg.HangFor},
		{"DLRDelay", cfg.DLRDelay},
		{"DLRGap", cfg.DLRGap},
		{"DLRJitter", cfg.DLRJitter},
		{"CallbackGiveUp", cfg.CallbackGiveUp},
		{"CallbackTimeout", cfg.CallbackTimeout},
		{"CallbackBackoff", cfg.CallbackBackoff},
		{"CallbackBackoffMax", cfg.CallbackBackoffMax},
	} {
		if d.v < 0 {
			return nil, fmt.Errorf("%w: %s %v: must be >= 0", ErrInvalidConfig, d.name, d.v)
		}
	}
	if err := cfg.Faults.Validate(); err != nil {
		return nil, fmt.Errorf("%w: Faults: %w", ErrInvalidConfig, err)
	}
	v1 := false
	switch cfg.API {
	case "", APIv2:
	case APIv1:
		v1 = true
	default:
		return nil, fmt.Errorf("%w: API %q: must be %q or %q", ErrInvalidConfig, cfg.API, APIv2, APIv1)
	}
	if cfg.V1IDForm < 0 || cfg.V1IDForm >= numIDForms {
		return nil, fmt.Errorf("%w: V1IDForm %d: must be IDBracketed, IDBare or IDLocationOnly", ErrInvalidConfig, cfg.V1IDForm)
	}
	if cfg.BroadcastLimit < 0 {
		return nil, fmt.Errorf("%w: BroadcastLimit %d: must be >= 0", ErrInvalidConfig, cfg.BroadcastLimit)
	}
	cb, err := newCallbacks(cfg)
	if err != nil {
		return nil, err
	}
	s := &Simulator{
		v1:             v1,
		idForm:         cfg.V1IDForm,
		broadcastLimit: cmp.Or(cfg.BroadcastLimit, BroadcastLimitDefault),
		latency:        cfg.Latency,
		jitter:         cfg.Jitter,
		hangFor:        cfg.HangFor,
		mix:            cfg.Faults.thresholds(),
		now:            cfg.Now,
		cb:             cb,
		done:           make(chan struct{}),
	}
	s.SetCredentials(cfg.Username, cfg.Password)
	s.redirectHTTPS.Store(cfg.RedirectHTTPS)
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
	s.lastID.Store(max(time.Now().UnixMicro(), 0))
	if cb != nil {
		cb.sim = s
		cb.start()
	}
	return s, nil
}

// newCallbacks checks the callback fields of cfg and applies their defaults. It
// returns nil when no callback URL is set.
func newCallbacks(cfg Config) (*callbacks, error) {
	for _, n := range []struct {
		name string
		v    int
	}{
		{"CallbackSenders", cfg.CallbackSenders},
		{"CallbackQueue", cfg.CallbackQueue},
	} {
		if n.v < 0 {
			return nil, fmt.Errorf("%w: %s %d: must be >= 0", ErrInvalidConfig, n.name, n.v)
		}
	}
	if err := cfg.DLRMix.Validate(); err != nil {
		return nil, fmt.Errorf("%w: DLRMix: %w", ErrInvalidConfig, err)
	}
	interim := cfg.DLRInterim
	if interim == nil {
		interim = []string{StatusSent}
	} else {
		interim = slices.Clone(interim) // the caller may reuse its slice
	}
	for i, st := range interim {
		if !knownStatus(st) {
			return nil, fmt.Errorf("%w: DLRInterim[%d] %q: not a DLR status; known: %s",
				ErrInvalidConfig, i, st, strings.Join(dlrStatuses, ", "))
		}
	}
	switch cfg.DLRShape {
	case "", DLRShapeMessageID, DLRShapeID:
	default:
		return nil, fmt.Errorf("%w: DLRShape %q: must be %q or %q", ErrInvalidConfig, cfg.DLRShape, DLRShapeMessageID, DLRShapeID)
	}
	c := &callbacks{
		openAPIShape: cfg.DLRShape == DLRShapeID,
		interim:      interim,
		mix:          thresholds(cfg.DLRMix, dlrMixFields),
		delay:        cfg.DLRDelay,
		jitter:       cfg.DLRJitter,
		gap:          cfg.DLRGap,
		duplicate:    cfg.DLRDuplicate,
		reorder:      cfg.DLRReorder,
		giveUp:       cmp.Or(cfg.CallbackGiveUp, CallbackGiveUpDefault),
		timeout:      cmp.Or(cfg.CallbackTimeout, CallbackTimeoutDefault),
		backoffMin:   cmp.Or(cfg.CallbackBackoff, CallbackBackoffDefault),
		backoffMax:   cmp.Or(cfg.CallbackBackoffMax, CallbackBackoffMaxDefault),
		limit:        cmp.Or(cfg.CallbackQueue, CallbackQueueDefault),
		senders:      cmp.Or(cfg.CallbackSenders, CallbackSendersDefault),
	}
	c.backoffMax = max(c.backoffMax, c.backoffMin)
	var err error
	if cfg.DLRURL != "" {
		if c.dlr, err = parseEndpoint("DLRURL", cfg.DLRURL); err != nil {
			return nil, err
		}
	}
	if cfg.MOURL != "" {
		if c.mo, err = parseEndpoint("MOURL", cfg.MOURL); err != nil {
			return nil, err
		}
	}
	if c.dlr == nil && c.mo == nil {
		return nil, nil
	}
	return c, nil
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

// credentials are the HTTP Basic credentials the simulator requires.
type credentials struct {
	header     string // "Basic <base64>", "" when no credentials are checked
	user, pass string
}

// SetCredentials changes the HTTP Basic credentials that requests must carry from
// now on, as Config.Username and Config.Password set them first; both empty turns
// the check off. A request already past its check is not affected. Tests use it to
// have the gateway refuse a client's credentials for a while, as when an account's
// password is changed on one side first.
func (s *Simulator) SetCredentials(username, password string) {
	c := &credentials{user: username, pass: password}
	if username != "" || password != "" {
		c.header = "Basic " + base64.StdEncoding.EncodeToString([]byte(username+":"+password))
	}
	s.creds.Store(c)
}

// Inject queues faults for the next len(faults) POST /messages (or POST
// /messages/broadcast) requests, one each in order, ahead of the random mix; a later
// call queues behind an earlier one. Every such request takes its place in the queue, including one that turns
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

		Broadcasts:        s.broadcasts.Load(),
		BroadcastFailures: s.broadcastFailures.Load(),
	}
	for f := range s.faults {
		if n := s.faults[f].Load(); n > 0 {
			st.Faults[Fault(f)] = n
		}
	}
	if s.cb != nil {
		s.cb.stats(&st)
	}
	return st
}

// Message returns the accepted message with the given id (a UUID, or under REST v1
// a decimal integer), if it is still kept (see Config.Keep).
func (s *Simulator) Message(id string) (Message, bool) {
	k, ok := s.parseKey(id)
	if !ok {
		return Message{}, false
	}
	return s.store.get(k)
}

// parseKey reads an id of the simulator's API.
func (s *Simulator) parseKey(id string) (key, bool) {
	if s.v1 {
		return v1Key(id)
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return key{}, false
	}
	return key{uuid: u}, true
}

// v1Key reads a REST v1 id: a positive integer in decimal digits.
func v1Key(id string) (key, bool) {
	if id == "" || len(id) > 19 {
		return key{}, false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return key{}, false
		}
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return key{}, false
	}
	return key{num: n}, true
}

// newKey returns the id of a new message or MO.
func (s *Simulator) newKey() key {
	if s.v1 {
		return key{num: s.lastID.Add(1)}
	}
	return key{uuid: newUUID()}
}

// SetRedirectHTTPS turns Config.RedirectHTTPS on or off while the simulator
// runs.
func (s *Simulator) SetRedirectHTTPS(on bool) { s.redirectHTTPS.Store(on) }

// SetOutage makes every request, health checks and look-ups included, get 503
// with the gateway's own error body (on) until it is called with false: an
// outage of the whole gateway, which probes see too. Injected faults and the
// mix apply to submissions only.
func (s *Simulator) SetOutage(on bool) { s.outage.Store(on) }

// ReleaseDue sends the receipts of every scheduled message whose time has come
// on the simulator's clock (Config.Now): until then a scheduled message stays
// "accepted" and gets no receipt, as the gateway sends it only at its time. A
// timer calls it in real time at each message's schedule; a test that moves
// Config.Now calls it itself.
func (s *Simulator) ReleaseDue() {
	if s.cb != nil && s.cb.dlr != nil {
		s.cb.releaseDue(s.now())
	}
}

// Close ends every request the simulator holds — hang faults close their connection
// at once, latency waits end and answer — and makes later holds and waits end at
// once. It also stops the callbacks: attempts in flight are cancelled, pending
// receipts are dropped (counted in Stats.ReceiptsDropped), pending MOs fail with
// ErrClosed, and Close returns once every callback goroutine has. The simulator
// still answers requests after Close but sends no more callbacks. Call it before
// shutting the server down, for example with
// http.Server.RegisterOnShutdown(sim.Close): neither http.Server.Shutdown nor
// httptest.Server.Close ends a handler that is waiting. Close is safe to call more
// than once; a second call returns once the first has finished.
func (s *Simulator) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		if s.cb != nil {
			s.cb.close()
		}
	})
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
	return draw(s.mix, FaultNone)
}
