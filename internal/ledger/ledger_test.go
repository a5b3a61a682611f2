package ledger

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/job"
)

func open(t *testing.T) *Ledger {
	t.Helper()
	env := brokertest.Run(t)
	l, err := Open(context.Background(), env.JS, Config{Bucket: env.Names.LedgerBucket(), Retention: time.Hour})
	require.NoError(t, err)
	return l
}

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func newEntry(id string) *Entry {
	return FromJob(&job.Job{ID: id, Destination: "+64211234567", Lane: "priority", Metadata: map[string]string{"k": "v"}, Segments: 1}, t0)
}

func TestLedger(t *testing.T) {
	t.Parallel()
	l := open(t)
	ctx := context.Background()

	t.Run("CreateThenCreateAgainConflicts", func(t *testing.T) {
		rev, err := l.Create(ctx, newEntry("a:1.x"))
		require.NoError(t, err)
		require.NotZero(t, rev)
		_, err = l.Create(ctx, newEntry("a:1.x"))
		require.ErrorIs(t, err, ErrConflict)
		got, grev, err := l.Get(ctx, "a:1.x")
		require.NoError(t, err)
		require.Equal(t, rev, grev)
		require.Equal(t, "a:1.x", got.JobID)
		require.Equal(t, map[string]string{"k": "v"}, got.Metadata)
	})

	t.Run("UpdateOverAStaleRevisionConflicts", func(t *testing.T) {
		e := newEntry("b")
		rev, err := l.Create(ctx, e)
		require.NoError(t, err)
		e.Set(StateSubmitting, t0, "", "")
		rev2, err := l.Update(ctx, e, rev)
		require.NoError(t, err)
		_, err = l.Update(ctx, e, rev)
		require.ErrorIs(t, err, ErrConflict)
		_, err = l.Update(ctx, e, rev2)
		require.NoError(t, err)
	})

	t.Run("GetMissing", func(t *testing.T) {
		_, _, err := l.Get(ctx, "nope")
		require.ErrorIs(t, err, ErrNotFound)
		_, err = l.Lookup(ctx, "nope")
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("IndexAndLookup", func(t *testing.T) {
		require.NoError(t, l.Index(ctx, "1e41f423-24cf-4fa2-9a8a-888c30653305", "order:1"))
		require.NoError(t, l.Index(ctx, "12345", "v1-job"))
		id, err := l.Lookup(ctx, "1e41f423-24cf-4fa2-9a8a-888c30653305")
		require.NoError(t, err)
		require.Equal(t, "order:1", id)
		id, err = l.Lookup(ctx, "12345")
		require.NoError(t, err)
		require.Equal(t, "v1-job", id)
	})

	t.Run("ConcurrentModifyLosesNoChange", func(t *testing.T) {
		_, err := l.Create(ctx, newEntry("counter"))
		require.NoError(t, err)
		var wg sync.WaitGroup
		var failed atomic.Int32
		for range 8 {
			wg.Go(func() {
				for range 5 {
					_, err := l.Modify(ctx, "counter", func(e *Entry) (*Entry, error) {
						e.Attempts++
						return e, nil
					})
					if err != nil {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		e, _, err := l.Get(ctx, "counter")
		require.NoError(t, err)
		require.Equal(t, 40-int(failed.Load()), e.Attempts)
		require.Zero(t, failed.Load(), "8 writers, 8 tries each: no modify should give up")
	})

	t.Run("ModifyCreatesWhenMissing", func(t *testing.T) {
		got, err := l.Modify(ctx, "fresh", func(e *Entry) (*Entry, error) {
			require.Nil(t, e)
			return newEntry("fresh"), nil
		})
		require.NoError(t, err)
		require.Equal(t, "fresh", got.JobID)
		boom := errors.New("boom")
		_, err = l.Modify(ctx, "fresh", func(*Entry) (*Entry, error) { return nil, boom })
		require.ErrorIs(t, err, boom)
	})

	t.Run("JobsListsEveryJobByItsID", func(t *testing.T) {
		var ids []string
		require.NoError(t, l.Jobs(ctx, func(id string) bool { ids = append(ids, id); return true }))
		sort.Strings(ids)
		require.Equal(t, []string{"a:1.x", "b", "counter", "fresh"}, ids)
	})
}

func TestOpenSetsRetention(t *testing.T) {
	t.Parallel()
	env := brokertest.Run(t)
	ctx := context.Background()
	// A bucket as earlier versions made it: one max age, no per-message lifetimes.
	_, err := env.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "ret", History: 1, TTL: 3 * time.Hour})
	require.NoError(t, err)
	l, err := Open(ctx, env.JS, Config{Bucket: "ret", Retention: 3 * time.Hour, HoldAfterSchedule: time.Hour})
	require.NoError(t, err, "an existing bucket is updated in place")
	kv, err := env.JS.KeyValue(ctx, "ret")
	require.NoError(t, err)
	st, err := kv.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, ScheduleMax+4*time.Hour, st.TTL(), "the max age is only a backstop")

	// ttlOf reads the lifetime a write carries.
	ttlOf := func(key string) time.Duration {
		t.Helper()
		s, err := env.JS.Stream(ctx, "KV_ret")
		require.NoError(t, err)
		m, err := s.GetLastMsgForSubject(ctx, "$KV.ret."+key)
		require.NoError(t, err)
		d, err := time.ParseDuration(m.Header.Get("Nats-TTL"))
		if err != nil {
			secs, serr := strconv.Atoi(m.Header.Get("Nats-TTL"))
			require.NoError(t, serr, "Nats-TTL %q", m.Header.Get("Nats-TTL"))
			d = time.Duration(secs) * time.Second
		}
		return d
	}
	now := time.Now()
	l.now = func() time.Time { return now }

	plain := newEntry("plain")
	rev, err := l.Create(ctx, plain)
	require.NoError(t, err)
	require.Equal(t, 3*time.Hour+time.Second, ttlOf("j.plain"))
	_, err = l.Update(ctx, plain, rev)
	require.NoError(t, err)
	require.Equal(t, 3*time.Hour+time.Second, ttlOf("j.plain"), "every write carries the lifetime")

	later := newEntry("later")
	later.Scheduled = now.Add(48 * time.Hour)
	rev, err = l.Create(ctx, later)
	require.NoError(t, err)
	want := (48*time.Hour + time.Hour + 3*time.Hour).Truncate(time.Second) + time.Second
	require.Equal(t, want, ttlOf("j.later"), "kept until its schedule, the reconciler's wait and the retention")
	later.Set("accepted", now, "", "")
	_, err = l.Update(ctx, later, rev)
	require.NoError(t, err)
	require.Equal(t, want, ttlOf("j.later"))
	require.NoError(t, l.Index(ctx, "m-later", "later", Scheduled(&later.Scheduled)))
	require.Equal(t, want, ttlOf("m.m-later"), "the message id index lives as long")
	require.NoError(t, l.Index(ctx, "m-plain", "plain"))
	require.Equal(t, 3*time.Hour+time.Second, ttlOf("m.m-plain"))
	id, err := l.Lookup(ctx, "m-later")
	require.NoError(t, err)
	require.Equal(t, "later", id)

	// A producer's reference is recorded as taken when its job's entry is created.
	taken, err := l.ReferenceTaken(ctx, "order-7")
	require.NoError(t, err)
	require.False(t, taken)
	withRef := newEntry("with-ref")
	withRef.Reference = "order-7"
	_, err = l.Create(ctx, withRef)
	require.NoError(t, err)
	taken, err = l.ReferenceTaken(ctx, "order-7")
	require.NoError(t, err)
	require.True(t, taken)
	require.Equal(t, 3*time.Hour+time.Second, ttlOf("r.order-7"))

	// A conflicting update is still a conflict.
	_, err = l.Update(ctx, later, rev)
	require.ErrorIs(t, err, ErrConflict)

	_, err = Open(ctx, env.JS, Config{})
	require.ErrorContains(t, err, "bucket")
	_, err = Open(ctx, env.JS, Config{Bucket: "neg", HoldAfterSchedule: -time.Second})
	require.ErrorContains(t, err, "hold after schedule")
}

func TestAdvance(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from, to job.Status
		moves    bool
	}{
		{StateSubmitting, job.StatusAccepted, true},
		{StateQueued, job.StatusReceived, true},
		{job.StatusAccepted, job.StatusSent, true},
		{job.StatusAccepted, "weird_new_status", true},
		{job.StatusSubmitted, job.StatusSent, true},
		{job.StatusSent, job.StatusSent, false},
		{job.StatusSent, job.StatusAccepted, false},
		{job.StatusReceived, job.StatusSent, false},
		{job.StatusReceived, job.StatusAccepted, false},
		{job.StatusReceived, job.StatusReceived, false},
		{job.StatusReceived, job.StatusRejected, false},
		{job.StatusSent, job.StatusReceived, true},
		{job.StatusAccepted, StateSubmitting, false},
	}
	for _, c := range cases {
		e := newEntry("x")
		e.Set(c.from, t0, "", "")
		before := len(e.History)
		require.Equal(t, c.moves, e.Advance(c.to, t0.Add(time.Second), "d"), "%s → %s", c.from, c.to)
		if c.moves {
			require.Equal(t, c.to, e.Status)
			require.Len(t, e.History, before+1)
		} else {
			require.Equal(t, c.from, e.Status)
			require.Len(t, e.History, before)
		}
	}
}

func TestHistoryIsBoundedAndKeepsTheFirstChange(t *testing.T) {
	t.Parallel()
	e := newEntry("x")
	e.Set(StateQueued, t0, "first", "")
	for i := range 100 {
		e.Set(job.StatusRetrying, t0.Add(time.Duration(i)*time.Second), "", "")
	}
	require.Len(t, e.History, HistoryMax)
	require.Equal(t, "first", e.History[0].Detail)
	require.Equal(t, t0.Add(99*time.Second), e.History[HistoryMax-1].At)
}

func TestEscapeIsOneToOneAndMakesValidKeys(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "a", "a.b", "..", "a:b", "A-Z_09", "=", "é", "a=3A"} {
		k := escape(id)
		require.Regexp(t, `^[A-Za-z0-9_=-]+$`, k)
		back, ok := unescape(k)
		require.True(t, ok)
		require.Equal(t, id, back)
	}
	require.NotEqual(t, escape("a:b"), escape("a.b"))
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "order-1234-otp", "a:b.c", "=3A", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		k := escape(id)
		for i := 0; i < len(k); i++ {
			if !keyByte(k[i]) && k[i] != '=' {
				t.Fatalf("escape(%q) = %q holds %q", id, k, k[i])
			}
		}
		back, ok := unescape(k)
		if !ok || back != id {
			t.Fatalf("unescape(escape(%q)) = %q, %v", id, back, ok)
		}
	})
}

