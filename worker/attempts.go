package worker

import "sync"

// attemptMemoSize bounds the attempts remembered for released jobs.
const attemptMemoSize = 100_000

// attemptMemo remembers, per stream sequence, how many submissions a released job
// has had and whether one had an unknown outcome, so that when the job comes back
// to this worker its attempts keep counting. It is bounded: past its size, an
// arbitrary entry is forgotten, and that job counts from zero again (it can then be
// tried more than MaxAttempts times, never fewer).
type attemptMemo struct {
	mu    sync.Mutex
	size  int
	items map[uint64]attemptState
}

type attemptState struct {
	attempts int
	dupRisk  bool
}

func newAttemptMemo(size int) *attemptMemo {
	return &attemptMemo{size: size, items: make(map[uint64]attemptState)}
}

func (a *attemptMemo) put(seq uint64, attempts int, dupRisk bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.items[seq]; !ok && len(a.items) >= a.size {
		for k := range a.items {
			delete(a.items, k)
			break
		}
	}
	a.items[seq] = attemptState{attempts: attempts, dupRisk: dupRisk}
}

// take returns and forgets what is remembered of seq.
func (a *attemptMemo) take(seq uint64) (attempts int, dupRisk bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.items[seq]
	if ok {
		delete(a.items, seq)
	}
	return s.attempts, s.dupRisk
}
