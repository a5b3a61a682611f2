package campaign

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// Defaults of PublisherConfig.
const (
	// WindowDefault is how many jobs may await their PubAck at once. It stays
	// below the JetStream client's own limit of outstanding async publishes
	// (4,000 unless the caller set jetstream.WithPublishAsyncMaxPending).
	WindowDefault = 2048
	// CheckpointRowsDefault and CheckpointEveryDefault: the record's progress is
	// written after this many rows or this long, whichever comes first.
	CheckpointRowsDefault  = 8192
	CheckpointEveryDefault = time.Second
	// StaleAfterDefault is how old the last checkpoint of another publisher must
	// be before a new run takes the campaign over (that process died).
	StaleAfterDefault = 15 * time.Second
	// AckTimeoutDefault bounds the wait for one PubAck.
	AckTimeoutDefault = 30 * time.Second
	// drainTimeout bounds, after the caller's context has ended, the wait for the
	// PubAcks in flight and the last checkpoint.
	drainTimeout = 10 * time.Second
)

// Ledger finds a job in the job ledger; *ledger.Ledger is one. The worker writes a
// job's entry before it acks or ends the job's message, so a job that has left the
// jobs stream has an entry (for the ledger's retention).
type Ledger interface {
	Get(ctx context.Context, jobID string) (*ledger.Entry, uint64, error)
}

var _ Ledger = (*ledger.Ledger)(nil)

