package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/campaignstate"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// State is where a campaign is in its life; it is defined in campaignstate, so
// that the worker can read the gate's answer without importing this package.
type State = campaignstate.State

// The states of a campaign. A campaign starts publishing; running once every row
// is stored; done once every job has a final status. Pause and Resume move it
// between paused and publishing or running; Cancel moves it to cancelled, which
// it never leaves (its record's Ended is set once every job has ended).
const (
	// StateUnknown is the state the Gate reports for a campaign without a record:
	// its jobs are sent as any other.
	StateUnknown    = campaignstate.Unknown
	StatePublishing = campaignstate.Publishing
	StateRunning    = campaignstate.Running
	StatePaused     = campaignstate.Paused
	StateCancelled  = campaignstate.Cancelled
	StateDone       = campaignstate.Done
)

// Conditions callers act on.
var (
	// ErrNotFound: no campaign of that name.
	ErrNotFound = errors.New("campaign not found")
	// ErrState: the campaign's state does not allow the change asked for (pause a
	// cancelled campaign, publish a cancelled one again).
	ErrState = errors.New("not allowed in the campaign's state")
	// ErrBusy: another process is publishing the campaign (its last checkpoint is
	// more recent than PublisherConfig.StaleAfter), or took it over.
	ErrBusy = errors.New("campaign is being published by another process")
	// ErrMismatch: the campaign was published before with another template, lane
	// or schedule; a re-run must repeat the same command.
	ErrMismatch = errors.New("campaign was published with other settings")
	// ErrFileChanged: the rows already published differ from the file's rows
	// now, so resuming by row number would skip or repeat people.
	ErrFileChanged = errors.New("recipients file changed since the campaign was published")
	// errConflict: a compare-and-set lost to another writer; read again.
	errConflict = errors.New("campaign record changed by another writer")
)

// Record is a campaign as kept in the campaign bucket under its name.
type Record struct {
	Name         string     `json:"name"`
	State        State      `json:"state"`
	Lane         string     `json:"lane"`
	File         string     `json:"file,omitempty"`
	TemplateHash string     `json:"template_hash"`
	Schedule     *time.Time `json:"schedule,omitempty"`
	// Created is when the first send started.
	Created time.Time `json:"created"`
	// Published is when publishing ended: every row read (Progress.Complete), or
	// stopped by a cancel (Progress.Stopped).
	Published *time.Time `json:"published,omitempty"`
	// Ended is when every job had a final status.
	Ended       *time.Time `json:"ended,omitempty"`
	PausedAt    *time.Time `json:"paused_at,omitempty"`
	ResumedAt   *time.Time `json:"resumed_at,omitempty"`
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
	Updated     time.Time  `json:"updated"`

	// Totals count the rows published so far (all of them once Progress.Complete).
	Totals Totals `json:"totals"`
	// BadRows are the first BadRowsKept bad rows, in file order.
	BadRows  []RowError `json:"bad_rows,omitempty"`
	Progress Progress   `json:"progress"`
	// Counts are the jobs' statuses, from status events.
	Counts Counts `json:"counts"`
	// Chunks are the counts of each block of ChunkRows rows, with the revision of
	// the tally they were read from: the record takes a block's counts only from a
	// newer tally, so each event is counted once whichever process applies it.
	Chunks map[int]ChunkCounts `json:"chunks,omitempty"`

	// PricePerSegment is campaign.price_per_segment of the last send run (zero
	// when unset), and EstimatedCost is Totals.Segments times it, written with
	// Totals at every checkpoint: the send's estimate, from what its publishing
	// pass counts anyway (no second pass over the file). Unlike a dry run's, it
	// does not look up opt-outs: jobs to opted-out numbers are counted, and end
	// suppressed and unsent (Counts.ByStatus says how many). See Estimate.
	PricePerSegment float64 `json:"price_per_segment,omitempty"`
	EstimatedCost   float64 `json:"estimated_cost,omitempty"`
}

// Estimate returns the record's estimate in the form of a dry run's: the rows,
// jobs, bad rows and segments published so far (all of them once
// Progress.Complete), their cost at PricePerSegment, and Suppressed -1 (not
// counted).
func (r *Record) Estimate() Estimate {
	return Estimate{
		Totals:             r.Totals,
		Suppressed:         -1,
		SuppressedSegments: -1,
		ChargedSegments:    r.Totals.Segments,
		PricePerSegment:    r.PricePerSegment,
		Cost:               r.EstimatedCost,
	}
}

// setPrice records a send run's price per segment and the cost of the segments
// counted so far.
func (r *Record) setPrice(price float64) {
	r.PricePerSegment = price
	r.EstimatedCost = float64(r.Totals.Segments) * price
}

