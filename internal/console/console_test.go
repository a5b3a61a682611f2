package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/console"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/job"
)

const (
	user     = "ops"
	password = "a-long-test-password"
)

// bench is a console over HTTP on a real nats-server.
type bench struct {
	env       *brokertest.Env
	srv       *httptest.Server
	led       *ledger.Ledger
	optOuts   *optout.List
	campaigns *campaign.Store
	client    *http.Client
}

type fakeWorker struct{}

func (fakeWorker) CircuitOpen() (bool, string) { return true, "gateway_unavailable: 503 x5" }
func (fakeWorker) InFlight() int               { return 7 }
func (fakeWorker) ConcurrencyLimit() int       { return 48 }

type fakeRate struct{}

func (fakeRate) Rate() float64    { return 25 }
func (fakeRate) Ceiling() float64 { return 50 }

func newBench(t *testing.T, redact bool) *bench {
	t.Helper()
	env := brokertest.Run(t)
	ctx := t.Context()
	led, err := ledger.Open(ctx, env.JS, ledger.Config{Bucket: env.Names.LedgerBucket()})
	require.NoError(t, err)
	opt, err := optout.Open(ctx, env.JS, optout.Config{Bucket: env.Names.OptOutBucket()})
	require.NoError(t, err)
	store, err := campaign.Open(ctx, env.JS, campaign.StoreConfig{Bucket: env.Names.CampaignBucket()})
	require.NoError(t, err)
	lanes := []string{"priority", "default", "bulk"}
	backlog, err := metrics.NewBacklogCollector(env.JS, env.Names, lanes, metrics.BacklogCacheFor(0))
	require.NoError(t, err)
	con, err := console.New(console.Config{
		Names: env.Names, Lanes: lanes, Conn: env.Conn, JS: env.JS, Ledger: led, OptOuts: opt, Campaigns: store,
		Backlog: backlog, Worker: fakeWorker{}, Rate: fakeRate{}, AccountRate: 100,
		Username: user, Password: password, Redact: redact, Version: "test", PageSize: 3,
	}, zaptest.NewLogger(t))
	require.NoError(t, err)
	require.NoError(t, con.Start(ctx))
	srv := httptest.NewServer(con)
	t.Cleanup(func() {
		require.NoError(t, con.Stop(context.Background()))
		srv.Close()
	})
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &bench{env: env, srv: srv, led: led, optOuts: opt, campaigns: store, client: &http.Client{Jar: jar}}
}

// get fetches path with the credentials and returns the status and body.
func (b *bench) get(t *testing.T, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, b.srv.URL+path, nil)
	require.NoError(t, err)
	req.SetBasicAuth(user, password)
	res, err := b.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body)
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// post submits form to path as a page would: with the credentials, the session
// cookie and the token the page carried.
func (b *bench) post(t *testing.T, path string, form url.Values, opts ...func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.URL+path, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.SetBasicAuth(user, password)
	for _, o := range opts {
		o(req)
	}
	res, err := b.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body)
}

// token loads a page and returns the CSRF token of its forms.
func (b *bench) token(t *testing.T, path string) string {
	t.Helper()
	code, body := b.get(t, path)
	require.Equal(t, http.StatusOK, code, body)
	m := csrfInput.FindStringSubmatch(body)
	require.NotNil(t, m, "no csrf field on %s", path)
	return m[1]
}

func (b *bench) publishJob(t *testing.T, lane, id string) {
	t.Helper()
	data, err := json.Marshal(job.Job{ID: id, Destination: "+64211234567", Content: "hello", Lane: lane})
	require.NoError(t, err)
	_, err = b.env.JS.PublishMsg(t.Context(), &nats.Msg{Subject: b.env.Names.Send(lane), Data: data,
		Header: nats.Header{jetstream.MsgIDHeader: []string{id}}})
	require.NoError(t, err)
}

