package dlr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/secret"
	"github.com/jetsms/jetsms/internal/subjects"
)

// The routes the Receiver answers; mount it on a mux at both (or at "/callbacks/").
const (
	PathDLR = "/callbacks/dlr"
	PathMO  = "/callbacks/mo"
)

// Receiver defaults and fixed limits.
const (
	// MaxBodyBytes is the largest callback body read (64 KiB, as docs/contract.md
	// says); a larger one is answered 413.
	MaxBodyBytes = 64 << 10
	// PublishTimeoutDefault bounds how long a callback waits for JetStream to
	// store it before the gateway is answered 503.
	PublishTimeoutDefault = 5 * time.Second
	// RetryAfterDefault is the Retry-After of a 503 answer.
	RetryAfterDefault = 5 * time.Second
)

// ErrInvalidConfig is wrapped by every error New returns for a bad Config.
var ErrInvalidConfig = errors.New("dlr: invalid config")

// ErrNoCredentials is wrapped by New's error for a Config without credentials
// that does not allow unauthenticated callbacks.
var ErrNoCredentials = errors.New("no callback credentials: set callbacks.username and callbacks.password (the gateway's callback URLs carry them), or set callbacks.allow_unauthenticated: true to accept callbacks from anyone")

// Config sets up a Receiver. Credentials are required unless
// AllowUnauthenticated is set.
type Config struct {
	// Username and Password are the HTTP Basic credentials the gateway must send,
	// both or neither. Both empty is refused unless AllowUnauthenticated is set.
	Username string
	Password secret.Secret
	// AllowUnauthenticated accepts callbacks without credentials when none are
	// configured: anyone who can reach the receiver can then end jobs, change
	// the opt-out list and fake inbound messages. New logs a warning for it.
	AllowUnauthenticated bool
	// AllowFrom, when not empty, is the source addresses callbacks may come
	// from (the TCP peer; a proxy's forwarding headers are not trusted); others
	// get 403.
	AllowFrom []netip.Prefix
	// PublishTimeout bounds the wait for JetStream's acknowledgement of one
	// callback. Zero means PublishTimeoutDefault; must be >= 0. Keep it below the
	// server's WriteTimeout.
	PublishTimeout time.Duration
	// RetryAfter is sent with 503 answers, in whole seconds rounded up, at least
	// 1. Zero means RetryAfterDefault; must be >= 0.
	RetryAfter time.Duration
	// Now stamps ReceivedAt. Nil means time.Now.
	Now func() time.Time
	// Metrics, when set, counts callbacks by kind and answer.
	Metrics *metrics.Metrics
}

// Receiver is the http.Handler of the gateway's callbacks: POST PathDLR and
// POST PathMO. Build it with New; it is safe for concurrent use.
type Receiver struct {
	allowFrom      []netip.Prefix
	metrics        *metrics.Metrics
	js             jetstream.JetStream
	subjectDLR     string // names.CallbackDLR(), built once
	subjectMO      string // names.CallbackMO()
	log            *zap.Logger
	auth           bool
	userSum        [sha256.Size]byte
	passSum        [sha256.Size]byte
	publishTimeout time.Duration
	retryAfter     []string
	now            func() time.Time

	counts [numKinds][numOutcomes]atomic.Int64
}

// New returns a receiver that stores callbacks with js on the subjects of names.
// It returns an error wrapping ErrInvalidConfig that names the field and the rule
// when cfg is invalid. A nil log logs nothing.
func New(cfg Config, js jetstream.JetStream, names subjects.Names, log *zap.Logger) (*Receiver, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: a JetStream context is required", ErrInvalidConfig)
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, fmt.Errorf("%w: Username and Password must be set together or not at all", ErrInvalidConfig)
	}
	if cfg.Username == "" && !cfg.AllowUnauthenticated {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, ErrNoCredentials)
	}
	if cfg.PublishTimeout < 0 {
		return nil, fmt.Errorf("%w: PublishTimeout %v: must be >= 0", ErrInvalidConfig, cfg.PublishTimeout)
	}
	if cfg.RetryAfter < 0 {
		return nil, fmt.Errorf("%w: RetryAfter %v: must be >= 0", ErrInvalidConfig, cfg.RetryAfter)
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Username == "" {
		log.Warn("callbacks are accepted without credentials (callbacks.allow_unauthenticated): anyone who reaches this port can end jobs, change the opt-out list and fake inbound messages; set callbacks.username and callbacks.password")
	}
	rc := &Receiver{
		allowFrom:      slices.Clone(cfg.AllowFrom),
		metrics:        cfg.Metrics,
		js:             js,
		subjectDLR:     names.CallbackDLR(),
		subjectMO:      names.CallbackMO(),
		log:            log.Named("callbacks"),
		auth:           cfg.Username != "",
		userSum:        sha256.Sum256([]byte(cfg.Username)),
		passSum:        sha256.Sum256([]byte(cfg.Password.Reveal())),
		publishTimeout: cfg.PublishTimeout,
		now:            cfg.Now,
	}
	if rc.publishTimeout == 0 {
		rc.publishTimeout = PublishTimeoutDefault
	}
	if rc.now == nil {
		rc.now = time.Now
	}
	retryAfter := cfg.RetryAfter
	if retryAfter == 0 {
		retryAfter = RetryAfterDefault
	}
	secs := int64(retryAfter / time.Second)
	if retryAfter%time.Second != 0 || secs == 0 {
		secs++ // whole seconds, rounded up, at least 1
	}
	rc.retryAfter = []string{strconv.FormatInt(secs, 10)}
	return rc, nil
}