// BadRowsKept is how many bad rows a record lists; Totals.BadRows counts them all.
const BadRowsKept = 50

// Totals count a campaign's rows, jobs and SMS segments.
type Totals struct {
	Rows     int `json:"rows"`
	Jobs     int `json:"jobs"`
	BadRows  int `json:"bad_rows"`
	Segments int `json:"segments"`
	// GSM7 and UCS2 split Jobs and Segments by encoding.
	GSM7 EncodingTotals `json:"gsm7"`
	UCS2 EncodingTotals `json:"ucs2"`
}

// EncodingTotals count the jobs and segments of one encoding.
type EncodingTotals struct {
	Jobs     int `json:"jobs"`
	Segments int `json:"segments"`
}

func (t *Totals) addJob(segments int, enc job.Encoding) {
	t.Jobs++
	t.Segments += segments
	if enc == job.UCS2 {
		t.UCS2.Jobs++
		t.UCS2.Segments += segments
	} else {
		t.GSM7.Jobs++
		t.GSM7.Segments += segments
	}
}

// Progress is the publisher's checkpoint: how far the file is known to be stored,
// and what a re-run needs to publish only what is missing.
type Progress struct {
	// Complete: every row was read and every job stored.
	Complete bool `json:"complete"`
	// Stopped: publishing ended early because the campaign was cancelled.
	Stopped bool `json:"stopped,omitempty"`
	// Digest sums rows 1 to Totals.Rows as read, so a re-run can tell that the
	// file is the same one.
	Digest string `json:"digest,omitempty"`
	// Ahead bounds the rows that may be stored beyond Totals.Rows: the publisher
	// never publishes row Totals.Rows+Ahead+1 before it has checkpointed further.
	Ahead int `json:"ahead,omitempty"`
	// ScanFrom is a jobs-stream sequence at or below that of every job stored for
	// a row beyond Totals.Rows.
	ScanFrom uint64 `json:"scan_from,omitempty"`
	// Publisher identifies the process publishing the campaign, empty when none
	// is; Checkpoint is when it last wrote.
	Publisher  string    `json:"publisher,omitempty"`
	Checkpoint time.Time `json:"checkpoint,omitzero"`
}

// Counts are a campaign's jobs by what status events have said of them. Each job
// counts once in Sent and once in Final, whatever events repeat.
type Counts struct {
	// Sent counts jobs the gateway took: an accepted event, or any event with a
	// gateway message id.
	Sent int `json:"sent"`
	// Final counts jobs with a final status; ByStatus splits it by that status
	// (the first final status heard, as the ledger keeps it).
	Final    int                `json:"final"`
	ByStatus map[job.Status]int `json:"by_status,omitempty"`
}

// ChunkCounts are the counts of one block of rows, as of a tally revision.
type ChunkCounts struct {
	Rev      uint64             `json:"rev"`
	Sent     int                `json:"sent"`
	ByStatus map[job.Status]int `json:"by_status,omitempty"`
}

// PublishingOver reports whether no more jobs will be published.
func (r *Record) PublishingOver() bool { return r.Progress.Complete || r.Progress.Stopped }

// Pending returns the jobs published that have no final status yet.
func (r *Record) Pending() int { return max(r.Totals.Jobs-r.Counts.Final, 0) }

// recount sums the chunks into Counts.
func (r *Record) recount() {
	c := Counts{ByStatus: map[job.Status]int{}}
	for _, ch := range r.Chunks {
		c.Sent += ch.Sent
		for st, n := range ch.ByStatus {
			c.ByStatus[st] += n
			c.Final += n
		}
	}
	if len(c.ByStatus) == 0 {
		c.ByStatus = nil
	}
	r.Counts = c
}

// settle moves a campaign whose every job has a final status to done (or, when
// cancelled, sets Ended). It reports whether it changed r.
func (r *Record) settle(now time.Time) bool {
	if r.Ended != nil || !r.PublishingOver() || r.Counts.Final < r.Totals.Jobs {
		return false
	}
	t := now.UTC()
	r.Ended = &t
	switch r.State {
	case StatePublishing, StateRunning, StatePaused:
		r.State = StateDone
	}
	return true
}

// StoreConfig names the campaign bucket.
type StoreConfig struct {
	// Bucket is the KV bucket, subjects.Names.CampaignBucket(). Required.
	Bucket string
	// Replicas is the bucket's replica count (1, or 3 on a cluster).
	Replicas int
	// Now is the clock of the times recorded; default time.Now.
	Now func() time.Time
}

