package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/jetsms/jetsms/job"
)

// mediaTypeV1 is the Accept value that asks the gateway for REST v1.
const mediaTypeV1 = "application/vnd.modica.gateway.v1+json"

// statusAccepted is Result.Status of a message REST v1 took: its answers carry
// the id alone.
const statusAccepted = "accepted"

// ErrBroadcastMismatch is wrapped by the error Broadcast returns, before sending
// anything, when its jobs differ in something one broadcast cannot carry per
// destination; the message names the job and the attribute.
var ErrBroadcastMismatch = errors.New("dispatcher: jobs differ in more than their destination and cannot share a broadcast")

// RESTv1 is a client of the REST v1 API (POST /messages, POST
// /messages/broadcast, GET /messages/{id}), for accounts whose integration
// still uses it. Send and Get behave as RESTv2's do and classify every failure
// the same way; the differences are the ids (decimal integers), the answers
// (201 Created with the id in the body or the Location header) and Broadcast.
// It is safe for concurrent use; one client (and its connection pool) should
// serve all workers.
type RESTv1 struct {
	client

	messagesURL  string // <base>/messages
	broadcastURL string // <base>/messages/broadcast
}

// NewRESTv1 validates cfg, applies its defaults and returns a client with its
// own connection pool. cfg.URL is the REST v1 base URL, e.g.
// https://api.modicagroup.com/rest/gateway. Every request asks for REST v1
// with Accept: application/vnd.modica.gateway.v1+json. The error wraps
// ErrInvalidConfig and names the field and the rule it breaks. Close the
// client when done.
func NewRESTv1(cfg Config) (*RESTv1, error) {
	cl, base, err := newClient(cfg, mediaTypeV1)
	if err != nil {
		return nil, err
	}
	return &RESTv1{
		client:       cl,
		messagesURL:  base.String() + "/messages",
		broadcastURL: base.String() + "/messages/broadcast",
	}, nil
}

// Send submits j to POST /messages once, within Config.Timeout, and never
// retries. The body is the one RESTv2 sends: j's Reference, or its ID when
// Reference is empty, goes as the reference.
//
// Success is 201 Created (any other 2xx is taken the same way, as RESTv2
// does). The message id is read from the body, an integer bare (12345) or in
// brackets ([12345]) as the REST v1 page shows both, and otherwise from the
// last path segment of the Location header; a quoted integer is taken too.
// Result.MessageID is the id in decimal, Status is "accepted" and Detail is
// j.Destination. A 2xx that yields no id is KindUnknown with Code
// CodeInvalidResponse.
//
// Every failure is an error wrapping an *Error classified exactly as
// RESTv2.Send classifies it; see the package documentation. j must not be
// nil: a nil j returns an error that is not an *Error.
func (c *RESTv1) Send(ctx context.Context, j *job.Job) (Result, error) {
	if j == nil {
		return Result{}, errors.New("post message: nil job")
	}
	body := appendMessage(make([]byte, 0, messageSize(j)), j)
	a, err := c.exchange(withTrace(ctx, j), http.MethodPost, c.messagesURL, body)
	if err != nil {
		return Result{}, fmt.Errorf("post message %s: %w", j.ID, err)
	}
	defer a.release()
	if !success(a.status) {
		return Result{}, fmt.Errorf("post message %s: %w", j.ID, c.failure(a, false))
	}
	id, ok := parseCreatedID(a.body(), a.header.Get("Location"))
	if !ok {
		e := &Error{Kind: KindUnknown, StatusCode: a.status, Code: CodeInvalidResponse,
			Description: "success without a message id in the body or the Location header"}
		return Result{}, fmt.Errorf("post message %s: %w", j.ID, e)
	}
	return Result{MessageID: id, Status: statusAccepted, Detail: j.Destination}, nil
}

// BroadcastResult is the outcome of one job of a broadcast.
type BroadcastResult struct {
	// Result is the accepted message when Err is nil.
	Result Result
	// Err is nil when the gateway accepted the job's message. Otherwise it
	// wraps an *Error: KindRejected with Code CodeBroadcastFailure and the
	// gateway's reason as Description when the gateway answered "failure" for
	// the job's destination; KindUnknown with Code CodeInvalidResponse when the
	// answer held no usable result for it (the message may have been sent).
	Err error
}

