package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Defaults of ShareConfig.
const (
	HeartbeatDefault = time.Second
	// ShareTTLDefault is how long a replica's key outlives its last heartbeat: a
	// replica that dies without Stop gives its share back within this.
	ShareTTLDefault = 3 * time.Second
)

// ShareConfig configures a Share.
type ShareConfig struct {
	// Bucket is the KV bucket the replicas announce themselves in. Required. Start
	// creates it, or updates it to this configuration (the last replica to start
	// sets the TTL). Its keys expire after TTL, so it must hold nothing else.
	Bucket string
	// ID names this replica in the bucket and must be unique among the replicas:
	// two replicas with one ID count as one and together exceed the rate. Letters,
	// digits, '-', '_' and '='. Default: a random UUID.
	ID string
	// Heartbeat is how often the replica renews its key; default HeartbeatDefault.
	Heartbeat time.Duration
	// TTL is how long a key outlives its last renewal; at least 3×Heartbeat;
	// default ShareTTLDefault. A replica suspends its limiter once its own renewals
	// have not been seen for TTL − Heartbeat, before the others may count it out,
	// so every replica must use the same Heartbeat and TTL.
	TTL time.Duration
}

// Share divides the account's rate among the replicas of jetsms. Each replica keeps
// a key in a NATS KV bucket alive with a heartbeat and watches the bucket; with N
// keys, it sets its limiter's ceiling to the account's rate / N and its burst to
// the account's burst / N (at least 1). A replica that stops deletes its key; one
// that dies stops renewing it and the bucket drops it after TTL. Either way the
// others rebalance as soon as their watch shows the change.
//
// The account's rate and burst are the limiter's ceiling and burst when NewShare
// is called. The bucket needs nats-server 2.11 or later (expiry markers).
type Share struct {
	cfg       ShareConfig
	js        jetstream.JetStream
	lim       *Adaptive
	rate      float64 // the account's
	burst     int
	holdAfter time.Duration // suspend when our key was last seen renewed this long ago
	value     []byte
	log       *zap.Logger

	mu      sync.Mutex
	started bool
	stopped bool
	kv      jetstream.KeyValue
	cancel  context.CancelFunc
	loops   sync.WaitGroup

	putsMu  sync.Mutex
	sending time.Time    // when the put in flight was sent; zero before the first
	puts    [8]putRecord // the last successful renewals, by revision

	// Owned by Start, then by the watch loop.
	members  map[string]time.Time // replica id → when its key was last seen put
	snapshot map[string]time.Time // being rebuilt by a new watcher, until its first nil
	n        atomic.Int64         // replicas counted in the ceiling, 0 before the first count
	aliveAt  time.Time            // when the latest put of ours that came back was sent
	hold     *time.Timer
	running  bool // the loops run: a resume is news
}

type putRecord struct {
	rev uint64
	at  time.Time
}

// NewShare checks cfg and returns a Share of lim that is not yet running. It
// suspends lim until Start has counted the replicas, so nothing is sent at the full
// rate meanwhile. The error wraps ErrInvalidConfig.
func NewShare(cfg ShareConfig, js jetstream.JetStream, lim *Adaptive, log *zap.Logger) (*Share, error) {
	if js == nil || lim == nil {
		return nil, fmt.Errorf("%w: share: jetstream and limiter are required", ErrInvalidConfig)
	}
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("%w: share.bucket must not be empty", ErrInvalidConfig)
	}
	if cfg.ID == "" {
		cfg.ID = uuid.NewString()
	}
	if !validID(cfg.ID) {
		return nil, fmt.Errorf("%w: share.id %q may hold only letters, digits, '-', '_' and '='", ErrInvalidConfig, cfg.ID)
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = HeartbeatDefault
	}
	if cfg.TTL == 0 {
		cfg.TTL = max(ShareTTLDefault, 3*cfg.Heartbeat)
	}
	if cfg.Heartbeat < 10*time.Millisecond {
		return nil, fmt.Errorf("%w: share.heartbeat must be at least 10ms (got %s)", ErrInvalidConfig, cfg.Heartbeat)
	}
	if cfg.TTL < 3*cfg.Heartbeat {
		return nil, fmt.Errorf("%w: share.ttl must be at least 3 heartbeats, %s (got %s)", ErrInvalidConfig, 3*cfg.Heartbeat, cfg.TTL)
	}
	if log == nil {
		log = zap.NewNop()
	}
	value, err := json.Marshal(struct {
		Started time.Time `json:"started"`
	}{time.Now().UTC()})
	if err != nil {
		return nil, fmt.Errorf("share: encode heartbeat: %w", err)
	}
	s := &Share{
		cfg: cfg, js: js, lim: lim,
		rate: lim.Ceiling(), burst: lim.Burst(),
		// One heartbeat of margin: the check runs on a timer, and the others only
		// take our share once the server has dropped our key, TTL after its put.
		holdAfter: cfg.TTL - cfg.Heartbeat,
		value:     value,
		log:       log.Named("share").With(zap.String("replica", cfg.ID), zap.String("bucket", cfg.Bucket)),
	}
	lim.suspend(true)
	return s, nil
}

