package dispatcher

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/secret"
	"github.com/jetsms/jetsms/job"
)

// Defaults for Config.
const (
	// TimeoutDefault is Config.Timeout when it is zero.
	TimeoutDefault = 10 * time.Second
	// MaxConnsDefault is Config.MaxConns when it is zero; it matches the
	// worker's default concurrency.
	MaxConnsDefault = 64
	// UserAgentDefault is Config.UserAgent when it is empty.
	UserAgentDefault = "jetsms"
)

// Transport settings that are not configuration.
const (
	dialTimeout         = 5 * time.Second
	dialKeepAlive       = 30 * time.Second
	tlsHandshakeTimeout = 5 * time.Second
	idleConnTimeout     = 90 * time.Second
	maxHeaderBytes      = 64 << 10
)

// ErrInvalidConfig is wrapped by every error NewRESTv2 and NewRESTv1 return; the
// message names the field and the rule it breaks.
var ErrInvalidConfig = errors.New("invalid gateway config")

// Config configures a RESTv2 or a RESTv1 client.
type Config struct {
	// URL is the API's base URL, e.g. https://api.modicagroup.com/rest/sms/v2
	// (REST v2) or https://api.modicagroup.com/rest/gateway (REST v1).
	// http is allowed (for the simulator and tests); a trailing slash is
	// ignored. It must not carry credentials, a query or a fragment. Required.
	URL string
	// Username is the gateway application's name, sent with Password as HTTP
	// Basic auth. It must not contain ':'. When both are empty no
	// Authorization header is sent (the gateway then answers 401).
	Username string
	// Password is the gateway application's password.
	Password secret.Secret
	// Timeout bounds each call as a whole: waiting for a connection, writing,
	// and reading the answer. It is also the transport's response-header
	// timeout; either way a call that runs out of time fails with Code
	// "timeout". Default TimeoutDefault; must not be negative.
	Timeout time.Duration
	// MaxConns is the size of the connection pool to the gateway: at most this
	// many connections are open and kept alive. Size it to the worker's
	// concurrency; more concurrent calls wait for a free connection within
	// Timeout. Default MaxConnsDefault; must not be negative.
	MaxConns int
	// UserAgent is sent as User-Agent. Default UserAgentDefault; must not
	// contain control characters.
	UserAgent string
}

// client is the HTTP side that RESTv2 and RESTv1 share: one connection pool,
// the headers every request carries, and one request at a time under
// Config.Timeout, traced to tell whether it may have reached the gateway.
type client struct {
	// transport is used directly rather than through an http.Client: a
	// client would follow redirects (turning the POST into a GET), and it
	// copies every request's headers in case it has to.
	transport    *http.Transport
	timeout      time.Duration
	timeoutCause error // the context cause when Timeout expires

	// Header values are built once and shared by all requests: net/http only
	// reads a request's header values.
	hdrJSON   []string // Content-Type of request bodies
	hdrAccept []string
	hdrAuth   []string // nil when no credentials are configured
	hdrUA     []string

	now func() time.Time // for HTTP-date Retry-After; replaced in tests
}

