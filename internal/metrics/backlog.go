package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetsms/jetsms/internal/subjects"
)

// Defaults of the backlog collector.
const (
	// BacklogCacheForDefault is how long one reading of the lanes' backlog answers
	// scrapes before NATS is asked again.
	BacklogCacheForDefault = 5 * time.Second
	// BacklogTimeoutDefault bounds one reading of every lane.
	BacklogTimeoutDefault = 5 * time.Second
)

// ErrInvalidOption is wrapped by the errors of invalid backlog options and
// arguments.
var ErrInvalidOption = errors.New("metrics: invalid option")

// BacklogOption changes a default of NewBacklogCollector.
type BacklogOption func(*BacklogCollector) error

// BacklogCacheFor sets how long one reading answers scrapes; default
// BacklogCacheForDefault. Zero reads NATS on every scrape.
func BacklogCacheFor(d time.Duration) BacklogOption {
	return func(c *BacklogCollector) error {
		if d < 0 {
			return fmt.Errorf("%w: cache duration must be >= 0", ErrInvalidOption)
		}
		c.cacheFor = d
		return nil
	}
}

// BacklogTimeout bounds one reading of every lane; default BacklogTimeoutDefault.
func BacklogTimeout(d time.Duration) BacklogOption {
	return func(c *BacklogCollector) error {
		if d <= 0 {
			return fmt.Errorf("%w: timeout must be > 0", ErrInvalidOption)
		}
		c.timeout = d
		return nil
	}
}

// BacklogCollector reports each lane's backlog from JetStream, read when
// Prometheus scrapes and kept for a short while so that frequent scrapes, or
// several registries, do not each ask NATS:
//
//   - jetsms_lane_pending_jobs{lane}: jobs of the lane in the jobs stream not yet
//     done: the lane consumer's NumPending (not delivered) plus NumAckPending
//     (held by a worker, or waiting out a delayed retry).
//   - jetsms_lane_oldest_job_age_seconds{lane}: now minus the time the oldest of
//     them was stored; 0 when none is pending.
//   - jetsms_lane_backlog_errors_total: readings of a lane that failed.
//
// The oldest job is the first message of the lane's subjects at or after the
// consumer's ack floor + 1: in the work-queue jobs stream every acked job is gone,
// and lanes share the stream, so the message right after the floor may belong to
// another lane. Until a worker has created a lane's consumer, the lane's jobs are
// counted from the stream itself.
//
// A lane whose reading fails is left out of that scrape (and counted in the errors
// counter) rather than shown with stale or made-up numbers. It is safe for
// concurrent use.
type BacklogCollector struct {
	js       jetstream.JetStream
	names    subjects.Names
	lanes    []string
	cacheFor time.Duration
	timeout  time.Duration
	now      func() time.Time

	pendingDesc *prometheus.Desc
	ageDesc     *prometheus.Desc
	errs        prometheus.Counter

	mu     sync.Mutex // held while reading, so concurrent scrapes share a reading
	readAt time.Time
	read   bool
	cached []laneBacklog
}

// LaneBacklog is one lane's reading: its jobs not yet done and the age of the
// oldest of them (0 when none is).
type LaneBacklog struct {
	Lane    string
	Pending uint64
	Oldest  time.Duration
}

// Lanes returns the latest reading of every lane (the cached one when younger
// than the cache duration), in configuration order; a lane whose reading failed is
// left out. The console's overview reads the backlog through it, so a page view
// and a scrape share one reading.
func (c *BacklogCollector) Lanes() []LaneBacklog {
	r := c.reading()
	out := make([]LaneBacklog, len(r))
	for i, b := range r {
		out[i] = LaneBacklog{Lane: b.lane, Pending: b.pending, Oldest: b.oldest}
	}
	return out
}

// laneBacklog is one lane's reading.
type laneBacklog struct {
	lane    string
	pending uint64
	oldest  time.Duration
}

