package dispatcher

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/job"
)

// heldBroadcaster records what is sent and holds each request until released or
// its context ends.
type heldBroadcaster struct {
	mu      sync.Mutex
	sent    [][]string // job ids of each request, as it started
	ended   []error    // how each request ended
	release chan struct{}
}

func newHeld() *heldBroadcaster { return &heldBroadcaster{release: make(chan struct{})} }

func (h *heldBroadcaster) Send(ctx context.Context, j *job.Job) (Result, error) {
	res, err := h.Broadcast(ctx, []*job.Job{j})
	if err != nil {
		return Result{}, err
	}
	return res[0].Result, res[0].Err
}

func (h *heldBroadcaster) Broadcast(ctx context.Context, jobs []*job.Job) ([]BroadcastResult, error) {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	h.mu.Lock()
	h.sent = append(h.sent, ids)
	h.mu.Unlock()
	var err error
	select {
	case <-h.release:
	case <-ctx.Done():
		err = ctx.Err()
	}
	h.mu.Lock()
	h.ended = append(h.ended, err)
	h.mu.Unlock()
	if err != nil {
		// As the REST client answers a request its caller cancelled.
		return nil, &Error{Kind: KindUnknown, Code: CodeCancelled, Description: "cancelled", Err: err}
	}
	out := make([]BroadcastResult, len(jobs))
	for i, j := range jobs {
		out[i] = BroadcastResult{Result: Result{MessageID: "id-" + j.ID}}
	}
	return out, nil
}

func (h *heldBroadcaster) requests() ([][]string, []error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]string(nil), h.sent...), append([]error(nil), h.ended...)
}

// sendAsync sends j from a goroutine and waits until it has joined its batch (or
// the batch has gone out); the outcome arrives on the channel. Call it in a
// synctest bubble.
func sendAsync(ctx context.Context, bt *Batcher, j *job.Job) <-chan error {
	out := make(chan error, 1)
	go func() {
		_, err := bt.Send(ctx, j)
		out <- err
	}()
	synctest.Wait()
	return out
}

func kindOf(t *testing.T, err error) Kind {
	t.Helper()
	var e *Error
	require.True(t, errors.As(err, &e), "%v", err)
	return e.Kind
}

// TestBatcherLifecycle runs in fake time: the batcher's timers and the held
// requests wait on the bubble's clock, and synctest.Wait awaits every goroutine.
func TestBatcherLifecycle(t *testing.T) {
	t.Parallel()

	t.Run("AJobWhoseCallerGaveUpLeavesTheBatchAndIsNotSent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHeld()
			close(h.release)
			bt, err := NewBatcher(h, BatchConfig{MaxSize: 3, MaxWait: time.Second})
			require.NoError(t, err)
			require.NoError(t, bt.Start(t.Context()))
			jobs := campaignJobs(4, "gave-up")
			ctx, cancel := context.WithCancel(t.Context())
			first := sendAsync(ctx, bt, jobs[0])
			synctest.Wait()
			cancel()
			require.Equal(t, KindRetryable, kindOf(t, <-first), "nothing was sent")
			var rest []<-chan error
			for _, j := range jobs[1:] {
				rest = append(rest, sendAsync(t.Context(), bt, j))
			}
			for _, r := range rest {
				require.NoError(t, <-r)
			}
			sent, _ := h.requests()
			require.Equal(t, [][]string{{jobs[1].ID, jobs[2].ID, jobs[3].ID}}, sent)
			require.NoError(t, bt.Stop(t.Context()))
		})
	})

	t.Run("AJobAloneInItsBatchLeavesItAndTheTimerSendsNothing", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHeld()
			close(h.release)
			bt, err := NewBatcher(h, BatchConfig{MaxSize: 3, MaxWait: time.Second})
			require.NoError(t, err)
			require.NoError(t, bt.Start(t.Context()))
			ctx, cancel := context.WithCancel(t.Context())
			out := sendAsync(ctx, bt, campaignJobs(1, "alone")[0])
			synctest.Wait()
			cancel()
			require.Equal(t, KindRetryable, kindOf(t, <-out))
			time.Sleep(2 * time.Second) // fake time: past the batch's wait
			synctest.Wait()
			sent, _ := h.requests()
			require.Empty(t, sent)
			require.NoError(t, bt.Stop(t.Context()))
		})
	})

	t.Run("StopSendsWhatWasGatheredAndWaitsForIt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHeld()
			bt, err := NewBatcher(h, BatchConfig{MaxSize: 10, MaxWait: time.Minute})
			require.NoError(t, err)
			require.NoError(t, bt.Start(t.Context()))
			jobs := campaignJobs(2, "gathered")
			a, b := sendAsync(t.Context(), bt, jobs[0]), sendAsync(t.Context(), bt, jobs[1])
			synctest.Wait()
			stopped := make(chan error, 1)
			go func() { stopped <- bt.Stop(t.Context()) }()
			synctest.Wait()
			sent, _ := h.requests()
			require.Equal(t, [][]string{{jobs[0].ID, jobs[1].ID}}, sent, "sent at the stop, not after the wait")
			select {
			case <-stopped:
				t.Fatal("Stop returned while the broadcast was on its way")
			default:
			}
			close(h.release)
			require.NoError(t, <-stopped)
			require.NoError(t, <-a)
			require.NoError(t, <-b)

			_, err = bt.Send(t.Context(), campaignJobs(1, "late")[0])
			require.Equal(t, KindRetryable, kindOf(t, err), "a stopped batcher sends nothing")
		})
	})

	t.Run("AHardStopCancelsTheBroadcastOnItsWayAndSendsNoMore", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := newHeld()
			bt, err := NewBatcher(h, BatchConfig{MaxSize: 2, MaxWait: time.Minute})
			require.NoError(t, err)
			require.NoError(t, bt.Start(t.Context()))
			onItsWay := campaignJobs(2, "on-its-way")
			gathered := campaignJobs(1, "gathered")[0]
			var outs []<-chan error
			for _, j := range append(onItsWay, gathered) {
				outs = append(outs, sendAsync(t.Context(), bt, j))
			}
			synctest.Wait()

			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			require.ErrorIs(t, bt.Stop(ctx), context.Canceled)
			// Stop has returned: the request on its way has ended, cancelled, and
			// the gathered job was never sent.
			sent, ended := h.requests()
			require.Equal(t, [][]string{{onItsWay[0].ID, onItsWay[1].ID}}, sent)
			require.Len(t, ended, 1)
			require.ErrorIs(t, ended[0], context.Canceled)
			require.Equal(t, KindUnknown, kindOf(t, <-outs[0]), "it may have reached the gateway")
			require.Equal(t, KindUnknown, kindOf(t, <-outs[1]))
			require.Equal(t, KindRetryable, kindOf(t, <-outs[2]), "not sent")
		})
	})
}
