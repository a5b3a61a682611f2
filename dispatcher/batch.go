package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jetsms/jetsms/job"
)

// Defaults of BatchConfig.
const (
	BatchMaxSizeDefault = 100
	BatchMaxWaitDefault = 200 * time.Millisecond
)

// Broadcaster sends many jobs that differ only in destination as one request; see
// RESTv1.Broadcast. It sends a single job with Send.
type Broadcaster interface {
	Send(ctx context.Context, j *job.Job) (Result, error)
	Broadcast(ctx context.Context, jobs []*job.Job) ([]BroadcastResult, error)
}

// BatchConfig sets how long and how many jobs a Batcher gathers.
type BatchConfig struct {
	// MaxSize is the most jobs in one broadcast. Default BatchMaxSizeDefault.
	MaxSize int
	// MaxWait is the longest a job waits for others to join it. Default
	// BatchMaxWaitDefault.
	MaxWait time.Duration
	// Timeout bounds one broadcast request (the batch's requests are not tied to
	// any one job's context). Default: the client's own timeout applies, plus
	// this bound of 2 minutes.
	Timeout time.Duration
}

// Batcher gathers jobs with identical content and options into broadcasts. Its
// Send looks like a single submission to the caller: it returns the job's own
// result once its batch has been sent. A failure entry fails only its job; a
// batch the gateway finds too large (broadcast_limit) is split in halves and
// sent again. A batch of one is sent as a plain message. It is safe for
// concurrent use.
//
// A Batcher runs between Start and Stop; it owns its timers and the goroutines
// that send its batches, and Stop waits for them. A job whose caller gives up
// before its batch goes out leaves the batch and is not sent.
type Batcher struct {
	b   Broadcaster
	cfg BatchConfig

	mu      sync.Mutex
	state   batcherState
	groups  map[string]*batch
	sending sync.WaitGroup // batches on their way; added to under mu while running

	// run is the broadcasts' context; a hard stop cancels it.
	run       context.Context
	cancelRun context.CancelFunc
}

type batcherState int

const (
	batcherNew batcherState = iota
	batcherRunning
	batcherStopped
)

type batch struct {
	jobs    []*job.Job
	waiters []chan BroadcastResult
	timer   *time.Timer
}

