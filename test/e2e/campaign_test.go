package e2e

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/ratelimit"
)

// The campaign tests' sizes and pace. The worker is paced by an adaptive limiter,
// as internal/app makes it, so that a fast machine cannot send a campaign between two
// looks of the test; under -race on 2 cores the stack itself is slower (600 to
// 900 jobs a second). `make test` runs the small sizes, which prove the same
// properties; the full sizes (-e2e.large, run by `make chaos`) take about two and
// a half minutes.
const (
	campaignRows      = 50_000
	campaignRowsSmall = 2_000
	cancelRows        = 10_000
	cancelRowsSmall   = 2_000
	campaignRate      = 2_500 // jobs a second
	campaignBurst     = 20
)

// large runs the campaign tests and TestReceipts' many-jobs case at their full
// sizes.
var large = flag.Bool("e2e.large", false, "run the campaign tests and the receipts of many jobs at their full sizes (50,000, 10,000 and 5,000)")

// inflightGrace bounds how long after the gate sees a pause or a cancel a
// submission already past the worker's campaign check may reach the gateway
// (under -race on a busy 2-core machine it took up to 0.7 s). Jobs of a paused
// campaign are held back for 1 s, then 2 s, 4 s...: every job held in the first
// seconds of the pause comes back at least once between inflightGrace and
// pauseWatch, when nothing of the campaign may arrive; and at most one
// submission per slot may arrive at all.
const inflightGrace = 2 * time.Second

// pauseWatch is how long the test watches the gateway while the campaign is
// paused.
const pauseWatch = 5 * time.Second

// arrivals counts the messages the simulator accepts, by destination and by the
// campaign their job id names, and the arrivals of a campaign after its cut-off
// (a pause or a cancel).
type arrivals struct {
	watched
	byDest     map[string]int
	byCampaign map[string]int
	other      int
	cuts       map[string]*cutoff
}

// cutoff is a pause or cancel of a campaign: when the test asked for it, when the
// gate saw it (zero until then), and the campaign's arrivals since it was asked.
type cutoff struct {
	asked, seen time.Time
	late        []arrival
}

type arrival struct {
	jobID, dest string
	at          time.Time
}

func newArrivals() *arrivals {
	a := &arrivals{byDest: map[string]int{}, byCampaign: map[string]int{}, cuts: map[string]*cutoff{}}
	a.init()
	return a
}

// accept is the simulator's OnAccept. Times are taken under the lock, so they
// order arrivals and cut-offs as the counts do.
func (a *arrivals) accept(m gwsim.Message) {
	name, _, ok := campaign.ParseJobID(m.Reference)
	a.update(func() {
		a.byDest[m.Destination]++
		if !ok {
			a.other++
			return
		}
		a.byCampaign[name]++
		if c := a.cuts[name]; c != nil {
			c.late = append(c.late, arrival{jobID: m.Reference, dest: m.Destination, at: time.Now()})
		}
	})
}

func (a *arrivals) of(name string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byCampaign[name]
}

func (a *arrivals) to(dest string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byDest[dest]
}

// cut marks that the test asks for the campaign's pause or cancel now, and
// returns how many of its messages had arrived.
func (a *arrivals) cut(name string) int {
	var n int
	a.update(func() {
		a.cuts[name] = &cutoff{asked: time.Now()}
		n = a.byCampaign[name]
	})
	return n
}

// seen marks that the gate has the campaign's new state, and returns how many of
// its messages had arrived.
func (a *arrivals) seen(name string) int {
	var n int
	a.update(func() {
		a.cuts[name].seen = time.Now()
		n = a.byCampaign[name]
	})
	return n
}

// late returns the campaign's arrivals since it was cut off: all of them, and
// those after the gate saw the cut-off.
func (a *arrivals) late(name string) (sinceAsked, sinceSeen []arrival, c cutoff) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c = *a.cuts[name]
	sinceAsked = slices.Clone(c.late)
	for _, l := range c.late {
		if !c.seen.IsZero() && l.at.After(c.seen) {
			sinceSeen = append(sinceSeen, l)
		}
	}
	return sinceAsked, sinceSeen, c
}

