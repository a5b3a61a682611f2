package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/subjects"
)

// RetentionDefault is how long an entry is kept after its last write.
const RetentionDefault = 7 * 24 * time.Hour

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
	// Replicas is the bucket's replica count (1, or 3 on a cluster).
	Replicas int
}

// Ledger reads and writes job entries. It is safe for concurrent use.
type Ledger struct {
	kv jetstream.KeyValue
}

// Open creates the bucket, or updates it to cfg's limits, and returns the ledger.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Ledger, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("ledger: bucket name is required")
	}
	if cfg.Retention < 0 {
		return nil, fmt.Errorf("ledger: retention %s must not be negative", cfg.Retention)
	}
	if cfg.Retention == 0 {
		cfg.Retention = RetentionDefault
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "jetsms job ledger: one entry per job, and message id index",
		History:     1,
		TTL:         cfg.Retention,
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open ledger bucket %s: %w", cfg.Bucket, err)
	}
	return &Ledger{kv: kv}, nil
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
// already has one.
func (l *Ledger) Create(ctx context.Context, e *Entry) (uint64, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("encode ledger entry of job %s: %w", e.JobID, err)
	}
	key, err := jobKey(e.JobID)
	if err != nil {
		return 0, fmt.Errorf("create ledger entry of job %s: %w", redact.Quote(e.JobID), err)
	}
	rev, err := l.kv.Create(ctx, key, data)
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
	data, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("encode ledger entry of job %s: %w", e.JobID, err)
	}
	key, err := jobKey(e.JobID)
	if err != nil {
		return 0, fmt.Errorf("update ledger entry of job %s: %w", redact.Quote(e.JobID), err)
	}
	next, err := l.kv.Update(ctx, key, data, rev)
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

// Index records that the gateway's message id belongs to the job.
func (l *Ledger) Index(ctx context.Context, messageID, jobID string) error {
	key, err := messageKey(messageID)
	if err != nil {
		return fmt.Errorf("index message %s of job %s: %w", redact.Quote(messageID), jobID, err)
	}
	if _, err := l.kv.Put(ctx, key, []byte(jobID)); err != nil {
		return fmt.Errorf("index message %s of job %s: %w", messageID, jobID, err)
	}
	return nil
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

func isWrongRevision(err error) bool { return errors.Is(err, jetstream.ErrKeyRevisionMismatch) }

// Keys: "j.<job id>" and "m.<message id>", each id escaped so that any id makes
// one valid key token: bytes outside A-Z a-z 0-9 _ - are written =XX (hex). Job ids
// never hold '=', so the escape is one-to-one. subjects.Key builds them, and
// refuses an id whose key would exceed subjects.MaxKeyBytes.
func jobKey(id string) (string, error)     { return subjects.Key("j", escape(id)) }
func messageKey(id string) (string, error) { return subjects.Key("m", escape(id)) }

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
