package gwsim

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/jetsms/jetsms/internal/redact"
)

// Errors of callbacks: SendMO returns them wrapped, and a dropped receipt is
// dropped for one of them.
var (
	// ErrClosed means Close was called before the callback was delivered.
	ErrClosed = errors.New("gwsim: simulator closed")
	// ErrQueueFull means Config.CallbackQueue callbacks were already pending.
	ErrQueueFull = errors.New("gwsim: callback queue full")
	// ErrGaveUp means the receiver did not answer 2xx before Config.CallbackGiveUp
	// passed; the error wraps the last attempt's error too.
	ErrGaveUp = errors.New("gwsim: callback receiver gave no 2xx answer in time")
)

// endpoint is a callback URL with its credentials taken out into a header.
type endpoint struct {
	url  string   // without user information; safe to show
	auth []string // Authorization header value; nil without credentials
}

// parseEndpoint reads a callback URL given in the Config field named field. The
// error never shows the password.
func parseEndpoint(field, raw string) (*endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// Neither url.Error nor its cause is shown: with a '#', '/' or '?' in the
		// password, url.Parse takes part of it for the host and quotes it.
		return nil, fmt.Errorf("%w: %s %s: not a URL (a password with special characters must be URL-encoded)",
			ErrInvalidConfig, field, redact.Quote(redact.URL(raw)))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %s %s: must be an http:// or https:// URL with a host",
			ErrInvalidConfig, field, redact.Quote(redact.URL(raw)))
	}
	ep := &endpoint{}
	if u.User != nil {
		pass, _ := u.User.Password()
		creds := u.User.Username() + ":" + pass
		ep.auth = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(creds))}
		u.User = nil
	}
	ep.url = u.String()
	return ep, nil
}

// callback is one pending piece of work: every receipt of one message, delivered one
// after another, or one MO. Only one attempt of a callback runs at a time, which is
// what keeps a message's receipts in order.
type callback struct {
	due time.Time // when the next attempt may start

	mo bool
	// DLR: the message, its drawn final status ("" for none) and the receipt
	// being delivered, from 0 to steps-1.
	id        key
	reference string
	detail    string
	final     string
	step      int
	steps     int
	// MO: the caller's context and where its outcome goes.
	ctx    context.Context
	result chan error // buffered, written once

	body     []byte // of the receipt or MO being delivered
	attempts int    // attempts at it so far
	firstTry time.Time
	bo       *backoff.ExponentialBackOff // nil until an attempt fails
}

// callbackHeap orders pending callbacks by due time.
type callbackHeap []*callback

func (h callbackHeap) Len() int           { return len(h) }
func (h callbackHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h callbackHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *callbackHeap) Push(x any)        { *h = append(*h, x.(*callback)) }
func (h *callbackHeap) Pop() any {
	old := *h
	n := len(old) - 1
	cb := old[n]
	old[n] = nil
	*h = old[:n]
	return cb
}

// callbacks sends the simulator's DLR and MO callbacks: one scheduler goroutine
// hands due callbacks to a fixed pool of senders sharing one keep-alive client. A
// failed attempt goes back into the queue with a backoff delay, so senders never
// sit out a wait.
type callbacks struct {
	sim *Simulator // for its store and test hooks

	dlr, mo   *endpoint // nil when not configured
	interim   []string  // read-only
	mix       []threshold[string]
	delay     time.Duration
	jitter    time.Duration
	gap       time.Duration
	duplicate bool
	reorder   bool
	// openAPIShape sends REST v2 receipts in the OpenAPI page's shape.
	openAPIShape bool

	giveUp     time.Duration
	timeout    time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	limit      int
	senders    int

	client    *http.Client
	transport *http.Transport

	ctx     context.Context // cancelled by close
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	running atomic.Int64  // goroutines not yet returned; for tests
	wake    chan struct{} // a callback was queued
	work    chan *callback

	mu     sync.Mutex
	queue  callbackHeap
	parked []*parked // receipts of scheduled messages, waiting for their time
	held   int       // callbacks queued, parked or in an attempt
	closed bool

	receiptsDelivered atomic.Int64
	receiptsRetried   atomic.Int64
	receiptsDropped   atomic.Int64
	receiptsPending   atomic.Int64
	moDelivered       atomic.Int64
	moRetried         atomic.Int64
	moDropped         atomic.Int64
}

