package browser

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// waitFor bounds every wait for something the page or the process should do; it
// is a failure timeout, not a pace.
const waitFor = 90 * time.Second

// proc is a running `jetsms run` whose JSON log lines are kept.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []map[string]any
	raw   []string
	added chan struct{}
	done  chan struct{}
}

func startJetsms(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(jetsmsBin, append([]string{"run", "--log.format", "json", "--log.level", "info"}, args...)...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = io.Discard
	p := &proc{cmd: cmd, added: make(chan struct{}), done: make(chan struct{})}
	require.NoError(t, cmd.Start())
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := map[string]any{}
			_ = json.Unmarshal(sc.Bytes(), &line)
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.raw = append(p.raw, sc.Text())
			close(p.added)
			p.added = make(chan struct{})
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("jetsms log:\n%s", strings.Join(p.raw, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// waitLog returns the first log line with message msg.
func (p *proc) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	deadline := time.After(waitFor)
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if p.lines[seen]["msg"] == msg {
				l := p.lines[seen]
				p.mu.Unlock()
				return l
			}
		}
		added := p.added
		p.mu.Unlock()
		select {
		case <-added:
		case <-p.done:
			t.Fatalf("jetsms exited before logging %q", msg)
		case <-deadline:
			t.Fatalf("jetsms did not log %q within %s", msg, waitFor)
		}
	}
}

// statusLog keeps every status event the test sees, for waiting on them.
type statusLog struct {
	mu     sync.Mutex
	events []job.Event
	added  chan struct{}
}

func (s *statusLog) add(m *nats.Msg) {
	var ev job.Event
	if json.Unmarshal(m.Data, &ev) != nil {
		return
	}
	s.mu.Lock()
	s.events = append(s.events, ev)
	close(s.added)
	s.added = make(chan struct{})
	s.mu.Unlock()
}

// waitCount waits until match accepts at least n events and returns how many it
// accepts then.
func (s *statusLog) waitCount(t *testing.T, n int, what string, match func(job.Event) bool) int {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		s.mu.Lock()
		c := 0
		for _, ev := range s.events {
			if match(ev) {
				c++
			}
		}
		added := s.added
		s.mu.Unlock()
		if c >= n {
			return c
		}
		select {
		case <-added:
		case <-deadline:
			t.Fatalf("%s: %d of %d events within %s", what, c, n, waitFor)
		}
	}
}

func (s *statusLog) count(match func(job.Event) bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := 0
	for _, ev := range s.events {
		if match(ev) {
			c++
		}
	}
	return c
}

// shots is where screenshots go: CONSOLE_SCREENSHOTS, else a temporary directory.
func shots(t *testing.T) string {
	if dir := os.Getenv("CONSOLE_SCREENSHOTS"); dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		return dir
	}
	return t.TempDir()
}

// textOf reads the text of the first element matching sel, "" when there is
// none (the page may be reloading).
func textOf(ctx context.Context, sel string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)))
	return strings.TrimSpace(s)
}

// waitText waits until the text of sel satisfies ok, and returns it.
func waitText(t *testing.T, ctx context.Context, sel, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		s := textOf(ctx, sel)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s reads %q after %s", what, sel, s, waitFor)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(200 * time.Millisecond): // polling the DOM; not a pace the test depends on
		}
	}
}

func number(s string) int {
	n, err := strconv.Atoi(strings.ReplaceAll(s, ",", ""))
	if err != nil {
		return -1
	}
	return n
}