// newClient validates cfg, applies its defaults and returns the client with
// its own connection pool, sending accept as the Accept header, and the base
// URL without a trailing slash. The error wraps ErrInvalidConfig.
func newClient(cfg Config, accept string) (client, *url.URL, error) {
	base, err := validateURL(cfg.URL)
	if err != nil {
		return client{}, nil, err
	}
	if strings.Contains(cfg.Username, ":") {
		return client{}, nil, fmt.Errorf("%w: Username must not contain ':' (HTTP Basic auth)", ErrInvalidConfig)
	}
	if hasControl(cfg.Username) {
		return client{}, nil, fmt.Errorf("%w: Username must not contain control characters", ErrInvalidConfig)
	}
	if cfg.Username == "" && cfg.Password.IsSet() {
		return client{}, nil, fmt.Errorf("%w: Username is required when Password is set", ErrInvalidConfig)
	}
	if cfg.Timeout < 0 {
		return client{}, nil, fmt.Errorf("%w: Timeout must be >= 0 (0 means %s), got %s", ErrInvalidConfig, TimeoutDefault, cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = TimeoutDefault
	}
	if cfg.MaxConns < 0 {
		return client{}, nil, fmt.Errorf("%w: MaxConns must be >= 0 (0 means %d), got %d", ErrInvalidConfig, MaxConnsDefault, cfg.MaxConns)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = MaxConnsDefault
	}
	if hasControl(cfg.UserAgent) {
		return client{}, nil, fmt.Errorf("%w: UserAgent must not contain control characters", ErrInvalidConfig)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = UserAgentDefault
	}

	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: dialKeepAlive}
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		MaxIdleConns:           cfg.MaxConns,
		MaxIdleConnsPerHost:    cfg.MaxConns,
		MaxConnsPerHost:        cfg.MaxConns,
		IdleConnTimeout:        idleConnTimeout,
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ResponseHeaderTimeout:  cfg.Timeout,
		MaxResponseHeaderBytes: maxHeaderBytes,
		ForceAttemptHTTP2:      base.Scheme == "https",
	}
	c := client{
		transport:    tr,
		timeout:      cfg.Timeout,
		timeoutCause: fmt.Errorf("no answer within %s: %w", cfg.Timeout, context.DeadlineExceeded),
		hdrJSON:      []string{"application/json"},
		hdrAccept:    []string{accept},
		hdrUA:        []string{cfg.UserAgent},
		now:          time.Now,
	}
	if cfg.Username != "" {
		cred := base64.StdEncoding.EncodeToString([]byte(cfg.Username + ":" + cfg.Password.Reveal()))
		c.hdrAuth = []string{"Basic " + cred}
	}
	return c, base, nil
}

// validateURL parses the base URL and returns it without a trailing slash.
func validateURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: URL is required", ErrInvalidConfig)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Neither url.Error nor its reason is shown: the one quotes the URL, the
		// other may quote the part of a password before a '/', '#' or '?' that
		// url.Parse took for the host.
		return nil, fmt.Errorf("%w: URL %s does not parse (a password with special characters must be URL-encoded)",
			ErrInvalidConfig, redact.Quote(redact.URL(raw)))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w: URL scheme must be https or http, got %q", ErrInvalidConfig, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%w: URL must have a host", ErrInvalidConfig)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: URL must not carry credentials; use Username and Password", ErrInvalidConfig)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("%w: URL must not have a query or fragment", ErrInvalidConfig)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// answer is a response read up to maxBodyBytes. Its body lives in a pooled
// buffer: call release once done with it.
type answer struct {
	status int
	header http.Header
	buf    *bytes.Buffer
}

func (a *answer) body() []byte { return a.buf.Bytes() }

func (a *answer) release() {
	if a.buf != nil {
		putBuffer(a.buf)
		a.buf = nil
	}
}

// success reports whether status is 2xx.
func success(status int) bool { return status >= 200 && status < 300 }

// exchange sends one request under Config.Timeout and reads its answer. The
// error, an *Error wrapped or not, says why no usable answer came back: no
// response at all, or a 2xx whose body could not be read in full (the gateway
// probably did what was asked, and its answer is lost). Both are classified by
// classifyTransport, a GET as idempotent. A response that is not 2xx is
// returned even when its body was cut short: its status decides, and what was
// read of the body is parsed as far as it goes.
func (c *client) exchange(ctx context.Context, method, target string, body []byte) (answer, error) {
	idempotent := method == http.MethodGet
	if err := ctx.Err(); err != nil {
		return answer{}, classifyTransport(err, false, err, false, idempotent)
	}
	resp, att, rctx, cancel, err := c.do(ctx, method, target, body)
	defer cancel()
	if err != nil {
		return answer{}, classifyTransport(err, att.mayHaveArrived(), ctx.Err(), c.ownTimeout(ctx, rctx), idempotent)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, buf: getBuffer()}
	if err := readBody(resp, a.buf); err != nil && success(resp.StatusCode) {
		a.release()
		e := classifyTransport(err, true, ctx.Err(), c.ownTimeout(ctx, rctx), idempotent)
		e.StatusCode = resp.StatusCode
		return answer{}, fmt.Errorf("read answer: %w", e)
	}
	return a, nil
}

