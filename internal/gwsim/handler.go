package gwsim

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Header values and bodies shared by every answer. net/http only reads header
// slices, so one slice can serve every request.
var (
	headerJSON      = []string{"application/json"}
	headerText      = []string{"text/plain; charset=utf-8"}
	headerAllowMsgs = []string{"GET, HEAD, POST"}
	headerAllowGet  = []string{"GET, HEAD"}
	headerAllowPost = []string{"POST"}
	headerAuth      = []string{`Basic realm="Mobile Gateway"`}

	body500         = []byte("Internal Server Error\n")
	body503         = []byte(`{"message":"Service Unavailable","statusCode":503,"error":"the service is unavailable, try again later"}`)
	body502         = []byte("<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n")
	body504         = []byte("<html><head><title>504 Gateway Time-out</title></head><body><h1>504 Gateway Time-out</h1></body></html>\n")
	body406         = []byte(`{"message":"Not Acceptable"}`)
	body415         = []byte(`{"message":"Unsupported Media Type"}`)
	headerHTML      = []string{"text/html"}
	body429         = []byte(`{"message":"Too Many Requests"}`)
	body401         = []byte(`{"message":"Unauthorized"}`)
	body404         = []byte(`{"message":"Not Found"}`)
	body405         = []byte(`{"message":"Method Not Allowed"}`)
	body413         = []byte(`{"message":"Request Entity Too Large"}`)
	bodyHealthy     = []byte(`{"status":"ok"}`)
	bodyOpenAPI500  = []byte(`{"message":"SMS Gateway Service V2 error","statusCode":500,"error":"simulated internal error"}`)
	bodySendFailed  = reject(http.StatusBadRequest, codeSendFailed, descSendFailed).body
	bodyInvalidAttr = reject(http.StatusBadRequest, codeInvalidAttrib, []string{"simulated invalid attribute"}).body
)

// bufPool holds request body buffers; the answer to an accepted message is built in
// the same buffer once the body has been decoded.
var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBuf keeps a rare large body from pinning its buffer in the pool.
const maxPooledBuf = 16 << 10

// ServeHTTP answers the routes of the simulator's API, and the simulator's own
// POST /sim/mo, which sends an MO callback (see SendMO). Other paths get 404 and
// other methods 405.
//
// REST v2 (the default), only under BasePath: POST /messages, GET /messages?id=
// and GET /healthz. REST v1 (Config.API APIv1), only under BasePathV1: POST
// /messages, POST /messages/broadcast and GET /messages/{id}. POST /sim/mo is
// served at the root and under the base path. Under Config.RedirectHTTPS every
// request is answered 301 to the same URL with https.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.redirectHTTPS.Load() && r.TLS == nil {
		// As the gateway does with plain HTTP: "all attempts to use plain-text
		// HTTP will be redirected to HTTPS".
		u := *r.URL
		u.Scheme, u.Host = "https", r.Host
		w.Header()["Location"] = []string{u.String()}
		write(w, http.StatusMovedPermanently, headerHTML, []byte("<html><body>Moved Permanently</body></html>\n"))
		return
	}
	if r.URL.Path == "/sim/mo" {
		s.serveSimMO(w, r)
		return
	}
	if s.outage.Load() {
		w.Header()["Retry-After"] = s.retryAfter
		write(w, http.StatusServiceUnavailable, headerJSON, body503)
		return
	}
	if s.v1 {
		s.serveV1(w, r)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, BasePath)
	if !ok {
		write(w, http.StatusNotFound, headerJSON, body404)
		return
	}
	switch path {
	case "/messages":
		switch r.Method {
		case http.MethodPost:
			if s.mediaTypes(w, r) {
				s.post(w, r)
			}
		case http.MethodGet, http.MethodHead:
			if s.mediaTypes(w, r) {
				s.get(w, r)
			}
		default:
			w.Header()["Allow"] = headerAllowMsgs
			write(w, http.StatusMethodNotAllowed, headerJSON, body405)
		}
	case "/sim/mo":
		s.serveSimMO(w, r)
	case "/healthz":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header()["Allow"] = headerAllowGet
			write(w, http.StatusMethodNotAllowed, headerJSON, body405)
			return
		}
		if !s.mediaTypes(w, r) {
			return
		}
		write(w, http.StatusOK, headerJSON, bodyHealthy)
	default:
		write(w, http.StatusNotFound, headerJSON, body404)
	}
}

