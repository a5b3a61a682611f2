package dispatcher

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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

	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/secret"
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

// ErrInvalidConfig is wrapped by every error NewRESTv2 returns; the message names
// the field and the rule it breaks.
var ErrInvalidConfig = errors.New("invalid gateway config")

// Config configures a RESTv2 client.
type Config struct {
	// URL is the API's base URL, e.g. https://api.modicagroup.com/rest/sms/v2.
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

// RESTv2 is a client of the REST v2 API. It is safe for concurrent use; one
// client (and its connection pool) should serve all workers.
type RESTv2 struct {
	// transport is used directly rather than through an http.Client: a
	// client would follow redirects (turning the POST into a GET), and it
	// copies every request's headers in case it has to.
	transport    *http.Transport
	timeout      time.Duration
	timeoutCause error // the context cause when Timeout expires

	messagesURL string // <base>/messages
	healthURL   string // <base>/healthz

	// Header values are built once and shared by all requests: net/http only
	// reads a request's header values.
	hdrJSON []string
	hdrAuth []string // nil when no credentials are configured
	hdrUA   []string

	now func() time.Time // for HTTP-date Retry-After; replaced in tests
}

// NewRESTv2 validates cfg, applies its defaults and returns a client with its
// own connection pool. The error wraps ErrInvalidConfig and names the field and
// the rule it breaks. Close the client when done.
func NewRESTv2(cfg Config) (*RESTv2, error) {
	base, err := validateURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if strings.Contains(cfg.Username, ":") {
		return nil, fmt.Errorf("%w: Username must not contain ':' (HTTP Basic auth)", ErrInvalidConfig)
	}
	if hasControl(cfg.Username) {
		return nil, fmt.Errorf("%w: Username must not contain control characters", ErrInvalidConfig)
	}
	if cfg.Username == "" && cfg.Password.IsSet() {
		return nil, fmt.Errorf("%w: Username is required when Password is set", ErrInvalidConfig)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: Timeout must be >= 0 (0 means %s), got %s", ErrInvalidConfig, TimeoutDefault, cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = TimeoutDefault
	}
	if cfg.MaxConns < 0 {
		return nil, fmt.Errorf("%w: MaxConns must be >= 0 (0 means %d), got %d", ErrInvalidConfig, MaxConnsDefault, cfg.MaxConns)
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = MaxConnsDefault
	}
	if hasControl(cfg.UserAgent) {
		return nil, fmt.Errorf("%w: UserAgent must not contain control characters", ErrInvalidConfig)
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
	c := &RESTv2{
		transport:    tr,
		timeout:      cfg.Timeout,
		timeoutCause: fmt.Errorf("no answer within %s: %w", cfg.Timeout, context.DeadlineExceeded),
		messagesURL:  base.String() + "/messages",
		healthURL:    base.String() + "/healthz",
		hdrJSON:      []string{"application/json"},
		hdrUA:        []string{cfg.UserAgent},
		now:          time.Now,
	}
	if cfg.Username != "" {
		cred := base64.StdEncoding.EncodeToString([]byte(cfg.Username + ":" + cfg.Password.Reveal()))
		c.hdrAuth = []string{"Basic " + cred}
	}
	return c, nil
}

// validateURL parses the base URL and returns it without a trailing slash.
func validateURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("%w: URL is required", ErrInvalidConfig)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL, which may hold credentials; report the
		// parser's reason alone.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: URL does not parse: %w", ErrInvalidConfig, err)
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

// Result is the gateway's answer to an accepted submission.
type Result struct {
	// MessageID is the gateway's id for the message (a UUID); never empty.
	MessageID string
	// Status is the status the gateway gave, normally "accepted".
	Status string
	// Detail is the gateway's detail, normally the destination.
	Detail string
}

// Message is a submitted message as GET /messages?id= returns it.
type Message struct {
	ID          string `json:"id"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Content     string `json:"content"`
	Status      string `json:"status"`
	Reference   string `json:"reference"`
}

// acceptedBody is the body of a 202.
type acceptedBody struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// Send submits j to POST /messages once, within Config.Timeout, and never
// retries.
//
// On 202 it returns the gateway's message id. Any other 2xx whose body holds a
// message id is taken as accepted too: it can only come from a gateway (or a
// proxy in front of it) that took the message, and calling it a failure would
// have the worker send it again.
//
// Every failure is an error wrapping an *Error, whose Kind says what to do:
// KindRejected (do not resend), KindRetryable (nothing was taken; resend after
// Error.RetryAfter at least), KindUnknown (the request was written but no usable
// answer came back: the gateway may have accepted it, so a resend may deliver
// it twice) or KindUnauthorized. When ctx ends first, the *Error's Err is
// ctx.Err() and its Kind is KindRetryable if the request had not been fully
// written, KindUnknown if it had. See the package documentation for every
// case. j must not be nil: a nil j returns an error that is not an *Error.
func (c *RESTv2) Send(ctx context.Context, j *job.Job) (Result, error) {
	if j == nil {
		return Result{}, errors.New("post message: nil job")
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("post message %s: %w", j.ID, classifyTransport(err, false, err, false, false))
	}
	body := appendMessage(make([]byte, 0, messageSize(j)), j)

	resp, att, rctx, cancel, err := c.do(ctx, http.MethodPost, c.messagesURL, body)
	defer cancel()
	if err != nil {
		e := classifyTransport(err, att.mayHaveArrived(), ctx.Err(), c.ownTimeout(ctx, rctx), false)
		return Result{}, fmt.Errorf("post message %s: %w", j.ID, e)
	}

	buf := getBuffer()
	defer putBuffer(buf)
	readErr := readBody(resp, buf)

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if readErr != nil {
			// The gateway answered success but the answer was cut short: it
			// probably took the message and we do not have its id.
			e := classifyTransport(readErr, true, ctx.Err(), c.ownTimeout(ctx, rctx), false)
			e.StatusCode = resp.StatusCode
			return Result{}, fmt.Errorf("post message %s: read answer: %w", j.ID, e)
		}
		var ab acceptedBody
		if err := json.Unmarshal(buf.Bytes(), &ab); err != nil {
			e := &Error{Kind: KindUnknown, StatusCode: resp.StatusCode, Code: CodeInvalidResponse, Err: err}
			return Result{}, fmt.Errorf("post message %s: %w", j.ID, e)
		}
		if ab.ID == "" {
			e := &Error{Kind: KindUnknown, StatusCode: resp.StatusCode, Code: CodeInvalidResponse,
				Description: "success without a message id"}
			return Result{}, fmt.Errorf("post message %s: %w", j.ID, e)
		}
		return Result{MessageID: ab.ID, Status: ab.Status, Detail: ab.Detail}, nil
	}
	// An error body that could not be read in full is parsed as far as it
	// goes: the status code still decides, and a 400 whose code was lost is
	// rejected.
	e := classifyStatus(resp.StatusCode, resp.Header, buf.Bytes(), c.now())
	return Result{}, fmt.Errorf("post message %s: %w", j.ID, e)
}

// Get returns the message with the gateway id messageID (GET /messages?id=).
// It returns an error wrapping ErrNotFound on 404, and otherwise an error
// wrapping an *Error classified as for Send, except that a request that got no
// answer is KindRetryable (a GET is safe to repeat).
func (c *RESTv2) Get(ctx context.Context, messageID string) (Message, error) {
	if messageID == "" {
		return Message{}, errors.New("get message: id is empty")
	}
	var m Message
	err := c.get(ctx, c.messagesURL+"?id="+url.QueryEscape(messageID), func(status int, body []byte) error {
		if status == http.StatusNotFound {
			return ErrNotFound
		}
		if status != http.StatusOK {
			return nil
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return &Error{Kind: KindRetryable, StatusCode: status, Code: CodeInvalidResponse, Err: err}
		}
		return nil
	})
	if err != nil {
		return Message{}, fmt.Errorf("get message %s: %w", messageID, err)
	}
	return m, nil
}

// Health checks GET /healthz. It returns nil on any 2xx, and otherwise an error
// wrapping an *Error classified as for Get.
func (c *RESTv2) Health(ctx context.Context) error {
	if err := c.get(ctx, c.healthURL, nil); err != nil {
		return fmt.Errorf("gateway health: %w", err)
	}
	return nil
}

// Close closes the client's idle connections. Calls in flight finish normally;
// the client stays usable (it opens new connections as needed).
func (c *RESTv2) Close() {
	c.transport.CloseIdleConnections()
}

// get does a GET and classifies its outcome. onStatus, when not nil, sees every
// status with the body read so far; it may return the call's error, or nil to
// let a 2xx succeed and anything else be classified.
func (c *RESTv2) get(ctx context.Context, target string, onStatus func(status int, body []byte) error) error {
	if err := ctx.Err(); err != nil {
		return classifyTransport(err, false, err, false, true)
	}
	resp, att, rctx, cancel, err := c.do(ctx, http.MethodGet, target, nil)
	defer cancel()
	if err != nil {
		return classifyTransport(err, att.mayHaveArrived(), ctx.Err(), c.ownTimeout(ctx, rctx), true)
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if err := readBody(resp, buf); err != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		e := classifyTransport(err, true, ctx.Err(), c.ownTimeout(ctx, rctx), true)
		e.StatusCode = resp.StatusCode
		return e
	}
	if onStatus != nil {
		if err := onStatus(resp.StatusCode, buf.Bytes()); err != nil {
			return err
		}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	e := classifyStatus(resp.StatusCode, resp.Header, buf.Bytes(), c.now())
	if e.Kind == KindUnknown {
		e.Kind = KindRetryable // nothing to duplicate with a GET
	}
	return e
}

// do sends one request under Config.Timeout, tracing whether it was written.
// The caller must call cancel, and must read or close resp.Body when err is nil.
// rctx is the request's context, for ownTimeout.
func (c *RESTv2) do(ctx context.Context, method, target string, body []byte) (resp *http.Response, att *attempt, rctx context.Context, cancel context.CancelFunc, err error) {
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
		// The URL was validated by NewRESTv2; this cannot happen.
		return nil, att, rctx, cancel, err
	}
	req.Header = make(http.Header, 4)
	req.Header["Accept"] = c.hdrJSON
	req.Header["User-Agent"] = c.hdrUA
	if body != nil {
		req.Header["Content-Type"] = c.hdrJSON
	}
	if c.hdrAuth != nil {
		req.Header["Authorization"] = c.hdrAuth
	}
	// Deliberately no Idempotency-Key: with it, net/http would resend a POST
	// that may have been written. RoundTrip does not follow redirects: a 3xx
	// is returned as it is.
	resp, err = c.transport.RoundTrip(req)
	return resp, att, rctx, cancel, err
}

// ownTimeout reports whether rctx ended because Config.Timeout expired, rather
// than because the caller's ctx ended.
func (c *RESTv2) ownTimeout(ctx, rctx context.Context) bool {
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