// Broadcast sends one content to the destinations of jobs with one POST
// /messages/broadcast, once, within Config.Timeout, and never retries.
//
// The jobs must agree on everything but their destination: content, source,
// reference, class, mask, sms_class, scheduled (the same instant) and expires.
// Job ids, metadata and lanes may differ. Otherwise Broadcast sends nothing
// and returns an error wrapping ErrBroadcastMismatch that names the first job
// that differs and how; with no jobs, or a nil one, it returns a plain error.
// The reference sent is the jobs' common Reference, and none when it is empty:
// a broadcast carries one reference for all its messages, so the job ids
// cannot stand in for it as Send's do. Record each Result.MessageID against
// its job; receipts of a broadcast without a reference match by message id
// alone.
//
// When the request as a whole fails, the error wraps an *Error classified as
// Send's are and no job was sent (KindRetryable, KindRejected,
// KindUnauthorized) or any of them may have been (KindUnknown, which includes
// a 2xx whose body is not the documented array of results). A broadcast with
// more destinations than the gateway takes fails with an error matching
// ErrBroadcastLimit (Code CodeBroadcastLimit, KindRejected): split the jobs
// and broadcast each part.
//
// Otherwise the gateway answered 201 with one result per destination, and
// Broadcast returns one BroadcastResult per job, results[i] for jobs[i], and a
// nil error; a partial failure is only in the results. Results are matched to
// jobs by destination; when several jobs share a destination, that
// destination's results go to them in the order of jobs. A job left without a
// result gets KindUnknown; results for destinations no job is waiting for are
// ignored.
func (c *RESTv1) Broadcast(ctx context.Context, jobs []*job.Job) ([]BroadcastResult, error) {
	if err := checkBroadcast(jobs); err != nil {
		return nil, fmt.Errorf("broadcast: %w", err)
	}
	body := appendBroadcast(make([]byte, 0, broadcastSize(jobs)), jobs)
	a, err := c.exchange(ctx, http.MethodPost, c.broadcastURL, body)
	if err != nil {
		return nil, fmt.Errorf("broadcast %s and %d more: %w", jobs[0].ID, len(jobs)-1, err)
	}
	defer a.release()
	if !success(a.status) {
		return nil, fmt.Errorf("broadcast %s and %d more: %w", jobs[0].ID, len(jobs)-1, c.failure(a, false))
	}
	entries, err := parseBroadcast(a.body())
	if err != nil {
		e := &Error{Kind: KindUnknown, StatusCode: a.status, Code: CodeInvalidResponse, Err: err}
		return nil, fmt.Errorf("broadcast %s and %d more: %w", jobs[0].ID, len(jobs)-1, e)
	}
	return matchBroadcast(jobs, entries, a.status), nil
}

// checkBroadcast reports why jobs cannot go out as one broadcast, if they
// cannot.
func checkBroadcast(jobs []*job.Job) error {
	if len(jobs) == 0 {
		return errors.New("no jobs")
	}
	for i, j := range jobs {
		if j == nil {
			return fmt.Errorf("job %d is nil", i)
		}
	}
	first := jobs[0]
	for _, j := range jobs[1:] {
		if field := differs(first, j); field != "" {
			return fmt.Errorf("%w: job %q has another %s than job %q", ErrBroadcastMismatch, j.ID, field, first.ID)
		}
	}
	return nil
}

// differs returns the name of the first attribute of the request body, other
// than destination, in which a and b differ, or "" when they agree.
func differs(a, b *job.Job) string {
	switch {
	case a.Content != b.Content:
		return "content"
	case a.Source != b.Source:
		return "source"
	case a.Reference != b.Reference:
		return "reference"
	case a.Class != b.Class:
		return "class"
	case a.Mask != b.Mask:
		return "mask"
	case (a.SMSClass == nil) != (b.SMSClass == nil) || a.SMSClass != nil && *a.SMSClass != *b.SMSClass:
		return "sms_class"
	case (a.Scheduled == nil) != (b.Scheduled == nil) || a.Scheduled != nil && !a.Scheduled.Equal(*b.Scheduled):
		return "scheduled"
	case (a.Expires == nil) != (b.Expires == nil) || a.Expires != nil && !a.Expires.Equal(*b.Expires):
		return "expires"
	}
	return ""
}