// kind is the kind of callback a route takes.
type kind int

const (
	kindDLR kind = iota
	kindMO
	numKinds
)

func (k kind) String() string {
	if k == kindMO {
		return "mo"
	}
	return "dlr"
}

// outcome is what a callback request was answered.
type outcome int

const (
	outStored outcome = iota
	outDuplicate
	outInvalid
	outUnauthorized
	outTooLarge
	outUnavailable
	outForbidden
	numOutcomes
)

// Counts are the answers given to one kind of callback since New.
type Counts struct {
	// Stored counts 200 answers: the callback is in JetStream. Duplicate counts
	// those of them JetStream recognised as already stored (same Nats-Msg-Id in
	// its duplicate window); they are included in Stored.
	Stored, Duplicate int64
	// Invalid (400), Unauthorized (401) and TooLarge (413) are the rejections.
	Invalid, Unauthorized, TooLarge int64
	// Unavailable counts 503 answers: JetStream did not store the callback in
	// time, and the gateway is asked to send it again.
	Unavailable int64
	// Forbidden counts 403 answers: the source address is not allowed.
	Forbidden int64
}

// Rejected is the sum of the 400, 401, 403 and 413 answers.
func (c Counts) Rejected() int64 { return c.Invalid + c.Unauthorized + c.TooLarge + c.Forbidden }

// Stats are the receiver's counters by kind of callback. Requests answered 404 or
// 405, and requests whose client went away before the answer, are not counted.
type Stats struct {
	DLR, MO Counts
}

// Stats returns the counters so far. Each counter is read atomically; the set is
// not a snapshot of one instant.
func (rc *Receiver) Stats() Stats {
	read := func(k kind) Counts {
		c := &rc.counts[k]
		return Counts{
			Stored:       c[outStored].Load(),
			Duplicate:    c[outDuplicate].Load(),
			Invalid:      c[outInvalid].Load(),
			Unauthorized: c[outUnauthorized].Load(),
			TooLarge:     c[outTooLarge].Load(),
			Unavailable:  c[outUnavailable].Load(),
			Forbidden:    c[outForbidden].Load(),
		}
	}
	return Stats{DLR: read(kindDLR), MO: read(kindMO)}
}

func (rc *Receiver) count(k kind, o outcome) {
	rc.counts[k][o].Add(1)
	rc.metrics.Callback(metrics.CallbackKind(k.String()), metricResults[o])
}

// metricResults names the outcomes as the metrics do.
var metricResults = [numOutcomes]metrics.CallbackResult{
	outStored: metrics.CallbackStored, outDuplicate: metrics.CallbackDuplicate, outInvalid: metrics.CallbackInvalid,
	outUnauthorized: metrics.CallbackUnauthorized, outTooLarge: metrics.CallbackTooLarge, outUnavailable: metrics.CallbackUnavailable,
	outForbidden: metrics.CallbackForbidden,
}

// Header values and bodies of the fixed answers. net/http only reads header
// slices, so one slice serves every request.
var (
	headerJSON  = []string{"application/json"}
	headerAllow = []string{http.MethodPost}
	headerAuth  = []string{`Basic realm="jetsms callbacks", charset="UTF-8"`}

	bodyStored       = []byte(`{"status":"stored"}` + "\n")
	bodyNotFound     = []byte(`{"error":"not_found"}` + "\n")
	bodyMethod       = []byte(`{"error":"method_not_allowed","message":"use POST"}` + "\n")
	bodyUnauthorized = []byte(`{"error":"unauthorized"}` + "\n")
	bodyForbidden    = []byte(`{"error":"forbidden","message":"this source address may not send callbacks"}` + "\n")
	bodyUnread       = []byte(`{"error":"invalid_callback","field":"body","message":"body: not received whole (cut short, or slower than the read timeout); nothing was stored"}` + "\n")
	bodyTooLarge     = []byte(`{"error":"too_large","message":"body: must be at most ` +
		strconv.Itoa(MaxBodyBytes) + ` bytes"}` + "\n")
	bodyStoredTooLarge = []byte(`{"error":"too_large","message":"the stored form of this callback exceeds the stream's message size"}` + "\n")
	bodyUnavailable    = []byte(`{"error":"unavailable","message":"the callback could not be stored; send it again"}` + "\n")
)