// validID reports whether id is one token of a KV key.
func validID(id string) bool {
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '='
		if !ok {
			return false
		}
	}
	return id != ""
}

// ID returns the replica's id.
func (s *Share) ID() string { return s.cfg.ID }

// Replicas returns how many replicas the ceiling was last divided by; 0 before
// Start.
func (s *Share) Replicas() int { return int(s.n.Load()) }

// Start creates or updates the bucket, announces the replica, counts the replicas
// and sets the limiter's ceiling, then resumes the limiter and keeps all that up to
// date. It returns once the ceiling is set. ctx bounds the set-up only. It fails
// when NATS cannot be reached within ctx, or when a bucket of that name exists with
// settings that cannot be updated (another storage type); the limiter then stays
// suspended.
func (s *Share) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("share: already started")
	}
	kv, err := s.ensureBucket(ctx)
	if err != nil {
		return err
	}
	s.kv = kv
	if err := s.renew(ctx); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	w, err := s.openWatch(runCtx, ctx)
	if err != nil {
		cancel()
		return err
	}
	s.members = map[string]time.Time{}
	s.hold = time.NewTimer(s.holdAfter)
	for s.snapshot != nil {
		select {
		case e, ok := <-w.updates():
			if !ok {
				s.hold.Stop()
				cancel()
				return fmt.Errorf("share: watch bucket %s: closed before its first values", s.cfg.Bucket)
			}
			s.apply(e, time.Now())
		case <-ctx.Done():
			s.hold.Stop()
			w.stop()
			cancel()
			return fmt.Errorf("share: read bucket %s: %w", s.cfg.Bucket, ctx.Err())
		}
	}
	s.cancel, s.started, s.running = cancel, true, true
	s.loops.Go(func() { s.beat(runCtx) })
	s.loops.Go(func() { s.watch(runCtx, w) })
	s.log.Info("replica sharing the rate", zap.Int("replicas", s.Replicas()),
		zap.Float64("per_second", s.lim.Ceiling()), zap.Float64("account_per_second", s.rate))
	return nil
}

// Stop stops renewing and watching, suspends the limiter for good, and deletes the
// replica's key so the others take its share at once. Stop the worker first: from
// here the limiter hands out no more tokens. Stop is safe to call twice and without
// Start; it returns the error of the delete (the key then expires after TTL).
func (s *Share) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()

	s.cancel()
	s.loops.Wait()
	s.lim.suspend(true)
	if err := s.kv.Delete(ctx, s.cfg.ID); err != nil {
		return fmt.Errorf("share: delete replica key %s: %w", s.cfg.ID, err)
	}
	s.log.Info("replica left")
	return nil
}

// ensureBucket creates the bucket or updates it to our configuration.
func (s *Share) ensureBucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.cfg.Bucket,
		Description: "jetsms replicas sharing the account's rate; keys expire without heartbeats",
		History:     1,
		TTL:         s.cfg.TTL,
		// Markers tell watchers that a key expired; the server wants them kept at
		// least a second.
		LimitMarkerTTL: max(time.Second, s.cfg.TTL),
		MaxValueSize:   1024,
		Storage:        jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("share: create bucket %s: %w", s.cfg.Bucket, err)
	}
	return kv, nil
}