func TestConsoleInBrowser(t *testing.T) {
	if chromium == "" {
		t.Skip("SKIPPED: no Chromium found (install the Debian package chromium, or set CHROMIUM=/path/to/chrome)")
	}
	store := t.TempDir()
	p := startJetsms(t,
		"--nats.embedded.store_dir", store, "--nats.embedded.listen", "127.0.0.1:0",
		"--admin.listen", "127.0.0.1:0", "--callbacks.listen", "127.0.0.1:0", "--sandbox.listen", "127.0.0.1:0",
		"--sandbox.dlr_delay", "50ms", "--sandbox.dlr_mix", "received=1",
		// Slow enough that a published backlog stays to be seen, and that a
		// campaign is still going out when it is paused.
		"--rate.per_second", "4", "--worker.concurrency", "2")
	consoleLine := p.waitLog(t, "console")
	natsLine := p.waitLog(t, "embedded NATS started")
	p.waitLog(t, "jetsms running")
	consoleURL := consoleLine["url"].(string)
	require.True(t, strings.HasSuffix(consoleURL, "/console/"), consoleURL)
	base := strings.TrimSuffix(consoleURL, "/console/") // the admin listener's origin
	pwFile, _ := consoleLine["password_file"].(string)
	require.Equal(t, filepath.Join(store, "admin.password"), pwFile, "the generated password is in the data directory")
	info, err := os.Stat(pwFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	pw, err := os.ReadFile(pwFile)
	require.NoError(t, err)
	user, password := consoleLine["user"].(string), strings.TrimSpace(string(pw))

	// The test's own NATS client, with the embedded server's generated password.
	ctx := t.Context()
	nc, err := broker.Connect(ctx, broker.ConnectConfig{URL: natsLine["url"].(string), Name: "browser-test", LocalCredentialsDir: store}, nil)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	names, err := subjects.New(subjects.PrefixDefault)
	require.NoError(t, err)
	seen := &statusLog{added: make(chan struct{})}
	sub, err := nc.Subscribe(names.StatusAll(), seen.add)
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(t, nc.Flush())

	// One Chromium for every subtest.
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true))
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	_, err = chromedp.Call(bctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	_, err = chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}})
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(bctx, chromedp.EmulateViewport(1280, 800)))
	// Confirmation dialogs are accepted, as an operator who means it would.
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	dialogsDone := make(chan struct{})
	go func() {
		defer close(dialogsDone)
		for _, err := range dialogs {
			if err != nil {
				return
			}
			if _, err := chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil {
				return
			}
		}
	}()
	defer func() { cancelBrowser(); <-dialogsDone }()
	dir := shots(t)
	shot := func(t *testing.T, name string) {
		t.Helper()
		buf, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644))
	}
	open := func(t *testing.T, path, ready string) {
		t.Helper()
		octx, cancel := context.WithTimeout(bctx, waitFor)
		defer cancel()
		require.NoError(t, chromedp.Do(octx, chromedp.Navigate(base+path)), "open %s", path)
		require.NoError(t, chromedp.Do(octx, chromedp.WaitVisible(chromedp.CSS(ready))), "open %s: wait for %s; page reads %q", path, ready, textOf(bctx, "body"))
	}
	t.Logf("screenshots in %s", dir)

	t.Run("overview shows the published backlog", func(t *testing.T) {
		for i := range 60 {
			id := fmt.Sprintf("bulk-%02d", i)
			data, err := json.Marshal(job.Job{ID: id, Destination: fmt.Sprintf("+642100%05d", i), Content: "hi", Lane: "bulk"})
			require.NoError(t, err)
			_, err = js.PublishMsg(ctx, &nats.Msg{Subject: names.Send("bulk"), Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}})
			require.NoError(t, err)
		}
		open(t, "/console/", "#lanes")
		// The backlog is read from the consumer (cached up to 5s): it shows jobs
		// of the 60 published and not yet sent.
		got := waitText(t, bctx, `tr[data-lane="bulk"] .backlog`, "bulk backlog", func(s string) bool { n := number(s); return n > 0 && n <= 60 })
		t.Logf("bulk backlog shown: %s", got)
		require.Equal(t, "closed", textOf(bctx, "#circuit"))
		seen.waitCount(t, 4, "bulk jobs sent", func(ev job.Event) bool { return ev.Status == job.StatusAccepted && ev.Lane == "bulk" })
		open(t, "/console/", "#lanes") // the chart has points now
		shot(t, "overview")
	})

	t.Run("campaign progress moves and pause holds it", func(t *testing.T) {
		led, err := ledger.Open(ctx, js, ledger.Config{Bucket: names.LedgerBucket()})
		require.NoError(t, err)
		campaigns, err := campaign.Open(ctx, js, campaign.StoreConfig{Bucket: names.CampaignBucket()})
		require.NoError(t, err)
		pub, err := campaign.NewPublisher(campaign.PublisherConfig{Names: names, Store: campaigns, Ledger: led}, js, zaptest.NewLogger(t))
		require.NoError(t, err)
		var file strings.Builder
		file.WriteString("destination,name\n")
		for i := range 200 {
			fmt.Fprintf(&file, "+642200%05d,Person %d\n", i, i)
		}
		file.WriteString("021123,Bad Row\n")
		_, err = pub.Send(ctx, campaign.Spec{Name: "spring", Lane: "default", Template: "Hi {{.name}}", File: "spring.csv"}, strings.NewReader(file.String()))
		require.NoError(t, err)

		open(t, "/console/campaigns", "#campaigns")
		shot(t, "campaigns")
		open(t, "/console/campaigns/spring", "#sent")
		require.Equal(t, "200", textOf(bctx, "#published"))
		// The estimate the send stored in the record.
		require.Equal(t, "201 (200 jobs, 1 bad rows)", textOf(bctx, "#est-rows"))
		first := number(textOf(bctx, "#sent"))
		// The page refreshes itself: the count moves without a click.
		waitText(t, bctx, "#sent", "campaign sent count", func(s string) bool { return number(s) > first })
		shot(t, "campaign")

		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#pause"))))
		waitText(t, bctx, "#state", "campaign state", func(s string) bool { return s == "paused" })
		require.Contains(t, textOf(bctx, "#flash"), "paused")
		rec, _, err := campaigns.Get(ctx, "spring")
		require.NoError(t, err)
		require.Equal(t, campaign.StatePaused, rec.State)
		require.Positive(t, rec.Pending())

		// Held: once jobs in hand at the pause are through (the next bulk sends),
		// further sends are all of other lanes.
		isBulk := func(ev job.Event) bool { return ev.Status == job.StatusAccepted && ev.Lane == "bulk" }
		isSpring := func(ev job.Event) bool { return ev.Status == job.StatusAccepted && ev.Campaign == "spring" }
		bulk := seen.count(isBulk)
		seen.waitCount(t, bulk+3, "bulk jobs sent after the pause", isBulk)
		before := seen.count(isSpring)
		seen.waitCount(t, bulk+9, "more bulk jobs sent while paused", isBulk)
		require.Equal(t, before, seen.count(isSpring), "a paused campaign's job was sent")
	})

	t.Run("an action without credentials or session token is refused", func(t *testing.T) {
		// In the browser: the resume form with its token replaced.
		open(t, "/console/campaigns/spring", "#resume")
		require.NoError(t, chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](
			`(function(){var f=document.querySelector("#resume").form; f.querySelector("[name=csrf]").value="forged"; f.submit();})()`)))
		waitText(t, bctx, "body", "refused page", func(s string) bool { return strings.Contains(s, "forbidden") })
		// Without credentials, and with them but no token or cookie.
		for _, withAuth := range []bool{false, true} {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/console/campaigns/spring/resume", strings.NewReader("csrf=x"))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if withAuth {
				req.SetBasicAuth(user, password)
			}
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			want := http.StatusUnauthorized
			if withAuth {
				want = http.StatusForbidden
			}
			require.Equal(t, want, res.StatusCode)
		}
		campaigns, err := campaign.Open(ctx, js, campaign.StoreConfig{Bucket: names.CampaignBucket()})
		require.NoError(t, err)
		rec, _, err := campaigns.Get(ctx, "spring")
		require.NoError(t, err)
		require.Equal(t, campaign.StatePaused, rec.State, "a refused resume changed the campaign")
	})

	t.Run("a dead letter replayed from the page is sent once", func(t *testing.T) {
		data, err := json.Marshal(job.Job{ID: "dl-1", Destination: "+64230000001", Content: "back again", Lane: "priority"})
		require.NoError(t, err)
		require.NoError(t, events.New(js, names).DeadLetter(ctx, events.Dead{Lane: "priority", JobID: "dl-1",
			Subject: names.Send("priority"), Data: data, StreamSeq: 1, Reason: events.ReasonRetriesExhausted,
			Error: "retries_exhausted: 5 attempts, last: 503"}))
		open(t, "/console/dead", "#dead")
		require.Equal(t, "1", textOf(bctx, "#deadtotal"))
		shot(t, "dead")
		require.NoError(t, chromedp.Do(bctx,
			chromedp.Click(chromedp.CSS(`#dead input[name=seq]`)),
			chromedp.Click(chromedp.CSS("#dryrun")),
			chromedp.WaitVisible(chromedp.CSS("#replaylist"))))
		require.Contains(t, textOf(bctx, "#replaylist"), "dl-1")
		shot(t, "replay")
		require.Zero(t, seen.count(func(ev job.Event) bool { return ev.JobID == "dl-1" }), "the dry run sent it")
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#replay"))))
		waitText(t, bctx, "#flash", "replay result", func(s string) bool { return strings.Contains(s, "1 dead letters replayed") })
		seen.waitCount(t, 1, "the replayed job's final event", func(ev job.Event) bool { return ev.JobID == "dl-1" && ev.Final })
		require.Equal(t, 1, seen.count(func(ev job.Event) bool { return ev.JobID == "dl-1" && ev.Status == job.StatusAccepted }))
		require.Equal(t, "0", textOf(bctx, "#deadtotal"))

		open(t, "/console/jobs/dl-1", "#history")
		require.Equal(t, "received", textOf(bctx, "#jobstatus"))
		// Its events, rebuilt from the ledger's history, with their Nats-Msg-Ids.
		require.Contains(t, textOf(bctx, "#events"), "dl-1:accepted")
		require.Contains(t, textOf(bctx, "#events"), "dl-1:received")
		require.NoError(t, chromedp.Do(bctx, chromedp.Click(chromedp.CSS("#askgateway")), chromedp.WaitVisible(chromedp.CSS("#gateway"))))
		// jetsms run redacts by default (log.redact): the gateway's record is shown
		// without the number and the text.
		require.Contains(t, textOf(bctx, "#gateway"), "received")
		require.Contains(t, textOf(bctx, "#gateway"), "(log.redact)")
		require.NotContains(t, textOf(bctx, "#gateway"), "back again")
		shot(t, "job")
	})

	t.Run("live events and opt-outs pages", func(t *testing.T) {
		open(t, "/console/events", "#live")
		// Jobs are still going out (bulk): rows arrive over the event stream.
		waitText(t, bctx, "#live tbody", "live rows", func(s string) bool { return strings.Contains(s, "accepted") })
		shot(t, "events")
		open(t, "/console/optouts?number=%2B64230000001", "#optresult")
		require.Contains(t, textOf(bctx, "#optresult"), "is not on the opt-out list")
		shot(t, "optouts")
		// The overview again, with the run's history in its chart.
		open(t, "/console/", "#lanes")
		shot(t, "overview")
	})
}