var headerUserAgent = []string{"gwsim"}

// start runs the scheduler and sender goroutines.
func (c *callbacks) start() {
	senders := c.senders
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wake = make(chan struct{}, 1)
	c.work = make(chan *callback)
	c.transport = &http.Transport{
		// No proxy from the environment: receivers are usually on this machine.
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        2 * senders,
		MaxIdleConnsPerHost: senders,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	c.client = &http.Client{
		Transport: c.transport,
		// A redirect is an answer that is not 2xx: retried, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.wg.Add(1 + senders)
	c.running.Add(int64(1 + senders))
	go c.schedule()
	for range senders {
		go c.send()
	}
}

// close stops the goroutines, cancelling attempts in flight, waits for them and
// drops every callback still pending.
func (c *callbacks) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	left := c.queue
	c.queue = nil
	for _, p := range c.parked {
		p.timer.Stop()
		left = append(left, p.cb)
	}
	c.parked = nil
	c.mu.Unlock()
	for _, cb := range left {
		c.drop(cb, ErrClosed)
	}
	c.transport.CloseIdleConnections()
}

// accepted schedules the receipts of a message just accepted, or counts them
// dropped when the queue is full or the simulator closed.
func (c *callbacks) accepted(id key, m *Message) {
	if c.dlr == nil {
		return
	}
	final := draw(c.mix, StatusReceived)
	steps := len(c.interim)
	if final != "" {
		steps++
	}
	if c.duplicate {
		steps *= 2
	}
	if steps == 0 {
		return
	}
	cb := &callback{
		due:       time.Now().Add(c.wait(c.delay)),
		id:        id,
		reference: m.Reference,
		detail:    m.Destination,
		final:     final,
		steps:     steps,
	}
	c.receiptsPending.Add(int64(steps))
	var err error
	if m.Scheduled != nil && m.Scheduled.After(m.At) {
		// A scheduled message goes out at its time: its receipts come after it.
		err = c.park(cb, *m.Scheduled, m.Scheduled.Sub(m.At))
	} else {
		err = c.admit(cb)
	}
	if err != nil {
		c.receiptsPending.Add(-int64(steps))
		c.receiptsDropped.Add(int64(steps))
	}
}

// parked is the receipts of a scheduled message, held until its time.
type parked struct {
	cb    *callback
	at    time.Time   // the message's scheduled time, on the simulator's clock
	timer *time.Timer // releases it in real time
}

// park holds cb, counted in the queue, until the simulator's clock reaches at:
// ReleaseDue releases it then, and a timer calls ReleaseDue after wait in real
// time.
func (c *callbacks) park(cb *callback, at time.Time, wait time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.held >= c.limit {
		return ErrQueueFull
	}
	c.held++
	c.parked = append(c.parked, &parked{cb: cb, at: at, timer: time.AfterFunc(wait, c.sim.ReleaseDue)})
	return nil
}

// releaseDue queues the receipts of every parked message whose time has come by
// now, DLRDelay (plus jitter) from now in real time.
func (c *callbacks) releaseDue(now time.Time) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	kept := c.parked[:0]
	released := 0
	for _, p := range c.parked {
		if p.at.After(now) {
			kept = append(kept, p)
			continue
		}
		p.timer.Stop()
		p.cb.due = time.Now().Add(c.wait(c.delay))
		heap.Push(&c.queue, p.cb)
		released++
	}
	clear(c.parked[len(kept):])
	c.parked = kept
	c.mu.Unlock()
	if released > 0 {
		c.signal()
	}
}

// wait returns d plus the configured jitter.
func (c *callbacks) wait(d time.Duration) time.Duration {
	if c.jitter > 0 {
		d += rand.N(c.jitter)
	}
	return d
}

// statusAt returns the status of receipt step of cb and whether it is the second
// copy of a receipt (Config.DLRDuplicate).
func (c *callbacks) statusAt(cb *callback, step int) (status string, again bool) {
	k := step
	if c.duplicate {
		k, again = step/2, step%2 == 1
	}
	if cb.final != "" && c.reorder {
		if k == 0 {
			return cb.final, again
		}
		k--
	}
	if k < len(c.interim) {
		return c.interim[k], again
	}
	return cb.final, again
}

