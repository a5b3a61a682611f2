package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/worker"
)

const goodTraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// publishOn stores job j on subject with headers.
func (b *bundle) publishOn(t *testing.T, subject string, j job.Job, hdr nats.Header) {
	t.Helper()
	data, err := json.Marshal(j)
	require.NoError(t, err)
	_, err = b.env.JS.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Data: data, Header: hdr})
	require.NoError(t, err)
}

// tokenCounter is an unlimited limiter that counts the rate tokens taken.
type tokenCounter struct{ n atomic.Int64 }

func (l *tokenCounter) Wait(ctx context.Context, n int) error {
	l.n.Add(int64(n))
	return ctx.Err()
}

func TestBadInput(t *testing.T) {
	t.Parallel()

	t.Run("InvalidTraceparentIsDroppedAndTheJobSent", func(t *testing.T) {
		t.Parallel()
		var opened atomic.Int64
		b := setup(t, options{worker: worker.Config{OnCircuit: func(open bool) {
			if open {
				opened.Add(1)
			}
		}}})
		var ids []string
		bad := map[string]bool{}
		for i := range 14 {
			id := fmt.Sprintf("tp-%d", i)
			ids = append(ids, id)
			hdr := nats.Header{jetstream.MsgIDHeader: []string{id}}
			hdr.Set(job.TraceParentHeader, goodTraceParent)
			if i%3 == 1 && len(bad) < 4 {
				bad[id] = true
				hdr.Set(job.TraceParentHeader, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7\x01-01")
			}
			b.publishOn(t, b.env.Names.Send("priority"), validJob(id), hdr)
		}
		require.Len(t, bad, 4)
		msgs := b.waitAccepted(t, ids, 20*time.Second)
		for _, m := range msgs {
			var ev job.Event
			require.NoError(t, json.Unmarshal(m.Data, &ev))
			if ev.Status != job.StatusAccepted {
				continue
			}
			if bad[ev.JobID] {
				require.Empty(t, m.Header.Get(job.TraceParentHeader), "the invalid traceparent is dropped")
			} else {
				require.Equal(t, goodTraceParent, m.Header.Get(job.TraceParentHeader))
			}
		}
		for _, id := range ids {
			require.Equal(t, 1, b.arrived(id), id)
		}
		require.Zero(t, opened.Load(), "the circuit never opened")
	})

	t.Run("JobsOnInvalidSubjectsEndInvalidSubject", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		subjects := map[string]string{
			"ws-star":      "sms.send.*",
			"ws-gt":        "sms.send.>",
			"ws-star-x":    "sms.send.*.x",
			"ws-lane-gt":   "sms.send.priority.>",
			"ws-lane-star": "sms.send.priority.*",
			"ws-deep":      "sms.send.priority.a.b",
			"ws-badtoken":  "sms.send.pri$ority",
			"ws-badcamp":   "sms.send.bulk." + strings.Repeat("c", campaign.NameMaxLen+1),
		}
		for id, subject := range subjects {
			b.publishOn(t, subject, validJob(id), nats.Header{jetstream.MsgIDHeader: []string{id}})
		}
		for id, subject := range subjects {
			evs := b.waitFinal(t, id)
			final := evs[len(evs)-1]
			require.Equal(t, job.StatusFailed, final.Status, id)
			require.Contains(t, final.Error, fmt.Sprintf("subject: %s is not sms.send.<lane>[.<campaign>]", redact.Quote(subject)), id)
			dead := b.deadLetter(t, id)
			require.Equal(t, string(events.ReasonInvalidSubject), dead.Header.Get(events.HeaderReason), id)
			require.Equal(t, subject, dead.Header.Get(events.HeaderSubject), id)
			deadLane := "_" // the lane token is not valid
			if strings.HasPrefix(subject, "sms.send.priority.") || strings.HasPrefix(subject, "sms.send.bulk.") {
				deadLane = strings.Split(subject, ".")[2]
			}
			require.Equal(t, b.env.Names.Dead(deadLane), dead.Subject, id)
		}
		require.Zero(t, b.arrived("ws-star"))
		// A well-formed job is still sent.
		b.publishJob(t, "priority", validJob("ws-after"))
		b.waitAccepted(t, []string{"ws-after"}, 20*time.Second)
		b.waitDrained(t)
	})

	t.Run("ReusedIDWithOtherContentEndsDuplicateID", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{})
		first := validJob("dup-1")
		b.publishOn(t, b.env.Names.Send("priority"), first, nats.Header{})
		b.waitAccepted(t, []string{"dup-1"}, 20*time.Second)

		// Another service's job under the same id, with another destination.
		other := validJob("dup-1")
		other.Destination, other.Content = "+64219999999", "Please call"
		b.publishOn(t, b.env.Names.Send("priority"), other, nats.Header{})
		dead := b.deadLetter(t, "dup-1")
		require.Equal(t, string(events.ReasonDuplicateID), dead.Header.Get(events.HeaderReason))
		evs := b.waitStatus(t, "dup-1", job.StatusFailed)
		var failed job.Event
		for _, ev := range evs {
			if ev.Status == job.StatusFailed {
				failed = ev
			}
		}
		require.True(t, failed.Duplicate, "the refusal is marked as another message's, not the job's own")
		require.Equal(t, "duplicate_id", failed.Error)
		require.Contains(t, failed.Detail, "belongs to another job with other content")
		require.Equal(t, 1, b.arrived("dup-1"), "the second job is not sent")

		// The same job again (a producer's retry past the duplicate window):
		// not sent again, with a notice.
		b.publishOn(t, b.env.Names.Send("priority"), first, nats.Header{})
		evs = b.waitStatus(t, "dup-1", job.StatusDuplicate)
		var notice job.Event
		for _, ev := range evs {
			if ev.Status == job.StatusDuplicate {
				notice = ev
			}
		}
		require.True(t, notice.Duplicate)
		require.False(t, notice.Final)
		require.Equal(t, b.messageID("dup-1"), notice.MessageID)
		require.Equal(t, 1, b.arrived("dup-1"))

		// The first job's ledger entry is its own still.
		e, _, err := b.cfg.Ledger.Get(context.Background(), "dup-1")
		require.NoError(t, err)
		require.Equal(t, first.Destination, e.Destination)
		require.Equal(t, job.StatusAccepted, e.Status)
		b.waitDrained(t)
		for _, ev := range brokertest.EventsOf(b.status.Msgs(), "dup-1") {
			if ev.Final {
				require.True(t, ev.Duplicate, "no final event of the job itself but the duplicate's: %+v", ev)
			}
		}
	})

	t.Run("UnknownLanesShareOneMetricLabel", func(t *testing.T) {
		t.Parallel()
		m := metrics.New()
		b := setup(t, options{worker: worker.Config{Metrics: m}})
		for i := range 30 {
			id := fmt.Sprintf("nolane-%d", i)
			b.publishOn(t, b.env.Names.Send(fmt.Sprintf("nosuch%d", i)), validJob(id), nats.Header{jetstream.MsgIDHeader: []string{id}})
		}
		for i := range 30 {
			id := fmt.Sprintf("nolane-%d", i)
			evs := b.waitFinal(t, id)
			require.Equal(t, job.StatusFailed, evs[len(evs)-1].Status)
		}
		// A job is counted once its handling ends, which can be just after its final
		// event is stored: the count has no event to wait on, so it is polled (the
		// deadline is a failure timeout only).
		const counted = `jetsms_jobs_total{lane="unknown",outcome="failed"} 30`
		var body string
		require.Eventually(t, func() bool {
			rec := httptest.NewRecorder()
			m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			body = rec.Body.String()
			return strings.Contains(body, counted)
		}, 10*time.Second, 10*time.Millisecond, "want %s", counted)
		lanes := map[string]bool{}
		for line := range strings.Lines(body) {
			if rest, ok := strings.CutPrefix(line, `jetsms_jobs_total{lane="`); ok {
				lane, _, _ := strings.Cut(rest, `"`)
				lanes[lane] = true
			}
		}
		require.Equal(t, map[string]bool{"priority": true, "default": true, "bulk": true, "unknown": true}, lanes)
	})

	t.Run("InvalidJobsTakeNoRateToken", func(t *testing.T) {
		t.Parallel()
		lim := &tokenCounter{}
		b := setup(t, options{limiter: lim})
		for i := range 5 {
			b.publish(t, b.env.Names.Send("priority"), []byte(`{"destination":"021","content":""}`), fmt.Sprintf("inv-%d", i))
		}
		b.publishOn(t, "sms.send.*", validJob("inv-subject"), nats.Header{})
		for i := range 5 {
			b.waitFinal(t, fmt.Sprintf("inv-%d", i))
		}
		b.waitFinal(t, "inv-subject")
		b.publishJob(t, "priority", validJob("inv-good"))
		b.waitAccepted(t, []string{"inv-good"}, 20*time.Second)
		require.EqualValues(t, 1, lim.n.Load(), "only the valid job took a token")
	})

	t.Run("ForgedCampaignRowsEndFailed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, options{noRun: true})
		store, err := campaign.Open(context.Background(), b.env.JS, campaign.StoreConfig{Bucket: b.env.Names.CampaignBucket()})
		require.NoError(t, err)
		gate, err := campaign.NewGate(store, zaptest.NewLogger(t))
		require.NoError(t, err)
		require.NoError(t, gate.Start(context.Background()))
		t.Cleanup(func() { require.NoError(t, gate.Stop(context.Background())) })
		b.cfg.Campaigns = gate
		pub, err := campaign.NewPublisher(campaign.PublisherConfig{Names: b.env.Names, Store: store}, b.env.JS, zaptest.NewLogger(t))
		require.NoError(t, err)
		_, err = pub.Send(context.Background(), campaign.Spec{Name: "spring", Lane: "bulk", Template: "Hi {{.name}}"},
			strings.NewReader("destination,name\n+64211000001,Ann\n+64211000002,Bob\n"))
		require.NoError(t, err)
		b.start(t)

		forged := []string{"spring:3", "spring:99999999", "hello", "autumn:1"}
		subject, err := b.env.Names.SendCampaign("bulk", "spring")
		require.NoError(t, err)
		for _, id := range forged {
			b.publishOn(t, subject, validJob(id), nats.Header{})
		}
		b.waitAccepted(t, []string{"spring:1", "spring:2"}, 20*time.Second)
		for _, id := range forged {
			evs := b.waitFinal(t, id)
			final := evs[len(evs)-1]
			require.Equal(t, job.StatusFailed, final.Status, id)
			require.Contains(t, final.Error, "is not a row of campaign spring", id)
			require.Equal(t, string(events.ReasonNotCampaignRow), b.deadLetter(t, id).Header.Get(events.HeaderReason))
			require.Zero(t, b.arrived(id), id)
		}
	})
}