// PublisherConfig configures a Publisher. Zero values take the defaults above.
type PublisherConfig struct {
	// Names gives the jobs stream and subjects. Required.
	Names subjects.Names
	// Store is the campaign bucket. Required.
	Store *Store
	// Ledger, when set, is asked about the jobs a killed run may have stored
	// that are no longer in the jobs stream (a worker took them). Without it a
	// re-run republishes those, and only the stream's duplicate window (2
	// minutes) keeps them from being stored twice.
	Ledger Ledger
	// MaxSegments caps a job's content as the workers' jobs.max_segments does;
	// zero means job.MaxSegmentsDefault.
	MaxSegments int
	// PricePerSegment is campaign.price_per_segment: the record keeps it and the
	// cost of the segments published (Record.EstimatedCost). Zero: no price.
	PricePerSegment float64
	// Window is the most jobs awaiting their PubAck at once.
	Window int
	// CheckpointRows and CheckpointEvery: how often progress is written.
	CheckpointRows  int
	CheckpointEvery time.Duration
	// StaleAfter: see StaleAfterDefault.
	StaleAfter time.Duration
	// AckTimeout: see AckTimeoutDefault.
	AckTimeout time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Publisher publishes campaigns from recipients files. It is safe for concurrent
// use; one campaign is published by one Send at a time (the record says which).
type Publisher struct {
	cfg PublisherConfig
	js  jetstream.JetStream
	log *zap.Logger
	// killAt, in tests, makes a run stop dead after that many rows, as if its
	// process were killed: no PubAcks awaited, no last checkpoint.
	killAt int
}

// errKilled is what a run stopped by killAt returns.
var errKilled = errors.New("killed (test)")

// NewPublisher checks cfg and returns a publisher.
func NewPublisher(cfg PublisherConfig, js jetstream.JetStream, log *zap.Logger) (*Publisher, error) {
	if cfg.Names.Prefix() == "" {
		return nil, errors.New("campaign publisher: names are required")
	}
	if cfg.Store == nil {
		return nil, errors.New("campaign publisher: a store is required")
	}
	if js == nil {
		return nil, errors.New("campaign publisher: a JetStream client is required")
	}
	if cfg.PricePerSegment < 0 {
		return nil, fmt.Errorf("campaign publisher: price per segment %v must not be negative", cfg.PricePerSegment)
	}
	if cfg.Window < 0 || cfg.CheckpointRows < 0 || cfg.CheckpointEvery < 0 || cfg.StaleAfter < 0 || cfg.AckTimeout < 0 {
		return nil, errors.New("campaign publisher: window, checkpoint, stale-after and ack timeout must not be negative")
	}
	if cfg.Window == 0 {
		cfg.Window = WindowDefault
	}
	if cfg.CheckpointRows == 0 {
		cfg.CheckpointRows = CheckpointRowsDefault
	}
	if cfg.CheckpointEvery == 0 {
		cfg.CheckpointEvery = CheckpointEveryDefault
	}
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = StaleAfterDefault
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = AckTimeoutDefault
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Publisher{cfg: cfg, js: js, log: log.Named("campaign_publisher")}, nil
}

// Spec is what a campaign sends: to whom (the file) and what (the template).
type Spec struct {
	// Name is the campaign's name (ValidateName). Required.
	Name string
	// Lane is the lane its jobs go to, e.g. "bulk". Required; the caller checks
	// that it is a configured lane.
	Lane string
	// Template is the message, text/template with the row's columns. Required.
	Template string
	// Schedule, when set, is every job's scheduled time.
	Schedule *time.Time
	// File names the recipients file in the record, for people.
	File string
}

func (s Spec) check() (*Template, error) {
	if err := ValidateName(s.Name); err != nil {
		return nil, err
	}
	if s.Lane == "" {
		return nil, fmt.Errorf("%w: lane is required", ErrInvalidOption)
	}
	if err := subjects.ValidateToken(s.Lane); err != nil {
		return nil, fmt.Errorf("%w: lane: %w", ErrInvalidOption, err)
	}
	return ParseTemplate(s.Template)
}

// Result is what a Send did.
type Result struct {
	// Record is the campaign's record after the call.
	Record *Record
	// Rows, Jobs and BadRows count the file as read by this call.
	Rows, Jobs, BadRows int
	// Published counts the jobs this call stored.
	Published int
	// AlreadyPublished counts the jobs an earlier run had stored, which this call
	// skipped.
	AlreadyPublished int
	// Duplicates counts PubAcks that said the stream already had the job (its
	// duplicate window caught a re-publish). Zero unless two runs overlapped.
	Duplicates int
	// Resumed: an earlier run had started the campaign.
	Resumed bool
	// AlreadyComplete: an earlier run published the whole file; nothing was read.
	AlreadyComplete bool
	// Stopped: the campaign was cancelled while this call published it.
	Stopped bool
}

// Send publishes the campaign's jobs from src, one per good row, to
// sms.send.<lane>.<campaign>, with job ids from JobID and Nats-Msg-Id set to them,
// and keeps the campaign's record: it creates it (state publishing), checkpoints
// its progress and totals, and moves it to running once every row is stored.
//
// Bad rows are reported (WithBadRows) and counted, and the good rows go on.
// Send never publishes a row twice, across any number of runs: run again with the
// same name, file, template, lane and schedule after a crash, an interrupt or by
// mistake, it publishes only the rows no earlier run stored (see the package
// documentation for how), and nothing once the campaign is complete
// (Result.AlreadyComplete).
//
// When ctx ends, Send stops reading, waits a short time for the PubAcks in flight,
// writes its last checkpoint and returns ctx's error. Errors: the template's and
// file's (ErrInvalidTemplate, ErrInvalidFile); ErrMismatch, ErrFileChanged, ErrBusy,
// ErrState (the campaign was cancelled); and the stream's refusal of a job (e.g.
// the jobs stream full), which stops the run at that row.
func (p *Publisher) Send(ctx context.Context, spec Spec, src io.Reader, opts ...Option) (Result, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return Result{}, err
	}
	tmpl, err := spec.check()
	if err != nil {
		return Result{}, err
	}
	subject, err := p.cfg.Names.SendCampaign(spec.Lane, spec.Name)
	if err != nil {
		return Result{}, err
	}
	r := &run{
		p:       p,
		o:       o,
		spec:    spec,
		subject: subject,
		stream:  p.cfg.Names.JobsStream(),
		owner:   ownerID(),
		ahead:   p.cfg.Window + p.cfg.CheckpointRows,
		digest:  sha256.New(),
		start:   time.Now(),
	}
	// The header is checked before the record is touched: a file the template
	// does not fit leaves no campaign behind.
	rd, err := NewReader(src, ReaderConfig{
		Campaign: spec.Name, Template: tmpl, Schedule: spec.Schedule,
		MaxSegments: p.cfg.MaxSegments, Now: p.cfg.Now,
	})
	if err != nil {
		return Result{}, err
	}
	rec, err := r.claim(ctx, tmpl)
	if err != nil {
		return Result{}, err
	}
	if rec.Progress.Complete {
		return Result{Record: rec, AlreadyComplete: true, Resumed: true}, nil
	}
	if r.res.Resumed {
		if err := r.scan(ctx); err != nil {
			r.release()
			return Result{}, err
		}
	}
	return r.publish(ctx, rd)
}