// renew puts the replica's key, restarting its TTL, and remembers when.
func (s *Share) renew(ctx context.Context) error {
	sent := time.Now()
	// The watch may deliver this put before Put returns its revision: until then
	// a revision of our key that is not on record is taken as this put.
	s.putsMu.Lock()
	s.sending = sent
	s.putsMu.Unlock()
	rev, err := s.kv.Put(ctx, s.cfg.ID, s.value)
	if err != nil {
		return fmt.Errorf("share: renew replica key %s: %w", s.cfg.ID, err)
	}
	s.putsMu.Lock()
	copy(s.puts[1:], s.puts[:])
	s.puts[0] = putRecord{rev: rev, at: sent}
	s.putsMu.Unlock()
	return nil
}

// sentAt returns when the put of revision rev was sent, if it was one of ours:
// one on record, or else the one in flight (sent, its revision not yet returned).
func (s *Share) sentAt(rev uint64) (time.Time, bool) {
	s.putsMu.Lock()
	defer s.putsMu.Unlock()
	newest := uint64(0)
	for _, p := range s.puts {
		if p.rev == rev && rev != 0 {
			return p.at, true
		}
		newest = max(newest, p.rev)
	}
	if rev > newest && !s.sending.IsZero() {
		return s.sending, true
	}
	return time.Time{}, false
}

// beat renews the key every heartbeat (jittered down, so never late) until ctx
// ends.
func (s *Share) beat(ctx context.Context) {
	failing := false
	for {
		d := s.cfg.Heartbeat - time.Duration(rand.Int64N(int64(s.cfg.Heartbeat/5)+1))
		if err := sleep(ctx, d, nil); err != nil {
			return
		}
		err := s.beatOnce(ctx, failing)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil && !failing:
			failing = true
			s.log.Warn("heartbeat", zap.Error(err))
		case err != nil:
			s.log.Debug("heartbeat", zap.Error(err))
		case failing:
			failing = false
			s.log.Info("heartbeat back")
		}
	}
}

// beatOnce renews the key within one heartbeat. After a failure it first makes sure
// the bucket exists: the server may have lost it (a store wiped, a bucket deleted).
func (s *Share) beatOnce(ctx context.Context, ensure bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Heartbeat)
	defer cancel()
	if ensure {
		if _, err := s.ensureBucket(ctx); err != nil {
			return err
		}
	}
	return s.renew(ctx)
}

// watch follows the bucket until ctx ends. It suspends the limiter when our own
// renewals stop coming back (we cannot see who else is there, and the others may
// soon count us out) and restarts the watcher then, or when it closes.
func (s *Share) watch(ctx context.Context, w *watcher) {
	defer s.hold.Stop()
	defer func() { w.stop() }()
	var retry <-chan time.Time
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.updates():
			if !ok {
				s.log.Warn("watch closed; watching again")
				w.cancel()
				w, retry = nil, time.After(jitter(s.cfg.Heartbeat))
				continue
			}
			s.apply(e, time.Now())
		case <-s.hold.C:
			if s.lim.suspend(true) {
				s.log.Warn("own heartbeats not seen; limiter suspended until they are",
					zap.Duration("last_seen_ago", time.Since(s.aliveAt)))
			}
			// The watcher may be the part that stalled.
			w.stop()
			w, retry = nil, time.After(0)
		case <-retry:
			retry = nil
			setupCtx, cancel := context.WithTimeout(ctx, s.cfg.Heartbeat)
			var err error
			w, err = s.openWatch(ctx, setupCtx)
			cancel()
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				if !failing {
					s.log.Warn("watch bucket", zap.Error(err))
				} else {
					s.log.Debug("watch bucket", zap.Error(err))
				}
				failing = true
				retry = time.After(jitter(s.cfg.Heartbeat))
			default:
				failing = false
			}
		}
	}
}

// watcher is a watch of the bucket and the context that ends it.
type watcher struct {
	w      jetstream.KeyWatcher
	cancel context.CancelFunc
}