// matchBroadcast gives each job the result for its destination; status is the
// answer's HTTP status.
func matchBroadcast(jobs []*job.Job, entries []broadcastEntry, status int) []BroadcastResult {
	// waiting holds, per destination, the jobs still without a result, in
	// order.
	waiting := make(map[string][]int, len(jobs))
	for i, j := range jobs {
		waiting[j.Destination] = append(waiting[j.Destination], i)
	}
	results := make([]BroadcastResult, len(jobs))
	got := make([]bool, len(jobs))
	for _, en := range entries {
		q := waiting[en.destination]
		if len(q) == 0 {
			continue
		}
		i := q[0]
		waiting[en.destination] = q[1:]
		got[i] = true
		results[i] = entryResult(jobs[i], en, status)
	}
	for i, j := range jobs {
		if !got[i] {
			e := &Error{Kind: KindUnknown, StatusCode: status, Code: CodeInvalidResponse,
				Description: fmt.Sprintf("no result for destination %q in the answer", j.Destination)}
			results[i].Err = fmt.Errorf("broadcast message %s: %w", j.ID, e)
		}
	}
	return results
}

// entryResult turns one destination's result into the job's outcome.
func entryResult(j *job.Job, en broadcastEntry, status int) BroadcastResult {
	var e *Error
	switch en.status {
	case "success":
		if en.id != "" {
			return BroadcastResult{Result: Result{MessageID: en.id, Status: statusAccepted, Detail: en.destination}}
		}
		e = &Error{Kind: KindUnknown, StatusCode: status, Code: CodeInvalidResponse,
			Description: "success without a message id"}
	case "failure":
		e = &Error{Kind: KindRejected, StatusCode: status, Code: CodeBroadcastFailure, Description: en.message}
	default:
		e = &Error{Kind: KindUnknown, StatusCode: status, Code: CodeInvalidResponse,
			Description: fmt.Sprintf("result status %q is neither success nor failure", en.status)}
	}
	return BroadcastResult{Err: fmt.Errorf("broadcast message %s: %w", j.ID, e)}
}

// Get returns the message with the gateway id messageID (GET /messages/{id}).
// messageID must be a REST v1 id, a positive decimal integer; otherwise Get
// sends nothing and returns an error that is not an *Error. REST v1 documents
// no status in this answer, so Message.Status is empty unless the gateway sends
// one. Errors are as for RESTv2.Get: ErrNotFound on 404, and otherwise an
// *Error in which a request that got no answer is KindRetryable.
func (c *RESTv1) Get(ctx context.Context, messageID string) (Message, error) {
	id, ok := decimalID(messageID)
	if !ok {
		return Message{}, fmt.Errorf("get message %q: not a REST v1 message id (a positive decimal integer)", messageID)
	}
	var m Message
	err := c.get(ctx, c.messagesURL+"/"+id, func(status int, body []byte) error {
		if status == http.StatusNotFound {
			return ErrNotFound
		}
		if status != http.StatusOK {
			return nil
		}
		var err error
		if m, err = parseMessageV1(body, id); err != nil {
			return &Error{Kind: KindRetryable, StatusCode: status, Code: CodeInvalidResponse, Err: err}
		}
		return nil
	})
	if err != nil {
		return Message{}, fmt.Errorf("get message %s: %w", id, err)
	}
	return m, nil
}

// Health checks that the gateway answers and takes the credentials. REST v1
// has no health endpoint, so Health asks for message 0, which no account has
// (GET /messages/0): 404 or any 2xx is healthy. Otherwise it returns an error
// wrapping an *Error classified as for Get; wrong credentials are
// KindUnauthorized. The gateway answers 404 for a wrong base URL too, so Health
// does not notice one.
func (c *RESTv1) Health(ctx context.Context) error {
	a, err := c.exchange(ctx, http.MethodGet, c.messagesURL+"/0", nil)
	if err != nil {
		return fmt.Errorf("gateway health: %w", err)
	}
	defer a.release()
	if success(a.status) || a.status == http.StatusNotFound {
		return nil
	}
	return fmt.Errorf("gateway health: %w", c.failure(a, true))
}

// Probe is Health: REST v1 documents no health endpoint, so an authenticated
// look-up of a message no account has stands in for one. It sends no SMS.
func (c *RESTv1) Probe(ctx context.Context) error { return c.Health(ctx) }

// Close closes the client's idle connections. Calls in flight finish normally;
// the client stays usable (it opens new connections as needed).
func (c *RESTv1) Close() {
	c.transport.CloseIdleConnections()
}