// FuzzWorkerJobs publishes arbitrary bytes with arbitrary headers, on a lane's
// subject or below it, as jobs to a running worker (real nats-server, the
// simulator): every job gets the worker's last word — a final event, its accepted
// event, or a duplicate's notice — and a well-formed job published after it is
// still sent.
func FuzzWorkerJobs(f *testing.F) {
	f.Add([]byte(`{"destination":"+64211234567","content":"hi"}`), "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x01", "")
	f.Add([]byte(`{"id":"a","destination":"+64211234567","content":"hi","reference":"\u001b[2J"}`), "X", "", "c1")
	f.Add([]byte(`{"id":"a","destination":"+64211234568","content":"hi"}`), "X", "", "*")
	f.Add([]byte("\xff{"), "traceparent", "zz", ">")
	f.Add([]byte(`{"destination":"+64211234567","content":"hi","source":"`+strings.Repeat("9", 40)+`"}`), "Jetsms-Replay", "1", "a.b")

	b := setup(f, options{quiet: true})
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte, key, value, suffix string) {
		i := n.Add(1)
		msgID := fmt.Sprintf("fz-%d", i)
		hdr := nats.Header{}
		if k := strings.Map(headerKeyRune, key); k != "" && !strings.HasPrefix(strings.ToLower(k), "nats") {
			hdr.Set(k, strings.Map(headerValueRune, value))
		}
		hdr.Set(jetstream.MsgIDHeader, msgID)
		subject := b.env.Names.Send("default")
		if s := strings.Map(subjectRune, suffix); s != "" && !strings.HasPrefix(s, ".") && !strings.HasSuffix(s, ".") &&
			!strings.Contains(s, "..") {
			subject += "." + s
		}
		// The job's id as the worker will see it.
		j, _ := job.Decoder{}.Decode(data)
		id := j.ID
		if id == "" {
			id = msgID
		}
		lastWords := func(ms []brokertest.Msg) int {
			c := 0
			for _, ev := range brokertest.EventsOf(ms, id) {
				if ev.Final || ev.Status == job.StatusAccepted || ev.Status == job.StatusDuplicate {
					c++
				}
			}
			return c
		}
		before := lastWords(b.status.Msgs())
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := b.env.JS.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: hdr})
		require.NoError(t, err, "publish on %q with %v", subject, hdr)
		b.status.WaitFor(t, 20*time.Second, "last word of "+id, func(ms []brokertest.Msg) bool { return lastWords(ms) > before })
		good := fmt.Sprintf("fz-good-%d", i)
		b.publishJob(t, "default", validJob(good))
		b.waitAccepted(t, []string{good}, 20*time.Second)
	})
}

// headerKeyRune keeps the characters of an HTTP token (what a NATS client can
// send as a header name).
func headerKeyRune(r rune) rune {
	if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r) {
		return r
	}
	return -1
}

func headerValueRune(r rune) rune {
	if r == '\r' || r == '\n' {
		return -1
	}
	return r
}

func subjectRune(r rune) rune {
	if r > ' ' && r < 0x7f {
		return r
	}
	return -1
}
