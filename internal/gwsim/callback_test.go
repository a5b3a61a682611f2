package gwsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// promptly bounds how long Close may take to stop callbacks whose next step is an
// hour away: far above what stopping takes, far below any wait it could sit out.
const promptly = 5 * time.Second

// call is one request the receiver got.
type call struct {
	n          int64 // 1 for the receiver's first request
	path       string
	header     http.Header
	user, pass string
	hasAuth    bool
	body       []byte
	at         time.Time
}

// fields decodes the body as a JSON object of strings.
func (c call) fields(t *testing.T) map[string]string {
	t.Helper()
	var m map[string]string
	require.NoError(t, json.Unmarshal(c.body, &m), "body: %s", c.body)
	return m
}

// receiver stands in for jetsms's callback receiver: it records every request on
// calls, then answers with answer, or 200 when answer is nil.
type receiver struct {
	url   string
	calls chan call
	count atomic.Int64
}

// answerFunc answers the receiver's n-th request.
type answerFunc func(n int64, w http.ResponseWriter, r *http.Request)

func newReceiver(t *testing.T, answer answerFunc) *receiver {
	t.Helper()
	rc := &receiver{calls: make(chan call, 8192)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		c := call{n: rc.count.Add(1), path: r.URL.RequestURI(), header: r.Header.Clone(), body: body, at: time.Now()}
		c.user, c.pass, c.hasAuth = r.BasicAuth()
		rc.calls <- c
		if answer != nil {
			answer(c.n, w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	rc.url = srv.URL
	return rc
}

func (rc *receiver) next(t *testing.T) call {
	t.Helper()
	select {
	case c := <-rc.calls:
		return c
	case <-time.After(eventWait):
		require.FailNow(t, "timed out waiting for a callback")
		return call{}
	}
}

// none checks that no request is waiting to be read.
func (rc *receiver) none(t *testing.T) {
	t.Helper()
	select {
	case c := <-rc.calls:
		require.FailNow(t, "unexpected callback", "request %d: %s", c.n, c.body)
	default:
	}
}

// statuses reads n requests and returns the receipts' statuses by message id, in
// the order they came.
func (rc *receiver) statuses(t *testing.T, n int) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for range n {
		f := rc.next(t).fields(t)
		got[f["message_id"]] = append(got[f["message_id"]], f["status"])
	}
	return got
}

// waitN waits for n signals on ch.
func waitN(t *testing.T, ch <-chan struct{}, n int, what string) {
	t.Helper()
	for i := range n {
		waitFor(t, ch, fmt.Sprintf("%s (%d of %d)", what, i+1, n))
	}
}

// answerStatus answers every request with status.
func answerStatus(status int) answerFunc {
	return func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }
}

// hold keeps each request until the client gives up.
func hold(_ int64, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// bounded returns a context that ends after eventWait, so that a SendMO that never
// returns fails the test instead of hanging it.
func bounded(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), eventWait)
	t.Cleanup(cancel)
	return ctx
}

// noInterim makes every message get its last receipt alone.
var noInterim = []string{}