// admit queues a new callback unless the queue is full or the simulator closed.
func (c *callbacks) admit(cb *callback) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.held >= c.limit {
		c.mu.Unlock()
		return ErrQueueFull
	}
	c.held++
	heap.Push(&c.queue, cb)
	c.mu.Unlock()
	c.signal()
	return nil
}

// requeue puts back a callback that is already counted in held.
func (c *callbacks) requeue(cb *callback) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.drop(cb, ErrClosed)
		return
	}
	heap.Push(&c.queue, cb)
	c.mu.Unlock()
	c.signal()
}

func (c *callbacks) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// release gives up cb's place in the queue for good.
func (c *callbacks) release() {
	c.mu.Lock()
	c.held--
	c.mu.Unlock()
}

// drop ends cb without delivering the rest of it.
func (c *callbacks) drop(cb *callback, err error) {
	c.release()
	if cb.mo {
		c.moDropped.Add(1)
		cb.result <- err
		return
	}
	left := int64(cb.steps - cb.step)
	c.receiptsPending.Add(-left)
	c.receiptsDropped.Add(left)
}

// schedule hands each callback to a sender once it is due.
func (c *callbacks) schedule() {
	defer c.running.Add(-1)
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var next *callback
		wait := time.Duration(-1)
		c.mu.Lock()
		if len(c.queue) > 0 {
			if d := time.Until(c.queue[0].due); d <= 0 {
				next = heap.Pop(&c.queue).(*callback)
			} else {
				wait = d
			}
		}
		c.mu.Unlock()

		if next != nil {
			select {
			case <-c.ctx.Done():
				c.drop(next, ErrClosed)
				return
			case c.work <- next:
			}
			continue
		}
		var fire <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-c.ctx.Done():
			return
		case <-c.wake:
		case <-fire:
		}
		timer.Stop()
	}
}

// send is one sender: it makes one attempt at each callback handed to it.
func (c *callbacks) send() {
	defer c.running.Add(-1)
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case cb := <-c.work:
			c.attempt(cb)
		}
	}
}

// attempt posts cb's current receipt or MO once and decides what comes next:
// the next receipt, a retry after a backoff delay, or giving up.
func (c *callbacks) attempt(cb *callback) {
	if cb.mo && cb.ctx.Err() != nil {
		c.drop(cb, context.Cause(cb.ctx)) // SendMO has returned already
		return
	}
	if cb.attempts == 0 {
		cb.firstTry = time.Now()
		if !cb.mo {
			status, _ := c.statusAt(cb, cb.step)
			c.sim.store.setStatus(cb.id, status)
			cb.body = c.receiptBody(cb, status)
		}
	} else if cb.mo {
		c.moRetried.Add(1)
	} else {
		c.receiptsRetried.Add(1)
	}
	cb.attempts++

	err := c.post(cb)
	if err == nil {
		c.delivered(cb)
		return
	}
	if c.ctx.Err() != nil {
		c.drop(cb, ErrClosed)
		return
	}
	if cb.mo && cb.ctx.Err() != nil {
		c.drop(cb, context.Cause(cb.ctx))
		return
	}
	if cb.bo == nil {
		cb.bo = &backoff.ExponentialBackOff{
			InitialInterval:     c.backoffMin,
			RandomizationFactor: 0.5,
			Multiplier:          2,
			MaxInterval:         c.backoffMax,
			Stop:                backoff.Stop,
			Clock:               backoff.SystemClock,
		}
		cb.bo.Reset()
	}
	// The give-up time is checked here rather than by the backoff, whose clock
	// would start at the first failure, not at the first attempt.
	wait := min(cb.bo.NextBackOff(), c.backoffMax)
	now := time.Now()
	if now.Add(wait).Sub(cb.firstTry) > c.giveUp {
		c.gaveUp(cb, err)
		return
	}
	cb.due = now.Add(wait)
	c.hook(func(h *testHooks) func() { return h.callbackFailed })
	c.requeue(cb)
}

// hook calls the test hook pick returns, if any. Hooks run before the callback's
// next step is queued, so their order follows the attempts'.
func (c *callbacks) hook(pick func(*testHooks) func()) {
	if h := c.sim.hooks; h != nil {
		if fn := pick(h); fn != nil {
			fn()
		}
	}
}