// ownerID names this run in the record: host, process and a random part.
func ownerID() string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(os.Getpid()) + "/" + uuid.NewString()[:8]
}

// entryKind says what became of a row.
type entryKind uint8

const (
	kindBad       entryKind = iota
	kindPublished           // stored by this run (fut set)
	kindBefore              // stored by an earlier run, at or below its checkpoint
	kindFound               // stored by an earlier run beyond its checkpoint
)

// entry is a row between reading and the watermark.
type entry struct {
	row  int
	kind entryKind
	segs int
	enc  job.Encoding
	hash uint64
	fut  jetstream.PubAckFuture
	bad  *RowError
}

// run is one Send.
type run struct {
	p       *Publisher
	o       callOptions
	spec    Spec
	subject string
	stream  string
	owner   string
	ahead   int
	start   time.Time

	// The record as this run found it.
	p0      int    // rows checkpointed
	ahead0  int    // rows that may be stored beyond p0
	scan0   uint64 // jobs-stream sequence to look for them from
	digest0 string // digest of rows 1..p0
	found   map[string]struct{}

	// Rows read, not yet past the watermark.
	fifo []entry
	head int

	// The watermark: every row up to passed is settled (stored, skipped or bad);
	// acc counts rows 1 to passed once passed reaches p0.
	passed  int
	acc     Totals
	bads    []RowError
	digest  hash.Hash
	lastSeq uint64 // sequence of the last job this run stored at or below the watermark

	stored         int // acc.Rows as last checkpointed
	lastCheckpoint time.Time
	cancelled      bool
	ackTimer       *time.Timer
	// broken is the PubAck error that stopped the run: the watermark cannot pass
	// that row, so nothing more is awaited.
	broken error

	res                     Result
	rowsRead, jobsRead, bad int
}

// claim creates the campaign's record, or takes over an existing one whose
// publishing is not over, and returns it.
func (r *run) claim(ctx context.Context, tmpl *Template) (*Record, error) {
	st := r.p.cfg.Store
	spec := r.spec
	for try := range updateTries {
		if try > 0 {
			if err := jitter(ctx, try); err != nil {
				return nil, err
			}
		}
		_, _, err := st.Get(ctx, spec.Name)
		if errors.Is(err, ErrNotFound) {
			rec, err := r.create(ctx, tmpl)
			if errors.Is(err, errConflict) {
				continue // created meanwhile by another run: take it over, or not
			}
			return rec, err
		}
		if err != nil {
			return nil, err
		}
		rec, _, err := st.update(ctx, spec.Name, func(rec *Record) (bool, error) {
			if err := r.matches(rec, tmpl); err != nil {
				return false, err
			}
			if rec.Progress.Complete {
				return false, nil
			}
			if rec.State == StateCancelled || rec.Progress.Stopped {
				return false, fmt.Errorf("publish campaign %s: it was cancelled; publish the file under a new name: %w", spec.Name, ErrState)
			}
			now := r.p.cfg.Now()
			if pub := rec.Progress.Publisher; pub != "" {
				if age := now.Sub(rec.Progress.Checkpoint); age < r.p.cfg.StaleAfter {
					return false, fmt.Errorf("publish campaign %s: %s checkpointed it %s ago; if that process is gone, run again after %s: %w",
						spec.Name, pub, age.Round(time.Millisecond), (r.p.cfg.StaleAfter - age).Round(time.Second), ErrBusy)
				}
			}
			rec.Progress.Publisher, rec.Progress.Checkpoint = r.owner, now.UTC()
			rec.setPrice(r.p.cfg.PricePerSegment)
			return true, nil
		})
		if err != nil {
			return nil, err
		}
		r.res.Resumed = true
		r.adopt(rec)
		return rec, nil
	}
	return nil, fmt.Errorf("publish campaign %s: %w", spec.Name, errConflict)
}