func TestAsync(t *testing.T) {
	t.Parallel()
	l := open(t)
	ctx := context.Background()

	t.Run("AsyncWritesAwaitedTogether", func(t *testing.T) {
		e := newEntry("async-1")
		rev, err := l.Create(ctx, e)
		require.NoError(t, err)
		e.Set(job.StatusAccepted, t0, "", "")
		e.AddMessageID("async-m-1")
		update := l.UpdateAsync(e, rev)
		index := l.IndexAsync("async-m-1", "async-1")
		stale := l.UpdateAsync(e, rev) // the same revision again: loses
		rev2, err := update.Wait(ctx)
		require.NoError(t, err)
		_, err = index.Wait(ctx)
		require.NoError(t, err)
		_, err = stale.Wait(ctx)
		require.ErrorIs(t, err, ErrConflict)
		require.ErrorContains(t, err, "update ledger entry of job async-1")

		got, grev, err := l.Get(ctx, "async-1")
		require.NoError(t, err)
		require.Equal(t, rev2, grev)
		require.Equal(t, "async-m-1", got.MessageID)
		id, err := l.Lookup(ctx, "async-m-1")
		require.NoError(t, err)
		require.Equal(t, "async-1", id)
	})

	t.Run("AsyncWaitEndsWithItsContext", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := l.IndexAsync("async-m-2", "async-2").Wait(cctx)
		if err != nil { // the answer may have come first
			require.ErrorIs(t, err, context.Canceled)
		}
	})

	t.Run("AsyncKeyThatCannotBeBuilt", func(t *testing.T) {
		_, err := l.IndexAsync(strings.Repeat("m", 3000), "async-3").Wait(ctx)
		require.Error(t, err)
	})
}
