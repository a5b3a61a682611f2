package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

type gatewayView struct {
	ID, Status, Destination, Reference, Content, Error string
}

type jobData struct {
	E        *ledger.Entry
	Dest     string
	Metadata []string
	History  []ledger.Change
	Events   []eventView
	Gateway  []gatewayView
	CanAsk   bool
	Asked    bool
	Redact   bool
}

// jobLookup sends the job id typed in the search box to its page.
func (c *Console) jobLookup(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	if id == "" {
		http.Redirect(w, r, Path, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Path+"jobs/"+url.PathEscape(id), http.StatusSeeOther)
}

// jobPage is a job's ledger entry, its history as a timeline, and on demand the
// gateway's record of each of its messages. It is the one page that shows the
// destination, unless redaction is on.
func (c *Console) jobPage(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	p := page{Title: "Job " + clean(id), Nav: "jobs"}
	e, _, err := c.cfg.Ledger.Get(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		w.WriteHeader(http.StatusNotFound)
		p.Error = "job " + clean(id) + " is not in the ledger (never taken by a worker, or older than ledger.retention)"
		c.render(w, r, "job", p)
		return
	}
	if err != nil {
		p.Error = err.Error()
		c.render(w, r, "job", p)
		return
	}
	d := jobData{E: e, Dest: c.number(e.Destination), History: slices.Clone(e.History), Redact: c.cfg.Redact,
		CanAsk: c.cfg.Gateway != nil && len(e.MessageIDs) > 0}
	d.Events = c.jobEvents(e)
	slices.Reverse(d.History) // newest first
	for i := range d.History {
		d.History[i].Detail = c.text(d.History[i].Detail)
		d.History[i].Error = c.text(d.History[i].Error)
	}
	for k, v := range e.Metadata {
		d.Metadata = append(d.Metadata, clean(k)+"="+c.text(v))
	}
	slices.Sort(d.Metadata)
	if d.CanAsk && r.URL.Query().Get("gateway") == "1" {
		d.Asked = true
		for _, mid := range e.MessageIDs {
			g := gatewayView{ID: clean(mid)}
			m, err := c.cfg.Gateway.Get(ctx, mid)
			switch {
			case errors.Is(err, dispatcher.ErrNotFound):
				g.Error = "not found"
			case err != nil:
				g.Error = c.text(err.Error())
			default:
				g.Status, g.Destination, g.Reference = clean(m.Status), c.number(m.Destination), clean(m.Reference)
				if c.cfg.Redact {
					g.Content = "••• (log.redact)"
				} else {
					g.Content = clean(m.Content)
				}
			}
			d.Gateway = append(d.Gateway, g)
		}
	}
	p.Data = d
	c.render(w, r, "job", p)
}

// eventView is a status event as the ledger rebuilds it.
type eventView struct {
	Status  job.Status
	Subject string
	MsgID   string
	JSON    string
}

// jobEvents are the job's status events, newest first, rebuilt from its ledger
// history with Entry.Event, the function the publishers build them with: one per
// change to a public status (the worker's own states submitting, unknown and
// queued publish none), with the change's time, message id, detail and error, on
// the subject and with the Nats-Msg-Id it was published under.
//
// They are rebuilt rather than read back because the status stream cannot be
// asked for one job's events in a bounded way: its subjects carry the status,
// not the job, and a message cannot be looked up by its Nats-Msg-Id. A rebuilt
// event differs from the stored one in what the entry has learnt since (attempts,
// duplicate risk) and by the moment of its time (the publisher reads the clock
// apart from the ledger); retrying events and history beyond ledger.HistoryMax
// are not there.
func (c *Console) jobEvents(e *ledger.Entry) []eventView {
	var out []eventView
	for _, ch := range e.History {
		switch ch.Status {
		case ledger.StateSubmitting, ledger.StateUnknown, ledger.StateQueued:
			continue
		}
		ev := e.Event(ch.Status, ch.At)
		ev.MessageID, ev.Detail, ev.Error = ch.MessageID, ch.Detail, ch.Error
		token := string(ch.Status)
		if subjects.ValidateToken(token) != nil {
			token = events.StatusOther
		}
		v := eventView{Status: ch.Status, Subject: clean(c.cfg.Names.Status(token)), MsgID: clean(events.MsgID(ev))}
		// The JSON is built from the masked values: redaction hides the number,
		// and digit runs in texts, as the rest of the page does.
		ev.Destination = c.rawNumber(ev.Destination)
		ev.Detail, ev.Error = c.rawText(ev.Detail), c.rawText(ev.Error)
		if len(ev.Metadata) > 0 {
			md := make(map[string]string, len(ev.Metadata))
			for k, val := range ev.Metadata {
				md[k] = c.rawText(val)
			}
			ev.Metadata = md
		}
		b, err := json.MarshalIndent(ev, "", "  ")
		if err != nil {
			continue // a job.Event always encodes
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			lines[i] = clean(l)
		}
		v.JSON = strings.Join(lines, "\n")
		out = append(out, v)
	}
	slices.Reverse(out)
	return out
}

// rawNumber and rawText mask as number and text do, without escaping (the JSON
// encoder escapes control characters; clean runs over its lines after).
func (c *Console) rawNumber(s string) string {
	if c.cfg.Redact && s != "" {
		return "••• (log.redact)"
	}
	return s
}

func (c *Console) rawText(s string) string {
	if c.cfg.Redact {
		return digitsRun.ReplaceAllString(s, "•••")
	}
	return s
}
