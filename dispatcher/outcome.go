package dispatcher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Kind is the class of a failed submission, which decides what the worker does
// with the job. The zero Kind is not a valid outcome; [KindOf] returns it for
// errors that are not an [*Error].
type Kind int

// The outcome kinds.
const (
	// KindRejected means the gateway refused the message and would refuse it again
	// (a validation error, 422, or a 3xx/4xx not listed elsewhere). Terminate.
	KindRejected Kind = iota + 1
	// KindRetryable means the gateway did not take the message and may take it later
	// (400 send_failed, 408, 429, 5xx, or the request was not fully written).
	// Retry after at least Error.RetryAfter.
	KindRetryable
	// KindUnknown means the request was fully written but no usable answer came back.
	// The gateway may have accepted the message; resending risks a duplicate.
	KindUnknown
	// KindUnauthorized means 401 or 403: wrong credentials or a source IP that is not
	// allow-listed; every other job will fail the same way.
	KindUnauthorized
	// KindMisconfigured means the answer is about where and how the request was
	// sent, not about the message: a redirect (3xx, e.g. plain HTTP redirected to
	// HTTPS), 404 (a wrong base path), 405, 406 or 415 (a wrong API version or
	// media type). Every other job would get the same answer; none is the job's
	// fault. Nothing was sent.
	KindMisconfigured
)

