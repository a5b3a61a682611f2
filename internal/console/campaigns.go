package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

type campaignsData struct {
	Campaigns []*campaign.Record
	Page      int
	Prev      int
	Next      int
	Total     int
}

// campaignList is every campaign, newest first, a page at a time.
func (c *Console) campaignList(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	p := page{Title: "Campaigns", Nav: "campaigns", Refresh: 10}
	recs, err := c.cfg.Campaigns.List(ctx)
	if err != nil {
		p.Error = "campaigns: " + err.Error()
	}
	slices.SortFunc(recs, func(a, b *campaign.Record) int { return b.Created.Compare(a.Created) })
	n := pageNumber(r)
	from := min(n*c.cfg.PageSize, len(recs))
	to := min(from+c.cfg.PageSize, len(recs))
	d := campaignsData{Campaigns: recs[from:to], Page: n + 1, Prev: n - 1, Next: -1, Total: len(recs)}
	if to < len(recs) {
		d.Next = n + 1
	}
	p.Data = d
	c.render(w, r, "campaigns", p)
}

func pageNumber(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

type statusCount struct {
	Status job.Status
	Count  int
}

type campaignData struct {
	R         *campaign.Record
	Estimate  estimateView
	ByStatus  []statusCount
	Chart     any
	CanPause  bool
	CanResume bool
	CanCancel bool
}

// campaignPage is one campaign's progress, chart, bad rows and controls.
func (c *Console) campaignPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	rec, _, err := c.cfg.Campaigns.Get(ctx, name)
	if errors.Is(err, campaign.ErrNotFound) {
		http.Error(w, "no campaign "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	p := page{Title: "Campaign " + clean(name), Nav: "campaigns", Refresh: 5}
	if err != nil {
		p.Error = err.Error()
		c.render(w, r, "campaign", p)
		return
	}
	d := campaignData{R: rec, Estimate: newEstimateView(rec)}
	for st, n := range rec.Counts.ByStatus {
		d.ByStatus = append(d.ByStatus, statusCount{st, n})
	}
	slices.SortFunc(d.ByStatus, func(a, b statusCount) int { return b.Count - a.Count })
	switch rec.State {
	case campaign.StatePublishing, campaign.StateRunning:
		d.CanPause, d.CanCancel = true, true
	case campaign.StatePaused:
		d.CanResume, d.CanCancel = true, true
	}
	// Sent and final over the last hour, drawn back from the record's counts with
	// the events this process saw in each bucket.
	if b := c.series.campaign(name); b != nil {
		sent, final := make([]float64, len(b)), make([]float64, len(b))
		s, f := float64(rec.Counts.Sent), float64(rec.Counts.Final)
		for i := len(b) - 1; i >= 0; i-- {
			sent[i], final[i] = max(s, 0), max(f, 0)
			s -= float64(b[i].sends)
			f -= float64(b[i].final)
		}
		d.Chart = chart([]line{{Name: "sent", Class: "s1", Values: sent}, {Name: "final", Class: "s2", Values: final}}, 900, 200, "jobs")
	}
	p.Data = d
	c.render(w, r, "campaign", p)
}

// estimateView is the estimate `jetsms campaign send` stored in the record: what
// its publishing pass counted, and the cost at the price it was given.
type estimateView struct {
	campaign.Estimate
	// Price and Cost are formatted; empty when no price was set.
	Price, Cost string
	// SoFar: publishing is not over, the counts will grow.
	SoFar bool
	// Suppressed is how many jobs have ended suppressed so far (the send does
	// not look up opt-outs, a dry run does).
	Suppressed int
}

func newEstimateView(rec *campaign.Record) estimateView {
	v := estimateView{Estimate: rec.Estimate(), SoFar: !rec.PublishingOver(), Suppressed: rec.Counts.ByStatus[job.StatusSuppressed]}
	if v.PricePerSegment > 0 {
		v.Price = strconv.FormatFloat(v.PricePerSegment, 'f', -1, 64)
		v.Cost = strconv.FormatFloat(v.Estimate.Cost, 'f', 2, 64)
	}
	return v
}

// campaignAction pauses, resumes or cancels a campaign, as `jetsms campaign
// pause|resume|cancel` does, and returns to its page.
func (c *Console) campaignAction(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	if err := subjects.ValidateToken(name); err != nil {
		http.Error(w, "campaign: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	var (
		rec *campaign.Record
		err error
	)
	switch action {
	case "pause":
		rec, err = c.cfg.Campaigns.Pause(ctx, name)
	case "resume":
		rec, err = c.cfg.Campaigns.Resume(ctx, name)
	case "cancel":
		rec, err = c.cfg.Campaigns.Cancel(ctx, name)
	default:
		http.Error(w, "action: must be pause, resume or cancel", http.StatusNotFound)
		return
	}
	var flash string
	switch {
	case errors.Is(err, campaign.ErrNotFound):
		http.Error(w, "no campaign "+strconv.Quote(name), http.StatusNotFound)
		return
	case errors.Is(err, campaign.ErrState):
		c.redirect(w, r, Path+"campaigns/"+url.PathEscape(name), "", err.Error())
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	default:
		c.log.Info("campaign "+action+" from the console", zap.String("campaign", name))
		switch action {
		case "pause":
			flash = "paused: its " + thousands(rec.Pending()) + " unsent jobs stay stored, and workers hold them until resume"
		case "resume":
			flash = "resumed: it is " + string(rec.State)
		default:
			flash = "cancelled: its " + thousands(rec.Pending()) + " unsent jobs end cancelled as workers take them"
		}
	}
	c.redirect(w, r, Path+"campaigns/"+url.PathEscape(name), flash, "")
}