// lateSinceSeen counts the campaign's arrivals after the gate saw its cut-off;
// the caller holds the lock.
func (a *arrivals) lateSinceSeen(name string) int {
	c := a.cuts[name]
	if c == nil || c.seen.IsZero() {
		return 0
	}
	n := 0
	for _, l := range c.late {
		if l.at.After(c.seen) {
			n++
		}
	}
	return n
}

// watchCut watches the campaign's arrivals until the time until, failing at once
// when more than max arrived after the gate saw its cut-off.
func (a *arrivals) watchCut(t *testing.T, name string, until time.Time, max int) {
	t.Helper()
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	for {
		a.mu.Lock()
		n, changed := a.lateSinceSeen(name), a.changed
		a.mu.Unlock()
		if n > max {
			_, since, c := a.late(name)
			t.Fatalf("campaign %s: %d messages reached the gateway after the gate saw it stopped, more than the %d submissions "+
				"that can be in flight; the first: %s", name, n, max, describeLate(since, c.seen))
		}
		select {
		case <-changed:
		case <-timer.C:
			return
		}
	}
}

func describeLate(l []arrival, since time.Time) string {
	var out []string
	for _, x := range l[:min(len(l), 10)] {
		out = append(out, fmt.Sprintf("%s (%s) %+dms", x.jobID, x.dest, x.at.Sub(since).Milliseconds()))
	}
	return fmt.Sprint(out)
}

// checkInFlight fails when an arrival after the gate saw the cut-off is more than
// one submission per slot, or came later than a submission in flight can, and
// returns how many arrived since the cut-off was asked for and since it was seen,
// and the latest of those after it was seen.
func checkInFlight(t *testing.T, a *arrivals, name string) (asked, seen int, latest time.Duration) {
	t.Helper()
	sinceAsked, sinceSeen, c := a.late(name)
	require.False(t, c.seen.IsZero(), "the gate saw the cut-off of %s", name)
	var p problems
	if len(sinceSeen) > concurrency {
		p.addf("%d messages of %s reached the gateway after the gate saw it stopped; at most %d submissions are in flight",
			len(sinceSeen), name, concurrency)
	}
	for _, l := range sinceSeen {
		d := l.at.Sub(c.seen)
		latest = max(latest, d)
		if d > inflightGrace {
			p.addf("job %s (%s) reached the gateway %s after the gate saw %s stopped, later than a submission in flight "+
				"(%s): a job taken after the pause or cancel was sent", l.jobID, l.dest, d.Round(time.Millisecond), name, inflightGrace)
		}
	}
	p.check(t)
	return len(sinceAsked), len(sinceSeen), latest
}

// writeRecipients writes a recipients file of n rows in the test's temporary
// directory: row i (from 1) goes to fmt.Sprintf(destFmt, i).
func writeRecipients(t *testing.T, n int, destFmt string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "recipients.csv")
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	_, err = w.WriteString("destination,name\n")
	require.NoError(t, err)
	for i := 1; i <= n; i++ {
		_, err = fmt.Fprintf(w, destFmt+",Person %d\n", i, i)
		require.NoError(t, err)
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return path
}

// sendResult is what a Send returned, and when.
type sendResult struct {
	res  campaign.Result
	err  error
	took time.Duration
}