// bufPool holds request body buffers. Parsing copies every value out of the body,
// so a buffer is free again once the body is parsed.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf keeps a rare large body from pinning its buffer in the pool.
const maxPooledBuf = 16 << 10

// ServeHTTP answers POST PathDLR and POST PathMO; other paths get 404 and other
// methods 405 (with Allow: POST). A callback is answered:
//
//   - 401 with WWW-Authenticate when credentials are configured and the request
//     does not carry them;
//   - 413 when the body exceeds MaxBodyBytes, or its stored form exceeds what the
//     callbacks stream accepts;
//   - 400 with {"error":"invalid_callback","field":...,"message":...} when the
//     body breaks a rule of ParseReceipt or ParseInbound;
//   - 200 once JetStream has acknowledged storing it (or acknowledged it as a
//     duplicate of one stored before);
//   - 503 with Retry-After when JetStream did not acknowledge it within
//     Config.PublishTimeout or refused it for any other reason.
//
// Every answer has a JSON body. The request's Content-Type is not checked: the
// body is read as JSON whatever it says.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var k kind
	switch r.URL.Path {
	case PathDLR:
		k = kindDLR
	case PathMO:
		k = kindMO
	default:
		write(w, http.StatusNotFound, bodyNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = headerAllow
		write(w, http.StatusMethodNotAllowed, bodyMethod)
		return
	}
	if !rc.allowed(r) {
		// 403, not 401: the source is known and refused; no credentials would
		// change that, and a 401 would invite trying some.
		rc.count(k, outForbidden)
		rc.log.Debug("callback from a source address not allowed", zap.Stringer("kind", k),
			zap.String("remote_addr", r.RemoteAddr))
		write(w, http.StatusForbidden, bodyForbidden)
		return
	}
	if !rc.authorized(r) {
		rc.count(k, outUnauthorized)
		rc.log.Debug("callback without valid credentials", zap.Stringer("kind", k),
			zap.String("remote_addr", r.RemoteAddr))
		w.Header()["Www-Authenticate"] = headerAuth
		write(w, http.StatusUnauthorized, bodyUnauthorized)
		return
	}
	if r.ContentLength > MaxBodyBytes {
		rc.tooLarge(w, r, k)
		return
	}

	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			bufPool.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, MaxBodyBytes)); err != nil {
		if maxErr := (*http.MaxBytesError)(nil); errors.As(err, &maxErr) {
			rc.tooLarge(w, r, k)
			return
		}
		// Cut short, or slower than the server's ReadTimeout: nothing is stored,
		// and the answer must not be a 200 (the gateway would not send it again).
		// The connection is closed after it; if the client is gone, no one reads it.
		rc.count(k, outInvalid)
		rc.log.Debug("callback body not read whole", zap.Stringer("kind", k), zap.Error(err))
		w.Header().Set("Connection", "close")
		write(w, http.StatusBadRequest, bodyUnread)
		return
	}

	var (
		msg *nats.Msg
		err error
	)
	if k == kindDLR {
		msg, err = rc.receipt(buf.Bytes())
	} else {
		msg, err = rc.inbound(buf.Bytes())
	}
	if err != nil {
		rc.invalid(w, r, k, err)
		return
	}
	rc.store(w, r, k, msg)
}

// encodedSize is a capacity that holds the stored form of a callback parsed from
// a body of n bytes without growing, in the usual case: the fields come back in
// about as many bytes, plus "api" and "received_at".
func encodedSize(n int) int { return n + 96 }

// receipt parses a DLR body and returns the message that stores it.
func (rc *Receiver) receipt(body []byte) (*nats.Msg, error) {
	rec, err := ParseReceipt(body)
	if err != nil {
		return nil, err
	}
	rec.ReceivedAt = rc.now().UTC()
	data := appendReceipt(make([]byte, 0, encodedSize(len(body))), &rec)
	return &nats.Msg{
		Subject: rc.subjectDLR,
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{ReceiptMsgID(rec)}},
	}, nil
}

