package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/subjects"
)

// RetentionDefault is how long an entry is kept after its last write.
const RetentionDefault = 7 * 24 * time.Hour

// ScheduleMax is how far ahead the gateway takes a scheduled message ("The
// upper maximum for scheduled messages is 60 days", REST v2 page). It bounds
// how long a scheduled job's entry is kept.
const ScheduleMax = 60 * 24 * time.Hour

// limitMarkerTTL is how long the marker of an expired key is kept. Setting it
// is what lets the bucket's messages carry their own lifetime.
const limitMarkerTTL = time.Minute

// Conditions callers act on.
var (
	// ErrNotFound: no entry (or index key) for that id, or it expired.
	ErrNotFound = errors.New("ledger: not found")
	// ErrConflict: the entry changed since it was read, or was created by another
	// writer first; read it again.
	ErrConflict = errors.New("ledger: changed by another writer")
)

// Config names the bucket and sets its limits.
type Config struct {
	// Bucket is the KV bucket's name, e.g. sms_ledger. Required.
	Bucket string
	// Retention is how long an entry is kept after its last write. Default
	// RetentionDefault.
	Retention time.Duration
	// HoldAfterSchedule is how long after its scheduled time a scheduled job's
	// entry and message-id index are kept at least, before Retention starts:
	// the reconciler's wait (callbacks.reconcile_after), so that a receipt or a
	// look-up due then still finds the job. Must not be negative.
	HoldAfterSchedule time.Duration
	// Replicas is the bucket's replica count (1, or 3 on a cluster).
	Replicas int
}

// Ledger reads and writes job entries. It is safe for concurrent use.
type Ledger struct {
	kv        jetstream.KeyValue
	js        jetstream.JetStream
	subject   string // "$KV.<bucket>.": the keys' subject prefix
	retention time.Duration
	hold      time.Duration
	now       func() time.Time
}

// Open creates the bucket, or updates it to cfg's limits, and returns the ledger.
//
// Every write carries its own lifetime (a per-message TTL): Retention, or for a
// scheduled job until its schedule plus HoldAfterSchedule plus Retention. The
// bucket's max age, ScheduleMax plus HoldAfterSchedule plus Retention, is only a
// backstop for entries written before lifetimes were (they then live that long
// at most). It needs NATS server 2.11 or later.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Ledger, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("ledger: bucket name is required")
	}
	if cfg.Retention < 0 {
		return nil, fmt.Errorf("ledger: retention %s must not be negative", cfg.Retention)
	}
	if cfg.HoldAfterSchedule < 0 {
		return nil, fmt.Errorf("ledger: hold after schedule %s must not be negative", cfg.HoldAfterSchedule)
	}
	if cfg.Retention == 0 {
		cfg.Retention = RetentionDefault
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         cfg.Bucket,
		Description:    "jetsms job ledger: one entry per job, and message id index",
		History:        1,
		TTL:            ScheduleMax + cfg.HoldAfterSchedule + cfg.Retention,
		LimitMarkerTTL: limitMarkerTTL,
		Storage:        jetstream.FileStorage,
		Replicas:       max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open ledger bucket %s: %w", cfg.Bucket, err)
	}
	return &Ledger{
		kv: kv, js: js, subject: "$KV." + cfg.Bucket + ".",
		retention: cfg.Retention, hold: cfg.HoldAfterSchedule, now: time.Now,
	}, nil
}

// ttl is the lifetime of a write now for a job scheduled at scheduled (zero: not
// scheduled): Retention, or until scheduled plus HoldAfterSchedule plus
// Retention when that is later. It is whole seconds, as NATS keeps it.
func (l *Ledger) ttl(scheduled time.Time) time.Duration {
	d := l.retention
	if !scheduled.IsZero() {
		d = max(d, scheduled.Add(l.hold+l.retention).Sub(l.now()))
	}
	return max(d.Truncate(time.Second)+time.Second, time.Second)
}

// Get returns a job's entry and its revision, or ErrNotFound.
func (l *Ledger) Get(ctx context.Context, jobID string) (*Entry, uint64, error) {
	key, err := jobKey(jobID)
	if err != nil {
		// No entry can have a key that cannot be built.
		return nil, 0, fmt.Errorf("job %s: %w: %w", redact.Quote(jobID), ErrNotFound, err)
	}
	kve, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, fmt.Errorf("job %s: %w", jobID, ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read ledger entry of job %s: %w", jobID, err)
	}
	var e Entry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return nil, 0, fmt.Errorf("ledger entry of job %s: %w", jobID, err)
	}
	return &e, kve.Revision(), nil
}