// sendCampaign publishes the file as the campaign through the campaign publisher,
// on the bulk lane, in the background.
func (s *stack) sendCampaign(t *testing.T, name, path string) <-chan sendResult {
	t.Helper()
	pub, err := campaign.NewPublisher(campaign.PublisherConfig{Names: s.names, Store: s.campaigns, Ledger: s.ledger},
		s.env.JS, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	done := make(chan sendResult, 1)
	finished := make(chan struct{})
	t.Cleanup(func() { cancel(); <-finished })
	go func() {
		defer close(finished)
		f, err := os.Open(path)
		if err != nil {
			done <- sendResult{err: err}
			return
		}
		defer f.Close()
		start := time.Now()
		res, err := pub.Send(ctx, campaign.Spec{Name: name, Lane: "bulk", Template: "Hi {{.name}}", File: path}, f)
		done <- sendResult{res: res, err: err, took: time.Since(start)}
	}()
	return done
}

// awaitSent waits for the Send and checks that it published every row.
func awaitSent(t *testing.T, ch <-chan sendResult, rows int) sendResult {
	t.Helper()
	select {
	case r := <-ch:
		require.NoError(t, r.err, "campaign send")
		require.Equal(t, rows, r.res.Rows, "rows read")
		require.Equal(t, rows, r.res.Published, "jobs published")
		require.Zero(t, r.res.BadRows)
		require.False(t, r.res.Stopped)
		return r
	case <-time.After(2 * time.Minute):
		t.Fatal("the campaign was not published within 2 minutes")
		return sendResult{}
	}
}

// awaitGate waits until the gate sees the campaign in a state cond accepts.
func (s *stack) awaitGate(t *testing.T, name string, timeout time.Duration, what string, cond func(campaign.State) bool) campaign.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	st, err := s.gate.WaitFor(ctx, name, cond)
	require.NoError(t, err, "campaign %s: waiting %s for %s; the gate has it %q", name, timeout, what, st)
	return st
}

// awaitRecord waits until the campaign's record satisfies cond, and returns it.
func (s *stack) awaitRecord(t *testing.T, name string, timeout time.Duration, what string, cond func(*campaign.Record) bool) *campaign.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	recs, err := s.campaigns.Watch(ctx, name)
	require.NoError(t, err)
	var last *campaign.Record
	for rec := range recs {
		if last = rec; cond(rec) {
			return rec
		}
	}
	t.Fatalf("campaign %s: timed out after %s waiting for %s; the record is %+v", name, timeout, what, last)
	return nil
}

// cutAt returns the campaign's count of arrivals at which the test acts.
func cutAt(total int, fraction float64) int { return int(float64(total) * fraction) }

// startCampaign publishes a campaign of n rows to destinations destFmt, waits
// until every row is published (the worker sends nothing before, see
// setupCampaigns), then lets the worker send; it returns when sending began.
func startCampaign(t *testing.T, a *arrivals, name, destFmt string, n int) (*stack, time.Time) {
	t.Helper()
	s, send := setupCampaigns(t, a)
	path := writeRecipients(t, n, destFmt)
	r := awaitSent(t, s.sendCampaign(t, name, path), n)
	t.Logf("publishing %d rows took %s", n, r.took.Round(time.Millisecond))
	rec := s.awaitRecord(t, name, 10*time.Second, "publishing over", func(r *campaign.Record) bool { return r.PublishingOver() })
	require.Equal(t, campaign.StateRunning, rec.State)
	start := time.Now()
	send()
	return s, start
}

// sendLimit bounds a wait for rows messages that keep arriving: 100 a second at
// least (a machine slower than that is stalled, which the waits' 20 s guard
// against no progress reports first), and never under 2 minutes. The bound is
// there to end a wait that progresses without end; on a busy machine the full
// sizes of make chaos run at a few hundred a second.
func sendLimit(rows int) time.Duration {
	return max(2*time.Minute, time.Duration(rows)*10*time.Millisecond)
}

// cutOff waits until fraction of the campaign's n messages reached the gateway,
// then changes its state to want with change (the store's Pause or Cancel, named
// by verb) and waits until the gate sees it. It returns the arrivals when the
// change was asked for, and the cut-off's times.
func cutOff(t *testing.T, s *stack, a *arrivals, name string, n int, fraction float64, verb string, want campaign.State,
	change func(context.Context, string) (*campaign.Record, error)) (int, cutoff) {
	t.Helper()
	a.waitProgress(t, 20*time.Second, sendLimit(cutAt(n, fraction)), fmt.Sprintf("%.0f%% of %d messages of %s to arrive", 100*fraction, n, name), func() bool {
		return a.byCampaign[name] >= cutAt(n, fraction)
	})
	seenCh := make(chan struct{})
	go func() {
		defer close(seenCh)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := s.gate.WaitFor(ctx, name, func(st campaign.State) bool { return st == want }); err == nil {
			a.seen(name)
		}
	}()
	at := a.cut(name)
	rec, err := change(context.Background(), name)
	require.NoError(t, err)
	require.Equal(t, want, rec.State)
	select {
	case <-seenCh:
	case <-time.After(10 * time.Second):
		t.Fatalf("the gate did not see the %s within 10s", verb)
	}
	_, _, c := a.late(name)
	return at, c
}