func TestCredentialsAndCSRF(t *testing.T) {
	b := newBench(t, false)
	// No credentials, wrong ones: 401 on pages and actions.
	res, err := http.Get(b.srv.URL + console.Path)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	req, _ := http.NewRequest(http.MethodPost, b.srv.URL+console.Path+"optouts", strings.NewReader("action=add&number=%2B64211234567"))
	req.SetBasicAuth(user, "wrong")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)

	tok := b.token(t, console.Path+"optouts")
	form := url.Values{"action": {"add"}, "number": {"+64211234567"}}
	// Without the token, with a wrong one, or cross-site with the right one: 403,
	// and nothing changes.
	code, _ := b.post(t, console.Path+"optouts", form)
	require.Equal(t, http.StatusForbidden, code)
	code, _ = b.post(t, console.Path+"optouts", url.Values{"action": {"add"}, "number": {"+64211234567"}, "csrf": {strings.Repeat("x", len(tok))}})
	require.Equal(t, http.StatusForbidden, code)
	withTok := url.Values{"action": {"add"}, "number": {"+64211234567"}, "csrf": {tok}}
	code, _ = b.post(t, console.Path+"optouts", withTok, func(r *http.Request) {
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		r.Header.Set("Origin", "https://evil.example")
	})
	require.Equal(t, http.StatusForbidden, code)
	listed, err := b.optOuts.Has(t.Context(), "+64211234567")
	require.NoError(t, err)
	require.False(t, listed)
	// With the session's token: done.
	code, body := b.post(t, console.Path+"optouts", withTok)
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "added to the opt-out list")
	listed, err = b.optOuts.Has(t.Context(), "+64211234567")
	require.NoError(t, err)
	require.True(t, listed)
	code, body = b.get(t, console.Path+"optouts?number=%2B64211234567")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "is on the opt-out list")
	code, _ = b.post(t, console.Path+"optouts", url.Values{"action": {"remove"}, "number": {"+64211234567"}, "csrf": {tok}})
	require.Equal(t, http.StatusOK, code)
	listed, err = b.optOuts.Has(t.Context(), "+64211234567")
	require.NoError(t, err)
	require.False(t, listed)
}

func TestOverviewShowsBacklogAndProcessState(t *testing.T) {
	b := newBench(t, false)
	for _, id := range []string{"j1", "j2", "j3"} {
		b.publishJob(t, "bulk", id)
	}
	code, body := b.get(t, console.Path)
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, `(?s)data-lane="bulk">.*?class="n backlog">3<`, body)
	require.Regexp(t, `(?s)data-lane="priority">.*?class="n backlog">0<`, body)
	require.Contains(t, body, `id="circuit">open<`)
	require.Contains(t, body, "gateway_unavailable: 503 x5")
	require.Regexp(t, `id="inflight">7<small> / 48`, body)
	require.Regexp(t, `id="replicas">2<`, body) // account 100/s, ceiling 50/s
	require.Contains(t, body, "<svg")
	require.NotContains(t, body, "64211234567")
}

func TestCampaignPauseResumeCancel(t *testing.T) {
	b := newBench(t, false)
	p, err := campaign.NewPublisher(campaign.PublisherConfig{Names: b.env.Names, Store: b.campaigns, Ledger: b.led, PricePerSegment: 0.05},
		b.env.JS, zaptest.NewLogger(t))
	require.NoError(t, err)
	file := "destination,name\n+64211234501,Ann\n+64211234502,Bob\n0211234503,Cat\n"
	_, err = p.Send(t.Context(), campaign.Spec{Name: "spring", Lane: "bulk", Template: "Hi {{.name}}", File: "r.csv"}, strings.NewReader(file))
	require.NoError(t, err)

	code, body := b.get(t, console.Path+"campaigns")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `href="/console/campaigns/spring"`)
	code, body = b.get(t, console.Path+"campaigns/spring")
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, `id="published">2<`, body)
	require.Contains(t, body, "Bad rows (1)")
	// The estimate the send stored: 3 rows, 2 jobs, 1 bad row, 2 segments at 0.05.
	require.Contains(t, body, `id="est-rows">3 (2 jobs, 1 bad rows)<`)
	require.Contains(t, body, `id="est-cost">2 segments × 0.05 = 0.10<`)
	require.NotContains(t, body, "6421123450") // no numbers
	tok := csrfInput.FindStringSubmatch(body)[1]

	code, body = b.post(t, console.Path+"campaigns/spring/pause", url.Values{"csrf": {tok}})
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "paused: its 2 unsent jobs stay stored")
	rec, _, err := b.campaigns.Get(t.Context(), "spring")
	require.NoError(t, err)
	require.Equal(t, campaign.StatePaused, rec.State)
	// The outcome is shown once, and a link cannot put words on the page.
	code, body = b.get(t, console.Path+"campaigns/spring?flash=call+0800+SCAM&error=x")
	require.Equal(t, http.StatusOK, code)
	require.NotContains(t, body, "SCAM")
	require.NotContains(t, body, `id="flash"`)
	require.NotContains(t, body, `id="error"`)

	code, _ = b.post(t, console.Path+"campaigns/spring/resume", url.Values{"csrf": {tok}})
	require.Equal(t, http.StatusOK, code)
	rec, _, err = b.campaigns.Get(t.Context(), "spring")
	require.NoError(t, err)
	require.Equal(t, campaign.StateRunning, rec.State)

	code, _ = b.post(t, console.Path+"campaigns/spring/cancel", url.Values{"csrf": {tok}})
	require.Equal(t, http.StatusOK, code)
	// A cancelled campaign cannot be resumed: the page says why.
	code, body = b.post(t, console.Path+"campaigns/spring/resume", url.Values{"csrf": {tok}})
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "it is cancelled")
	code, _ = b.post(t, console.Path+"campaigns/nope/pause", url.Values{"csrf": {tok}})
	require.Equal(t, http.StatusNotFound, code)
}