// Create stores a new entry and returns its revision; ErrConflict if the job
// already has one. An entry with a Reference (the producer's) first records that
// the reference is taken (see ReferenceTaken), so that it is known before the job
// can be submitted.
func (l *Ledger) Create(ctx context.Context, e *Entry) (uint64, error) {
	data := e.encode()
	key, err := jobKey(e.JobID)
	if err != nil {
		return 0, fmt.Errorf("create ledger entry of job %s: %w", redact.Quote(e.JobID), err)
	}
	if e.Reference != "" {
		refKey, err := referenceKey(e.Reference)
		if err != nil {
			return 0, fmt.Errorf("record reference of job %s: %w", redact.Quote(e.JobID), err)
		}
		_, err = l.js.PublishMsg(ctx, &nats.Msg{Subject: l.subject + refKey, Data: []byte(e.JobID)},
			jetstream.WithMsgTTL(l.ttl(e.Scheduled)))
		if err != nil {
			return 0, fmt.Errorf("record reference of job %s: %w", redact.Quote(e.JobID), err)
		}
	}
	rev, err := l.kv.Create(ctx, key, data, jetstream.KeyTTL(l.ttl(e.Scheduled)))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("create ledger entry of job %s: %w", e.JobID, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("create ledger entry of job %s: %w", e.JobID, err)
	}
	return rev, nil
}