// The media types of the two APIs.
const (
	mediaJSON = "application/json"
	mediaV1   = "application/vnd.modica.gateway.v1+json"
)

// mediaTypes checks a request's Accept and, when it has a body, Content-Type
// against the API: 406 for an Accept that admits no media type of the API, 415
// for a body that is not JSON. It reports whether the request goes on; when it
// does not, it has been answered.
//
// REST v2 answers application/json only ("Accept: application/json" under
// "Versions"); REST v1 answers application/vnd.modica.gateway.v1+json and, as
// its own code samples send it, application/json. A missing Accept, */* and
// application/* admit either. The body must be application/json (REST v1 also
// takes its own media type). The documents state neither 406 nor 415: these
// are the simulator's guess of what a strict gateway answers.
func (s *Simulator) mediaTypes(w http.ResponseWriter, r *http.Request) bool {
	if !acceptable(r.Header.Values("Accept"), s.v1) {
		write(w, http.StatusNotAcceptable, headerJSON, body406)
		return false
	}
	if r.Method != http.MethodPost {
		return true
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	if ct != mediaJSON && (!s.v1 || ct != mediaV1) {
		write(w, http.StatusUnsupportedMediaType, headerJSON, body415)
		return false
	}
	return true
}

// acceptable reports whether Accept header values admit a media type of the API.
func acceptable(values []string, v1 bool) bool {
	if len(values) == 0 {
		return true
	}
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, _ := strings.Cut(part, ";")
			mt = strings.ToLower(strings.TrimSpace(mt))
			if strings.Contains(strings.ReplaceAll(params, " ", ""), "q=0") && !strings.Contains(params, "q=0.") {
				continue // q=0: not acceptable
			}
			switch mt {
			case "*/*", "application/*", mediaJSON:
				return true
			case mediaV1:
				if v1 {
					return true
				}
			}
		}
	}
	return false
}

// serveV1 answers the REST v1 routes.
func (s *Simulator) serveV1(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, BasePathV1)
	if !ok {
		write(w, http.StatusNotFound, headerJSON, body404)
		return
	}
	switch {
	case path == "/messages", path == "/messages/broadcast":
		if r.Method != http.MethodPost {
			w.Header()["Allow"] = headerAllowPost
			write(w, http.StatusMethodNotAllowed, headerJSON, body405)
			return
		}
		if !s.mediaTypes(w, r) {
			return
		}
		if path == "/messages" {
			s.post(w, r)
		} else {
			s.broadcast(w, r)
		}
	case strings.HasPrefix(path, "/messages/"):
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header()["Allow"] = headerAllowGet
			write(w, http.StatusMethodNotAllowed, headerJSON, body405)
			return
		}
		if !s.mediaTypes(w, r) {
			return
		}
		s.getV1(w, r, strings.TrimPrefix(path, "/messages/"))
	case path == "/sim/mo":
		s.serveSimMO(w, r)
	default:
		write(w, http.StatusNotFound, headerJSON, body404)
	}
}

func (s *Simulator) serveSimMO(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header()["Allow"] = headerAllowPost
		write(w, http.StatusMethodNotAllowed, headerJSON, body405)
		return
	}
	s.simMO(w, r)
}

// getBuf returns a pooled buffer for a request body; putBuf gives it back.
func getBuf() *bytes.Buffer {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	return buf
}

func putBuf(buf *bytes.Buffer) {
	if buf.Cap() <= maxPooledBuf {
		bufPool.Put(buf)
	}
}