// create stores a new record, publishing.
func (r *run) create(ctx context.Context, tmpl *Template) (*Record, error) {
	// Every job this run stores comes after the stream's current last message.
	s, err := r.p.js.Stream(ctx, r.stream)
	if err != nil {
		return nil, fmt.Errorf("publish campaign %s: jobs stream %s: %w", r.spec.Name, r.stream, err)
	}
	now := r.p.cfg.Now().UTC()
	if err := checkSchedule(r.spec.Schedule, now); err != nil {
		return nil, err
	}
	rec := &Record{
		Name:         r.spec.Name,
		State:        StatePublishing,
		Lane:         r.spec.Lane,
		File:         r.spec.File,
		TemplateHash: tmpl.Hash(),
		Schedule:     utc(r.spec.Schedule),
		Created:      now,
		Progress: Progress{
			Ahead:      r.ahead,
			ScanFrom:   s.CachedInfo().State.LastSeq + 1,
			Publisher:  r.owner,
			Checkpoint: now,
		},
	}
	rec.setPrice(r.p.cfg.PricePerSegment)
	if _, err := r.p.cfg.Store.create(ctx, rec); err != nil {
		return nil, err
	}
	r.adopt(rec)
	// A campaign created by this run has nothing stored ahead of its checkpoint:
	// no row needs looking for in the stream or the ledger.
	r.ahead0 = 0
	return rec, nil
}

// adopt takes the record's progress as this run's starting point.
func (r *run) adopt(rec *Record) {
	r.p0, r.ahead0, r.scan0, r.digest0 = rec.Totals.Rows, rec.Progress.Ahead, rec.Progress.ScanFrom, rec.Progress.Digest
	r.acc, r.stored = rec.Totals, rec.Totals.Rows
	r.bads = append([]RowError(nil), rec.BadRows...)
	r.lastCheckpoint = r.p.cfg.Now()
}

// matches checks that a re-run repeats the first run's settings.
func (r *run) matches(rec *Record, tmpl *Template) error {
	name := r.spec.Name
	switch {
	case rec.Lane != r.spec.Lane:
		return fmt.Errorf("publish campaign %s: it was published to lane %s, not %s; repeat the same command, or use a new name: %w",
			name, rec.Lane, r.spec.Lane, ErrMismatch)
	case rec.TemplateHash != tmpl.Hash():
		return fmt.Errorf("publish campaign %s: it was published with another template (%s); repeat the same command, or use a new name: %w",
			name, rec.TemplateHash, ErrMismatch)
	case !sameTime(rec.Schedule, r.spec.Schedule):
		return fmt.Errorf("publish campaign %s: it was published with schedule %s, not %s; repeat the same command, or use a new name: %w",
			name, timeText(rec.Schedule), timeText(r.spec.Schedule), ErrMismatch)
	}
	return nil
}

// scan collects the ids of jobs an earlier run stored beyond its checkpoint that
// are still in the jobs stream. Their sequences are at or above the record's
// ScanFrom, and there are at most Ahead of them.
func (r *run) scan(ctx context.Context) error {
	if r.ahead0 == 0 {
		return nil
	}
	s, err := r.p.js.Stream(ctx, r.stream)
	if err != nil {
		return fmt.Errorf("publish campaign %s: jobs stream %s: %w", r.spec.Name, r.stream, err)
	}
	r.found = make(map[string]struct{})
	for seq := max(r.scan0, 1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(r.subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("publish campaign %s: look for jobs stored by the last run: %w", r.spec.Name, err)
		}
		id := m.Header.Get(jetstream.MsgIDHeader)
		if name, row, ok := ParseJobID(id); ok && name == r.spec.Name && row > r.p0 && row <= r.p0+r.ahead0 {
			r.found[id] = struct{}{}
		}
		seq = m.Sequence + 1
	}
}

