package console

import (
	"math"
	"net/http"
	"time"
)

// laneView is one lane's row on the overview.
type laneView struct {
	Name    string
	Pending uint64
	Oldest  time.Duration
	Read    bool
}

type overviewData struct {
	Lanes       []laneView
	Sending     bool
	Rate        float64
	Ceiling     float64
	AccountRate float64
	Replicas    int
	InFlight    int
	Concurrency int
	CircuitOpen bool
	Circuit     string
	SendsNow    float64
	ReceiptsNow float64
	Chart       any
}

// overview is the lanes at a glance: backlog, rate, concurrency, circuit, and
// sends and receipts per second over the last hour.
func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	d := overviewData{AccountRate: c.cfg.AccountRate}
	read := make(map[string]laneView)
	for _, b := range c.cfg.Backlog.Lanes() {
		read[b.Lane] = laneView{Name: b.Lane, Pending: b.Pending, Oldest: b.Oldest, Read: true}
	}
	for _, l := range c.cfg.Lanes {
		v, ok := read[l]
		if !ok {
			v = laneView{Name: l}
		}
		d.Lanes = append(d.Lanes, v)
	}
	if c.cfg.Worker != nil {
		d.Sending = true
		d.InFlight = c.cfg.Worker.InFlight()
		d.Concurrency = c.cfg.Worker.ConcurrencyLimit()
		d.CircuitOpen, d.Circuit = c.cfg.Worker.CircuitOpen()
	}
	if c.cfg.Rate != nil {
		d.Rate, d.Ceiling = c.cfg.Rate.Rate(), c.cfg.Rate.Ceiling()
		if d.Ceiling > 0 {
			// Each replica's ceiling is the account's rate divided among them.
			d.Replicas = int(math.Round(c.cfg.AccountRate / d.Ceiling))
		}
	}
	buckets := c.series.overall()
	secs := Bucket.Seconds()
	sends, receipts := make([]float64, len(buckets)), make([]float64, len(buckets))
	for i, b := range buckets {
		sends[i], receipts[i] = float64(b.sends)/secs, float64(b.receipts)/secs
	}
	// The current rate is the last full bucket's.
	if n := len(buckets); n >= 2 {
		d.SendsNow, d.ReceiptsNow = sends[n-2], receipts[n-2]
	}
	d.Chart = chart([]line{{Name: "sends", Class: "s1", Values: sends}, {Name: "receipts", Class: "s2", Values: receipts}}, 900, 220, "per second")
	c.render(w, r, "overview", page{Title: "Overview", Nav: "overview", Refresh: 5, Data: d})
}