func TestCallbacks(t *testing.T) {
	t.Parallel()

	t.Run("EveryAcceptedMessageGetsItsReceipts", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{Username: "app", Password: "pw", DLRURL: rc.url + "/callbacks/dlr?tenant=acme"})
		const n = 20
		refs := map[string]string{}
		dests := map[string]string{}
		for i := range n {
			dest := fmt.Sprintf("+6421%07d", i)
			ref := ""
			body := fmt.Sprintf(`{"destination":%q,"content":"hi"}`, dest)
			if i%2 == 0 {
				ref = fmt.Sprintf("order-%d", i)
				body = fmt.Sprintf(`{"destination":%q,"content":"hi","reference":%q}`, dest, ref)
			}
			id := b.send(t, body).ID
			refs[id], dests[id] = ref, dest
		}
		waitN(t, b.delivered, 2*n, "receipts delivered")

		got := map[string][]string{}
		for range 2 * n {
			c := rc.next(t)
			require.Equal(t, "/callbacks/dlr?tenant=acme", c.path)
			require.Equal(t, "application/json", c.header.Get("Content-Type"))
			require.False(t, c.hasAuth, "no credentials in the URL, none sent")
			var r map[string]string
			require.NoError(t, json.Unmarshal(c.body, &r))
			id := r["message_id"]
			require.Contains(t, refs, id, "a receipt for a message never accepted")
			require.Equal(t, dests[id], r["detail"])
			if refs[id] == "" {
				require.NotContains(t, r, "reference")
				require.Len(t, r, 3, "message_id, status, detail: %s", c.body)
			} else {
				require.Equal(t, refs[id], r["reference"])
				require.Len(t, r, 4)
			}
			got[id] = append(got[id], r["status"])
		}
		for id := range refs {
			require.Equal(t, []string{"sent", "received"}, got[id], "message %s", id)
			a := b.do(t, http.MethodGet, "/messages?id="+id, "")
			require.Equal(t, http.StatusOK, a.status)
			var l lookup
			require.NoError(t, json.Unmarshal(a.body, &l))
			require.Equal(t, "received", l.Status)
		}

		st := b.sim.Stats()
		require.Equal(t, int64(2*n), st.ReceiptsDelivered)
		require.Zero(t, st.ReceiptsPending)
		require.Zero(t, st.ReceiptsDropped)
		require.Zero(t, st.ReceiptsRetried)
	})

	t.Run("GetShowsTheLatestReceipt", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		rc := newReceiver(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
				w.WriteHeader(http.StatusNoContent)
			case <-r.Context().Done():
			}
		})
		b := setup(t, Config{DLRURL: rc.url, DLRMix: DLRMix{Expired: 1}})
		id := b.send(t, `{"destination":"+64211234567","content":"hi","reference":"r-1"}`).ID
		status := func() string {
			a := b.do(t, http.MethodGet, "/messages?id="+id, "")
			require.Equal(t, http.StatusOK, a.status)
			var got lookup
			require.NoError(t, json.Unmarshal(a.body, &got))
			return got.Status
		}

		require.Equal(t, "sent", rc.next(t).fields(t)["status"])
		require.Equal(t, "sent", status(), "while the sent receipt is being delivered")
		release <- struct{}{}
		require.Equal(t, "expired", rc.next(t).fields(t)["status"])
		require.Equal(t, "expired", status())
		release <- struct{}{}
		waitN(t, b.delivered, 2, "both receipts delivered")
		m, ok := b.sim.Message(id)
		require.True(t, ok)
		require.Equal(t, StatusExpired, m.Status)
	})

	t.Run("SendsCredentialsFromTheURL", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		host := strings.TrimPrefix(rc.url, "http://")
		b := setup(t, Config{
			DLRURL:     "http://jet%40sms:p%3Ass%2Fw@" + host + "/dlr",
			MOURL:      "http://mo-user:mo-pass@" + host + "/mo",
			DLRInterim: noInterim,
		})
		b.send(t, validBody)
		c := rc.next(t)
		require.Equal(t, "/dlr", c.path)
		require.True(t, c.hasAuth)
		require.Equal(t, "jet@sms", c.user)
		require.Equal(t, "p:ss/w", c.pass)

		_, err := b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "hi"})
		require.NoError(t, err)
		c = rc.next(t)
		require.Equal(t, "/mo", c.path)
		require.True(t, c.hasAuth)
		require.Equal(t, "mo-user", c.user)
		require.Equal(t, "mo-pass", c.pass)
	})

	t.Run("RetriesOn503ThenDelivers", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
			if n <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		b := setup(t, Config{DLRURL: rc.url, DLRInterim: noInterim, CallbackBackoff: time.Millisecond})
		id := b.send(t, validBody).ID
		waitFor(t, b.delivered, "the receipt delivered")
		for range 3 {
			f := rc.next(t).fields(t)
			require.Equal(t, id, f["message_id"])
			require.Equal(t, "received", f["status"])
		}
		rc.none(t)
		st := b.sim.Stats()
		require.Equal(t, int64(1), st.ReceiptsDelivered)
		require.Equal(t, int64(2), st.ReceiptsRetried)
		require.Zero(t, st.ReceiptsDropped)
		require.Zero(t, st.ReceiptsPending)
		require.Len(t, b.failed, 2)
	})

	t.Run("RetriesAfterConnectionFailure", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
			if n == 1 {
				abort(w, true) // no answer: a reset connection
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		b := setup(t, Config{DLRURL: rc.url, DLRInterim: noInterim, CallbackBackoff: time.Millisecond})
		b.send(t, validBody)
		waitFor(t, b.delivered, "the receipt delivered")
		require.Equal(t, int64(2), rc.count.Load())
		st := b.sim.Stats()
		require.Equal(t, int64(1), st.ReceiptsDelivered)
		require.Equal(t, int64(1), st.ReceiptsRetried)
	})

	t.Run("RedirectIsRetriedNotFollowed", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, func(n int64, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		b := setup(t, Config{DLRURL: rc.url + "/dlr", DLRInterim: noInterim, CallbackBackoff: time.Millisecond})
		b.send(t, validBody)
		waitFor(t, b.delivered, "the receipt delivered")
		require.Equal(t, "/dlr", rc.next(t).path)
		require.Equal(t, "/dlr", rc.next(t).path)
		require.Equal(t, int64(1), b.sim.Stats().ReceiptsRetried)
	})

	t.Run("GivesUpAfterCallbackGiveUpThenSendsTheNext", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, answerStatus(http.StatusInternalServerError))
		b := setup(t, Config{DLRURL: rc.url, CallbackBackoff: 5 * time.Millisecond, CallbackGiveUp: 50 * time.Millisecond})
		b.send(t, validBody)
		waitN(t, b.gaveUp, 2, "both receipts given up")

		var order []string
		for range rc.count.Load() {
			s := rc.next(t).fields(t)["status"]
			if len(order) == 0 || order[len(order)-1] != s {
				order = append(order, s)
			}
		}
		require.Equal(t, []string{"sent", "received"}, order, "each retried, one after the other")
		st := b.sim.Stats()
		require.Equal(t, int64(2), st.ReceiptsDropped)
		require.Zero(t, st.ReceiptsDelivered)
		require.Zero(t, st.ReceiptsPending)
		require.Equal(t, rc.count.Load()-2, st.ReceiptsRetried)
	})

	t.Run("DuplicateSendsEachReceiptTwice", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{DLRURL: rc.url, DLRDuplicate: true})
		id := b.send(t, `{"destination":"+64211234567","content":"hi","reference":"r-1"}`).ID
		waitN(t, b.delivered, 4, "receipts delivered")
		var bodies []string
		for range 4 {
			bodies = append(bodies, string(rc.next(t).body))
		}
		require.Equal(t, bodies[0], bodies[1], "a copy is the same receipt")
		require.Equal(t, bodies[2], bodies[3])
		require.JSONEq(t, `{"message_id":"`+id+`","status":"sent","detail":"+64211234567","reference":"r-1"}`, bodies[0])
		require.JSONEq(t, `{"message_id":"`+id+`","status":"received","detail":"+64211234567","reference":"r-1"}`, bodies[2])
		st := b.sim.Stats()
		require.Equal(t, int64(4), st.ReceiptsDelivered)
		require.Zero(t, st.ReceiptsPending)
	})

	t.Run("ReorderSendsTheLastReceiptFirst", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{DLRURL: rc.url, DLRReorder: true, DLRMix: DLRMix{Rejected: 1}})
		id := b.send(t, validBody).ID
		waitN(t, b.delivered, 2, "receipts delivered")
		require.Equal(t, map[string][]string{id: {"rejected", "sent"}}, rc.statuses(t, 2))
		m, ok := b.sim.Message(id)
		require.True(t, ok)
		require.Equal(t, StatusRejected, m.Status, "a late sent does not undo a final status")
	})

	t.Run("ReorderAndDuplicateTogether", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{DLRURL: rc.url, DLRReorder: true, DLRDuplicate: true,
			DLRInterim: []string{StatusSubmitted, StatusSent}})
		id := b.send(t, validBody).ID
		waitN(t, b.delivered, 6, "receipts delivered")
		require.Equal(t, map[string][]string{id: {"received", "received", "submitted", "submitted", "sent", "sent"}},
			rc.statuses(t, 6))
	})

	t.Run("InterimOnlyWhenTheMixSaysNone", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{DLRURL: rc.url, DLRInterim: []string{"submitted", "sent", "frozen"}, DLRMix: DLRMix{None: 1}})
		id := b.send(t, validBody).ID
		waitN(t, b.delivered, 3, "receipts delivered")
		require.Equal(t, map[string][]string{id: {"submitted", "sent", "frozen"}}, rc.statuses(t, 3))
		st := b.sim.Stats()
		require.Zero(t, st.ReceiptsPending, "nothing more to come")
		m, _ := b.sim.Message(id)
		require.Equal(t, StatusFrozen, m.Status)
	})

	t.Run("DelayAndGapSpaceTheReceipts", func(t *testing.T) {
		t.Parallel()
		const delay, gap = 60 * time.Millisecond, 40 * time.Millisecond
		rc := newReceiver(t, nil)
		b := setup(t, Config{DLRURL: rc.url, DLRDelay: delay, DLRGap: gap, DLRJitter: time.Millisecond})
		accepted := make(chan time.Time, 1)
		b.sim.OnAccept(func(Message) { accepted <- time.Now() })
		b.send(t, validBody)
		at := <-accepted
		first, second := rc.next(t), rc.next(t)
		require.GreaterOrEqual(t, first.at.Sub(at), delay)
		require.GreaterOrEqual(t, second.at.Sub(first.at), gap)
	})

	t.Run("MixIsRespected", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		mix, err := ParseDLRMix("rejected=0.1,expired=0.05") // the rest is received
		require.NoError(t, err)
		b := setup(t, Config{DLRURL: rc.url, DLRMix: mix, DLRInterim: noInterim})
		const n = 2000
		// Submissions go straight to ServeHTTP; the receipts go over HTTP.
		for range n {
			rec := httptest.NewRecorder()
			b.sim.ServeHTTP(rec, postRequest(validBody))
			require.Equal(t, http.StatusAccepted, rec.Code)
		}
		waitN(t, b.delivered, n, "receipts delivered")
		got := rc.statuses(t, n)
		require.Len(t, got, n, "one receipt per message")
		counts := map[string]int{}
		for _, s := range got {
			counts[s[0]]++
		}
		// Each band is about six standard deviations wide on either side.
		between := func(status string, lo, hi float64) {
			p := float64(counts[status]) / n
			require.True(t, p >= lo && p <= hi, "%s: %.4f of messages, want %.2f–%.2f", status, p, lo, hi)
		}
		between("received", 0.80, 0.90)
		between("rejected", 0.06, 0.14)
		between("expired", 0.02, 0.08)
		require.Len(t, counts, 3)
	})

	t.Run("CloseStopsRetriesPromptly", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, answerStatus(http.StatusServiceUnavailable))
		b := setup(t, Config{DLRURL: rc.url, CallbackBackoff: time.Hour, CallbackGiveUp: 2 * time.Hour})
		for range 3 {
			b.send(t, validBody)
		}
		waitN(t, b.failed, 3, "first attempts failed, retries an hour away")

		start := time.Now()
		b.sim.Close()
		require.Less(t, time.Since(start), promptly)
		require.Zero(t, b.sim.cb.running.Load(), "callback goroutines still running")
		st := b.sim.Stats()
		require.Equal(t, int64(6), st.ReceiptsDropped, "the sent and received of three messages")
		require.Zero(t, st.ReceiptsPending)
		require.Zero(t, st.ReceiptsDelivered)

		b.send(t, validBody) // still answered, but without receipts
		require.Equal(t, int64(8), b.sim.Stats().ReceiptsDropped)
		b.sim.Close()
		require.Equal(t, int64(3), rc.count.Load(), "no attempt after the first ones")
	})

	t.Run("CloseCancelsAttemptsInFlight", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, hold)
		b := setup(t, Config{DLRURL: rc.url + "/dlr", MOURL: rc.url + "/mo", CallbackTimeout: time.Hour})
		b.send(t, validBody)
		moErr := make(chan error, 1)
		go func() {
			_, err := b.sim.SendMO(context.Background(), MO{Source: "+64211234567", Destination: "2021", Content: "hi"})
			moErr <- err
		}()
		rc.next(t)
		rc.next(t) // both held by the receiver

		start := time.Now()
		b.sim.Close()
		require.Less(t, time.Since(start), promptly)
		require.Zero(t, b.sim.cb.running.Load())
		select {
		case err := <-moErr:
			require.ErrorIs(t, err, ErrClosed)
		case <-time.After(eventWait):
			require.FailNow(t, "SendMO did not return after Close")
		}
		st := b.sim.Stats()
		require.Equal(t, int64(2), st.ReceiptsDropped)
		require.Equal(t, int64(1), st.MODropped)
		_, err := b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "hi"})
		require.ErrorIs(t, err, ErrClosed)
	})

	t.Run("QueueBoundsPendingCallbacks", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{DLRURL: rc.url, MOURL: rc.url, DLRDelay: time.Hour, CallbackQueue: 2})
		for range 5 {
			b.send(t, validBody)
		}
		st := b.sim.Stats()
		require.Equal(t, int64(4), st.ReceiptsPending, "two messages queued, two receipts each")
		require.Equal(t, int64(6), st.ReceiptsDropped, "three messages found the queue full")
		b.sim.cb.mu.Lock()
		require.Len(t, b.sim.cb.queue, 2)
		b.sim.cb.mu.Unlock()

		id, err := b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "hi"})
		require.ErrorIs(t, err, ErrQueueFull)
		require.Empty(t, id)
		require.Equal(t, int64(1), b.sim.Stats().MODropped)

		b.sim.Close()
		st = b.sim.Stats()
		require.Equal(t, int64(10), st.ReceiptsDropped)
		require.Zero(t, st.ReceiptsPending)
		require.Zero(t, rc.count.Load())
	})

	t.Run("StartsTheSenders", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{DLRURL: "http://127.0.0.1:1/dlr"})
		require.Equal(t, int64(1+CallbackSendersDefault), b.sim.cb.running.Load(), "scheduler and default senders")
		b = setup(t, Config{MOURL: "http://127.0.0.1:1/mo", CallbackSenders: 3})
		require.Equal(t, int64(1+3), b.sim.cb.running.Load())
		b.sim.Close()
		require.Zero(t, b.sim.cb.running.Load())
	})

	t.Run("NoCallbacksWithoutURL", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{DLRMix: DLRMix{Rejected: 1}})
		require.Nil(t, b.sim.cb, "no callback goroutines")
		id := b.send(t, validBody).ID
		m, _ := b.sim.Message(id)
		require.Equal(t, StatusAccepted, m.Status)
		_, err := b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "hi"})
		require.ErrorIs(t, err, ErrNoMOURL)
		st := b.sim.Stats()
		require.Zero(t, st.ReceiptsPending+st.ReceiptsDropped+st.MODropped)
	})

	t.Run("SendMOPostsTheMOBody", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{MOURL: rc.url + "/callbacks/mo"})

		id, err := b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "STOP"})
		require.NoError(t, err)
		u, err := uuid.Parse(id)
		require.NoError(t, err)
		require.Equal(t, uuid.Version(4), u.Version())
		c := rc.next(t)
		require.Equal(t, "/callbacks/mo", c.path)
		require.Equal(t, "application/json", c.header.Get("Content-Type"))
		require.Equal(t, map[string]string{
			"id": id, "source": "+64211234567", "destination": "2021", "content": "STOP", "operator": MOOperatorDefault,
		}, c.fields(t))

		replyTo := uuid.NewString()
		id, err = b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "AAEC/w==",
			ReplyTo: replyTo, Reference: "order-1", Operator: "Spark", Encoding: EncodingBase64})
		require.NoError(t, err)
		require.Equal(t, map[string]string{
			"id": id, "source": "+64211234567", "destination": "2021", "content": "AAEC/w==", "operator": "Spark",
			"reply_to": replyTo, "reference": "order-1", "encoding": "base64",
		}, rc.next(t).fields(t))
		require.Equal(t, int64(2), b.sim.Stats().MODelivered)
	})

	t.Run("SendMOTakesTheReferenceOfTheMessageItAnswers", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{MOURL: rc.url})
		mt := b.send(t, `{"destination":"+64211234567","content":"Reply YES","reference":"order-7"}`).ID
		_, err := b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "YES", ReplyTo: mt})
		require.NoError(t, err)
		f := rc.next(t).fields(t)
		require.Equal(t, mt, f["reply_to"])
		require.Equal(t, "order-7", f["reference"])

		_, err = b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "YES", ReplyTo: uuid.NewString()})
		require.NoError(t, err)
		require.NotContains(t, rc.next(t).fields(t), "reference", "an unknown message has no reference")
	})

	t.Run("SendMORefusesAnInvalidMO", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{MOURL: rc.url})
		valid := MO{Source: "+64211234567", Destination: "2021", Content: "hi"}
		for _, tc := range []struct {
			edit func(*MO)
			want string
		}{
			{func(m *MO) { m.Source = "" }, "source is required"},
			{func(m *MO) { m.Destination = "" }, "destination is required"},
			{func(m *MO) { m.Content = "" }, "content is required"},
			{func(m *MO) { m.Encoding = "hex" }, `encoding "hex"`},
			{func(m *MO) { m.Encoding = EncodingBase64; m.Content = "not base64!" }, "content is not standard base64"},
			{func(m *MO) { m.ReplyTo = "42" }, `reply_to "42"`},
		} {
			mo := valid
			tc.edit(&mo)
			id, err := b.sim.SendMO(bounded(t), mo)
			require.ErrorIs(t, err, ErrInvalidMO, tc.want)
			require.Contains(t, err.Error(), tc.want)
			require.Empty(t, id)
		}
		require.Zero(t, rc.count.Load())
	})

	t.Run("SendMORetriesOn503ThenDelivers", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
			if n <= 2 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		})
		b := setup(t, Config{MOURL: rc.url, CallbackBackoff: time.Millisecond})
		id, err := b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "hi"})
		require.NoError(t, err)
		for range 3 {
			require.Equal(t, id, rc.next(t).fields(t)["id"], "the same MO each time")
		}
		st := b.sim.Stats()
		require.Equal(t, int64(1), st.MODelivered)
		require.Equal(t, int64(2), st.MORetried)
	})

	t.Run("SendMOGivesUp", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, answerStatus(http.StatusBadGateway))
		b := setup(t, Config{MOURL: strings.Replace(rc.url, "http://", "http://u:s3cret@", 1),
			CallbackBackoff: 5 * time.Millisecond, CallbackGiveUp: 40 * time.Millisecond})
		id, err := b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "hi"})
		require.ErrorIs(t, err, ErrGaveUp)
		require.NotEmpty(t, id, "the receiver got it, so the id is given")
		require.Contains(t, err.Error(), "answered 502")
		require.NotContains(t, err.Error(), "s3cret")
		st := b.sim.Stats()
		require.Equal(t, int64(1), st.MODropped)
		require.Equal(t, rc.count.Load()-1, st.MORetried)
	})

	t.Run("SendMOReturnsWhenItsContextEnds", func(t *testing.T) {
		t.Parallel()
		attemptEnded := make(chan struct{}, 1)
		rc := newReceiver(t, func(_ int64, _ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
			notify(attemptEnded)
		})
		b := setup(t, Config{MOURL: rc.url, CallbackTimeout: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		type result struct {
			id  string
			err error
		}
		done := make(chan result, 1)
		go func() {
			id, err := b.sim.SendMO(ctx, MO{Source: "+64211234567", Destination: "2021", Content: "hi"})
			done <- result{id, err}
		}()
		c := rc.next(t)
		cancel()
		select {
		case r := <-done:
			require.ErrorIs(t, r.err, context.Canceled)
			require.Equal(t, c.fields(t)["id"], r.id)
		case <-time.After(eventWait):
			require.FailNow(t, "SendMO did not return when its context ended")
		}
		waitFor(t, attemptEnded, "the attempt in flight to be cancelled")
	})

	t.Run("SimMORoute", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{Username: "app", Password: "pw", MOURL: rc.url})

		a := b.do(t, http.MethodPost, "/sim/mo", `{"source":"+64211234567","destination":"2021","content":"STOP","operator":"One NZ"}`)
		require.Equal(t, http.StatusOK, a.status, "body: %s", a.body)
		require.Equal(t, "application/json", a.header.Get("Content-Type"))
		var ans struct{ ID string }
		require.NoError(t, json.Unmarshal(a.body, &ans))
		require.Equal(t, map[string]string{
			"id": ans.ID, "source": "+64211234567", "destination": "2021", "content": "STOP", "operator": "One NZ",
		}, rc.next(t).fields(t))

		b.baseURL = b.srv.URL
		a = b.do(t, http.MethodPost, "/sim/mo", `{"source":"+64211234567","destination":"2021","content":"hi"}`)
		require.Equal(t, http.StatusOK, a.status, "at the root too")
		rc.next(t)

		a = b.do(t, http.MethodPost, "/sim/mo", `{"source":"+64211234567","destination":"2021"}`)
		require.Equal(t, http.StatusBadRequest, a.status)
		e := parseError(t, a.body)
		require.Equal(t, "invalid_attrib", e.Error)
		require.Contains(t, string(e.Desc), "content is required")

		a = b.do(t, http.MethodPost, "/sim/mo", `{"source":`)
		require.Equal(t, http.StatusBadRequest, a.status)
		require.Equal(t, "invalid_json", parseError(t, a.body).Error)

		a = b.do(t, http.MethodGet, "/sim/mo", "")
		require.Equal(t, http.StatusMethodNotAllowed, a.status)
		require.Equal(t, "POST", a.header.Get("Allow"))

		b.user = ""
		require.Equal(t, http.StatusUnauthorized, b.do(t, http.MethodPost, "/sim/mo", `{"source":"+1","destination":"2","content":"x"}`).status)
		rc.none(t)
		require.Zero(t, b.sim.Stats().Requests, "not a POST /messages")
	})

	t.Run("SimMORouteErrors", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		a := b.do(t, http.MethodPost, "/sim/mo", `{"source":"+64211234567","destination":"2021","content":"hi"}`)
		require.Equal(t, http.StatusConflict, a.status)
		require.Equal(t, "no_mo_url", parseError(t, a.body).Error)

		rc := newReceiver(t, answerStatus(http.StatusInternalServerError))
		b = setup(t, Config{MOURL: rc.url, CallbackBackoff: 5 * time.Millisecond, CallbackGiveUp: 20 * time.Millisecond})
		a = b.do(t, http.MethodPost, "/sim/mo", `{"source":"+64211234567","destination":"2021","content":"hi"}`)
		require.Equal(t, http.StatusBadGateway, a.status)
		var ans struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		}
		require.NoError(t, json.Unmarshal(a.body, &ans))
		require.Equal(t, "callback_failed", ans.Error)
		require.Equal(t, ans.ID, rc.next(t).fields(t)["id"])
	})

	t.Run("ParseDLRMixReadsEveryKey", func(t *testing.T) {
		t.Parallel()
		m, err := ParseDLRMix(" received=0.5, rejected=0.1,expired=0.1,failed=0.05,dead=0.05,sent=0.05," +
			"submitted=0.05,frozen=0.05,none=0.05")
		require.NoError(t, err)
		want := DLRMix{Received: 0.5, Rejected: 0.1, Expired: 0.1, Failed: 0.05, Dead: 0.05, Sent: 0.05,
			Submitted: 0.05, Frozen: 0.05, None: 0.05}
		require.Equal(t, want, m)
		again, err := ParseDLRMix(m.String())
		require.NoError(t, err)
		require.Equal(t, m, again)

		m, err = ParseDLRMix("")
		require.NoError(t, err)
		require.Equal(t, DLRMix{}, m)
		_, err = ParseDLRMix("received=0.9,rejected=0.05,expired=0.05")
		require.NoError(t, err)
	})

	t.Run("ParseDLRMixErrorsNameTheKey", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			in   string
			want []string
		}{
			{"delivered=0.1", []string{`"delivered"`, "unknown key", "received, rejected"}},
			{"received=x", []string{"received", `"x"`, "not a number"}},
			{"received", []string{`"received"`, "e.g. received=0.9"}},
			{"expired=2", []string{"Expired", "expired", "from 0 to 1"}},
			{"sent=0.1,sent=0.1", []string{`"sent"`, "twice"}},
			{"received=0.6,rejected=0.6", []string{"add up to 1.2"}},
		} {
			_, err := ParseDLRMix(tc.in)
			require.ErrorIs(t, err, ErrInvalidDLRMix, tc.in)
			require.NotErrorIs(t, err, ErrInvalidMix, tc.in)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w, tc.in)
			}
		}
	})

	t.Run("NewNamesTheBadCallbackField", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			cfg  Config
			want string
		}{
			{Config{DLRURL: "ftp://host/dlr"}, "DLRURL"},
			{Config{DLRURL: "/callbacks/dlr"}, "must be an http:// or https:// URL with a host"},
			{Config{MOURL: "http://"}, "MOURL"},
			{Config{MOURL: "http://u:s3cret@host:port/mo"}, `MOURL "http://u:***@host:port/mo": not a URL`},
			// A password whose '/' or '#' url.Parse takes for the end of the host.
			{Config{MOURL: "http://u:s3cret/x@host/mo"}, `MOURL "http://u:***@host/mo"`},
			{Config{DLRURL: "http://u:s3cret#x@host/dlr"}, `DLRURL "http://u:***@host/dlr"`},
			{Config{DLRDelay: -1}, "DLRDelay"},
			{Config{DLRGap: -1}, "DLRGap"},
			{Config{DLRJitter: -1}, "DLRJitter"},
			{Config{CallbackGiveUp: -1}, "CallbackGiveUp"},
			{Config{CallbackTimeout: -1}, "CallbackTimeout"},
			{Config{CallbackBackoff: -1}, "CallbackBackoff"},
			{Config{CallbackBackoffMax: -1}, "CallbackBackoffMax"},
			{Config{CallbackSenders: -1}, "CallbackSenders -1"},
			{Config{CallbackQueue: -1}, "CallbackQueue -1"},
			{Config{DLRInterim: []string{"sent", "delivered"}}, `DLRInterim[1] "delivered": not a DLR status`},
			{Config{DLRMix: DLRMix{Received: 1, Rejected: 0.5}}, "DLRMix: gwsim: invalid DLR mix"},
		} {
			_, err := New(tc.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig, tc.want)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "s3cret")
		}
	})
}

// FuzzParseDLRMix checks that ParseDLRMix never panics and that what it accepts is
// valid and survives a round trip through String.
func FuzzParseDLRMix(f *testing.F) {
	for _, seed := range []string{"", "received=0.9,rejected=0.05,expired=0.05", "none=1", "sent=1e-3",
		"received=1.5", "x=1", "dead=0.5,dead=0.5", "=", ",,,"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseDLRMix(in)
		if err != nil {
			require.True(t, errors.Is(err, ErrInvalidDLRMix))
			return
		}
		require.NoError(t, m.Validate())
		again, err := ParseDLRMix(m.String())
		require.NoError(t, err)
		require.Equal(t, m, again)
	})
}