// storedBefore reports whether an earlier run stored the job of a row beyond its
// checkpoint: it is still in the jobs stream, or a worker took it (the ledger has
// it).
func (r *run) storedBefore(ctx context.Context, id string) (bool, error) {
	if _, ok := r.found[id]; ok {
		return true, nil
	}
	if r.p.cfg.Ledger == nil {
		return false, nil
	}
	_, _, err := r.p.cfg.Ledger.Get(ctx, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ledger.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("publish campaign %s: look up job %s in the ledger: %w", r.spec.Name, id, err)
}

// publish reads every row and settles it.
func (r *run) publish(ctx context.Context, rd *Reader) (Result, error) {
	r.ackTimer = time.NewTimer(time.Hour)
	r.ackTimer.Stop()
	defer r.ackTimer.Stop()
	nextReport := time.Now().Add(r.o.progressEvery)

	var runErr error
	eof := false
	for !r.cancelled {
		if err := ctx.Err(); err != nil {
			runErr = err
			break
		}
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			eof = true
			break
		}
		if err != nil {
			runErr = err
			break
		}
		if err := r.take(ctx, row); err != nil {
			runErr = err
			break
		}
		if r.p.killAt > 0 && r.rowsRead >= r.p.killAt {
			return r.res, errKilled
		}
		if r.o.report != nil && r.rowsRead%256 == 0 && time.Now().After(nextReport) {
			r.o.report(r.report(rd))
			nextReport = time.Now().Add(r.o.progressEvery)
		}
	}

	// Settle what is in flight, even when ctx has ended: every PubAck that comes
	// makes the checkpoint more exact.
	dctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
		defer cancel()
	}
	if err := r.drain(dctx); err != nil && runErr == nil {
		runErr = err
	}
	if eof && runErr == nil && r.passed < r.p0 {
		runErr = fmt.Errorf("the file has %d rows but %d were published before; publish the file under a new name: %w",
			r.passed, r.p0, ErrFileChanged)
	}
	end := endRelease
	switch {
	case r.cancelled:
		end = endStopped
	case eof && runErr == nil:
		end = endComplete
	}
	rec, err := r.checkpoint(dctx, end)
	if err != nil && runErr == nil {
		runErr = err
	}
	if end != endRelease && err == nil {
		// Every job may have ended already (or there was none).
		if settled, err := r.p.cfg.Store.reconcile(dctx, r.spec.Name); err == nil {
			rec = settled
		} else if runErr == nil {
			runErr = err
		}
	}
	if r.o.report != nil {
		r.o.report(r.report(rd))
	}
	r.res.Record = rec
	r.res.Rows, r.res.Jobs, r.res.BadRows = r.rowsRead, r.jobsRead, r.bad
	r.res.Stopped = r.cancelled
	if runErr != nil {
		return r.res, fmt.Errorf("publish campaign %s: stopped after row %d: %w", r.spec.Name, r.acc.Rows, runErr)
	}
	return r.res, nil
}

// take settles one row read: bad, stored before, or to publish.
func (r *run) take(ctx context.Context, row *Row) error {
	r.rowsRead++
	e := entry{row: row.Number, hash: row.hash, segs: row.Job.Segments, enc: row.Job.Encoding}
	switch {
	case row.Err != nil:
		r.bad++
		e.kind, e.bad = kindBad, row.Err
		if r.o.onBadRow != nil {
			r.o.onBadRow(row.Err)
		}
	case row.Number <= r.p0:
		r.jobsRead++
		r.res.AlreadyPublished++
		e.kind = kindBefore
	default:
		r.jobsRead++
		if row.Number <= r.p0+r.ahead0 {
			stored, err := r.storedBefore(ctx, row.Job.ID)
			if err != nil {
				return err
			}
			if stored {
				r.res.AlreadyPublished++
				e.kind = kindFound
				break
			}
		}
		if row.Number > r.stored+r.ahead {
			// The record must say how far jobs may be stored before this one is.
			if err := r.drain(ctx); err != nil {
				return err
			}
			if _, err := r.checkpoint(ctx, endNone); err != nil {
				return err
			}
			if r.cancelled {
				return nil
			}
		}
		msg := &nats.Msg{Subject: r.subject, Data: row.Data, Header: nats.Header{jetstream.MsgIDHeader: []string{row.Job.ID}}}
		fut, err := r.p.js.PublishMsgAsync(msg, jetstream.WithExpectStream(r.stream))
		if err != nil {
			return fmt.Errorf("publish job %s (line %d): %w", row.Job.ID, row.Line, err)
		}
		r.res.Published++
		e.kind, e.fut = kindPublished, fut
	}
	r.fifo = append(r.fifo, e)
	if err := r.pop(ctx, len(r.fifo)-r.head >= r.p.cfg.Window); err != nil {
		return err
	}
	if r.acc.Rows-r.stored >= r.p.cfg.CheckpointRows || r.p.cfg.Now().Sub(r.lastCheckpoint) >= r.p.cfg.CheckpointEvery {
		if _, err := r.checkpoint(ctx, endNone); err != nil {
			return err
		}
	}
	return nil
}

