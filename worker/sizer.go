package worker

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// sizer bounds the submissions in flight by Little's law: to keep up with a rate
// of R submissions a second through a gateway that answers in L seconds, R×L of
// them must be in flight. It measures L (a moving average of how long a submission
// holds its slot: the ledger claim and the gateway's answer) and how much L
// varies, reads R and the burst B from the limiter, and keeps the limit at
//
//	B + R × (2L + 4×deviation)
//
// between the configured floor and ceiling: room for the burst the limiter hands
// out after a stall, twice the mean, and the slow tail (the deviation term, as TCP
// sizes its retransmission timer), so a slow gateway does not cap throughput and
// a fast one is not sent hundreds of idle requests. Sized to the mean alone, a
// worker at 5,000/s through a fast gateway held 6 slots and lost 2–4% of its rate
// to the slow few.
type sizer struct {
	floor, ceiling int
	lim            Limiter
	onChange       func(limit int)

	mu        sync.Mutex
	latency   float64 // seconds, moving average; 0 until the first answer
	deviation float64 // seconds, moving average of |sample - latency|

	cur  atomic.Int64
	wake chan struct{}
}

// sizerInterval is how often the limit is recomputed.
const sizerInterval = 250 * time.Millisecond

func newSizer(floor, ceiling int, lim Limiter) *sizer {
	s := &sizer{floor: floor, ceiling: ceiling, lim: lim, wake: make(chan struct{}, 1)}
	s.cur.Store(int64(ceiling))
	return s
}

// observe records how long a submission held its slot.
func (s *sizer) observe(d time.Duration) {
	const alpha, beta = 0.1, 0.25
	x := d.Seconds()
	s.mu.Lock()
	if s.latency == 0 {
		s.latency, s.deviation = x, x/2
	} else {
		s.deviation += beta * (math.Abs(x-s.latency) - s.deviation)
		s.latency += alpha * (x - s.latency)
	}
	s.mu.Unlock()
}

// rate is the limiter's current rate, or +Inf when it has none to tell.
func (s *sizer) rate() float64 {
	switch l := s.lim.(type) {
	case interface{ Rate() float64 }:
		return l.Rate()
	case interface{ PerSecond() float64 }:
		return l.PerSecond()
	}
	return math.Inf(1)
}

// size is the limit for the current latency and rate.
func (s *sizer) size() int {
	s.mu.Lock()
	lat, dev := s.latency, s.deviation
	s.mu.Unlock()
	r := s.rate()
	burst := 1
	if b, ok := s.lim.(interface{ Burst() int }); ok {
		burst = max(b.Burst(), 1)
	}
	need := float64(burst) + r*(2*lat+4*dev)
	// An unlimited rate (x/time/rate's Inf is the largest float, not +Inf) or no
	// measurement yet: as many as allowed. The comparison is made in floats, so
	// a huge product never overflows an int.
	if lat == 0 || math.IsNaN(need) || need >= float64(s.ceiling) {
		return s.ceiling
	}
	return max(int(math.Ceil(need)), s.floor)
}

func (s *sizer) run(ctx context.Context) {
	t := time.NewTicker(sizerInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			next := int64(s.size())
			if old := s.cur.Swap(next); old != next {
				if old < next {
					s.freed() // more room: let a waiting scheduler look again
				}
				if s.onChange != nil {
					s.onChange(int(next))
				}
			}
		}
	}
}

func (s *sizer) limit() int { return int(s.cur.Load()) }

// admit waits until fewer than the limit are in flight.
func (s *sizer) admit(ctx context.Context, inflight func() int) bool {
	for inflight() >= s.limit() {
		select {
		case <-s.wake:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// freed tells a waiting admit that a submission ended.
func (s *sizer) freed() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
