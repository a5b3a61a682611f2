package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/deadletter"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/subjects"
)

// Reasons are the dead-letter reasons a filter offers (docs/contract.md).
var Reasons = []string{"invalid_job", "gateway_rejected", "retries_exhausted", "unknown_lane", "expired", "outcome_unknown"}

// scanMax bounds the dead letters one page reads looking for its rows; the
// "next page" link carries on from there.
const scanMax = 5000

// countMax bounds the letters counted by reason and lane on the dead-letter page.
const countMax = 50000

// letterView is one dead letter as a page shows it.
type letterView struct {
	Seq     uint64
	At      time.Time
	Lane    string
	Subject string
	Job     string
	Reason  string
	Error   string
}

type laneCount struct {
	Lane  string
	Count uint64
}

// reasonRow is one reason's dead letters per lane.
type reasonRow struct {
	Reason string
	Lanes  []int
	Total  int
}

type deadData struct {
	ByReason []reasonRow
	Counted  int
	Complete bool
	Letters  []letterView
	ByLane   []laneCount
	Total    uint64
	Reasons  []string
	Lanes    []string
	Reason   string
	Lane     string
	From     uint64
	Next     uint64
	Query    string
}

// deadFilter reads the page's filter: reason, lane and the sequence to start at.
func (c *Console) deadFilter(q url.Values) (subject string, f deadletter.Filter, lane string, err error) {
	subject = c.cfg.Names.DeadAll()
	lane = q.Get("lane")
	if lane != "" {
		if err := subjects.ValidateToken(lane); err != nil {
			return "", f, "", err
		}
		subject = c.cfg.Names.Dead(lane)
	}
	f.Reason = q.Get("reason")
	if f.Reason != "" && !slices.Contains(Reasons, f.Reason) {
		return "", f, "", errBadReason
	}
	f.From, _ = strconv.ParseUint(q.Get("from"), 10, 64)
	return subject, f, lane, nil
}

type consoleError string

func (e consoleError) Error() string { return string(e) }

const errBadReason = consoleError("reason: must be one of " + "invalid_job, gateway_rejected, retries_exhausted, unknown_lane, expired, outcome_unknown")

func (c *Console) view(m *jetstream.RawStreamMsg) letterView {
	lane, _, _ := c.cfg.Names.ParseSend(m.Header.Get(events.HeaderSubject))
	return letterView{
		Seq: m.Sequence, At: m.Time, Lane: clean(lane), Subject: clean(m.Header.Get(events.HeaderSubject)),
		Job: clean(m.Header.Get(events.HeaderJobID)), Reason: clean(m.Header.Get(events.HeaderReason)),
		Error: listText(m.Header.Get(events.HeaderError)),
	}
}

