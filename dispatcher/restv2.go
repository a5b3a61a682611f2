package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/jetsms/jetsms/job"
)

// RESTv2 is a client of the REST v2 API. It is safe for concurrent use; one
// client (and its connection pool) should serve all workers.
type RESTv2 struct {
	client

	messagesURL string // <base>/messages
	healthURL   string // <base>/healthz
}

// NewRESTv2 validates cfg, applies its defaults and returns a client with its
// own connection pool. The error wraps ErrInvalidConfig and names the field and
// the rule it breaks. Close the client when done.
func NewRESTv2(cfg Config) (*RESTv2, error) {
	cl, base, err := newClient(cfg, "application/json")
	if err != nil {
		return nil, err
	}
	return &RESTv2{
		client:      cl,
		messagesURL: base.String() + "/messages",
		healthURL:   base.String() + "/healthz",
	}, nil
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
	a, err := c.exchange(withTrace(ctx, j), http.MethodPost, c.messagesURL, body)
	if err != nil {
		return Result{}, fmt.Errorf("post message %s: %w", j.ID, err)
	}
	defer a.release()
	if !success(a.status) {
		// An error body that could not be read in full is parsed as far as it
		// goes: the status code still decides, and a 400 whose code was lost is
		// rejected.
		return Result{}, fmt.Errorf("post message %s: %w", j.ID, c.failure(a, false))
	}
	var ab acceptedBody
	if err := json.Unmarshal(a.body(), &ab); err != nil {
		e := &Error{Kind: KindUnknown, StatusCode: a.status, Code: CodeInvalidResponse, Err: err}
		return Result{}, fmt.Errorf("post message %s: %w", j.ID, e)
	}
	if ab.ID == "" {
		e := &Error{Kind: KindUnknown, StatusCode: a.status, Code: CodeInvalidResponse,
			Description: "success without a message id"}
		return Result{}, fmt.Errorf("post message %s: %w", j.ID, e)
	}
	return Result{MessageID: ab.ID, Status: ab.Status, Detail: ab.Detail}, nil
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

// probeID is the message id Probe looks up: a UUID no message has.
const probeID = "00000000-0000-0000-0000-000000000000"

// Probe checks, without sending an SMS, that the gateway answers at the
// configured base URL, speaks REST v2 and takes the credentials: GET /healthz
// (the OpenAPI page's health endpoint, which needs no credentials) and then an
// authenticated GET /messages?id= for a message no account has, whose 404 (or
// 200) is the healthy answer. It returns nil or an error wrapping an *Error
// classified as for Get: KindMisconfigured for a redirect, 404 from /healthz,
// 405, 406 or 415; KindUnauthorized for 401 or 403; KindRetryable otherwise.
func (c *RESTv2) Probe(ctx context.Context) error {
	if err := c.Health(ctx); err != nil {
		return err
	}
	_, err := c.Get(ctx, probeID)
	if err == nil || errors.Is(err, ErrNotFound) {
		return nil
	}
	return fmt.Errorf("gateway probe: %w", err)
}

// Close closes the client's idle connections. Calls in flight finish normally;
// the client stays usable (it opens new connections as needed).
func (c *RESTv2) Close() {
	c.transport.CloseIdleConnections()
}
