package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
)

func TestShare(t *testing.T) {
	t.Parallel()

	const (
		accountRate  = 300.0
		accountBurst = 30
		heartbeat    = 250 * time.Millisecond
		ttl          = time.Second
		bucket       = "test_replicas"
		// eventWait bounds a wait for a change the replicas make on an event (a
		// key put or deleted, a key expired): a failure timeout only, generous
		// for a busy machine under -race. The time each took is logged.
		eventWait = 10 * time.Second
	)

	// replica is one jetsms process: its own connection, limiter and Share.
	type replica struct {
		nc    *nats.Conn
		lim   *Adaptive
		share *Share
		seen  *changeSignal
	}
	type bundle struct {
		env            *brokertest.Env
		heartbeat, ttl time.Duration // the replicas'
	}
	setup := func(t *testing.T) *bundle {
		t.Helper()
		return &bundle{env: brokertest.Run(t), heartbeat: heartbeat, ttl: ttl}
	}
	// newReplica returns a replica that is not started; it is stopped at cleanup.
	newReplica := func(t *testing.T, b *bundle, id string) *replica {
		t.Helper()
		nc, err := nats.Connect(b.env.URL, nats.Name(id))
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		seen := newChangeSignal()
		lim, err := NewAdaptive(AdaptiveConfig{PerSecond: accountRate, Burst: accountBurst, OnChange: seen.add})
		require.NoError(t, err)
		log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
		share, err := NewShare(ShareConfig{Bucket: bucket, ID: id, Heartbeat: b.heartbeat, TTL: b.ttl}, js, lim, log)
		require.NoError(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = share.Stop(ctx)
		})
		return &replica{nc: nc, lim: lim, share: share, seen: seen}
	}
	start := func(t *testing.T, r *replica) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, r.share.Start(ctx))
	}
	startN := func(t *testing.T, b *bundle, ids ...string) []*replica {
		t.Helper()
		var rs []*replica
		for _, id := range ids {
			r := newReplica(t, b, id)
			start(t, r)
			rs = append(rs, r)
		}
		return rs
	}
	// canTake reports whether the limiter hands out a token within d.
	canTake := func(r *replica, d time.Duration) bool {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		return r.lim.Wait(ctx, 1) == nil
	}

	t.Run("EachOfThreeGetsAThird", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rs := startN(t, b, "a", "b", "c")
		for _, r := range rs {
			r.seen.waitFor(t, eventWait, "a third of the rate", func() bool {
				return r.lim.Ceiling() == accountRate/3 && r.lim.Burst() == accountBurst/3
			})
			require.Equal(t, 3, r.share.Replicas())
			require.True(t, canTake(r, eventWait))
		}
	})

	t.Run("JoiningReplicaTakesItsShareFromTheOthers", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rs := startN(t, b, "a", "b")
		for _, r := range rs {
			r.seen.waitFor(t, eventWait, "half the rate", func() bool { return r.lim.Ceiling() == accountRate/2 })
		}
		joined := time.Now()
		rs = append(rs, startN(t, b, "c")...)
		for _, r := range rs {
			r.seen.waitFor(t, eventWait, "a third of the rate", func() bool { return r.lim.Ceiling() == accountRate/3 })
		}
		t.Logf("rebalanced %s after the join", time.Since(joined))
	})

	t.Run("StoppedReplicaGivesItsShareBackBeforeItsKeyExpires", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// Keys outlive the test: only the stopped replica's delete, seen on the
		// others' watch, can count it out within eventWait.
		b.ttl = time.Minute
		rs := startN(t, b, "a", "b", "c")
		for _, r := range rs {
			r.seen.waitFor(t, eventWait, "a third of the rate", func() bool { return r.lim.Ceiling() == accountRate/3 })
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stopped := time.Now()
		require.NoError(t, rs[2].share.Stop(ctx))
		for _, r := range rs[:2] {
			r.seen.waitFor(t, eventWait, "half the rate", func() bool {
				return r.lim.Ceiling() == accountRate/2 && r.lim.Burst() == accountBurst/2
			})
			require.Equal(t, 2, r.share.Replicas())
		}
		t.Logf("rebalanced %s after the stop", time.Since(stopped))
		// The stopped replica hands out nothing more, and Stop is safe twice.
		require.False(t, canTake(rs[2], 100*time.Millisecond))
		require.NoError(t, rs[2].share.Stop(ctx))
	})

	t.Run("DeadReplicaIsCountedOutAfterItsTTL", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		// The dead replica suspends itself a heartbeat before its key expires: a
		// heartbeat of a second gives that order a second of margin on a busy
		// machine, where a timer can fire late.
		b.heartbeat, b.ttl = time.Second, 3*time.Second
		rs := startN(t, b, "a", "b", "c")
		for _, r := range rs {
			r.seen.waitFor(t, eventWait, "a third of the rate", func() bool { return r.lim.Ceiling() == accountRate/3 })
		}
		// A crash: the connection goes, the key stays until it expires.
		killed := time.Now()
		rs[2].nc.Close()
		for _, r := range rs[:2] {
			r.seen.waitFor(t, b.ttl+eventWait, "half the rate", func() bool { return r.lim.Ceiling() == accountRate/2 })
		}
		took := time.Since(killed)
		t.Logf("rebalanced %s after the crash", took)
		// The last heartbeat was at most one before the crash.
		require.GreaterOrEqual(t, took, b.ttl-b.heartbeat-50*time.Millisecond, "counted out before its key expired")
		// The dead replica itself stopped handing out tokens before its key expired.
		rs[2].seen.waitFor(t, 0, "suspended", func() bool { return rs[2].seen.has(ChangeSuspended) })
		require.False(t, canTake(rs[2], 100*time.Millisecond))
	})

	t.Run("NothingIsHandedOutBeforeStart", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := newReplica(t, b, "a")
		require.False(t, canTake(r, 100*time.Millisecond))
		start(t, r)
		require.True(t, canTake(r, eventWait))
		require.Equal(t, accountRate, r.lim.Ceiling())
		require.Equal(t, 1, r.share.Replicas())
	})

	t.Run("LostBucketIsRecreatedAndTheCountRebuilt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		rs := startN(t, b, "a", "b", "c")
		for _, r := range rs {
			r.seen.waitFor(t, eventWait, "a third of the rate", func() bool { return r.lim.Ceiling() == accountRate/3 })
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, b.env.JS.DeleteKeyValue(ctx, bucket))
		_ = rs[2].share.Stop(ctx) // its key may be gone with the bucket
		for _, r := range rs[:2] {
			r.seen.waitFor(t, 10*time.Second, "half the rate, resumed", func() bool {
				return r.lim.Ceiling() == accountRate/2 && r.seen.lastIs(ChangeResumed, ChangeCeiling)
			})
			require.True(t, canTake(r, eventWait))
		}
	})

	t.Run("BucketExpiresKeysAndReportsExpiry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		startN(t, b, "a")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		kv, err := b.env.JS.KeyValue(ctx, bucket)
		require.NoError(t, err)
		st, err := kv.Status(ctx)
		require.NoError(t, err)
		require.Equal(t, ttl, st.TTL())
		require.Equal(t, time.Second, st.LimitMarkerTTL())
		require.Equal(t, uint64(1), uint64(st.History()))
	})

	t.Run("StopWithoutStartIsANoOp", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := newReplica(t, b, "a")
		require.NoError(t, r.share.Stop(context.Background()))
		require.NoError(t, r.share.Stop(context.Background()))
	})

	t.Run("StartTwiceIsAnError", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		r := startN(t, b, "a")[0]
		require.ErrorContains(t, r.share.Start(context.Background()), "already started")
	})

	t.Run("BadConfigNamesTheSetting", func(t *testing.T) {
		t.Parallel()
		lim, err := NewAdaptive(AdaptiveConfig{PerSecond: 1, Burst: 1})
		require.NoError(t, err)
		var js jetstream.JetStream = fakeJS{}
		for _, tc := range []struct {
			cfg  ShareConfig
			want string
		}{
			{ShareConfig{}, "share.bucket"},
			{ShareConfig{Bucket: "b", ID: "a.b"}, "share.id"},
			{ShareConfig{Bucket: "b", ID: "a b"}, "share.id"},
			{ShareConfig{Bucket: "b", Heartbeat: time.Millisecond}, "share.heartbeat"},
			{ShareConfig{Bucket: "b", Heartbeat: time.Second, TTL: 2 * time.Second}, "share.ttl must be at least 3 heartbeats"},
		} {
			_, err := NewShare(tc.cfg, js, lim, nil)
			require.ErrorIs(t, err, ErrInvalidConfig, tc.want)
			require.ErrorContains(t, err, tc.want)
		}
		_, err = NewShare(ShareConfig{Bucket: "b"}, nil, lim, nil)
		require.ErrorIs(t, err, ErrInvalidConfig)
		s, err := NewShare(ShareConfig{Bucket: "b"}, js, lim, nil)
		require.NoError(t, err)
		require.NotEmpty(t, s.ID())
	})
}

// fakeJS stands in where a JetStream is only checked for nil.
type fakeJS struct{ jetstream.JetStream }

// changeSignal records a limiter's changes and wakes whoever waits for one.
type changeSignal struct {
	mu      sync.Mutex
	reasons []ChangeReason
	changed chan struct{}
}

func newChangeSignal() *changeSignal { return &changeSignal{changed: make(chan struct{})} }

func (c *changeSignal) add(ch Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reasons = append(c.reasons, ch.Reason)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *changeSignal) has(reason ChangeReason) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.reasons {
		if r == reason {
			return true
		}
	}
	return false
}

// lastIs reports whether the last change was one of reasons.
func (c *changeSignal) lastIs(reasons ...ChangeReason) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reasons) == 0 {
		return false
	}
	for _, r := range reasons {
		if c.reasons[len(c.reasons)-1] == r {
			return true
		}
	}
	return false
}

// waitFor blocks until cond holds, re-checking it on every change; the test fails
// when that takes longer than within (a cond already true passes with 0).
func (c *changeSignal) waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			if cond() {
				return
			}
			t.Fatalf("no %s within %s", what, within)
		}
	}
}