// Store reads and writes campaign records. It is safe for concurrent use.
//
// The bucket holds a campaign's record under its name, and its tallies (which
// jobs have been counted) under "<name>.t.<block>". Every write is a
// compare-and-set on the revision read.
type Store struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// Open creates the bucket, or updates it to cfg, and returns the store.
func Open(ctx context.Context, js jetstream.JetStream, cfg StoreConfig) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("campaign: bucket name is required")
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "jetsms campaigns: one record per campaign, and tallies of its jobs' statuses",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open campaign bucket %s: %w", cfg.Bucket, err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Store{kv: kv, now: now}, nil
}

// Get returns a campaign's record and its revision, or ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*Record, uint64, error) {
	key, err := recordKey(name)
	if err != nil {
		return nil, 0, err
	}
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read campaign %s: %w", name, err)
	}
	rec, err := decodeRecord(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("campaign %s: %w", name, err)
	}
	return rec, e.Revision(), nil
}

// List returns every campaign's record, oldest first.
func (s *Store) List(ctx context.Context) ([]*Record, error) {
	// Records are the keys of one token; tallies have three.
	keys, err := s.kv.ListKeysFiltered(ctx, "*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list campaigns: %w", err)
	}
	defer func() { _ = keys.Stop() }()
	var names []string
	for k := range keys.Keys() {
		names = append(names, k)
	}
	var out []*Record
	for _, name := range names {
		rec, _, err := s.Get(ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b *Record) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// Watch sends the campaign's record now (when it exists) and after every change,
// until ctx ends; then the channel is closed. A slow reader misses intermediate
// versions, never the latest.
func (s *Store) Watch(ctx context.Context, name string) (<-chan *Record, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	w, err := s.kv.Watch(ctx, name, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("watch campaign %s: %w", name, err)
	}
	out := make(chan *Record, 1)
	go func() {
		defer close(out)
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue // the end of the initial values
				}
				rec, err := decodeRecord(e.Value())
				if err != nil {
					continue
				}
				// Keep only the latest version for a slow reader.
				select {
				case <-out:
				default:
				}
				out <- rec
			}
		}
	}()
	return out, nil
}

// recordKey is a campaign record's key: its name, checked as a campaign name and
// built by subjects.Key.
func recordKey(name string) (string, error) {
	if err := ValidateName(name); err != nil {
		return "", err
	}
	return subjects.Key(name)
}

// create stores a new record; errConflict when the name is taken.
func (s *Store) create(ctx context.Context, rec *Record) (uint64, error) {
	rec.Updated = s.now().UTC()
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode campaign %s: %w", rec.Name, err)
	}
	key, err := recordKey(rec.Name)
	if err != nil {
		return 0, err
	}
	rev, err := s.kv.Create(ctx, key, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("create campaign %s: %w", rec.Name, errConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("create campaign %s: %w", rec.Name, err)
	}
	return rev, nil
}

// put stores rec over revision rev; errConflict when it changed since.
func (s *Store) put(ctx context.Context, rec *Record, rev uint64) (uint64, error) {
	rec.Updated = s.now().UTC()
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("encode campaign %s: %w", rec.Name, err)
	}
	key, err := recordKey(rec.Name)
	if err != nil {
		return 0, err
	}
	next, err := s.kv.Update(ctx, key, data, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("update campaign %s: %w", rec.Name, errConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("update campaign %s: %w", rec.Name, err)
	}
	return next, nil
}

// updateTries bounds the compare-and-set attempts of one update.
const updateTries = 64

// update reads the record, lets change edit it and stores it by compare-and-set,
// reading again after a short jittered wait when another writer came first.
// change reports whether there is anything to store; its error ends the update
// and is returned as it is. update returns the record as stored (or as read,
// when change stored nothing) and its revision.
func (s *Store) update(ctx context.Context, name string, change func(r *Record) (bool, error)) (*Record, uint64, error) {
	for try := range updateTries {
		if try > 0 {
			if err := jitter(ctx, try); err != nil {
				return nil, 0, err
			}
		}
		rec, rev, err := s.Get(ctx, name)
		if err != nil {
			return nil, 0, err
		}
		write, err := change(rec)
		if err != nil {
			return rec, rev, err
		}
		if !write {
			return rec, rev, nil
		}
		next, err := s.put(ctx, rec, rev)
		if errors.Is(err, errConflict) {
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		return rec, next, nil
	}
	return nil, 0, fmt.Errorf("update campaign %s: %d conflicts in a row: %w", name, updateTries, errConflict)
}

// jitter waits a random time that grows with try, so that writers racing for
// one key spread out.
func jitter(ctx context.Context, try int) error {
	d := time.Duration(rand.Int64N(int64(min(try, 20)) * int64(time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func decodeRecord(data []byte) (*Record, error) {
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	return &rec, nil
}
