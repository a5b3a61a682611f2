package metrics

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
)

// backlogBundle is what a backlog test needs beside the collector.
type backlogBundle struct {
	env   *brokertest.Env
	clock *fakeClock
	reg   *prometheus.Registry
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// setupBacklog runs a JetStream server with the streams, creates the durable
// consumers of the lanes in withConsumer as the worker does, and returns a
// collector of lanes registered in a registry of its own.
func setupBacklog(t *testing.T, lanes, withConsumer []string, opts ...BacklogOption) (*BacklogCollector, *backlogBundle) {
	t.Helper()
	env := brokertest.Run(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, lane := range withConsumer {
		_, err := env.JS.CreateOrUpdateConsumer(ctx, env.Names.JobsStream(), jetstream.ConsumerConfig{
			Durable:        env.Names.Consumer(lane),
			FilterSubjects: env.Names.LaneFilters(lane),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        time.Minute,
		})
		require.NoError(t, err)
	}
	c, err := NewBacklogCollector(env.JS, env.Names, lanes, opts...)
	require.NoError(t, err)
	clock := &fakeClock{now: time.Now()}
	c.now = clock.Now
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	return c, &backlogBundle{env: env, clock: clock, reg: reg}
}

// publish stores a job on subject and returns the time the stream gave it.
func (b *backlogBundle) publish(t *testing.T, subject string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := b.env.JS.Publish(ctx, subject, []byte(`{}`))
	require.NoError(t, err)
	stream, err := b.env.JS.Stream(ctx, b.env.Names.JobsStream())
	require.NoError(t, err)
	msg, err := stream.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	return msg.Time
}

// fetch takes n jobs from a lane's consumer.
func (b *backlogBundle) fetch(t *testing.T, lane string, n int) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := b.env.JS.Consumer(ctx, b.env.Names.JobsStream(), b.env.Names.Consumer(lane))
	require.NoError(t, err)
	batch, err := cons.FetchNoWait(n)
	require.NoError(t, err)
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	require.NoError(t, batch.Error())
	require.Len(t, out, n)
	return out
}

// gather returns the collector's series as `name{lane="x"}` → value.
func (b *backlogBundle) gather(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := b.reg.Gather()
	require.NoError(t, err)
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	return samples(byName, "jetsms_", false)
}

func TestBacklogCollector(t *testing.T) {
	t.Parallel()
	lanes := []string{"priority", "default", "bulk"}

	t.Run("EmptyLanesAreZero", func(t *testing.T) {
		t.Parallel()
		_, b := setupBacklog(t, lanes, []string{"priority", "bulk"})
		require.Equal(t, map[string]float64{
			`jetsms_lane_pending_jobs{lane="priority"}`:           0,
			`jetsms_lane_pending_jobs{lane="default"}`:            0,
			`jetsms_lane_pending_jobs{lane="bulk"}`:               0,
			`jetsms_lane_oldest_job_age_seconds{lane="priority"}`: 0,
			`jetsms_lane_oldest_job_age_seconds{lane="default"}`:  0,
			`jetsms_lane_oldest_job_age_seconds{lane="bulk"}`:     0,
			`jetsms_lane_backlog_errors_total`:                    0,
		}, b.gather(t))
	})

	t.Run("CountsPendingAndHeldJobsAndAgesTheOldest", func(t *testing.T) {
		t.Parallel()
		_, b := setupBacklog(t, lanes, []string{"priority", "bulk"})
		names := b.env.Names
		// Lanes interleave in the jobs stream, so the message after a lane's ack
		// floor may be another lane's.
		b.publish(t, names.Send("priority"))          // P1: acked below
		bulk1 := b.publish(t, names.Send("bulk"))     // B1
		prio2 := b.publish(t, names.Send("priority")) // P2: held, not acked
		b.publish(t, names.Send("bulk"))              // B2
		b.publish(t, "sms.send.priority.c1")          // P3: a campaign's job
		dflt1 := b.publish(t, names.Send("default"))  // D1: no consumer yet
		b.publish(t, "sms.send.default.spring")       // D2

		msgs := b.fetch(t, "priority", 2)
		require.NoError(t, msgs[0].DoubleAck(context.Background()))

		b.clock.Set(prio2.Add(42 * time.Second))
		got := b.gather(t)
		require.Equal(t, map[string]float64{
			`jetsms_lane_pending_jobs{lane="priority"}`:           2, // P2 held, P3 waiting
			`jetsms_lane_pending_jobs{lane="default"}`:            2,
			`jetsms_lane_pending_jobs{lane="bulk"}`:               2,
			`jetsms_lane_oldest_job_age_seconds{lane="priority"}`: 42,
			`jetsms_lane_oldest_job_age_seconds{lane="default"}`:  prio2.Add(42 * time.Second).Sub(dflt1).Seconds(),
			`jetsms_lane_oldest_job_age_seconds{lane="bulk"}`:     prio2.Add(42 * time.Second).Sub(bulk1).Seconds(),
			`jetsms_lane_backlog_errors_total`:                    0,
		}, got)
	})

	t.Run("ReusesAReadingWithinCacheFor", func(t *testing.T) {
		t.Parallel()
		_, b := setupBacklog(t, []string{"priority"}, []string{"priority"}, BacklogCacheFor(5*time.Second))
		first := b.publish(t, b.env.Names.Send("priority"))
		start := first.Add(10 * time.Second)
		b.clock.Set(start)
		got := b.gather(t)
		require.Equal(t, 1.0, got[`jetsms_lane_pending_jobs{lane="priority"}`])
		require.Equal(t, 10.0, got[`jetsms_lane_oldest_job_age_seconds{lane="priority"}`])

		b.publish(t, b.env.Names.Send("priority"))
		b.clock.Set(start.Add(4 * time.Second))
		got = b.gather(t)
		require.Equal(t, 1.0, got[`jetsms_lane_pending_jobs{lane="priority"}`], "read again within the cache duration")
		require.Equal(t, 10.0, got[`jetsms_lane_oldest_job_age_seconds{lane="priority"}`])

		b.clock.Set(start.Add(5 * time.Second))
		got = b.gather(t)
		require.Equal(t, 2.0, got[`jetsms_lane_pending_jobs{lane="priority"}`])
		require.Equal(t, 15.0, got[`jetsms_lane_oldest_job_age_seconds{lane="priority"}`])
	})

	t.Run("LeavesLanesOutWhileNATSIsAway", func(t *testing.T) {
		t.Parallel()
		_, b := setupBacklog(t, lanes, []string{"priority"}, BacklogCacheFor(0), BacklogTimeout(200*time.Millisecond))
		require.Len(t, b.gather(t), 7)

		closed := make(chan struct{})
		b.env.Conn.SetClosedHandler(func(*nats.Conn) { close(closed) })
		b.env.Conn.Close()
		<-closed
		require.Equal(t, map[string]float64{`jetsms_lane_backlog_errors_total`: 3}, b.gather(t))
	})

	t.Run("RefusesBadArguments", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		for name, call := range map[string]func() error{
			"nil jetstream": func() error { _, err := NewBacklogCollector(nil, env.Names, lanes); return err },
			"no lanes":      func() error { _, err := NewBacklogCollector(env.JS, env.Names, nil); return err },
			"bad lane":      func() error { _, err := NewBacklogCollector(env.JS, env.Names, []string{"a.b"}); return err },
			"negative cache": func() error {
				_, err := NewBacklogCollector(env.JS, env.Names, lanes, BacklogCacheFor(-time.Second))
				return err
			},
			"zero timeout": func() error {
				_, err := NewBacklogCollector(env.JS, env.Names, lanes, BacklogTimeout(0))
				return err
			},
		} {
			require.ErrorIs(t, call(), ErrInvalidOption, name)
		}
	})
}