// post serves POST /messages: one message, answered 202 (REST v2) or 201 (REST
// v1).
func (s *Simulator) post(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	fault := s.nextFault()
	buf := getBuf()
	defer putBuf(buf)
	if !s.intake(w, r, buf, fault) {
		return
	}
	now := s.now()
	m, rej := decode(buf.Bytes(), now)
	if rej != nil {
		s.rejected.Add(1)
		s.delay(r)
		write(w, rej.status, headerJSON, rej.body)
		return
	}
	if s.gatewayFault(w, r, fault) {
		return
	}
	// The message is accepted before the latency, as a real gateway commits while
	// the client waits: a client that gives up during the latency does not know its
	// message went through.
	_, m = s.accept(m, now)
	if s.acceptedFault(w, r, fault) {
		return
	}

	buf.Reset()
	if s.v1 {
		w.Header()["Location"] = []string{origin(r) + r.URL.Path + "/" + m.ID}
		switch s.idForm {
		case IDBracketed:
			buf.WriteByte('[')
			buf.WriteString(m.ID)
			buf.WriteByte(']')
		case IDBare:
			buf.WriteString(m.ID)
		case IDLocationOnly:
			s.delay(r)
			w.WriteHeader(http.StatusCreated)
			return
		}
		s.delay(r)
		write(w, http.StatusCreated, headerJSON, buf.Bytes())
		return
	}
	// Destination passed international(), so it needs no JSON escaping.
	buf.WriteString(`{"id":"`)
	buf.WriteString(m.ID)
	buf.WriteString(`","status":"accepted","detail":"`)
	buf.WriteString(m.Destination)
	buf.WriteString(`"}`)
	s.delay(r)
	write(w, http.StatusAccepted, headerJSON, buf.Bytes())
}

// broadcastResult is one destination's entry in a REST v1 broadcast's 201
// answer.
type broadcastResult struct {
	Status      string  `json:"status"`      // "success" or "failure"
	Message     *string `json:"message"`     // the failure's reason; null on success
	Destination string  `json:"destination"` // as sent
	ID          *int64  `json:"id"`          // null on failure
}

// Broadcast result statuses of the REST v1 page.
const (
	broadcastSuccess = "success"
	broadcastFailure = "failure"
)

// broadcast serves REST v1 POST /messages/broadcast: one content to many
// destinations, each accepted as a message of its own or answered with a failure
// entry, all in one 201.
func (s *Simulator) broadcast(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	s.broadcasts.Add(1)
	fault := s.nextFault()
	buf := getBuf()
	defer putBuf(buf)
	if !s.intake(w, r, buf, fault) {
		return
	}
	now := s.now()
	dests, m, rej := decodeBroadcast(buf.Bytes(), now, s.broadcastLimit)
	if rej != nil {
		s.rejected.Add(1)
		s.delay(r)
		write(w, rej.status, headerJSON, rej.body)
		return
	}
	if s.gatewayFault(w, r, fault) {
		return
	}
	results := make([]broadcastResult, len(dests))
	for i, d := range dests {
		results[i].Destination = d
		if !international(d) {
			s.broadcastFailures.Add(1)
			reason := "Invalid destination (" + d + ")"
			results[i].Status, results[i].Message = broadcastFailure, &reason
			continue
		}
		one := m
		one.Destination = d
		id, _ := s.accept(one, now)
		results[i].Status, results[i].ID = broadcastSuccess, &id.num
	}
	if s.acceptedFault(w, r, fault) {
		return
	}
	body, err := json.Marshal(results)
	if err != nil {
		// Only strings and integers are marshalled.
		write(w, http.StatusInternalServerError, headerText, body500)
		return
	}
	s.delay(r)
	write(w, http.StatusCreated, headerJSON, body)
}

// intake reads a submission's body into buf and applies what comes before its
// validation: the faults of the infrastructure in front of the gateway, the size
// limit and the credentials. It reports whether the request goes on; when it does
// not, it has been answered, or its client went away.
func (s *Simulator) intake(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer, fault Fault) bool {
	// Reading to EOF also lets net/http notice a client that hangs up while the
	// request is held, which cancels r.Context().
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, MaxBodyBytes+1)); err != nil {
		return false // the client went away mid-body: there is no one to answer
	}

	// Faults of the infrastructure in front of the gateway: they come before
	// credentials and body are looked at.
	switch fault {
	case FaultTimeout:
		s.faults[fault].Add(1)
		s.hang(w, r)
		return false
	case FaultReset:
		s.faults[fault].Add(1)
		abort(w, true)
		return false
	case Fault500:
		s.faults[fault].Add(1)
		s.delay(r)
		write(w, http.StatusInternalServerError, headerText, body500)
		return false
	case Fault503:
		s.faults[fault].Add(1)
		s.delay(r)
		w.Header()["Retry-After"] = s.retryAfter
		write(w, http.StatusServiceUnavailable, headerJSON, body503)
		return false
	case Fault429:
		s.faults[fault].Add(1)
		s.delay(r)
		w.Header()["Retry-After"] = s.retryAfter
		write(w, http.StatusTooManyRequests, headerJSON, body429)
		return false
	case FaultOpenAPIError:
		s.faults[fault].Add(1)
		s.delay(r)
		write(w, http.StatusInternalServerError, headerJSON, bodyOpenAPI500)
		return false
	case Fault502:
		s.faults[fault].Add(1)
		s.delay(r)
		write(w, http.StatusBadGateway, headerHTML, body502)
		return false
	case FaultUnauthorized:
		s.faults[fault].Add(1)
		s.delay(r)
		s.writeUnauthorized(w)
		return false
	}

	if buf.Len() > MaxBodyBytes {
		s.rejected.Add(1)
		s.delay(r)
		write(w, http.StatusRequestEntityTooLarge, headerJSON, body413)
		return false
	}
	if !s.authorized(r) {
		s.unauthorized.Add(1)
		s.delay(r)
		s.writeUnauthorized(w)
		return false
	}
	return true
}