// pop moves the watermark over the settled rows at the head of the queue; with
// wait, it first waits for the head's PubAck.
func (r *run) pop(ctx context.Context, wait bool) error {
	if r.broken != nil {
		return r.broken
	}
	for r.head < len(r.fifo) {
		e := &r.fifo[r.head]
		var ack *jetstream.PubAck
		if e.fut != nil {
			var err error
			ack, err = r.ack(ctx, e, wait)
			if err != nil {
				return err
			}
			if ack == nil {
				break // not yet
			}
		}
		wait = false
		if err := r.advance(e, ack); err != nil {
			return err
		}
		*e = entry{}
		r.head++
	}
	switch {
	case r.head == len(r.fifo):
		r.fifo, r.head = r.fifo[:0], 0
	case r.head >= 4096 && r.head*2 >= len(r.fifo):
		n := copy(r.fifo, r.fifo[r.head:])
		r.fifo, r.head = r.fifo[:n], 0
	}
	return nil
}

// ack returns e's PubAck: at once, or nil when wait is false and it has not come.
func (r *run) ack(ctx context.Context, e *entry, wait bool) (*jetstream.PubAck, error) {
	fail := func(err error) error {
		r.broken = fmt.Errorf("store job %s: %w", JobID(r.spec.Name, e.row), err)
		return r.broken
	}
	if !wait {
		select {
		case ack := <-e.fut.Ok():
			return ack, nil
		case err := <-e.fut.Err():
			return nil, fail(err)
		default:
			return nil, nil
		}
	}
	r.ackTimer.Reset(r.p.cfg.AckTimeout)
	defer r.ackTimer.Stop()
	select {
	case ack := <-e.fut.Ok():
		return ack, nil
	case err := <-e.fut.Err():
		return nil, fail(err)
	case <-r.ackTimer.C:
		return nil, fail(fmt.Errorf("no PubAck within %s", r.p.cfg.AckTimeout))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// drain waits for every PubAck in flight.
func (r *run) drain(ctx context.Context) error {
	for r.head < len(r.fifo) {
		if err := r.pop(ctx, true); err != nil {
			return err
		}
	}
	return nil
}

// advance moves the watermark over e.
func (r *run) advance(e *entry, ack *jetstream.PubAck) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], e.hash)
	r.digest.Write(b[:])
	if e.row <= r.p0 {
		if e.row == r.p0 && hex.EncodeToString(r.digest.Sum(nil)) != r.digest0 {
			return fmt.Errorf("rows 1 to %d differ from the rows published before; publish the file under a new name: %w", r.p0, ErrFileChanged)
		}
		r.passed = e.row
		return nil
	}
	r.passed = e.row
	r.acc.Rows = e.row
	switch e.kind {
	case kindBad:
		r.acc.BadRows++
		if len(r.bads) < BadRowsKept {
			r.bads = append(r.bads, *e.bad)
		}
	default:
		r.acc.addJob(e.segs, e.enc)
	}
	if ack != nil {
		if ack.Duplicate {
			r.res.Duplicates++
		}
		r.lastSeq = max(r.lastSeq, ack.Sequence)
	}
	return nil
}

