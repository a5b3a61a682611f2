package ratelimit

import (
	"fmt"
	"math"
	"sync"
)

// LaneShare is one lane of LaneShares.
type LaneShare struct {
	// Name is the lane's name, for messages only.
	Name string
	// MinShare is the fraction of the tokens the lane gets while it has work,
	// whatever the lanes above it want; 0 <= MinShare <= 1. A lane with 0 gets only
	// what the lanes above it leave.
	MinShare float64
}

// LaneShares decides which lane gets the next token: the highest-priority lane
// that has work, except that a lane with a minimum share that has had less than its
// share goes first.
//
// It keeps a deficit counter per lane with a minimum share. Every token taken
// while the lane has work credits it MinShare of that token; every token it takes
// debits it one. A lane is behind while its credit is above zero. Two bounds keep
// the memory short ("a recent window"): a lane without work forfeits what it was
// owed, so it gives its share to the others and does not catch up in a rush when
// work comes back; and a lane served beyond its share because nothing above it had
// work carries at most one take of debt, so it is not starved when the others come
// back.
//
// LaneShares is deterministic: the same calls give the same picks. It knows nothing
// of time or of the rate; it counts the tokens it is told of. It is safe for
// concurrent use.
type LaneShares struct {
	lanes []LaneShare

	mu     sync.Mutex
	credit []float64 // tokens owed; > 0 means behind its share
	active []bool    // had work at the last Pick
}

// NewLaneShares returns the shares of lanes, highest priority first. Every
// MinShare must be within [0, 1] and together they must not exceed 1; names must
// be unique. The error wraps ErrInvalidConfig.
func NewLaneShares(lanes []LaneShare) (*LaneShares, error) {
	if len(lanes) == 0 {
		return nil, fmt.Errorf("%w: lanes: at least one lane is required", ErrInvalidConfig)
	}
	seen := make(map[string]bool, len(lanes))
	sum := 0.0
	for _, l := range lanes {
		if seen[l.Name] {
			return nil, fmt.Errorf("%w: lanes: %q appears twice", ErrInvalidConfig, l.Name)
		}
		seen[l.Name] = true
		if !(l.MinShare >= 0 && l.MinShare <= 1) {
			return nil, fmt.Errorf("%w: lanes: min share of %q must be between 0 and 1 (got %v)", ErrInvalidConfig, l.Name, l.MinShare)
		}
		sum += l.MinShare
	}
	if sum > 1+eps {
		return nil, fmt.Errorf("%w: lanes: min shares add up to %v; together they must not exceed 1", ErrInvalidConfig, math.Round(sum*1e6)/1e6)
	}
	return &LaneShares{
		lanes:  append([]LaneShare(nil), lanes...),
		credit: make([]float64, len(lanes)),
		active: make([]bool, len(lanes)),
	}, nil
}

// Pick returns the lane that should get the next token, by index into the lanes
// given to NewLaneShares: the highest-priority lane with a minimum share that has
// work and is behind its share, else the highest-priority lane with work. ok is
// false when no lane has work.
//
// hasWork is asked about every lane, in order, under LaneShares' lock: it must not
// call LaneShares. Pick does not count the token; call Took once the lane is
// served.
func (s *LaneShares) Pick(hasWork func(i int) bool) (i int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	top, behind := -1, -1
	for j := range s.lanes {
		s.active[j] = hasWork(j)
		if !s.active[j] {
			s.credit[j] = min(s.credit[j], 0)
			continue
		}
		if top < 0 {
			top = j
		}
		if behind < 0 && s.lanes[j].MinShare > 0 && s.credit[j] > eps {
			behind = j
		}
	}
	if behind >= 0 {
		return behind, true
	}
	return top, top >= 0
}

// Took records that lane i was given n tokens (n = 1 per message, or its segments
// when the rate counts segments). Lanes that had work at the last Pick are credited
// their share of them. An i out of range or n < 1 is ignored.
func (s *LaneShares) Took(i, n int) {
	if i < 0 || i >= len(s.lanes) || n < 1 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tokens := float64(n)
	for j, l := range s.lanes {
		if l.MinShare > 0 && (s.active[j] || j == i) {
			s.credit[j] += l.MinShare * tokens
		}
	}
	s.credit[i] = max(s.credit[i]-tokens, -tokens)
}

// Lanes returns the lanes, highest priority first.
func (s *LaneShares) Lanes() []LaneShare { return append([]LaneShare(nil), s.lanes...) }