// gatewayFault answers a valid submission with a fault of the gateway itself,
// reporting whether it did.
func (s *Simulator) gatewayFault(w http.ResponseWriter, r *http.Request, fault Fault) bool {
	switch fault {
	case FaultSendFailed:
		s.faults[fault].Add(1)
		s.delay(r)
		write(w, http.StatusBadRequest, headerJSON, bodySendFailed)
		return true
	case FaultInvalidAttrib:
		s.faults[fault].Add(1)
		s.delay(r)
		write(w, http.StatusBadRequest, headerJSON, bodyInvalidAttr)
		return true
	}
	return false
}

// accept gives m a new id and keeps it: stored for GET, counted, passed to
// OnAccept and its receipts scheduled, in that order.
func (s *Simulator) accept(m Message, now time.Time) (key, Message) {
	id := s.newKey()
	m.ID = id.String()
	m.Status = StatusAccepted
	m.At = now
	s.store.put(id, m)
	s.accepted.Add(1)
	if fn := s.onAccept.Load(); fn != nil {
		(*fn)(m)
	}
	if s.cb != nil {
		s.cb.accepted(id, &m) // after OnAccept, so its receipts come after it too
	}
	return id, m
}

// acceptedFault applies an accept-then fault to a submission whose messages have
// been accepted, reporting whether it did.
func (s *Simulator) acceptedFault(w http.ResponseWriter, r *http.Request, fault Fault) bool {
	switch fault {
	case FaultAcceptThenReset:
		s.faults[fault].Add(1)
		abort(w, true)
		return true
	case FaultAcceptThenHang:
		s.faults[fault].Add(1)
		s.hang(w, r)
		return true
	case Fault504:
		s.faults[fault].Add(1)
		s.delay(r)
		write(w, http.StatusGatewayTimeout, headerHTML, body504)
		return true
	}
	return false
}

// origin returns the scheme and host r was sent to, for Location headers.
func origin(r *http.Request) string {
	if r.TLS != nil {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// lookup is the GET /messages answer.
type lookup struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Content     string `json:"content"`
	Status      string `json:"status"`
	Reference   string `json:"reference,omitempty"`
}

func (s *Simulator) get(w http.ResponseWriter, r *http.Request) {
	s.lookups.Add(1)
	if !s.authorized(r) {
		s.unauthorized.Add(1)
		s.writeUnauthorized(w)
		return
	}
	id := r.URL.Query().Get("id")
	if id == "" {
		write(w, http.StatusBadRequest, headerJSON, reject(http.StatusBadRequest, codeMissingAttrib, []string{"id is required"}).body)
		return
	}
	m, ok := s.Message(id)
	if !ok {
		write(w, http.StatusNotFound, headerJSON, body404)
		return
	}
	body, err := json.Marshal(lookup{
		ID:          m.ID,
		Source:      m.Source,
		Destination: m.Destination,
		Content:     m.Content,
		Status:      m.Status,
		Reference:   m.Reference,
	})
	if err != nil {
		// Only strings are marshalled, and they came out of json.Unmarshal.
		write(w, http.StatusInternalServerError, headerText, body500)
		return
	}
	w.Header()["Location"] = []string{origin(r) + r.URL.Path + "?id=" + url.QueryEscape(m.ID)}
	write(w, http.StatusOK, headerJSON, body)
}

// lookupV1 is the REST v1 GET /messages/{id} answer. The page types "id" as a
// string (its example shows a bare value) and lists no status.
type lookupV1 struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Content     string `json:"content"`
	Reference   string `json:"reference,omitempty"`
}