// heldLimiter hands out no token until it is opened, then paces as next does:
// a test holds sending back with it while a campaign is published.
type heldLimiter struct {
	open chan struct{}
	next *ratelimit.Adaptive
}

func (l *heldLimiter) Wait(ctx context.Context, n int) error {
	select {
	case <-l.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	return l.next.Wait(ctx, n)
}

// Slow is the adaptive limiter's, for the worker's 429 and 503 answers.
func (l *heldLimiter) Slow(retryAfter time.Duration) { l.next.Slow(retryAfter) }

// setupCampaigns is the stack with campaigns, the worker paced at campaignRate
// once the returned function is called, and only final receipts (one callback
// per message, to keep the test's cost down). Every accepted message is counted
// in a.
//
// The tests publish the whole file before they let the worker send. Published
// while the worker sends, a new campaign's first Window+CheckpointRows rows
// (10,240) go out in step with the sending, each after a ledger lookup that waits
// behind the worker's traffic (campaign's run.storedBefore, for every row up to
// the record's Progress.Ahead, which a new record sets): 5,000 rows then took a
// minute on a busy 2-core machine instead of a second.
func setupCampaigns(t *testing.T, a *arrivals) (*stack, func()) {
	t.Helper()
	adaptive, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{PerSecond: campaignRate, Burst: campaignBurst})
	require.NoError(t, err)
	lim := &heldLimiter{open: make(chan struct{}), next: adaptive}
	var once sync.Once
	release := func() { once.Do(func() { close(lim.open) }) }
	t.Cleanup(release) // before the worker stops, should the test fail first
	s := setup(t, options{limiter: lim, onAccept: a.accept, sim: gwsim.Config{DLRInterim: []string{}}})
	return s, release
}

