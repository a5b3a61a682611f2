package dispatcher

import (
	"context"
	"errors"
	"fmt"
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
type Batcher struct {
	b   Broadcaster
	cfg BatchConfig

	mu     sync.Mutex
	groups map[string]*batch
}

type batch struct {
	jobs    []*job.Job
	waiters []chan BroadcastResult
}

// NewBatcher returns a Batcher over b.
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
	return &Batcher{b: b, cfg: cfg, groups: map[string]*batch{}}, nil
}

// Send adds j to the batch of jobs like it and returns j's result when the batch
// has been sent. If ctx ends first, the result is KindUnknown when the batch may
// already be on its way.
func (bt *Batcher) Send(ctx context.Context, j *job.Job) (Result, error) {
	key := batchKey(j)
	done := make(chan BroadcastResult, 1)
	bt.mu.Lock()
	g := bt.groups[key]
	if g == nil {
		g = &batch{}
		bt.groups[key] = g
		time.AfterFunc(bt.cfg.MaxWait, func() { bt.flush(key, g) })
	}
	g.jobs = append(g.jobs, j)
	g.waiters = append(g.waiters, done)
	full := len(g.jobs) >= bt.cfg.MaxSize
	bt.mu.Unlock()
	if full {
		go bt.flush(key, g)
	}
	select {
	case r := <-done:
		return r.Result, r.Err
	case <-ctx.Done():
		return Result{}, &Error{Kind: KindUnknown, Code: CodeCancelled,
			Description: "stopped waiting for the broadcast this job joined", Err: ctx.Err()}
	}
}

// flush sends g if it is still the open batch of key.
func (bt *Batcher) flush(key string, g *batch) {
	bt.mu.Lock()
	if bt.groups[key] != g {
		bt.mu.Unlock()
		return // already flushed
	}
	delete(bt.groups, key)
	bt.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), bt.cfg.Timeout)
	defer cancel()
	bt.send(ctx, g.jobs, g.waiters)
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
