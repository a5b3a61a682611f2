package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/optout"
)

type optOutData struct {
	Number  string
	Asked   bool
	Listed  bool
	Problem string
}

// optOutPage looks a number up in the opt-out list. The number is the operator's
// own input; under redaction it is not echoed.
func (c *Console) optOutPage(w http.ResponseWriter, r *http.Request) {
	p := page{Title: "Opt-outs", Nav: "optouts"}
	number := strings.TrimSpace(r.URL.Query().Get("number"))
	d := optOutData{}
	if number != "" {
		d.Asked, d.Number = true, c.number(number)
		ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
		defer cancel()
		listed, err := c.cfg.OptOuts.Has(ctx, number)
		if err != nil {
			d.Problem = c.text(err.Error())
		}
		d.Listed = listed
	}
	p.Data = d
	c.render(w, r, "optouts", p)
}

// optOutAction adds a number to the opt-out list or removes it, as the resolver
// does on STOP and START.
func (c *Console) optOutAction(w http.ResponseWriter, r *http.Request) {
	number := strings.TrimSpace(r.PostForm.Get("number"))
	action := r.PostForm.Get("action")
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.Timeout)
	defer cancel()
	var err error
	switch action {
	case "add":
		err = c.cfg.OptOuts.Add(ctx, optout.Record{Number: number, At: time.Now().UTC(), Keyword: "console"})
	case "remove":
		err = c.cfg.OptOuts.Remove(ctx, number)
	default:
		http.Error(w, "action: must be add or remove", http.StatusBadRequest)
		return
	}
	if err != nil {
		c.redirect(w, r, Path+"optouts", "", c.text(err.Error()))
		return
	}
	c.log.Info("opt-out list changed from the console", zap.String("action", action))
	done := "added to the opt-out list"
	if action == "remove" {
		done = "removed from the opt-out list"
	}
	back := Path + "optouts"
	if !c.cfg.Redact {
		back += "?number=" + url.QueryEscape(number)
	}
	c.redirect(w, r, back, done, "")
}