// openWatch starts watching the bucket; its first values rebuild the member list.
// The watch lasts until runCtx ends or it is stopped; setupCtx bounds its start.
func (s *Share) openWatch(runCtx, setupCtx context.Context) (*watcher, error) {
	// The library ends a watch when the context it was started with ends, so it
	// gets its own; the set-up is bounded by waiting for it here instead.
	ctx, cancel := context.WithCancel(runCtx)
	type result struct {
		w   jetstream.KeyWatcher
		err error
	}
	done := make(chan result, 1)
	go func() {
		w, err := s.kv.WatchAll(ctx)
		done <- result{w, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			cancel()
			return nil, fmt.Errorf("share: watch bucket %s: %w", s.cfg.Bucket, r.err)
		}
		s.snapshot = map[string]time.Time{}
		return &watcher{w: r.w, cancel: cancel}, nil
	case <-setupCtx.Done():
		cancel() // the request gives up, or the watch it made ends
		return nil, fmt.Errorf("share: watch bucket %s: %w", s.cfg.Bucket, setupCtx.Err())
	}
}

// updates returns the watch's entries; nil (never ready) for no watch.
func (w *watcher) updates() <-chan jetstream.KeyValueEntry {
	if w == nil {
		return nil
	}
	return w.w.Updates()
}

// stop ends the watch and drains it, so the library's delivery is never left
// blocked on a full channel; the channel closes once delivery has ended.
func (w *watcher) stop() {
	if w == nil {
		return
	}
	_ = w.w.Stop()
	w.cancel()
	limit := time.NewTimer(5 * time.Second)
	defer limit.Stop()
	for {
		select {
		case _, ok := <-w.w.Updates():
			if !ok {
				return
			}
		case <-limit.C:
			return
		}
	}
}

// apply takes one entry of the watch: nil ends a watcher's first values.
func (s *Share) apply(e jetstream.KeyValueEntry, now time.Time) {
	if e == nil {
		if s.snapshot != nil {
			s.members, s.snapshot = s.snapshot, nil
			s.rebalance()
		}
		return
	}
	into := s.members
	if s.snapshot != nil {
		into = s.snapshot
	}
	switch e.Operation() {
	case jetstream.KeyValuePut:
		into[e.Key()] = now
		if e.Key() == s.cfg.ID {
			s.renewed(e.Revision(), now)
		}
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		delete(into, e.Key())
	}
	if s.snapshot == nil {
		s.rebalance()
	}
}

// renewed takes one of our puts seen on the watch: it proves both that the key
// lives until TTL after the put was sent and that the watch is current.
func (s *Share) renewed(rev uint64, now time.Time) {
	sent, ours := s.sentAt(rev)
	if !ours || !sent.After(s.aliveAt) {
		return
	}
	s.aliveAt = sent
	left := s.holdAfter - now.Sub(sent)
	if left <= 0 {
		return
	}
	s.hold.Reset(left)
	s.dropSilent(now)
}

// dropSilent forgets replicas whose renewals stopped coming though ours arrive,
// in case the server's expiry marker was missed (a watcher restarted after it).
func (s *Share) dropSilent(now time.Time) {
	for id, seen := range s.members {
		if id != s.cfg.ID && now.Sub(seen) > s.cfg.TTL+s.cfg.Heartbeat {
			delete(s.members, id)
			s.log.Info("replica silent past its TTL; counted out", zap.String("other", id))
		}
	}
}

// rebalance divides the account's rate by the replicas counted, ourselves always
// among them, then resumes the limiter if our heartbeats are being seen.
func (s *Share) rebalance() {
	n := len(s.members)
	if _, ok := s.members[s.cfg.ID]; !ok {
		n++
	}
	if s.n.Swap(int64(n)) != int64(n) {
		perSecond, burst := s.rate/float64(n), max(1, s.burst/n)
		// Cannot fail: the account's rate was valid and n >= 1.
		_ = s.lim.SetCeiling(perSecond, burst)
		s.log.Info("replicas changed", zap.Int("replicas", n), zap.Float64("per_second", perSecond), zap.Int("burst", burst))
	}
	if time.Since(s.aliveAt) < s.holdAfter && s.lim.suspend(false) && s.running {
		s.log.Info("own heartbeats seen again; limiter resumed")
	}
}

// jitter returns a wait between d/2 and d.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}