// NewBatcher returns a Batcher over b, not yet running.
func NewBatcher(b Broadcaster, cfg BatchConfig) (*Batcher, error) {
	if b == nil {
		return nil, errors.New("dispatcher: batcher: a broadcaster is required")
	}
	if cfg.MaxSize < 0 || cfg.MaxWait < 0 || cfg.Timeout < 0 {
		return nil, errors.New("dispatcher: batcher: size, wait and timeout must not be negative")
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = BatchMaxSizeDefault
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = BatchMaxWaitDefault
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	run, cancel := context.WithCancel(context.Background())
	return &Batcher{b: b, cfg: cfg, groups: map[string]*batch{}, run: run, cancelRun: cancel}, nil
}

// Start lets the Batcher take jobs. ctx is not used: nothing needs setting up.
func (bt *Batcher) Start(context.Context) error {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.state != batcherNew {
		return errors.New("dispatcher: batcher already started")
	}
	bt.state = batcherRunning
	return nil
}

// Stop takes no more jobs, sends the batches gathered so far at once (their
// callers wait for them) and returns once every broadcast has ended. Safe twice
// and without Start.
//
// When ctx ends first (a hard stop), batches not yet sent are not sent (their
// jobs get a retryable error), the broadcasts on their way are cancelled (their
// jobs' outcome is unknown), and Stop still waits for them, returning ctx's error.
func (bt *Batcher) Stop(ctx context.Context) error {
	bt.mu.Lock()
	if bt.state == batcherStopped {
		bt.mu.Unlock()
		return nil
	}
	bt.state = batcherStopped
	open := bt.groups
	bt.groups = map[string]*batch{}
	for _, g := range open {
		g.timer.Stop()
		if ctx.Err() != nil {
			notSent(g.waiters, "the batcher stopped before the broadcast was sent")
			continue
		}
		bt.goSend(g)
	}
	bt.mu.Unlock()

	done := make(chan struct{})
	go func() {
		defer close(done)
		bt.sending.Wait()
	}()
	select {
	case <-done:
	case <-ctx.Done():
		bt.cancelRun()
		<-done
	}
	bt.cancelRun()
	if ctx.Err() != nil {
		return fmt.Errorf("dispatcher: batcher stop: %w", ctx.Err())
	}
	return nil
}

// Send adds j to the batch of jobs like it and returns j's result when the batch
// has been sent. If ctx ends before the batch goes out, j leaves it and is not
// sent (a retryable error); if it ends after, the result is KindUnknown.
func (bt *Batcher) Send(ctx context.Context, j *job.Job) (Result, error) {
	key := batchKey(j)
	done := make(chan BroadcastResult, 1)
	bt.mu.Lock()
	if bt.state != batcherRunning {
		bt.mu.Unlock()
		return Result{}, &Error{Kind: KindRetryable, Code: CodeCancelled, Description: "the batcher is not running; nothing was sent"}
	}
	g := bt.groups[key]
	if g == nil {
		g = &batch{}
		bt.groups[key] = g
		g.timer = time.AfterFunc(bt.cfg.MaxWait, func() { bt.flush(key, g) })
	}
	g.jobs = append(g.jobs, j)
	g.waiters = append(g.waiters, done)
	if len(g.jobs) >= bt.cfg.MaxSize {
		g.timer.Stop()
		delete(bt.groups, key)
		bt.goSend(g)
	}
	bt.mu.Unlock()
	select {
	case r := <-done:
		return r.Result, r.Err
	case <-ctx.Done():
	}
	if bt.leave(key, g, done) {
		return Result{}, &Error{Kind: KindRetryable, Code: CodeCancelled,
			Description: "stopped waiting before the broadcast this job joined was sent; nothing was sent", Err: ctx.Err()}
	}
	select {
	case r := <-done:
		return r.Result, r.Err // the answer came as the caller gave up
	default:
	}
	return Result{}, &Error{Kind: KindUnknown, Code: CodeCancelled,
		Description: "stopped waiting for the broadcast this job joined", Err: ctx.Err()}
}

// leave takes the job waiting on done out of g if g has not gone out yet, and
// reports whether it did.
func (bt *Batcher) leave(key string, g *batch, done chan BroadcastResult) bool {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.groups[key] != g {
		return false // on its way, or already sent
	}
	for i, w := range g.waiters {
		if w == done {
			g.jobs = slices.Delete(g.jobs, i, i+1)
			g.waiters = slices.Delete(g.waiters, i, i+1)
			break
		}
	}
	if len(g.jobs) == 0 {
		g.timer.Stop()
		delete(bt.groups, key)
	}
	return true
}

// flush sends g, at the end of its wait, if it is still the open batch of key.
func (bt *Batcher) flush(key string, g *batch) {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if bt.groups[key] != g {
		return // already sent, emptied or stopped
	}
	delete(bt.groups, key)
	bt.goSend(g)
}

// goSend sends g on a goroutine Stop waits for. bt.mu is held.
func (bt *Batcher) goSend(g *batch) {
	bt.sending.Add(1)
	go func() {
		defer bt.sending.Done()
		ctx, cancel := context.WithTimeout(bt.run, bt.cfg.Timeout)
		defer cancel()
		bt.send(ctx, g.jobs, g.waiters)
	}()
}

// notSent tells each waiter that its job was not sent.
func notSent(waiters []chan BroadcastResult, why string) {
	for _, w := range waiters {
		w <- BroadcastResult{Err: &Error{Kind: KindRetryable, Code: CodeCancelled, Description: why}}
	}
}

// send broadcasts jobs and hands each waiter its result, splitting on
// broadcast_limit.
func (bt *Batcher) send(ctx context.Context, jobs []*job.Job, waiters []chan BroadcastResult) {
	if len(jobs) == 1 {
		res, err := bt.b.Send(ctx, jobs[0])
		waiters[0] <- BroadcastResult{Result: res, Err: err}
		return
	}
	results, err := bt.b.Broadcast(ctx, jobs)
	if errors.Is(err, ErrBroadcastLimit) {
		half := len(jobs) / 2
		bt.send(ctx, jobs[:half], waiters[:half])
		bt.send(ctx, jobs[half:], waiters[half:])
		return
	}
	for i, w := range waiters {
		if err != nil {
			w <- BroadcastResult{Err: fmt.Errorf("broadcast of %d jobs: %w", len(jobs), err)}
			continue
		}
		w <- results[i]
	}
}

// batchKey is what jobs must share to go out in one broadcast: everything of the
// request but the destination.
func batchKey(j *job.Job) string {
	var b strings.Builder
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	field(j.Content)
	field(j.Source)
	field(j.Reference)
	field(j.Class)
	field(j.Mask)
	if j.SMSClass != nil {
		field(strconv.Itoa(*j.SMSClass))
	} else {
		field("-")
	}
	for _, t := range []*time.Time{j.Scheduled, j.Expires} {
		if t != nil {
			field(t.UTC().Format(time.RFC3339Nano))
		} else {
			field("-")
		}
	}
	return b.String()
}
