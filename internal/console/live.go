package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// liveBuffer is how many events wait for a slow browser before newer ones are
// dropped.
const liveBuffer = 256

// liveEvent is what the live page receives: identities and statuses, never a
// number or text.
type liveEvent struct {
	Kind     string `json:"kind"` // "status" or "inbound"
	At       string `json:"at"`
	Status   string `json:"status,omitempty"`
	Job      string `json:"job,omitempty"`
	Lane     string `json:"lane,omitempty"`
	Campaign string `json:"campaign,omitempty"`
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error,omitempty"`
	ID       string `json:"id,omitempty"`
	ReplyTo  string `json:"reply_to,omitempty"`
}

type eventsData struct {
	Status, Lane, Campaign, Job string
	Statuses                    []job.Status
	Lanes                       []string
}

var statuses = []job.Status{job.StatusAccepted, job.StatusRetrying, job.StatusSubmitted, job.StatusSent, job.StatusFrozen,
	job.StatusReceived, job.StatusRejected, job.StatusFailed, job.StatusDead, job.StatusExpired, job.StatusCancelled,
	job.StatusSuppressed}

// eventsPage is the live view; its script follows eventStream with the page's
// filters.
func (c *Console) eventsPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c.render(w, r, "events", page{Title: "Live events", Nav: "events", Data: eventsData{
		Status: q.Get("status"), Lane: q.Get("lane"), Campaign: q.Get("campaign"), Job: q.Get("job"),
		Statuses: statuses, Lanes: c.cfg.Lanes,
	}})
}

// eventStream sends status events and inbound messages as server-sent events, as
// they arrive on the subjects (a core NATS subscription: nothing is replayed),
// filtered by status, lane, campaign and job. Inbound messages are sent only
// without a filter.
func (c *Console) eventStream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	status, lane, camp, jobID := q.Get("status"), q.Get("lane"), q.Get("campaign"), q.Get("job")
	subject := c.cfg.Names.StatusAll()
	if status != "" {
		if err := subjects.ValidateToken(status); err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusBadRequest)
			return
		}
		subject = c.cfg.Names.Status(status)
	}
	rc := http.NewResponseController(w)
	// The admin listener's write timeout would end the stream: lift it.
	_ = rc.SetWriteDeadline(time.Time{})
	msgs := make(chan *nats.Msg, liveBuffer)
	push := func(m *nats.Msg) {
		select {
		case msgs <- m:
		default: // the browser is behind: drop rather than hold the subscription
		}
	}
	sub, err := c.cfg.Conn.Subscribe(subject, push)
	if err != nil {
		http.Error(w, "subscribe: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	if status == "" && lane == "" && camp == "" && jobID == "" {
		in, err := c.cfg.Conn.Subscribe(c.cfg.Names.InboundAll(), push)
		if err != nil {
			http.Error(w, "subscribe: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		defer func() { _ = in.Unsubscribe() }()
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": jetsms live events\n\n")
	_ = rc.Flush()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	inboundPrefix := strings.TrimSuffix(c.cfg.Names.InboundAll(), ">")
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.done:
			return
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case m := <-msgs:
			var ev liveEvent
			if strings.HasPrefix(m.Subject, inboundPrefix) {
				var in events.Inbound
				if json.Unmarshal(m.Data, &in) != nil {
					continue
				}
				ev = liveEvent{Kind: "inbound", At: in.ReceivedAt.UTC().Format(time.RFC3339), ID: clean(in.ID), ReplyTo: clean(in.ReplyToJob)}
			} else {
				var e job.Event
				if json.Unmarshal(m.Data, &e) != nil {
					continue
				}
				if (lane != "" && e.Lane != lane) || (camp != "" && e.Campaign != camp) || (jobID != "" && e.JobID != jobID) {
					continue
				}
				ev = liveEvent{Kind: "status", At: e.At.UTC().Format(time.RFC3339), Status: clean(string(e.Status)), Job: clean(e.JobID),
					Lane: clean(e.Lane), Campaign: clean(e.Campaign), Attempts: e.Attempts, Error: listText(e.Error)}
			}
			b, _ := json.Marshal(ev)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
		}
		_ = rc.Flush()
	}
}