// getV1 serves REST v1 GET /messages/{id}: 404 for an id that is not a positive
// integer, or not kept.
func (s *Simulator) getV1(w http.ResponseWriter, r *http.Request, id string) {
	s.lookups.Add(1)
	if !s.authorized(r) {
		s.unauthorized.Add(1)
		s.writeUnauthorized(w)
		return
	}
	m, ok := s.Message(id)
	if !ok {
		write(w, http.StatusNotFound, headerJSON, body404)
		return
	}
	body, err := json.Marshal(lookupV1{
		ID:          m.ID,
		Source:      m.Source,
		Destination: m.Destination,
		Content:     m.Content,
		Reference:   m.Reference,
	})
	if err != nil {
		// Only strings are marshalled, and they came out of json.Unmarshal.
		write(w, http.StatusInternalServerError, headerText, body500)
		return
	}
	w.Header()["Location"] = []string{origin(r) + strings.TrimSuffix(r.URL.Path, id) + m.ID}
	write(w, http.StatusOK, headerJSON, body)
}

// authorized reports whether r carries the configured credentials, or whether none
// are configured.
func (s *Simulator) authorized(r *http.Request) bool {
	c := s.creds.Load()
	if c.header == "" {
		return true
	}
	if r.Header.Get("Authorization") == c.header {
		return true
	}
	// The slow path accepts what the exact header match missed, such as a
	// lower-case scheme.
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(c.user))
	passOK := subtle.ConstantTimeCompare([]byte(pass), []byte(c.pass))
	return userOK&passOK == 1
}

func (s *Simulator) writeUnauthorized(w http.ResponseWriter) {
	w.Header()["Www-Authenticate"] = headerAuth
	write(w, http.StatusUnauthorized, headerJSON, body401)
}

// delay waits out the configured latency and jitter, or less when the client goes
// away or Close is called.
func (s *Simulator) delay(r *http.Request) {
	d := s.latency
	if s.jitter > 0 {
		d += rand.N(s.jitter)
	}
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-s.done:
	}
}

// hang holds the request without answering until HangFor passes, the client goes
// away or Close is called, then closes the connection.
func (s *Simulator) hang(w http.ResponseWriter, r *http.Request) {
	s.held.Add(1)
	if s.hooks != nil {
		s.hooks.holdStarted()
	}
	defer func() {
		s.held.Add(-1)
		if s.hooks != nil {
			s.hooks.holdEnded()
		}
	}()
	t := time.NewTimer(s.hangFor)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	case <-s.done:
	}
	abort(w, false)
}

// abort closes the connection without an answer; with reset it asks for a TCP RST
// instead of an orderly close. Where the connection cannot be taken over (HTTP/2) it
// falls back to net/http's own abort, which is silent by design.
func abort(w http.ResponseWriter, reset bool) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if reset {
		if tc := tcpConn(conn); tc != nil {
			_ = tc.SetLinger(0) // Close then sends RST
		}
	}
	_ = conn.Close()
}

func tcpConn(c net.Conn) *net.TCPConn {
	for {
		switch cc := c.(type) {
		case *net.TCPConn:
			return cc
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = cc.NetConn()
		default:
			return nil
		}
	}
}

func write(w http.ResponseWriter, status int, contentType []string, body []byte) {
	w.Header()["Content-Type"] = contentType
	w.WriteHeader(status)
	_, _ = w.Write(body) // a client that went away is not an error here
}

// newUUID returns a version 4 UUID from math/rand/v2, which is fast and safe for
// concurrent use; ids need to be unique, not unpredictable.
func newUUID() uuid.UUID {
	id, _ := uuid.NewRandomFromReader(fastRand{}) // fastRand never fails
	return id
}

// fastRand is an io.Reader over math/rand/v2's per-thread generator.
type fastRand struct{}

func (fastRand) Read(p []byte) (int, error) {
	n := len(p)
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, rand.Uint64())
		p = p[8:]
	}
	if len(p) > 0 {
		v := rand.Uint64()
		for i := range p {
			p[i] = byte(v >> (8 * i))
		}
	}
	return n, nil
}