// NewBacklogCollector returns a collector of the backlog of lanes on the jobs
// stream of names. Register it with Metrics.Register. It returns an error wrapping
// ErrInvalidOption when js is nil, lanes is empty or holds a name that is not a
// subject token, or an option is invalid.
func NewBacklogCollector(js jetstream.JetStream, names subjects.Names, lanes []string, opts ...BacklogOption) (*BacklogCollector, error) {
	if js == nil {
		return nil, fmt.Errorf("%w: jetstream is required", ErrInvalidOption)
	}
	if len(lanes) == 0 {
		return nil, fmt.Errorf("%w: lanes: at least one lane is required", ErrInvalidOption)
	}
	for _, l := range lanes {
		if err := subjects.ValidateToken(l); err != nil {
			return nil, fmt.Errorf("%w: lane %q: %w", ErrInvalidOption, l, err)
		}
	}
	c := &BacklogCollector{
		js:       js,
		names:    names,
		lanes:    append([]string(nil), lanes...),
		cacheFor: BacklogCacheForDefault,
		timeout:  BacklogTimeoutDefault,
		now:      time.Now,
		pendingDesc: prometheus.NewDesc("jetsms_lane_pending_jobs",
			"Jobs of the lane not yet done: waiting in the jobs stream or held by a worker.", []string{"lane"}, nil),
		ageDesc: prometheus.NewDesc("jetsms_lane_oldest_job_age_seconds",
			"Age of the lane's oldest job not yet done; 0 when none is.", []string{"lane"}, nil),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetsms_lane_backlog_errors_total",
			Help: "Readings of a lane's backlog from JetStream that failed.",
		}),
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Describe sends the descriptions of the collector's series.
func (c *BacklogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pendingDesc
	ch <- c.ageDesc
	c.errs.Describe(ch)
}

// Collect reads the backlog, or reuses a reading younger than the cache duration,
// and sends its series.
func (c *BacklogCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.reading() {
		ch <- prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, float64(b.pending), b.lane)
		ch <- prometheus.MustNewConstMetric(c.ageDesc, prometheus.GaugeValue, b.oldest.Seconds(), b.lane)
	}
	c.errs.Collect(ch)
}

// reading returns the cached reading, or a new one when it is too old.
func (c *BacklogCollector) reading() []laneBacklog {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.read && now.Sub(c.readAt) < c.cacheFor {
		return c.cached
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	out := make([]laneBacklog, 0, len(c.lanes))
	stream, err := c.js.Stream(ctx, c.names.JobsStream())
	if err != nil {
		c.errs.Add(float64(len(c.lanes)))
	} else {
		for _, lane := range c.lanes {
			b, err := c.readLane(ctx, stream, lane, now)
			if err != nil {
				c.errs.Inc()
				continue
			}
			out = append(out, b)
		}
	}
	c.cached, c.readAt, c.read = out, now, true
	return out
}

// readLane reads one lane's pending count and the age of its oldest job.
func (c *BacklogCollector) readLane(ctx context.Context, stream jetstream.Stream, lane string, now time.Time) (laneBacklog, error) {
	b := laneBacklog{lane: lane}
	filters := c.names.LaneFilters(lane)
	from := uint64(1)
	cons, err := stream.Consumer(ctx, c.names.Consumer(lane))
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		// No worker has run this lane yet: every job of it is still in the stream.
		if b.pending, err = countSubjects(ctx, stream, filters); err != nil {
			return b, err
		}
	case err != nil:
		return b, fmt.Errorf("consumer of lane %s: %w", lane, err)
	default:
		info := cons.CachedInfo()
		b.pending = info.NumPending + uint64(max(info.NumAckPending, 0))
		from = info.AckFloor.Stream + 1
		if fs := consumerFilters(info.Config); len(fs) > 0 {
			filters = fs
		}
	}
	if b.pending == 0 {
		return b, nil
	}
	oldest, found, err := firstStored(ctx, stream, from, filters)
	if err != nil {
		return b, fmt.Errorf("oldest job of lane %s: %w", lane, err)
	}
	if found {
		b.oldest = max(now.Sub(oldest), 0)
	}
	return b, nil
}

// consumerFilters are the subject filters a consumer was created with.
func consumerFilters(cfg jetstream.ConsumerConfig) []string {
	if len(cfg.FilterSubjects) > 0 {
		return cfg.FilterSubjects
	}
	if cfg.FilterSubject != "" {
		return []string{cfg.FilterSubject}
	}
	return nil
}

// countSubjects counts the stream's messages on the subjects of filters.
func countSubjects(ctx context.Context, stream jetstream.Stream, filters []string) (uint64, error) {
	var n uint64
	for _, f := range filters {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(f))
		if err != nil {
			return 0, fmt.Errorf("count %s: %w", f, err)
		}
		for _, count := range info.State.Subjects {
			n += count
		}
	}
	return n, nil
}

// firstStored returns the time of the first message at or after sequence from on
// any subject of filters; found is false when there is none.
func firstStored(ctx context.Context, stream jetstream.Stream, from uint64, filters []string) (first time.Time, found bool, err error) {
	for _, f := range filters {
		msg, err := stream.GetMsg(ctx, from, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return time.Time{}, false, fmt.Errorf("get message after %d on %s: %w", from, f, err)
		}
		if !found || msg.Time.Before(first) {
			first, found = msg.Time, true
		}
	}
	return first, found, nil
}
