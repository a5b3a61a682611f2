package console

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/jetsms/jetsms/job"
)

// The charts' resolution: Buckets buckets of Bucket each, an hour in all.
const (
	Bucket  = 10 * time.Second
	Buckets = 360
	// campaignsTracked bounds the campaigns whose series are kept; the one
	// updated least recently makes room.
	campaignsTracked = 200
)

// counts are one bucket's events.
type counts struct {
	at       int64 // bucket number (unix time / Bucket)
	sends    int   // accepted events: the gateway took a job
	receipts int   // events with a gateway message id after it took the job
	final    int   // final events
}

// ring is Buckets buckets of counts, indexed by bucket number.
type ring struct {
	b       [Buckets]counts
	touched int64
}

func (r *ring) slot(n int64) *counts {
	c := &r.b[n%Buckets]
	if c.at != n {
		*c = counts{at: n}
	}
	r.touched = n
	return c
}

// last returns the counts of the Buckets buckets up to now, oldest first.
func (r *ring) last(now int64) []counts {
	out := make([]counts, Buckets)
	for i := range Buckets {
		n := now - int64(Buckets-1-i)
		c := r.b[n%Buckets]
		if c.at != n {
			c = counts{at: n}
		}
		out[i] = c
	}
	return out
}

// series counts status events per bucket: for the whole process's view of the
// account (every event on the status subjects, whoever published it) and per
// campaign. It holds an hour since this process started; older history is in
// Prometheus.
type series struct {
	now func() time.Time

	mu        sync.Mutex
	all       ring
	campaigns map[string]*ring
}

func newSeries(now func() time.Time) *series {
	return &series{now: now, campaigns: make(map[string]*ring)}
}

func bucketOf(t time.Time) int64 { return t.Unix() / int64(Bucket/time.Second) }

// observe counts one status event.
func (s *series) observe(data []byte) {
	var ev struct {
		Status    job.Status `json:"status"`
		Final     bool       `json:"final"`
		MessageID string     `json:"message_id"`
		Campaign  string     `json:"campaign"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return
	}
	n := bucketOf(s.now())
	s.mu.Lock()
	defer s.mu.Unlock()
	add := func(c *counts) {
		switch {
		case ev.Status == job.StatusAccepted:
			c.sends++
		case ev.MessageID != "" && ev.Status != job.StatusRetrying:
			c.receipts++
		}
		if ev.Final {
			c.final++
		}
	}
	add(s.all.slot(n))
	if ev.Campaign == "" {
		return
	}
	r := s.campaigns[ev.Campaign]
	if r == nil {
		if len(s.campaigns) >= campaignsTracked {
			oldest, at := "", int64(1<<62)
			for name, cr := range s.campaigns {
				if cr.touched < at {
					oldest, at = name, cr.touched
				}
			}
			delete(s.campaigns, oldest)
		}
		r = &ring{}
		s.campaigns[ev.Campaign] = r
	}
	add(r.slot(n))
}

// overall returns the last hour's buckets of every event.
func (s *series) overall() []counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all.last(bucketOf(s.now()))
}

// campaign returns the last hour's buckets of a campaign's events, nil when
// none was seen.
func (s *series) campaign(name string) []counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.campaigns[name]
	if r == nil {
		return nil
	}
	return r.last(bucketOf(s.now()))
}