// TestCampaign runs campaigns end to end: published from a recipients file
// through the campaign publisher, sent by the worker through the simulator,
// paused, resumed and cancelled through the campaign store, as the gate and the
// tracker of the process (internal/app) see them. It is not parallel: its checks of
// what reaches the gateway after a pause are timed, and it is the heaviest test
// of the package.
func TestCampaign(t *testing.T) {
	t.Run("PauseHoldsEveryJobAndResumeSendsTheRestOnce", func(t *testing.T) {
		n := campaignRowsSmall
		if *large {
			n = campaignRows
		}
		const name = "spring-sale"
		const destFmt = "+6422%07d"
		const priorityJobs = 20
		a := newArrivals()
		s, start := startCampaign(t, a, name, destFmt, n)

		// Pause at 40%.
		atPause, c := cutOff(t, s, a, name, n, 0.4, "pause", campaign.StatePaused, s.campaigns.Pause)
		require.False(t, c.seen.IsZero(), "the gate saw the pause")
		t.Logf("paused after %s at %d of %d arrivals (%.1f%%); the gate saw it %s after it was asked",
			time.Since(start).Round(time.Millisecond), atPause, n, 100*float64(atPause)/float64(n),
			c.seen.Sub(c.asked).Round(time.Microsecond))

		// While paused: priority jobs flow, and nothing of the campaign reaches the
		// gateway but the submissions in flight when the gate saw the pause.
		var prio []testJob
		for i := range priorityJobs {
			prio = append(prio, testJob{Job: job.Job{ID: fmt.Sprintf("otp-%02d", i), Destination: fmt.Sprintf("+6429%07d", i),
				Content: "Your code is " + strconv.Itoa(100000+i)}, lane: "priority"})
		}
		s.publish(t, prio...)
		a.waitFor(t, 20*time.Second, "the priority jobs to reach the gateway while the campaign is paused", func() bool {
			for _, j := range prio {
				if a.byDest[j.Destination] == 0 {
					return false
				}
			}
			return true
		})
		for _, j := range prio {
			s.status.waitStatus(t, j.ID, job.StatusAccepted)
		}
		priorityTook := time.Since(c.seen)
		a.watchCut(t, name, c.seen.Add(pauseWatch), concurrency)
		asked, inflight, latest := checkInFlight(t, a, name)
		pausedAt := a.of(name)
		t.Logf("while paused (watched %s): %d priority jobs accepted within %s; %d campaign messages arrived after the pause was asked, "+
			"%d of them after the gate saw it (in flight, the last %s after), then none; %d of %d sent before the resume",
			time.Since(c.seen).Round(time.Millisecond), priorityJobs, priorityTook.Round(time.Millisecond), asked, inflight,
			latest.Round(time.Millisecond), pausedAt, n)
		require.Less(t, pausedAt, n, "the campaign was paused before it was all sent")

		// Resume: the rest arrive, each destination once.
		resumed := time.Now()
		rec, err := s.campaigns.Resume(context.Background(), name)
		require.NoError(t, err)
		require.Equal(t, campaign.StateRunning, rec.State, "resumed after publishing was over")
		a.waitProgress(t, 20*time.Second, sendLimit(n-pausedAt), fmt.Sprintf("all %d messages of %s to arrive after the resume", n, name), func() bool {
			return a.byCampaign[name] >= n
		})
		t.Logf("the other %d arrived %s after the resume; %s in all", n-pausedAt, time.Since(resumed).Round(time.Millisecond),
			time.Since(start).Round(time.Millisecond))

		allIn := time.Now()
		s.awaitGate(t, name, time.Minute, "done", func(st campaign.State) bool { return st == campaign.StateDone })
		t.Logf("the campaign was done %s after the last arrival", time.Since(allIn).Round(time.Millisecond))
		s.settle(t, time.Minute)

		var p problems
		for i := 1; i <= n; i++ {
			dest := fmt.Sprintf(destFmt, i)
			if got := a.to(dest); got != 1 {
				p.addf("%s (row %d) received %d messages", dest, i, got)
			}
			id := campaign.JobID(name, i)
			evs := s.status.of(id)
			counts := countStatus(evs)
			var finals []job.Status
			for _, ev := range evs {
				if ev.Final {
					finals = append(finals, ev.Status)
				}
				if ev.Campaign != name || ev.Lane != "bulk" || ev.Destination != dest {
					p.addf("%s event of %s: campaign/lane/destination %q/%q/%q", ev.Status, id, ev.Campaign, ev.Lane, ev.Destination)
				}
			}
			if counts[job.StatusAccepted] != 1 || !slices.Equal(finals, []job.Status{job.StatusReceived}) {
				p.addf("job %s: events %v, want one accepted and one final received", id, statusesOf(evs))
			}
		}
		p.check(t)
		a.mu.Lock()
		total, campaignTotal, other := len(a.byDest), a.byCampaign[name], a.other
		a.mu.Unlock()
		require.Equal(t, n, campaignTotal, "messages of %s at the gateway", name)
		require.Equal(t, priorityJobs, other, "other messages at the gateway")
		require.Equal(t, n+priorityJobs, total, "destinations reached")
		require.EqualValues(t, n+priorityJobs, s.sim.Stats().Accepted, "messages the simulator accepted")

		rec, _, err = s.campaigns.Get(context.Background(), name)
		require.NoError(t, err)
		require.Equal(t, campaign.StateDone, rec.State)
		require.True(t, rec.Progress.Complete)
		require.NotNil(t, rec.Ended)
		require.NotNil(t, rec.PausedAt)
		require.NotNil(t, rec.ResumedAt)
		require.Nil(t, rec.CancelledAt)
		require.Equal(t, n, rec.Totals.Rows)
		require.Equal(t, n, rec.Totals.Jobs)
		require.Zero(t, rec.Totals.BadRows)
		require.Equal(t, n, rec.Counts.Sent, "record counts %+v", rec.Counts)
		require.Equal(t, n, rec.Counts.Final, "record counts %+v", rec.Counts)
		require.Equal(t, map[job.Status]int{job.StatusReceived: n}, rec.Counts.ByStatus)
	})

	t.Run("CancelEndsEveryUnsentJobCancelled", func(t *testing.T) {
		n := cancelRowsSmall
		if *large {
			n = cancelRows
		}
		const name = "winter-sale"
		const destFmt = "+6427%07d"
		a := newArrivals()
		// The cancel finds 40% of the file unsent in the jobs stream.
		s, start := startCampaign(t, a, name, destFmt, n)

		// Cancel at 60%.
		atCancel, c := cutOff(t, s, a, name, n, 0.6, "cancel", campaign.StateCancelled, s.campaigns.Cancel)
		t.Logf("cancelled after %s at %d of %d arrivals (%.1f%%); the gate saw it %s after it was asked",
			time.Since(start).Round(time.Millisecond), atCancel, n, 100*float64(atCancel)/float64(n), c.seen.Sub(c.asked).Round(time.Microsecond))

		// Every job ends: sent before the cancel (with its receipt), or cancelled.
		s.status.waitProgress(t, 20*time.Second, sendLimit(n), fmt.Sprintf("a final event for each of the %d jobs of %s", n, name), func() bool {
			return s.status.finals >= n
		})
		s.awaitRecord(t, name, time.Minute, "its end", func(r *campaign.Record) bool { return r.Ended != nil })
		s.settle(t, time.Minute)
		asked, inflight, latest := checkInFlight(t, a, name)

		var p problems
		sentN, cancelledN := 0, 0
		for i := 1; i <= n; i++ {
			dest := fmt.Sprintf(destFmt, i)
			id := campaign.JobID(name, i)
			arrived := a.to(dest)
			evs := s.status.of(id)
			var finals []job.Event
			for _, ev := range evs {
				if ev.Final {
					finals = append(finals, ev)
				}
			}
			if len(finals) != 1 {
				p.addf("job %s: %d final events %v", id, len(finals), statusesOf(evs))
				continue
			}
			counts := countStatus(evs)
			switch f := finals[0]; {
			case arrived == 1 && f.Status == job.StatusReceived && counts[job.StatusAccepted] == 1 && counts[job.StatusCancelled] == 0:
				sentN++
			case arrived == 0 && f.Status == job.StatusCancelled && counts[job.StatusAccepted] == 0 && len(evs) == 1:
				cancelledN++
				if f.Campaign != name || f.Lane != "bulk" || f.Destination != dest {
					p.addf("cancelled event of %s: campaign/lane/destination %q/%q/%q", id, f.Campaign, f.Lane, f.Destination)
				}
			default:
				p.addf("job %s: %d messages at the gateway, events %v", id, arrived, statusesOf(evs))
			}
		}
		p.check(t)
		atEnd := a.of(name)
		t.Logf("%d sent + %d cancelled = %d; %d arrived after the cancel was asked, %d of them after the gate saw it (in flight, the last %s after); %s in all",
			sentN, cancelledN, sentN+cancelledN, asked, inflight, latest.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		require.Equal(t, n, sentN+cancelledN, "sent + cancelled = total")
		require.Equal(t, sentN, atEnd, "messages of %s at the gateway", name)
		require.Equal(t, atCancel+asked, atEnd, "every message after the cancel was counted")
		require.Positive(t, cancelledN, "the cancel came before the campaign was all sent")
		require.EqualValues(t, sentN, s.sim.Stats().Accepted, "messages the simulator accepted")

		rec, _, err := s.campaigns.Get(context.Background(), name)
		require.NoError(t, err)
		require.Equal(t, campaign.StateCancelled, rec.State)
		require.True(t, rec.Progress.Complete)
		require.NotNil(t, rec.Ended)
		require.NotNil(t, rec.CancelledAt)
		require.Equal(t, n, rec.Totals.Jobs)
		require.Equal(t, sentN, rec.Counts.Sent, "record counts %+v", rec.Counts)
		require.Equal(t, n, rec.Counts.Final, "record counts %+v", rec.Counts)
		require.Equal(t, map[job.Status]int{job.StatusReceived: sentN, job.StatusCancelled: cancelledN}, rec.Counts.ByStatus)
	})
}
