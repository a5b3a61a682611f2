package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// ChunkRows is how many rows one tally covers: 8 KiB of bits per kind at most.
const ChunkRows = 1 << 16

// tally records which jobs of one block of rows have been counted: a bit per row
// for sent and for final, and the counts those bits make. Bits and counts change
// together in one compare-and-set, so an event applied twice (redelivered, or
// published twice) finds its bit set and counts nothing.
type tally struct {
	Sent     []byte             `json:"sent,omitempty"`
	Final    []byte             `json:"final,omitempty"`
	SentN    int                `json:"sent_n"`
	ByStatus map[job.Status]int `json:"by_status,omitempty"`
}

// mark is what one status event says of one row.
type mark struct {
	row   int
	sent  bool
	final job.Status // "" when the event is not final
}

// tallyKey is "<campaign>.t.<chunk>", built by subjects.Key.
func tallyKey(name string, chunk int) (string, error) {
	return subjects.Key(name, "t", strconv.Itoa(chunk))
}

// chunkOf returns the block of a row (rows count from 1) and its bit in the block.
func chunkOf(row int) (chunk, bit int) { return (row - 1) / ChunkRows, (row - 1) % ChunkRows }

// setBit sets bit i of *b, growing it as needed, and reports whether it was clear.
func setBit(b *[]byte, i int) bool {
	byteAt := i / 8
	if byteAt >= len(*b) {
		*b = append(*b, make([]byte, byteAt+1-len(*b))...)
	}
	m := byte(1) << (i % 8)
	if (*b)[byteAt]&m != 0 {
		return false
	}
	(*b)[byteAt] |= m
	return true
}

func (t *tally) counts(rev uint64) ChunkCounts {
	return ChunkCounts{Rev: rev, Sent: t.SentN, ByStatus: maps.Clone(t.ByStatus)}
}

// readTally returns a block's tally and its revision (0 and an empty tally when
// there is none).
func (s *Store) readTally(ctx context.Context, name string, chunk int) (*tally, uint64, error) {
	key, err := tallyKey(name, chunk)
	if err != nil {
		return nil, 0, fmt.Errorf("tally %d of campaign %s: %w", chunk, redact.Quote(name), err)
	}
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &tally{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read tally %d of campaign %s: %w", chunk, name, err)
	}
	var t tally
	if err := json.Unmarshal(e.Value(), &t); err != nil {
		return nil, 0, fmt.Errorf("decode tally %d of campaign %s: %w", chunk, name, err)
	}
	return &t, e.Revision(), nil
}

// applyMarks counts marks (all of one block) in the block's tally and returns the
// tally's counts as stored, with its revision. Marks already counted change
// nothing and write nothing.
func (s *Store) applyMarks(ctx context.Context, name string, chunk int, marks []mark) (ChunkCounts, error) {
	for try := range updateTries {
		if try > 0 {
			if err := jitter(ctx, try); err != nil {
				return ChunkCounts{}, err
			}
		}
		t, rev, err := s.readTally(ctx, name, chunk)
		if err != nil {
			return ChunkCounts{}, err
		}
		changed := false
		for _, m := range marks {
			_, bit := chunkOf(m.row)
			if m.sent && setBit(&t.Sent, bit) {
				t.SentN++
				changed = true
			}
			if m.final != "" && setBit(&t.Final, bit) {
				if t.ByStatus == nil {
					t.ByStatus = make(map[job.Status]int, 4)
				}
				t.ByStatus[m.final]++
				changed = true
			}
		}
		if !changed {
			return t.counts(rev), nil
		}
		data, err := json.Marshal(t)
		if err != nil {
			return ChunkCounts{}, fmt.Errorf("encode tally %d of campaign %s: %w", chunk, name, err)
		}
		key, err := tallyKey(name, chunk)
		if err != nil {
			return ChunkCounts{}, fmt.Errorf("tally %d of campaign %s: %w", chunk, redact.Quote(name), err)
		}
		var next uint64
		if rev == 0 {
			next, err = s.kv.Create(ctx, key, data)
		} else {
			next, err = s.kv.Update(ctx, key, data, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return ChunkCounts{}, fmt.Errorf("write tally %d of campaign %s: %w", chunk, name, err)
		}
		return t.counts(next), nil
	}
	return ChunkCounts{}, fmt.Errorf("write tally %d of campaign %s: %d conflicts in a row: %w", chunk, name, updateTries, errConflict)
}

// absorb takes the blocks' counts into the record (each only when newer than
// what the record has), recounts, and settles the campaign when every job has
// ended. It returns the record as stored.
func (s *Store) absorb(ctx context.Context, name string, chunks map[int]ChunkCounts) (*Record, error) {
	rec, _, err := s.update(ctx, name, func(r *Record) (bool, error) {
		changed := false
		for i, c := range chunks {
			if have, ok := r.Chunks[i]; ok && have.Rev >= c.Rev {
				continue
			}
			if r.Chunks == nil {
				r.Chunks = make(map[int]ChunkCounts)
			}
			r.Chunks[i] = c
			changed = true
		}
		if changed {
			r.recount()
		}
		if r.settle(s.now()) {
			changed = true
		}
		return changed, nil
	})
	return rec, err
}

// reconcile reads every tally the campaign can have and absorbs them: the record
// is then exact even if a process died between writing a tally and the record.
func (s *Store) reconcile(ctx context.Context, name string) (*Record, error) {
	rec, _, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	last, _ := chunkOf(max(rec.Totals.Rows+rec.Progress.Ahead, 1))
	chunks := make(map[int]ChunkCounts, last+1)
	for i := 0; i <= last; i++ {
		t, rev, err := s.readTally(ctx, name, i)
		if err != nil {
			return nil, err
		}
		if rev > 0 {
			chunks[i] = t.counts(rev)
		}
	}
	return s.absorb(ctx, name, chunks)
}