func TestDeadLettersReplayAfterDryRun(t *testing.T) {
	b := newBench(t, false)
	pub := events.New(b.env.JS, b.env.Names)
	for i, id := range []string{"d1", "d2", "d3", "d4"} {
		data, _ := json.Marshal(job.Job{ID: id, Destination: "+64211234567", Content: "x", Lane: "default"})
		reason := events.ReasonRetriesExhausted
		if i == 3 {
			reason = events.ReasonGatewayRejected
		}
		require.NoError(t, pub.DeadLetter(t.Context(), events.Dead{Lane: "default", JobID: id, Subject: b.env.Names.Send("default"),
			Data: data, StreamSeq: uint64(i + 1), Reason: reason, Error: "destination +64211234567 refused\x1b[31m"}))
	}
	code, body := b.get(t, console.Path+"dead")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `id="deadtotal">4<`)
	require.Regexp(t, `(?s)id="byreason".*retries_exhausted</a></td><td class="n">0</td><td class="n">3</td><td class="n">0</td><td class="n">3</td>`, body)
	require.Regexp(t, `(?s)id="byreason".*gateway_rejected</a></td><td class="n">0</td><td class="n">1</td><td class="n">0</td><td class="n">1</td>`, body)
	require.Contains(t, body, `\x1b[31m`) // escaped, not raw
	require.NotContains(t, body, "\x1b")
	require.Contains(t, body, `id="nextpage"`) // page size 3
	require.NotContains(t, body, "64211234567")
	code, body = b.get(t, console.Path+"dead?reason=gateway_rejected")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, ">d4<")
	require.NotContains(t, body, ">d1<")
	tok := csrfInput.FindStringSubmatch(body)[1]

	// The dry run lists and changes nothing.
	code, body = b.post(t, console.Path+"dead/replay", url.Values{"csrf": {tok}, "seq": {"1", "2"}})
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "Dry run: these 2 dead letters")
	require.Contains(t, body, `name="seqs" value="1 2"`)
	info, err := b.env.JS.Stream(t.Context(), b.env.Names.JobsStream())
	require.NoError(t, err)
	require.Zero(t, info.CachedInfo().State.Msgs)

	// Confirmed: both replayed once, even when the confirmation is sent twice.
	for range 2 {
		code, body = b.post(t, console.Path+"dead/replay", url.Values{"csrf": {tok}, "seqs": {"1 2"}, "confirm": {"yes"}})
		require.Equal(t, http.StatusOK, code, body)
	}
	s, err := b.env.JS.Stream(t.Context(), b.env.Names.JobsStream())
	require.NoError(t, err)
	si, err := s.Info(t.Context())
	require.NoError(t, err)
	require.Equal(t, uint64(2), si.State.Msgs)
	m, err := s.GetMsg(t.Context(), si.State.FirstSeq)
	require.NoError(t, err)
	require.Equal(t, "d1:replay:1", m.Header.Get(jetstream.MsgIDHeader))
	code, body = b.get(t, console.Path+"dead")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `id="deadtotal">2<`)
}

func TestJobPageAndRedaction(t *testing.T) {
	for _, redact := range []bool{false, true} {
		b := newBench(t, redact)
		e := ledger.FromJob(&job.Job{ID: "job-1", Destination: "+64211234567", Lane: "priority", Campaign: "spring"}, time.Now())
		e.Set(job.StatusFailed, time.Now(), "", "gateway said \x07 no to +64211234567")
		_, err := b.led.Create(t.Context(), e)
		require.NoError(t, err)
		code, body := b.get(t, console.Path+"jobs/job-1")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, `id="jobstatus">failed<`)
		require.Contains(t, body, `\x07`)
		if redact {
			require.NotContains(t, body, "211234567")
			require.Contains(t, body, "redaction on")
		} else {
			require.Contains(t, body, "&#43;64211234567") // html/template escapes the plus
		}
		code, _ = b.get(t, console.Path+"jobs/nope")
		require.Equal(t, http.StatusNotFound, code)
	}
}