// String returns "rejected", "retryable", "unknown", "unauthorized" or
// "misconfigured", or
// "Kind(n)" for any other value.
func (k Kind) String() string {
	switch k {
	case KindRejected:
		return "rejected"
	case KindRetryable:
		return "retryable"
	case KindUnknown:
		return "unknown"
	case KindUnauthorized:
		return "unauthorized"
	case KindMisconfigured:
		return "misconfigured"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Gateway error codes of the REST v2 and v1 APIs, as found in Error.Code.
const (
	CodeSendFailed    = "send_failed"    // the gateway could not queue the message: retryable
	CodeInvalidJSON   = "invalid_json"   // the request body was not valid JSON: rejected
	CodeMissingAttrib = "missing_attrib" // a required attribute was missing: rejected
	CodeInvalidAttrib = "invalid_attrib" // an attribute had an invalid value: rejected
	// CodeBroadcastLimit (REST v1) means a broadcast named more destinations
	// than the gateway takes at once: rejected, and matched by
	// ErrBroadcastLimit. Split the batch and broadcast the parts.
	CodeBroadcastLimit = "broadcast_limit"
)

// Codes this package sets itself, as found in Error.Code. A response without a
// gateway code gets "http_<status>", e.g. "http_500" or "http_429".
const (
	CodeScheduledInPast   = "scheduled_in_past"  // 422 without a gateway code: scheduled is in the past
	CodeUnauthorized      = "unauthorized"       // 401
	CodeForbidden         = "forbidden"          // 403
	CodeInvalidResponse   = "invalid_response"   // a 2xx without a readable message id
	CodeBroadcastFailure  = "broadcast_failure"  // a REST v1 broadcast's "failure" result for one destination
	CodeTimeout           = "timeout"            // no answer in time (ours, the transport's or the caller's deadline)
	CodeCancelled         = "cancelled"          // the caller's context was cancelled
	CodeConnectionRefused = "connection_refused" // nothing listens at the gateway's address
	CodeConnectionReset   = "connection_reset"   // ECONNRESET, EPIPE or ECONNABORTED
	CodeConnectionClosed  = "connection_closed"  // the connection ended (EOF) without an answer
	CodeDNS               = "dns"                // the gateway's host name did not resolve
	CodeTLS               = "tls"                // TLS handshake or certificate failure
	CodeDial              = "dial"               // another failure to connect
	CodeTransport         = "transport"          // any other failure without a response
)

const (
	codeHTTPPrefix       = "http_"                          // + status code
	maxCodeLen           = 64                               // longer "error" values are text, not codes
	maxBodyBytes         = 64 << 10                         // the most of any response body that is read
	maxDrainBytes        = 64 << 10                         // the most discarded to keep a connection
	retryAfterMaxSeconds = (1<<63 - 1) / int64(time.Second) // keeps n*time.Second from overflowing
)

// Error is every failed submission, and every failed Get or Health other than
// ErrNotFound. Send, Get and Health return it wrapped with context: read it with
// errors.As or [KindOf].
type Error struct {
	// Kind decides what the worker does; see the Kind constants.
	Kind Kind
	// StatusCode is the HTTP status, or 0 when no response was received.
	StatusCode int
	// Code is the gateway's error code (send_failed, invalid_json,
	// missing_attrib, invalid_attrib, or another code the gateway sent), or one
	// of this package's Code constants, or "http_<status>" when the response
	// carried no code.
	Code string
	// Description is the gateway's error-desc (an array is joined with "; "),
	// or the message and error of the OpenAPI error body. Empty when the body
	// had neither.
	Description string
	// RetryAfter is the response's Retry-After (delay-seconds or HTTP-date), or
	// 0 when absent, unparsable or in the past. It is not capped.
	RetryAfter time.Duration
	// Err is the underlying transport or decoding error, if any. When the
	// caller's context ended, it is that context's Err().
	Err error
}

// Error describes the outcome, e.g.
// "rejected: invalid_attrib (HTTP 400): Invalid scheduled timestamp".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.String())
	b.WriteString(": ")
	b.WriteString(e.Code)
	if e.StatusCode != 0 {
		b.WriteString(" (HTTP ")
		b.WriteString(strconv.Itoa(e.StatusCode))
		b.WriteByte(')')
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.RetryAfter > 0 {
		b.WriteString(", retry after ")
		b.WriteString(e.RetryAfter.String())
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the underlying error, which may be nil.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's Kind (ErrRejected,
// ErrRetryable, ErrUnknownOutcome or ErrUnauthorized), or ErrBroadcastLimit
// when e's Code is CodeBroadcastLimit.
func (e *Error) Is(target error) bool {
	if target == ErrBroadcastLimit {
		return e.Code == CodeBroadcastLimit
	}
	s, ok := target.(*kindSentinel)
	return ok && s.kind == e.Kind
}

// kindSentinel is the type of the Kind sentinels; an *Error matches the one of
// its Kind.
type kindSentinel struct {
	kind Kind
	msg  string
}

func (s *kindSentinel) Error() string { return s.msg }

// Sentinels for errors.Is. An *Error matches the one of its Kind.
var (
	// ErrRejected matches errors of KindRejected.
	ErrRejected error = &kindSentinel{KindRejected, "dispatcher: gateway rejected the message"}
	// ErrRetryable matches errors of KindRetryable.
	ErrRetryable error = &kindSentinel{KindRetryable, "dispatcher: gateway did not take the message; retry later"}
	// ErrUnknownOutcome matches errors of KindUnknown.
	ErrUnknownOutcome error = &kindSentinel{KindUnknown, "dispatcher: the gateway may have accepted the message"}
	// ErrUnauthorized matches errors of KindUnauthorized.
	ErrUnauthorized error = &kindSentinel{KindUnauthorized, "dispatcher: gateway refused the credentials"}
	// ErrMisconfigured matches errors of KindMisconfigured.
	ErrMisconfigured error = &kindSentinel{KindMisconfigured, "dispatcher: the gateway URL or API version is wrong"}

	// ErrNotFound is returned (wrapped) by Get when the gateway answers 404.
	ErrNotFound = errors.New("dispatcher: message not found")

	// ErrBroadcastLimit matches the *Error of a REST v1 broadcast that named
	// more destinations than the gateway takes at once (Code
	// CodeBroadcastLimit, KindRejected). None of the jobs was sent: split
	// them and broadcast each part.
	ErrBroadcastLimit = errors.New("dispatcher: too many destinations for one broadcast")
)

// KindOf returns the Kind of the first *Error in err's chain, or 0 when there is
// none (including err == nil).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// classifyStatus returns the error for a response that is not a success. body is
// what was read of the response body (possibly nothing). now is used to turn an
// HTTP-date Retry-After into a delay.
func classifyStatus(status int, header http.Header, body []byte, now time.Time) *Error {
	e := &Error{StatusCode: status, RetryAfter: retryAfter(header.Get("Retry-After"), now)}
	code, desc, own := parseErrorBody(body)
	e.Description = desc
	switch {
	case status == http.StatusBadRequest:
		// 400 is the one status whose meaning depends on the gateway's code:
		// send_failed is its own failure, everything else is about the request.
		e.Kind = KindRejected
		if code == CodeSendFailed {
			e.Kind = KindRetryable
		}
	case status == http.StatusUnauthorized:
		e.Kind, code = KindUnauthorized, CodeUnauthorized
	case status == http.StatusForbidden:
		e.Kind, code = KindUnauthorized, CodeForbidden
	case status == http.StatusUnprocessableEntity:
		// The gateway's own code, when it sends one, is kept.
		e.Kind = KindRejected
		if code == "" {
			code = CodeScheduledInPast
		}
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		e.Kind = KindRetryable
	case status >= 300 && status < 400, status == http.StatusNotFound, status == http.StatusMethodNotAllowed,
		status == http.StatusNotAcceptable, status == http.StatusUnsupportedMediaType:
		// About where and how the request was sent, not about the message: every
		// job would get the same answer.
		e.Kind = KindMisconfigured
		if e.Description == "" {
			e.Description = misconfigHint(status, header.Get("Location"))
		}
	case status > 400 && status < 500:
		// Another client error: resending the same request gets the same answer.
		e.Kind = KindRejected
	case status == http.StatusBadGateway, status == http.StatusGatewayTimeout:
		// From a proxy in front of the gateway: it says nothing of whether the
		// gateway queued the message.
		e.Kind = KindUnknown
	case status >= 500 && status < 600 && own:
		// The gateway's own error answer: it did not queue the message.
		e.Kind = KindRetryable
	case status >= 500 && status < 600:
		// No error body of the gateway's: no telling whether it queued the
		// message.
		e.Kind = KindUnknown
	default:
		// 1xx or a status outside 100-599 on a request that was written: no
		// telling what the gateway did with it.
		e.Kind = KindUnknown
	}
	if code == "" {
		code = codeHTTPPrefix + strconv.Itoa(status)
	}
	e.Code = code
	return e
}

// misconfigHint says what to check after an answer of KindMisconfigured.
func misconfigHint(status int, location string) string {
	switch {
	case status >= 300 && status < 400 && location != "":
		return "redirected to " + location + ": use the URL the gateway redirects to (HTTPS is mandatory)"
	case status >= 300 && status < 400:
		return "redirected: use the gateway's https:// URL"
	case status == http.StatusNotFound:
		return "no such path: check the base URL's path (REST v2 " + BasePathV2 + ", REST v1 " + BasePathV1 + ")"
	case status == http.StatusMethodNotAllowed:
		return "method not allowed: check the base URL's path and the API version"
	default:
		return "media type refused: check the API version (REST v2 takes application/json, REST v1 " + mediaTypeV1 + ")"
	}
}

// The documented base paths.
const (
	BasePathV2 = "/rest/sms/v2"
	BasePathV1 = "/rest/gateway"
)

// errorBody holds both error bodies the gateway documents:
// {"error":"<code>","error-desc":[..] or ".."} (REST v2 page) and
// {"message":"..","statusCode":500,"error":".."} (OpenAPI page). The fields are
// raw so that one field of an unexpected type does not lose the others.
type errorBody struct {
	Error      json.RawMessage `json:"error"`
	ErrorDesc  json.RawMessage `json:"error-desc"`
	Message    json.RawMessage `json:"message"`
	StatusCode json.RawMessage `json:"statusCode"`
}

// parseErrorBody returns the gateway's error code (empty when there is none) and
// description from an error body, and whether the body is one of the gateway's
// own error bodies (both documented shapes carry "error"). A body that is not a
// JSON object gives "", "", false.
func parseErrorBody(body []byte) (code, desc string, own bool) {
	if len(body) == 0 {
		return "", "", false
	}
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil {
		return "", "", false
	}
	own = rawString(eb.Error) != ""
	errText := rawString(eb.Error)
	message := rawString(eb.Message)
	// In the OpenAPI body "error" is a sentence, not a code; in the REST v2 body
	// it is a code. A value shaped like a code is taken as one either way, so a
	// known code is never missed.
	if isCode(errText) {
		code, errText = errText, ""
	}
	parts := make([]string, 0, 3)
	if message != "" {
		parts = append(parts, message)
	}
	if errText != "" {
		parts = append(parts, errText)
	}
	if d := rawDescription(eb.ErrorDesc); d != "" {
		parts = append(parts, d)
	}
	return code, strings.Join(parts, ": "), own
}

// isCode reports whether s looks like a gateway error code: 1 to 64 of a-z, 0-9
// and '_'.
func isCode(s string) bool {
	if s == "" || len(s) > maxCodeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// rawString returns raw as a string when it is a JSON string, else "".
func rawString(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return strings.TrimSpace(s)
}

// rawDescription returns error-desc as text: a string as it is, an array's
// string elements joined with "; ".
func rawDescription(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	if raw[0] != '[' {
		return rawString(raw)
	}
	var items []json.RawMessage
	if json.Unmarshal(raw, &items) != nil {
		return ""
	}
	parts := make([]string, 0, len(items))
	for _, it := range items {
		if s := rawString(it); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP-date. It
// returns 0 for an empty, unparsable or past value.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
				n = retryAfterMaxSeconds
			} else {
				return 0
			}
		}
		return time.Duration(min(n, retryAfterMaxSeconds)) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return max(t.Sub(now), 0)
}

// attempt records, from httptrace hooks, whether the request may have reached
// the gateway complete. The hooks may run on transport goroutines, and an
// HTTP/2 stream's hooks may even run after RoundTrip has returned, so the
// judgement errs towards "may have": see mayHaveArrived.
type attempt struct {
	trace   httptrace.ClientTrace // calls wroteHeaders and wroteRequest
	mu      sync.Mutex
	headers int  // WroteHeaders calls
	failed  int  // WroteRequest calls with an error that followed WroteHeaders
	wrote   int  // WroteRequest calls without an error
	pending bool // WroteHeaders seen, WroteRequest not yet
}

func (a *attempt) wroteHeaders() {
	a.mu.Lock()
	a.headers++
	a.pending = true
	a.mu.Unlock()
}

func (a *attempt) wroteRequest(info httptrace.WroteRequestInfo) {
	a.mu.Lock()
	switch {
	case info.Err == nil:
		a.wrote++
	case a.pending:
		a.failed++
	}
	a.pending = false
	a.mu.Unlock()
}

// mayHaveArrived reports whether the whole request may have been written to a
// connection. It is true once any try wrote it completely (even if a flush
// failed afterwards), and while the headers of a try were written but its body
// has not been reported as failed: an HTTP/2 stream aborted by a deadline may
// report WroteRequest only after RoundTrip returned. It is false only when every
// try either never wrote its headers or reported that writing failed, in which
// case the gateway cannot hold a complete request.
func (a *attempt) mayHaveArrived() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wrote > 0 || a.headers > a.failed
}

// classifyTransport returns the error for a request that got no response (or
// whose success body could not be read). arrived is attempt.mayHaveArrived();
// callerErr is the caller's ctx.Err(); ownTimeout reports that Config.Timeout
// expired; idempotent is true for GETs, which are safe to repeat and so are never
// KindUnknown.
func classifyTransport(err error, arrived bool, callerErr error, ownTimeout, idempotent bool) *Error {
	e := &Error{Kind: KindRetryable, Err: err}
	if arrived && !idempotent {
		e.Kind = KindUnknown
	}
	var (
		netErr net.Error
		dnsErr *net.DNSError
		opErr  *net.OpError
	)
	switch {
	case callerErr != nil:
		// The caller gave up (shutdown, its own deadline): say so plainly, so
		// that the worker does not count it as a gateway failure.
		e.Err = callerErr
		e.Code = CodeCancelled
		if errors.Is(callerErr, context.DeadlineExceeded) {
			e.Code = CodeTimeout
		}
	case ownTimeout, errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		e.Code = CodeTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Code = CodeConnectionRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNABORTED):
		e.Code = CodeConnectionReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		e.Code = CodeConnectionClosed
	case errors.As(err, &dnsErr):
		e.Code = CodeDNS
	case isTLSError(err):
		e.Code = CodeTLS
	case errors.As(err, &opErr) && opErr.Op == "dial":
		e.Code = CodeDial
	default:
		e.Code = CodeTransport
	}
	return e
}

// isTLSError reports whether err is a TLS handshake or certificate failure.
func isTLSError(err error) bool {
	var (
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		verifyErr  *tls.CertificateVerificationError
		authErr    x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		echErr     *tls.ECHRejectionError
		opErr      *net.OpError
	)
	switch {
	case errors.As(err, &recordErr), errors.As(err, &alertErr), errors.As(err, &verifyErr),
		errors.As(err, &authErr), errors.As(err, &hostErr), errors.As(err, &invalidErr),
		errors.As(err, &echErr):
		return true
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// crypto/tls reports an alert from the server as a *net.OpError with
		// this Op and an unexported alert type.
		return true
	}
	return false
}
