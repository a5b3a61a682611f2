package console

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"
)

// clean escapes control characters (and other non-printing runes) as \x1b,
// \u2028 …, so text from NATS cannot move the terminal-like views or hide
// itself; html/template escapes the rest.
func clean(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == ' ' || unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

// digitsRun is a run of digits long enough to be a phone number, with the
// separators people write in them.
var digitsRun = regexp.MustCompile(`\+?\d[\d \-]{4,}\d`)

// text is s as a page shows text that may quote a number (errors, details):
// cleaned, and with number-like runs masked under redaction.
func (c *Console) text(s string) string {
	if c.cfg.Redact {
		s = digitsRun.ReplaceAllString(s, "•••")
	}
	return clean(s)
}

// listText is s as a list page shows it (dead letters, bad rows, live events):
// cleaned, with number-like runs masked always, since only a job's own page
// shows a number.
func listText(s string) string { return clean(digitsRun.ReplaceAllString(s, "•••")) }

// number is a phone number as a page shows it: cleaned, or masked under
// redaction.
func (c *Console) number(s string) string {
	if c.cfg.Redact {
		if s == "" {
			return ""
		}
		return "••• (log.redact)"
	}
	return clean(s)
}

func (c *Console) parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"clean":  clean,
		"text":   c.text,
		"masked": listText,
		"ago":    ago,
		"when":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"whenms": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
		"num":    thousands,
		"pct": func(a, b int) string {
			if b <= 0 {
				return "0%"
			}
			return strconv.FormatFloat(100*float64(a)/float64(b), 'f', 1, 64) + "%"
		},
		"rate": func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	}
	names := []string{"overview", "campaigns", "campaign", "dead", "replay", "job", "events", "optouts"}
	out := make(map[string]*template.Template, len(names))
	for _, n := range names {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "assets/layout.html", "assets/"+n+".html")
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", n, err)
		}
		out[n] = t
	}
	return out, nil
}

// page is what the layout needs, with the page's own data in Data.
type page struct {
	Title   string
	Nav     string
	CSRF    string
	Version string
	Redact  bool
	Refresh int // seconds; 0: none
	Flash   string
	Error   string
	Data    any
}

// render writes the page named name.
func (c *Console) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	p.CSRF = c.token(w, r)
	p.Version = c.cfg.Version
	p.Redact = c.cfg.Redact
	// An action's outcome comes in a one-time cookie set by redirect, never from
	// the URL, so a link cannot put words on a console page.
	if ck, err := r.Cookie(flashCookie); err == nil {
		http.SetCookie(w, &http.Cookie{Name: flashCookie, Path: Path, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		if v, err := url.QueryUnescape(ck.Value); err == nil {
			kind, text, _ := strings.Cut(v, ":")
			switch {
			case kind == "error" && p.Error == "":
				p.Error = clean(text)
			case kind == "flash" && p.Flash == "":
				p.Flash = clean(text)
			}
		}
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, p); err != nil {
		c.log.Error("render page", zap.String("page", name), zap.Error(err))
		http.Error(w, "page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = buf.WriteTo(w)
}

// flashCookie carries an action's outcome to the page it redirects to.
const flashCookie = "jetsms_console_flash"

// redirect sends the browser to path after an action, with its outcome (flash,
// or errText when it failed) for that page to show once.
func (c *Console) redirect(w http.ResponseWriter, r *http.Request, path, flash, errText string) {
	v := "flash:" + flash
	if errText != "" {
		v = "error:" + errText
	}
	if len(v) > 1000 {
		v = v[:1000]
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: url.QueryEscape(v), Path: Path, MaxAge: 60, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, path, http.StatusSeeOther)
}

// ago is a duration as people read it: 3s, 4m10s, 2h5m, 3d4h.
func ago(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// thousands formats n with commas between groups of three digits.
func thousands(n any) string {
	var v int64
	switch x := n.(type) {
	case int:
		v = int64(x)
	case int64:
		v = x
	case uint64:
		v = int64(min(x, math.MaxInt64))
	default:
		return fmt.Sprint(n)
	}
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// chartMin is the fewest buckets a chart spans: five minutes.
const chartMin = 30

// line is one series of a chart.
type line struct {
	Name   string
	Class  string
	Values []float64
}

// chart draws lines as an inline SVG of width×height, with the largest value as
// its scale. Only numbers reach the markup.
func chart(lines []line, width, height int, unit string) template.HTML {
	// A fresh process has no history: the chart starts at its first event (at
	// least chartMin buckets back) instead of an hour of zeros.
	first := -1
	for _, l := range lines {
		for i, v := range l.Values {
			if v != 0 && (first < 0 || i < first) {
				first = i
			}
		}
	}
	from := 0
	if n := len(lines[0].Values); first >= 0 {
		from = max(min(first-2, n-chartMin), 0)
	} else {
		from = max(n-chartMin, 0)
	}
	for i := range lines {
		lines[i].Values = lines[i].Values[from:]
	}
	span := time.Duration(len(lines[0].Values)) * Bucket
	peak := 0.0
	n := 0
	for _, l := range lines {
		n = max(n, len(l.Values))
		for _, v := range l.Values {
			peak = max(peak, v)
		}
	}
	top := niceCeil(peak)
	const padL, padB = 48, 18
	pw, ph := float64(width-padL-4), float64(height-padB-6)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img">`, width, height, width, height)
	for i := 0; i <= 4; i++ {
		y := 6 + ph - ph*float64(i)/4
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, padL, y, width-4, y)
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-4, y+4, template.HTMLEscapeString(short(top*float64(i)/4)))
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">−%s</text><text class="axis" x="%d" y="%d" text-anchor="end">now</text>`, padL, height-2, template.HTMLEscapeString(ago(span)), width-4, height-2)
	fmt.Fprintf(&b, `<text class="axis unit" x="%d" y="12">%s</text>`, padL+4, template.HTMLEscapeString(unit))
	for _, l := range lines {
		if len(l.Values) == 0 {
			continue
		}
		fmt.Fprintf(&b, `<polyline class="%s" points="`, template.HTMLEscapeString(l.Class))
		for i, v := range l.Values {
			x := float64(padL) + pw*float64(i)/float64(max(n-1, 1))
			y := 6 + ph - ph*v/top
			fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
		}
		b.WriteString(`"/>`)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and escaped labels only
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceCeil(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
