package campaign

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/job"
)

// bundle is what the campaign tests need: a real JetStream server with the
// contract's streams, the campaign store and the job ledger.
type bundle struct {
	env   *brokertest.Env
	store *Store
	led   *ledger.Ledger
	log   *zap.Logger
}

func setup(t *testing.T) *bundle {
	t.Helper()
	env := brokertest.Run(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	store, err := Open(ctx, env.JS, StoreConfig{Bucket: env.Names.CampaignBucket()})
	require.NoError(t, err)
	led, err := ledger.Open(ctx, env.JS, ledger.Config{Bucket: env.Names.LedgerBucket()})
	require.NoError(t, err)
	return &bundle{env: env, store: store, led: led, log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
}

// publisher returns a publisher with small windows, so that tests of a few
// thousand rows cross many checkpoints.
func (b *bundle) publisher(t *testing.T, tune func(*PublisherConfig)) *Publisher {
	t.Helper()
	cfg := PublisherConfig{Names: b.env.Names, Store: b.store, Ledger: b.led, Window: 64, CheckpointRows: 256}
	if tune != nil {
		tune(&cfg)
	}
	p, err := NewPublisher(cfg, b.env.JS, b.log)
	require.NoError(t, err)
	return p
}

// stored returns the ids of the jobs stored on the campaign's subject, in
// stream order.
func (b *bundle) stored(t *testing.T, lane, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := b.env.JS.Stream(ctx, b.env.Names.JobsStream())
	require.NoError(t, err)
	var ids []string
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(campaignSubject(t, b.env.Names, lane, name)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return ids
		}
		require.NoError(t, err)
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
		seq = m.Sequence + 1
	}
}

// recipients writes a file of n rows; every row whose number is a multiple of
// badEvery (when > 0) has a local number.
func recipients(n, badEvery int) []byte {
	var b bytes.Buffer
	b.WriteString("destination,name\n")
	for i := 1; i <= n; i++ {
		if badEvery > 0 && i%badEvery == 0 {
			fmt.Fprintf(&b, "0%09d,Bad %d\n", i, i)
			continue
		}
		fmt.Fprintf(&b, "+6421%07d,Person %d\n", i, i)
	}
	return b.Bytes()
}

// requireExactlyOnce checks that every good row's job is stored once and nothing
// else is.
func requireExactlyOnce(t *testing.T, ids []string, name string, n, badEvery int) {
	t.Helper()
	seen := make(map[string]int, len(ids))
	for _, id := range ids {
		seen[id]++
	}
	want := 0
	for i := 1; i <= n; i++ {
		id := JobID(name, i)
		if badEvery > 0 && i%badEvery == 0 {
			require.Zero(t, seen[id], "bad row %d was published", i)
			continue
		}
		want++
		require.Equal(t, 1, seen[id], "row %d stored %d times", i, seen[id])
	}
	require.Len(t, ids, want)
}

// chunked hands out at most 256 bytes per read and calls at(offset) after each,
// so a test can act at a point of the file (the reader's read-ahead is small).
type chunked struct {
	r  io.Reader
	n  int64
	at func(int64)
}

func (c *chunked) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), 256)])
	c.n += int64(n)
	if c.at != nil {
		c.at(c.n)
	}
	return n, err
}

func spec(name string) Spec {
	return Spec{Name: name, Lane: "bulk", Template: "Hi {{.name}}", File: "recipients.csv"}
}