func (c *callbacks) delivered(cb *callback) {
	if cb.mo {
		c.moDelivered.Add(1)
		c.hook(func(h *testHooks) func() { return h.callbackDelivered })
		c.release()
		cb.result <- nil
		return
	}
	c.receiptsDelivered.Add(1)
	c.receiptsPending.Add(-1)
	c.hook(func(h *testHooks) func() { return h.callbackDelivered })
	c.advance(cb)
}

func (c *callbacks) gaveUp(cb *callback, err error) {
	if cb.mo {
		c.moDropped.Add(1)
		c.hook(func(h *testHooks) func() { return h.callbackGaveUp })
		c.release()
		cb.result <- fmt.Errorf("%w (%d attempts): %w", ErrGaveUp, cb.attempts, err)
		return
	}
	c.receiptsDropped.Add(1)
	c.receiptsPending.Add(-1)
	c.hook(func(h *testHooks) func() { return h.callbackGaveUp })
	c.advance(cb)
}

// advance moves cb on to its next receipt, or ends it after its last.
func (c *callbacks) advance(cb *callback) {
	cb.step++
	cb.attempts = 0
	cb.bo = nil
	cb.body = nil
	if cb.step == cb.steps {
		c.release()
		return
	}
	if _, again := c.statusAt(cb, cb.step); again {
		cb.due = time.Now() // a copy follows its original at once
	} else {
		cb.due = time.Now().Add(c.wait(c.gap))
	}
	c.requeue(cb)
}

// post makes one attempt; any answer but 2xx is an error.
func (c *callbacks) post(cb *callback) error {
	ep, kind, parent := c.dlr, "DLR", c.ctx
	if cb.mo {
		ep, kind, parent = c.mo, "MO", cb.ctx
	}
	ctx, cancel := context.WithTimeout(parent, c.timeout)
	defer cancel()
	if cb.mo {
		stop := context.AfterFunc(c.ctx, cancel) // Close ends the attempt too
		defer stop()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, bytes.NewReader(cb.body))
	if err != nil {
		return fmt.Errorf("post %s: %w", kind, err)
	}
	req.Header["Content-Type"] = headerJSON
	req.Header["User-Agent"] = headerUserAgent
	if ep.auth != nil {
		req.Header["Authorization"] = ep.auth
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", kind, err)
	}
	// Reading the rest of a small answer lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post %s to %s: answered %d", kind, ep.url, resp.StatusCode)
	}
	return nil
}

// receipt is the REST v2 DLR callback body.
type receipt struct {
	MessageID string `json:"message_id"`
	Status    string `json:"status"`
	Detail    string `json:"detail"`
	Reference string `json:"reference,omitempty"`
}

// receiptOpenAPI is the OpenAPI page's StatusCallback: "id" instead of
// "message_id", and no reference.
type receiptOpenAPI struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// receiptV1 is the REST v1 DLR callback body: the id an integer, no detail.
type receiptV1 struct {
	MessageID int64  `json:"message_id"`
	Status    string `json:"status"`
	Reference string `json:"reference,omitempty"`
}

func (c *callbacks) receiptBody(cb *callback, status string) []byte {
	// Marshalling strings and integers cannot fail; invalid UTF-8 comes out as
	// U+FFFD.
	if c.sim.v1 {
		body, _ := json.Marshal(receiptV1{MessageID: cb.id.num, Status: status, Reference: cb.reference})
		return body
	}
	if c.openAPIShape {
		body, _ := json.Marshal(receiptOpenAPI{ID: cb.id.String(), Status: status, Detail: cb.detail})
		return body
	}
	body, _ := json.Marshal(receipt{
		MessageID: cb.id.String(),
		Status:    status,
		Detail:    cb.detail,
		Reference: cb.reference,
	})
	return body
}

// stats copies the callback counters into st.
func (c *callbacks) stats(st *Stats) {
	st.ReceiptsDelivered = c.receiptsDelivered.Load()
	st.ReceiptsRetried = c.receiptsRetried.Load()
	st.ReceiptsDropped = c.receiptsDropped.Load()
	st.ReceiptsPending = c.receiptsPending.Load()
	st.MODelivered = c.moDelivered.Load()
	st.MORetried = c.moRetried.Load()
	st.MODropped = c.moDropped.Load()
}