// Update stores e over revision rev and returns the new revision; ErrConflict if
// the entry changed since rev was read.
func (l *Ledger) Update(ctx context.Context, e *Entry, rev uint64) (uint64, error) {
	data := e.encode()
	key, err := jobKey(e.JobID)
	if err != nil {
		return 0, fmt.Errorf("update ledger entry of job %s: %w", redact.Quote(e.JobID), err)
	}
	// kv.Update takes no lifetime: the write is published as KV does it, with
	// the revision expected and the entry's lifetime.
	pa, err := l.js.PublishMsg(ctx, &nats.Msg{Subject: l.subject + key, Data: data},
		jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(l.ttl(e.Scheduled)))
	var next uint64
	if err == nil {
		next = pa.Sequence
	}
	if isWrongRevision(err) {
		return 0, fmt.Errorf("update ledger entry of job %s: %w", e.JobID, ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("update ledger entry of job %s: %w", e.JobID, err)
	}
	return next, nil
}

// Save stores e: Create when rev is 0, else Update over rev.
func (l *Ledger) Save(ctx context.Context, e *Entry, rev uint64) (uint64, error) {
	if rev == 0 {
		return l.Create(ctx, e)
	}
	return l.Update(ctx, e, rev)
}

// Modify reads the job's entry, lets change edit it, and stores it with a
// compare-and-set, reading again after a short jittered wait on a conflict (up to
// modifyTries times). change gets
// nil when there is no entry; it returns the entry to store (nil stores nothing).
// Modify returns what was stored, or nil.
func (l *Ledger) Modify(ctx context.Context, jobID string, change func(e *Entry) (*Entry, error)) (*Entry, error) {
	for try := range modifyTries {
		if try > 0 {
			if err := pause(ctx, try); err != nil {
				return nil, err
			}
		}
		e, rev, err := l.Get(ctx, jobID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		next, err := change(e)
		if err != nil || next == nil {
			return nil, err
		}
		_, err = l.Save(ctx, next, rev)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return next, nil
	}
	return nil, fmt.Errorf("modify ledger entry of job %s: %d conflicts in a row: %w", jobID, modifyTries, ErrConflict)
}

const modifyTries = 32

// pause waits a random time that grows with try, so that writers racing for one
// entry spread out.
func pause(ctx context.Context, try int) error {
	d := time.Duration(rand.Int64N(int64(min(try, 10)) * int64(time.Millisecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// IndexOption adjusts Index.
type IndexOption func(*indexOptions)

type indexOptions struct{ scheduled time.Time }

// Scheduled keeps the index key of a job scheduled at t as long as the job's
// entry: until t plus HoldAfterSchedule plus Retention. A nil t changes
// nothing.
func Scheduled(t *time.Time) IndexOption {
	return func(o *indexOptions) {
		if t != nil {
			o.scheduled = *t
		}
	}
}

// Index records that the gateway's message id belongs to the job. It is kept
// for Retention, or longer for a scheduled job (see Scheduled).
func (l *Ledger) Index(ctx context.Context, messageID, jobID string, opts ...IndexOption) error {
	var o indexOptions
	for _, opt := range opts {
		opt(&o)
	}
	key, err := messageKey(messageID)
	if err != nil {
		return fmt.Errorf("index message %s of job %s: %w", redact.Quote(messageID), jobID, err)
	}
	if _, err := l.js.PublishMsg(ctx, &nats.Msg{Subject: l.subject + key, Data: []byte(jobID)},
		jetstream.WithMsgTTL(l.ttl(o.scheduled))); err != nil {
		return fmt.Errorf("index message %s of job %s: %w", redact.Quote(messageID), jobID, err)
	}
	return nil
}

// ReferenceTaken reports whether some job's producer gave ref as its reference
// (within the ledger's retention). A receipt with such a reference may be that
// job's, so the reference cannot identify a job by its id.
func (l *Ledger) ReferenceTaken(ctx context.Context, ref string) (bool, error) {
	key, err := referenceKey(ref)
	if err != nil {
		return false, fmt.Errorf("look up reference %s: %w", redact.Quote(ref), err)
	}
	_, err = l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up reference %s: %w", redact.Quote(ref), err)
	}
	return true, nil
}

// Lookup returns the job a gateway message id belongs to, or ErrNotFound.
func (l *Ledger) Lookup(ctx context.Context, messageID string) (string, error) {
	key, err := messageKey(messageID)
	if err != nil {
		return "", fmt.Errorf("message %s: %w: %w", redact.Quote(messageID), ErrNotFound, err)
	}
	kve, err := l.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("message %s: %w", messageID, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("look up message %s: %w", messageID, err)
	}
	return string(kve.Value()), nil
}

// Jobs calls fn with the id of every job in the ledger, in no set order, until fn
// returns false. It reads keys only.
func (l *Ledger) Jobs(ctx context.Context, fn func(jobID string) bool) error {
	keys, err := l.kv.ListKeysFiltered(ctx, "j.>")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return fmt.Errorf("list ledger: %w", err)
	}
	defer func() { _ = keys.Stop() }()
	for k := range keys.Keys() {
		if id, ok := unescape(strings.TrimPrefix(k, "j.")); ok && !fn(id) {
			return nil
		}
	}
	return nil
}

// isWrongRevision reports a compare-and-set that lost: KV's own error, or the
// stream's "wrong last sequence" (10071, or 10164 on a replicated stream) of a
// write published directly.
func isWrongRevision(err error) bool {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// Keys: "j.<job id>", "m.<message id>" and "r.<reference>", each escaped so that any id makes
// one valid key token: bytes outside A-Z a-z 0-9 _ - are written =XX (hex). Job ids
// never hold '=', so the escape is one-to-one. subjects.Key builds them, and
// refuses an id whose key would exceed subjects.MaxKeyBytes.
func jobKey(id string) (string, error)     { return subjects.Key("j", escape(id)) }
func messageKey(id string) (string, error) { return subjects.Key("m", escape(id)) }

// referenceKey is "r.<reference>": a producer's reference that is taken.
func referenceKey(ref string) (string, error) { return subjects.Key("r", escape(ref)) }

const hexDigits = "0123456789ABCDEF"

func escape(id string) string {
	plain := true
	for i := 0; i < len(id); i++ {
		if !keyByte(id[i]) {
			plain = false
			break
		}
	}
	if plain && id != "" {
		return id
	}
	var b strings.Builder
	b.Grow(len(id) + 8)
	if id == "" {
		return "="
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if keyByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&0xF])
	}
	return b.String()
}

func unescape(k string) (string, bool) {
	if k == "=" {
		return "", true
	}
	if !strings.Contains(k, "=") {
		return k, true
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		if k[i] != '=' {
			b.WriteByte(k[i])
			continue
		}
		if i+2 >= len(k) {
			return "", false
		}
		hi, lo := strings.IndexByte(hexDigits, k[i+1]), strings.IndexByte(hexDigits, k[i+2])
		if hi < 0 || lo < 0 {
			return "", false
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), true
}

func keyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