// endKind says how a checkpoint ends the run, if it does.
type endKind int

const (
	endNone     endKind = iota // a checkpoint along the way
	endRelease                 // the run stops early: the next one resumes
	endComplete                // every row is stored
	endStopped                 // the campaign was cancelled
)

// checkpoint writes the watermark's totals and progress into the record, and
// learns whether the campaign was cancelled. It fails with ErrBusy when another
// run took the campaign over.
func (r *run) checkpoint(ctx context.Context, end endKind) (*Record, error) {
	now := r.p.cfg.Now()
	// While rows the record already counts are read again, only the lease is
	// renewed: the digest covers part of them.
	caughtUp := r.passed >= r.p0
	scanFrom := r.scan0
	if r.passed >= r.p0+r.ahead0 && r.lastSeq > 0 {
		// Beyond the last run's reach, every job stored for a later row is this
		// run's, stored after the last one acknowledged.
		scanFrom = r.lastSeq + 1
	}
	ahead := max(r.ahead, r.p0+r.ahead0-r.passed)
	rec, _, err := r.p.cfg.Store.update(ctx, r.spec.Name, func(rec *Record) (bool, error) {
		if rec.Progress.Publisher != r.owner {
			return false, fmt.Errorf("%s took the campaign over: %w", rec.Progress.Publisher, ErrBusy)
		}
		if caughtUp {
			rec.Totals = r.acc
			rec.setPrice(r.p.cfg.PricePerSegment)
			rec.BadRows = r.bads
			rec.Progress.Digest = hex.EncodeToString(r.digest.Sum(nil))
			rec.Progress.Ahead = ahead
			rec.Progress.ScanFrom = scanFrom
		}
		rec.Progress.Checkpoint = now.UTC()
		if rec.State == StateCancelled {
			r.cancelled = true
		}
		t := now.UTC()
		switch end {
		case endRelease:
			rec.Progress.Publisher = ""
		case endComplete:
			// Only a run that read the whole file ends here, so caughtUp holds.
			rec.Progress.Publisher, rec.Progress.Complete, rec.Published = "", true, &t
			rec.Progress.Ahead = 0
			if rec.State == StatePublishing {
				rec.State = StateRunning
			}
		case endStopped:
			rec.Progress.Publisher, rec.Progress.Stopped, rec.Published = "", true, &t
			rec.Progress.Ahead = 0
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	r.stored, r.lastCheckpoint = rec.Totals.Rows, now
	if end == endComplete && r.cancelled {
		// Cancelled at the last moment: every row is stored anyway.
		r.cancelled = false
	}
	return rec, nil
}

// release gives the campaign up without progress, after a failure before the
// first row.
func (r *run) release() {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	_, _, _ = r.p.cfg.Store.update(ctx, r.spec.Name, func(rec *Record) (bool, error) {
		if rec.Progress.Publisher != r.owner {
			return false, nil
		}
		rec.Progress.Publisher = ""
		return true, nil
	})
}

func (r *run) report(rd *Reader) Report {
	return Report{
		Rows: r.rowsRead, Jobs: r.jobsRead, BadRows: r.bad,
		Published: r.res.Published, AlreadyPublished: r.res.AlreadyPublished,
		Offset: rd.Offset(), Elapsed: time.Since(r.start),
	}
}

// scheduleGrace is how far in the past a new campaign's schedule may be and
// still mean "now", as the job rules allow.
const scheduleGrace = time.Minute

// checkSchedule refuses a new campaign's schedule that has passed: a re-run of a
// campaign whose schedule passed meanwhile sends the rest at once, but a first run
// with a time in the past is a mistake.
func checkSchedule(at *time.Time, now time.Time) error {
	if at != nil && at.Before(now.Add(-scheduleGrace)) {
		return fmt.Errorf("%w: schedule %s is in the past (now is %s)", ErrInvalidOption,
			at.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func timeText(t *time.Time) string {
	if t == nil {
		return "none"
	}
	return t.Format(time.RFC3339)
}