// deadList is a page of dead letters, with the count per lane and filters by
// reason and lane.
func (c *Console) deadList(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Dead letters", Nav: "dead"}
	subject, f, lane, err := c.deadFilter(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.Limit = c.cfg.PageSize
	f.Scan = scanMax
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	d := deadData{Reasons: Reasons, Lanes: c.cfg.Lanes, Reason: f.Reason, Lane: lane, From: f.From}
	stream, err := c.cfg.JS.Stream(ctx, c.cfg.Names.DeadStream())
	if err != nil {
		p.Error = "dead-letter stream: " + err.Error()
		p.Data = d
		c.render(w, r, "dead", p)
		return
	}
	// The count per lane: one stream info with the subjects' counts (one subject
	// per lane, so bounded by the lanes, not the letters).
	if info, err := stream.Info(ctx, jetstream.WithSubjectFilter(c.cfg.Names.DeadAll())); err == nil {
		prefix := strings.TrimSuffix(c.cfg.Names.DeadAll(), ">")
		for subj, n := range info.State.Subjects {
			d.ByLane = append(d.ByLane, laneCount{Lane: clean(strings.TrimPrefix(subj, prefix)), Count: n})
			d.Total += n
		}
		slices.SortFunc(d.ByLane, func(a, b laneCount) int { return strings.Compare(a.Lane, b.Lane) })
	}
	// By reason and lane: the letters' headers read once, up to countMax.
	counts, err := deadletter.Count(ctx, c.cfg.JS, c.cfg.Names.DeadStream(), c.cfg.Names.DeadAll(), countMax, func(s string) string {
		l, _, _ := c.cfg.Names.ParseSend(s)
		return l
	})
	if err != nil {
		p.Error = err.Error()
	}
	d.Counted, d.Complete = counts.Read, counts.Complete
	for reason, lanes := range counts.ByReason {
		row := reasonRow{Reason: clean(reason)}
		for _, l := range c.cfg.Lanes {
			row.Lanes = append(row.Lanes, lanes[l])
		}
		for _, n := range lanes {
			row.Total += n
		}
		d.ByReason = append(d.ByReason, row)
	}
	slices.SortFunc(d.ByReason, func(a, b reasonRow) int { return b.Total - a.Total })
	letters, next, err := deadletter.Read(ctx, stream, subject, f)
	if err != nil {
		p.Error = err.Error()
	}
	for _, m := range letters {
		d.Letters = append(d.Letters, c.view(m))
	}
	d.Next = next
	q := url.Values{}
	if lane != "" {
		q.Set("lane", lane)
	}
	if f.Reason != "" {
		q.Set("reason", f.Reason)
	}
	d.Query = q.Encode()
	p.Data = d
	c.render(w, r, "dead", p)
}

type replayData struct {
	Letters []letterView
	Seqs    string
	Lane    string
	Reason  string
	Done    bool
	Failed  string
}

// deadReplay replays the selected dead letters with the code of `jetsms dead
// replay`. Without confirm=yes it is the dry run: it lists what would be
// replayed and asks for confirmation; with it, it replays those letters.
func (c *Console) deadReplay(w http.ResponseWriter, r *http.Request) {
	subject, f, lane, err := c.deadFilter(r.PostForm)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.From = 0
	f.Seqs = make(map[uint64]bool)
	var raw []string
	raw = append(raw, r.PostForm["seq"]...)
	raw = append(raw, strings.Fields(r.PostForm.Get("seqs"))...)
	for _, s := range raw {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n == 0 {
			http.Error(w, "seq: must be a dead-letter sequence number", http.StatusBadRequest)
			return
		}
		f.Seqs[n] = true
	}
	if len(f.Seqs) == 0 {
		c.redirect(w, r, Path+"dead", "", "select at least one dead letter to replay")
		return
	}
	if len(f.Seqs) > c.cfg.PageSize {
		http.Error(w, "seq: at most one page of dead letters at a time", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	stream, err := c.cfg.JS.Stream(ctx, c.cfg.Names.DeadStream())
	if err != nil {
		http.Error(w, "dead-letter stream: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// Read from the lowest selected sequence: the selection is one page.
	lowest := uint64(0)
	for s := range f.Seqs {
		if lowest == 0 || s < lowest {
			lowest = s
		}
	}
	f.From = lowest
	letters, _, err := deadletter.Read(ctx, stream, subject, f)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d := replayData{Lane: lane, Reason: f.Reason}
	seqs := make([]string, 0, len(letters))
	for _, m := range letters {
		d.Letters = append(d.Letters, c.view(m))
		seqs = append(seqs, strconv.FormatUint(m.Sequence, 10))
	}
	d.Seqs = strings.Join(seqs, " ")
	p := page{Title: "Replay dead letters", Nav: "dead"}
	if r.PostForm.Get("confirm") != "yes" {
		p.Data = d
		c.render(w, r, "replay", p)
		return
	}
	replayed := 0
	for _, m := range letters {
		if err := deadletter.Replay(ctx, c.cfg.JS, stream, m); err != nil {
			d.Failed = "replayed " + strconv.Itoa(replayed) + " of " + strconv.Itoa(len(letters)) + "; " + err.Error()
			break
		}
		replayed++
		c.log.Info("dead letter replayed from the console", zap.String("job_id", m.Header.Get(events.HeaderJobID)),
			zap.Uint64("seq", m.Sequence))
	}
	if d.Failed != "" {
		p.Error = d.Failed
		p.Data = d
		c.render(w, r, "replay", p)
		return
	}
	c.redirect(w, r, Path+"dead", strconv.Itoa(replayed)+" dead letters replayed", "")
}