// inbound parses an MO body and returns the message that stores it.
func (rc *Receiver) inbound(body []byte) (*nats.Msg, error) {
	in, err := ParseInbound(body)
	if err != nil {
		return nil, err
	}
	in.ReceivedAt = rc.now().UTC()
	data := appendInbound(make([]byte, 0, encodedSize(len(body))), &in)
	return &nats.Msg{
		Subject: rc.subjectMO,
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{InboundMsgID(in)}},
	}, nil
}

// store publishes msg and answers once JetStream has acknowledged it, or 503.
func (rc *Receiver) store(w http.ResponseWriter, r *http.Request, k kind, msg *nats.Msg) {
	ctx, cancel := context.WithTimeout(r.Context(), rc.publishTimeout)
	defer cancel()
	ack, err := rc.js.PublishMsg(ctx, msg)
	switch {
	case err == nil:
		if ack.Duplicate {
			rc.count(k, outDuplicate)
		}
		rc.count(k, outStored)
		write(w, http.StatusOK, bodyStored)
	case r.Context().Err() != nil:
		// The gateway hung up first; it will send the callback again, and the
		// Nats-Msg-Id keeps a second copy out should this one have been stored.
		// The 503 goes nowhere, but no handler path ends in net/http's implicit 200.
		rc.log.Debug("gateway went away before the callback was stored", zap.Stringer("kind", k),
			zap.String("msg_id", redact.Cut(msg.Header.Get(jetstream.MsgIDHeader))), zap.Error(err))
		write(w, http.StatusServiceUnavailable, bodyUnavailable)
	case errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum):
		// Sending it again would not help: refuse it rather than answer 503 forever.
		rc.count(k, outTooLarge)
		rc.log.Warn("callback too large for the callbacks stream", zap.Stringer("kind", k),
			zap.String("msg_id", redact.Cut(msg.Header.Get(jetstream.MsgIDHeader))), zap.Int("bytes", len(msg.Data)))
		write(w, http.StatusRequestEntityTooLarge, bodyStoredTooLarge)
	default:
		rc.count(k, outUnavailable)
		rc.log.Warn("callback not stored; answering 503", zap.Stringer("kind", k),
			zap.String("msg_id", redact.Cut(msg.Header.Get(jetstream.MsgIDHeader))), zap.Error(err))
		w.Header()["Retry-After"] = rc.retryAfter
		write(w, http.StatusServiceUnavailable, bodyUnavailable)
	}
}

// invalid answers 400 naming the field and the rule.
func (rc *Receiver) invalid(w http.ResponseWriter, r *http.Request, k kind, err error) {
	rc.count(k, outInvalid)
	field := "body"
	var fe *FieldError
	if errors.As(err, &fe) {
		field = fe.Field
	}
	rc.log.Warn("callback refused", zap.Stringer("kind", k), zap.String("remote_addr", r.RemoteAddr),
		zap.Error(err))
	body, mErr := json.Marshal(struct {
		Error   string `json:"error"`
		Field   string `json:"field"`
		Message string `json:"message"`
	}{"invalid_callback", field, err.Error()})
	if mErr != nil {
		// Strings always marshal; this keeps the answer valid should that change.
		body = []byte(`{"error":"invalid_callback"}`)
	}
	write(w, http.StatusBadRequest, append(body, '\n'))
}

func (rc *Receiver) tooLarge(w http.ResponseWriter, r *http.Request, k kind) {
	rc.count(k, outTooLarge)
	rc.log.Warn("callback body too large", zap.Stringer("kind", k), zap.String("remote_addr", r.RemoteAddr),
		zap.Int64("content_length", r.ContentLength))
	// The rest of the body is not read: close the connection rather than drain it.
	w.Header().Set("Connection", "close")
	write(w, http.StatusRequestEntityTooLarge, bodyTooLarge)
}

// allowed reports whether the request's TCP peer is in AllowFrom (always, when
// AllowFrom is empty).
func (rc *Receiver) allowed(r *http.Request) bool {
	if len(rc.allowFrom) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range rc.allowFrom {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// authorized checks HTTP Basic credentials in constant time: both names are
// compared through their SHA-256 sums, so neither the length nor the content of
// the configured ones shows in the timing.
func (rc *Receiver) authorized(r *http.Request) bool {
	if !rc.auth {
		return true
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	userSum, passSum := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
	userOK := subtle.ConstantTimeCompare(userSum[:], rc.userSum[:])
	passOK := subtle.ConstantTimeCompare(passSum[:], rc.passSum[:])
	return userOK&passOK == 1
}

func write(w http.ResponseWriter, status int, body []byte) {
	// net/http sets Content-Length itself for a body this small.
	w.Header()["Content-Type"] = headerJSON
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