func TestPublisher(t *testing.T) {
	t.Parallel()

	t.Run("PublishesEveryGoodRowOnceAndNothingOnARerun", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n, badEvery = 1000, 97
		p := b.publisher(t, nil)
		var bad []*RowError
		res, err := p.Send(t.Context(), spec("spring"), bytes.NewReader(recipients(n, badEvery)),
			WithBadRows(func(e *RowError) { bad = append(bad, e) }))
		require.NoError(t, err)
		jobs := n - n/badEvery
		require.Equal(t, n, res.Rows)
		require.Equal(t, jobs, res.Jobs)
		require.Equal(t, n/badEvery, res.BadRows)
		require.Equal(t, jobs, res.Published)
		require.Zero(t, res.Duplicates)
		require.Len(t, bad, n/badEvery)
		require.Equal(t, 98, bad[0].Line) // row 97, after the header
		requireExactlyOnce(t, b.stored(t, "bulk", "spring"), "spring", n, badEvery)

		rec := res.Record
		require.Equal(t, StateRunning, rec.State)
		require.True(t, rec.Progress.Complete)
		require.Empty(t, rec.Progress.Publisher)
		require.NotNil(t, rec.Published)
		require.Equal(t, Totals{Rows: n, Jobs: jobs, BadRows: n / badEvery, Segments: jobs,
			GSM7: EncodingTotals{Jobs: jobs, Segments: jobs}}, rec.Totals)
		require.Len(t, rec.BadRows, n/badEvery)
		require.Equal(t, "bulk", rec.Lane)
		require.Equal(t, "recipients.csv", rec.File)

		again, err := p.Send(t.Context(), spec("spring"), bytes.NewReader(recipients(n, badEvery)))
		require.NoError(t, err)
		require.True(t, again.AlreadyComplete)
		require.Zero(t, again.Published)
		requireExactlyOnce(t, b.stored(t, "bulk", "spring"), "spring", n, badEvery)
	})

	t.Run("RerunAfterAnInterruptPublishesOnlyTheMissingRows", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n, badEvery = 3000, 50
		file := recipients(n, badEvery)
		p := b.publisher(t, nil)

		// Interrupted (Ctrl-C) a third of the way through the file.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		src := &chunked{r: bytes.NewReader(file), at: func(off int64) {
			if off >= int64(len(file)/3) {
				cancel()
			}
		}}
		first, err := p.Send(ctx, spec("spring"), src)
		require.ErrorIs(t, err, context.Canceled)
		require.Positive(t, first.Published)
		require.Less(t, first.Published, n/2)
		stored := b.stored(t, "bulk", "spring")
		require.Len(t, stored, first.Published)
		rec := first.Record
		require.Equal(t, StatePublishing, rec.State)
		require.False(t, rec.Progress.Complete)
		require.Empty(t, rec.Progress.Publisher, "an interrupted run gives the campaign up")

		second, err := p.Send(t.Context(), spec("spring"), bytes.NewReader(file))
		require.NoError(t, err)
		require.True(t, second.Resumed)
		require.Equal(t, n-n/badEvery-first.Published, second.Published)
		require.Equal(t, first.Published, second.AlreadyPublished)
		require.Zero(t, second.Duplicates, "nothing was left to the duplicate window")
		requireExactlyOnce(t, b.stored(t, "bulk", "spring"), "spring", n, badEvery)
		require.Equal(t, n-n/badEvery, second.Record.Totals.Jobs)
		require.Equal(t, n/badEvery, second.Record.Totals.BadRows)
		require.Equal(t, StateRunning, second.Record.State)
	})

	t.Run("RerunAfterAKillPublishesOnlyTheMissingRows", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		const n, badEvery = 3000, 40
		file := recipients(n, badEvery)
		// Checkpoints only every 700 rows, so the kill leaves hundreds of rows
		// stored beyond the last one.
		tune := func(c *PublisherConfig) { c.CheckpointRows, c.CheckpointEvery = 700, time.Hour }
		p := b.publisher(t, tune)
		p.killAt = 1000
		_, err := p.Send(t.Context(), spec("spring"), bytes.NewReader(file))
		require.ErrorIs(t, err, errKilled)
		// What the dead process had written reaches the server.
		select {
		case <-b.env.JS.PublishAsyncComplete():
		case <-time.After(10 * time.Second):
			t.Fatal("publishes in flight never completed")
		}
		rec, _, err := b.store.Get(t.Context(), "spring")
		require.NoError(t, err)
		require.NotEmpty(t, rec.Progress.Publisher, "a killed run leaves its claim")
		checkpoint := rec.Totals.Rows
		require.GreaterOrEqual(t, checkpoint, 700)
		require.Less(t, checkpoint, 950)
		stored := b.stored(t, "bulk", "spring")
		beyond := 0
		for _, id := range stored {
			if _, row, _ := ParseJobID(id); row > checkpoint {
				beyond++
			}
		}
		require.Positive(t, beyond, "the kill left jobs stored beyond the checkpoint")

		// A worker took three of those jobs meanwhile: gone from the stream, in
		// the ledger.
		taken := b.takeJobs(t, "bulk", "spring", checkpoint, 3)

		// The next run, once the claim is stale: beyond the duplicate window as
		// far as the publisher knows, since it never relies on it.
		p2 := b.publisher(t, func(c *PublisherConfig) {
			tune(c)
			c.Now = func() time.Time { return time.Now().Add(StaleAfterDefault) }
		})
		res, err := p2.Send(t.Context(), spec("spring"), bytes.NewReader(file))
		require.NoError(t, err)
		jobs := n - n/badEvery
		require.Equal(t, jobs-len(stored), res.Published)
		require.Equal(t, len(stored), res.AlreadyPublished)
		require.Zero(t, res.Duplicates)
		ids := append(b.stored(t, "bulk", "spring"), taken...)
		requireExactlyOnce(t, ids, "spring", n, badEvery)
		require.Equal(t, jobs, res.Record.Totals.Jobs)
	})

	t.Run("RefusesAnotherRunWhileOneIsPublishing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := b.publisher(t, nil)
		p.killAt = 100
		_, err := p.Send(t.Context(), spec("spring"), bytes.NewReader(recipients(500, 0)))
		require.ErrorIs(t, err, errKilled)
		_, err = b.publisher(t, nil).Send(t.Context(), spec("spring"), bytes.NewReader(recipients(500, 0)))
		require.ErrorIs(t, err, ErrBusy)
		require.ErrorContains(t, err, "if that process is gone, run again after")
	})

	t.Run("RefusesAChangedFileOrCommand", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		file := recipients(2000, 0)
		p := b.publisher(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		_, err := p.Send(ctx, spec("spring"), &chunked{r: bytes.NewReader(file), at: func(off int64) {
			if off > int64(len(file)/2) {
				cancel()
			}
		}})
		require.ErrorIs(t, err, context.Canceled)

		changed := bytes.Replace(file, []byte("Person 3\n"), []byte("Persona 3\n"), 1)
		_, err = p.Send(t.Context(), spec("spring"), bytes.NewReader(changed))
		require.ErrorIs(t, err, ErrFileChanged)

		short := recipients(10, 0)
		_, err = p.Send(t.Context(), spec("spring"), bytes.NewReader(short))
		require.ErrorIs(t, err, ErrFileChanged)

		other := spec("spring")
		other.Template = "Hello {{.name}}"
		_, err = p.Send(t.Context(), other, bytes.NewReader(file))
		require.ErrorIs(t, err, ErrMismatch)
		other = spec("spring")
		other.Lane = "default"
		_, err = p.Send(t.Context(), other, bytes.NewReader(file))
		require.ErrorIs(t, err, ErrMismatch)

		// The same command still goes on.
		res, err := p.Send(t.Context(), spec("spring"), bytes.NewReader(file))
		require.NoError(t, err)
		requireExactlyOnce(t, b.stored(t, "bulk", "spring"), "spring", 2000, 0)
		require.True(t, res.Record.Progress.Complete)
	})

	t.Run("StopsAtAJobTheStreamRefusesAndResumesLater", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ctx := t.Context()
		s, err := b.env.JS.Stream(ctx, b.env.Names.JobsStream())
		require.NoError(t, err)
		cfg := s.CachedInfo().Config
		cfg.MaxMsgs = 500 // the stream is full after 500 jobs (discard new)
		_, err = b.env.JS.UpdateStream(ctx, cfg)
		require.NoError(t, err)

		file := recipients(2000, 0)
		p := b.publisher(t, nil)
		start := time.Now()
		_, err = p.Send(ctx, spec("spring"), bytes.NewReader(file))
		require.ErrorContains(t, err, "maximum messages exceeded")
		require.Less(t, time.Since(start), AckTimeoutDefault/2, "a refusal stops the run at once")
		require.Len(t, b.stored(t, "bulk", "spring"), 500)

		cfg.MaxMsgs = -1
		_, err = b.env.JS.UpdateStream(ctx, cfg)
		require.NoError(t, err)
		res, err := p.Send(ctx, spec("spring"), bytes.NewReader(file))
		require.NoError(t, err)
		require.Equal(t, 1500, res.Published)
		require.Zero(t, res.Duplicates)
		requireExactlyOnce(t, b.stored(t, "bulk", "spring"), "spring", 2000, 0)
	})

	t.Run("ABadHeaderLeavesNoCampaign", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, err := b.publisher(t, nil).Send(t.Context(), spec("spring"), strings.NewReader("phone,name\n+64211234501,Ann\n"))
		require.ErrorIs(t, err, ErrInvalidFile)
		_, _, err = b.store.Get(t.Context(), "spring")
		require.ErrorIs(t, err, ErrNotFound)
	})

	t.Run("CancelStopsPublishing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		file := recipients(3000, 0)
		p := b.publisher(t, func(c *PublisherConfig) { c.CheckpointRows = 100 })
		cancelled := false
		res, err := p.Send(t.Context(), spec("spring"), &chunked{r: bytes.NewReader(file), at: func(off int64) {
			if off > int64(len(file)/4) && !cancelled {
				cancelled = true
				_, err := b.store.Cancel(t.Context(), "spring")
				require.NoError(t, err)
			}
		}})
		require.NoError(t, err)
		require.True(t, res.Stopped)
		require.Less(t, res.Published, 3000)
		rec := res.Record
		require.Equal(t, StateCancelled, rec.State)
		require.True(t, rec.Progress.Stopped)
		require.Equal(t, res.Published, rec.Totals.Jobs)
		require.Len(t, b.stored(t, "bulk", "spring"), res.Published)

		_, err = p.Send(t.Context(), spec("spring"), bytes.NewReader(file))
		require.ErrorIs(t, err, ErrState)
	})

	t.Run("AFileOfBadRowsIsDoneAtOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		res, err := b.publisher(t, nil).Send(t.Context(), spec("spring"), bytes.NewReader(recipients(5, 1)))
		require.NoError(t, err)
		require.Equal(t, 5, res.BadRows)
		require.Equal(t, StateDone, res.Record.State)
		require.NotNil(t, res.Record.Ended)
	})

	t.Run("RefusesBadSpecs", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		p := b.publisher(t, nil)
		yesterday := time.Now().Add(-24 * time.Hour)
		past := spec("a")
		past.Schedule = &yesterday
		_, err := p.Send(t.Context(), past, strings.NewReader("destination,name\n+64211234501,Ann\n"))
		require.ErrorIs(t, err, ErrInvalidOption)
		require.ErrorContains(t, err, "is in the past")
		for _, s := range []Spec{
			{Name: "a.b", Lane: "bulk", Template: "x"},
			{Name: "a", Lane: "", Template: "x"},
			{Name: "a", Lane: "bu lk", Template: "x"},
			{Name: "a", Lane: "bulk", Template: ""},
		} {
			_, err := p.Send(t.Context(), s, strings.NewReader("destination\n+64211234501\n"))
			require.Error(t, err, s)
		}
		_, err = p.Send(t.Context(), spec("a"), strings.NewReader(""), WithBadRows(nil))
		require.ErrorIs(t, err, ErrInvalidOption)
	})
}

// takeJobs does what a worker does with count of the campaign's jobs stored
// beyond row after: it writes their ledger entries and removes them from the
// stream. It returns their ids.
func (b *bundle) takeJobs(t *testing.T, lane, name string, after, count int) []string {
	t.Helper()
	ctx := t.Context()
	s, err := b.env.JS.Stream(ctx, b.env.Names.JobsStream())
	require.NoError(t, err)
	var taken []string
	for seq := uint64(1); len(taken) < count; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(campaignSubject(t, b.env.Names, lane, name)))
		require.NoError(t, err)
		seq = m.Sequence + 1
		id := m.Header.Get(jetstream.MsgIDHeader)
		if _, row, _ := ParseJobID(id); row <= after {
			continue
		}
		j := job.Job{ID: id, Lane: lane, Campaign: name}
		_, err = b.led.Create(ctx, ledger.FromJob(&j, time.Now()))
		require.NoError(t, err)
		require.NoError(t, s.DeleteMsg(ctx, m.Sequence))
		taken = append(taken, id)
	}
	return taken
}