// failure classifies an answer that is not a success. For a GET, which is safe
// to repeat, a status that would leave the outcome unknown is retryable.
func (c *client) failure(a answer, idempotent bool) *Error {
	e := classifyStatus(a.status, a.header, a.body(), c.now())
	if idempotent && e.Kind == KindUnknown {
		e.Kind = KindRetryable // nothing to duplicate with a GET
	}
	return e
}

// get does a GET and classifies its outcome. onStatus, when not nil, sees every
// status with the body read so far; it may return the call's error, or nil to
// let a 2xx succeed and anything else be classified.
func (c *client) get(ctx context.Context, target string, onStatus func(status int, body []byte) error) error {
	a, err := c.exchange(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	defer a.release()
	if onStatus != nil {
		if err := onStatus(a.status, a.body()); err != nil {
			return err
		}
	}
	if success(a.status) {
		return nil
	}
	return c.failure(a, true)
}

// do sends one request under Config.Timeout, tracing whether it was written.
// The caller must call cancel, and must read or close resp.Body when err is nil.
// rctx is the request's context, for ownTimeout.
func (c *client) do(ctx context.Context, method, target string, body []byte) (resp *http.Response, att *attempt, rctx context.Context, cancel context.CancelFunc, err error) {
	rctx, cancel = context.WithTimeoutCause(ctx, c.timeout, c.timeoutCause)
	att = new(attempt)
	att.trace = httptrace.ClientTrace{WroteHeaders: att.wroteHeaders, WroteRequest: att.wroteRequest}
	var rd io.Reader
	if body != nil {
		// A *bytes.Reader makes NewRequest set ContentLength and GetBody, so the
		// transport can rewind the body for the retries it is allowed to make
		// (see the package documentation).
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(rctx, &att.trace), method, target, rd)
	if err != nil {
		// The URL was validated by newClient; this cannot happen.
		return nil, att, rctx, cancel, err
	}
	req.Header = make(http.Header, 4)
	req.Header["Accept"] = c.hdrAccept
	req.Header["User-Agent"] = c.hdrUA
	if body != nil {
		req.Header["Content-Type"] = c.hdrJSON
	}
	if c.hdrAuth != nil {
		req.Header["Authorization"] = c.hdrAuth
	}
	if tp, ok := rctx.Value(traceKey{}).(string); ok && tp != "" {
		req.Header["Traceparent"] = []string{tp}
	}
	// Deliberately no Idempotency-Key: with it, net/http would resend a POST
	// that may have been written. RoundTrip does not follow redirects: a 3xx
	// is returned as it is.
	resp, err = c.transport.RoundTrip(req)
	return resp, att, rctx, cancel, err
}

// ownTimeout reports whether rctx ended because Config.Timeout expired, rather
// than because the caller's ctx ended.
func (c *client) ownTimeout(ctx, rctx context.Context) bool {
	return ctx.Err() == nil && errors.Is(context.Cause(rctx), c.timeoutCause)
}

// readBody reads at most maxBodyBytes of resp.Body into buf, then discards up
// to maxDrainBytes more so the connection can be reused, and closes the body.
// It returns the read error, if any; a body longer than maxBodyBytes is not an
// error (it is cut short and fails to parse).
func readBody(resp *http.Response, buf *bytes.Buffer) error {
	defer resp.Body.Close()
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return err
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrainBytes)
	return nil
}

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bufferPool.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 2*maxBodyBytes {
		return
	}
	b.Reset()
	bufferPool.Put(b)
}

// traceKey carries a job's W3C trace context to its request's traceparent header.
type traceKey struct{}

// withTrace returns ctx carrying the job's trace context, if it has one.
func withTrace(ctx context.Context, j *job.Job) context.Context {
	if j.TraceParent == "" {
		return ctx
	}
	return context.WithValue(ctx, traceKey{}, j.TraceParent)
}