func TestLiveEventsFiltered(t *testing.T) {
	b := newBench(t, false)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.srv.URL+console.Path+"events/stream?lane=bulk", nil)
	require.NoError(t, err)
	req.SetBasicAuth(user, password)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	rd := bufio.NewReader(res.Body)
	// The first comment line says the subscription is in place.
	line, err := rd.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, "jetsms live events")
	pub := events.New(b.env.JS, b.env.Names)
	for _, ev := range []job.Event{
		{JobID: "other", Status: job.StatusAccepted, Lane: "default", Destination: "+64211234567", At: time.Now()},
		{JobID: "mine", Status: job.StatusAccepted, Lane: "bulk", Destination: "+64211234567", At: time.Now()},
	} {
		require.NoError(t, pub.Status(t.Context(), ev))
	}
	for {
		line, err = rd.ReadString('\n')
		require.NoError(t, err)
		if strings.HasPrefix(line, "data: ") {
			break
		}
	}
	require.Contains(t, line, `"job":"mine"`)
	require.NotContains(t, line, "64211234567")
}

// pre is the content of a <pre> block: an event's JSON on the job page.
var pre = regexp.MustCompile(`(?s)<pre>(.*?)</pre>`)

// TestJobPageEvents applies a receipt to a job with resolve.Apply, which publishes
// the status event and then writes the ledger: the job page's event for that
// step, rebuilt from the ledger, is the event the status stream stored, on its
// subject and with its Nats-Msg-Id; the worker's own states publish none.
func TestJobPageEvents(t *testing.T) {
	for _, redact := range []bool{false, true} {
		b := newBench(t, redact)
		ctx := t.Context()
		now := time.Now()
		e := ledger.FromJob(&job.Job{ID: "job-2", Destination: "+64211234567", Lane: "bulk", Segments: 1,
			Metadata: map[string]string{"order": "A-1"}}, now)
		e.Set(ledger.StateSubmitting, now, "", "")
		e.Attempts = 1
		e.AddMessageID("m-2")
		require.True(t, e.Advance(job.StatusAccepted, now, "queued at the gateway"))
		e.History[len(e.History)-1].MessageID = "m-2"
		_, err := b.led.Create(ctx, e)
		require.NoError(t, err)
		pub := events.New(b.env.JS, b.env.Names)
		moved, err := resolve.Apply(ctx, b.led, pub, "job-2", resolve.Change{MessageID: "m-2", Status: job.StatusReceived,
			Detail: "delivered to +64211234567", At: now.Add(time.Second)})
		require.NoError(t, err)
		require.True(t, moved)

		code, body := b.get(t, console.Path+"jobs/job-2")
		require.Equal(t, http.StatusOK, code)
		blocks := pre.FindAllStringSubmatch(body, -1)
		require.Len(t, blocks, 2, "received and accepted; submitting and queued publish nothing")
		require.Contains(t, body, "<code>"+b.env.Names.Status("received")+"</code> <code>job-2:received</code>")
		require.Contains(t, body, "<code>"+b.env.Names.Status("accepted")+"</code> <code>job-2:accepted</code>")

		var shown job.Event
		require.NoError(t, json.Unmarshal([]byte(html.UnescapeString(blocks[0][1])), &shown))
		s, err := b.env.JS.Stream(ctx, b.env.Names.StatusStream())
		require.NoError(t, err)
		m, err := s.GetLastMsgForSubject(ctx, b.env.Names.Status("received"))
		require.NoError(t, err)
		require.Equal(t, "job-2:received", m.Header.Get(jetstream.MsgIDHeader))
		var stored job.Event
		require.NoError(t, json.Unmarshal(m.Data, &stored))
		if redact {
			require.NotContains(t, body, "211234567")
			require.Equal(t, "••• (log.redact)", shown.Destination)
			require.Equal(t, "delivered to •••", shown.Detail)
			shown.Destination, shown.Detail = stored.Destination, stored.Detail
		}
		require.Equal(t, stored, shown)
	}
}
