package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/ledger"
)

type gatewayView struct {
	ID, Status, Destination, Reference, Content, Error string
}

type jobData struct {
	E        *ledger.Entry
	Dest     string
	Metadata []string
	History  []ledger.Change
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
