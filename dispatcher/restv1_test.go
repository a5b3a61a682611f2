package dispatcher

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/secret"
	"github.com/jetsms/jetsms/job"
)

var v1Features = implementations[1].features

// recorded is a request as the gateway got it.
type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

// v1Bundle is a REST v1 simulator behind a server that records every request
// before the simulator answers it.
type v1Bundle struct {
	sim      *gwsim.Simulator
	srv      *httptest.Server
	requests chan recorded
}

// setupV1 starts a REST v1 simulator for cfg (the test credentials unless cfg
// sets others) and returns a client of it under the real base path.
func setupV1(t *testing.T, cfg gwsim.Config, edit ...func(*Config)) (*RESTv1, *v1Bundle) {
	t.Helper()
	cfg.API = gwsim.APIv1
	if cfg.Username == "" {
		cfg.Username, cfg.Password = testUser, testPassword
	}
	sim, err := gwsim.New(cfg)
	require.NoError(t, err)
	b := &v1Bundle{sim: sim, requests: make(chan recorded, 64)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		select {
		case b.requests <- recorded{r.Method, r.URL.Path, r.Header.Clone(), body}:
		default:
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(b.srv.Close)
	t.Cleanup(sim.Close)
	ccfg := Config{URL: b.srv.URL + gwsim.BasePathV1, Username: testUser, Password: secret.Secret(testPassword),
		Timeout: 5 * time.Second}
	for _, e := range edit {
		e(&ccfg)
	}
	c, err := NewRESTv1(ccfg)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c, b
}

func (b *v1Bundle) next(t *testing.T) recorded {
	t.Helper()
	select {
	case r := <-b.requests:
		return r
	case <-time.After(5 * time.Second):
		require.FailNow(t, "no request reached the gateway")
		return recorded{}
	}
}

// fakeV1 returns a client of a fake REST v1 gateway that answers with h, and a
// count of the requests that reached it.
func fakeV1(t *testing.T, h http.HandlerFunc) (*RESTv1, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := NewRESTv1(Config{URL: srv.URL + "/rest/gateway", Username: testUser, Password: testPassword})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c, &n
}

// broadcastJobs returns jobs sharing content and options, one per destination,
// with ids b0, b1, ...
func broadcastJobs(dests ...string) []*job.Job {
	jobs := make([]*job.Job, len(dests))
	for i, d := range dests {
		jobs[i] = &job.Job{ID: "b" + strconv.Itoa(i), Destination: d, Content: "Sale on today", Source: "2021",
			Reference: "promo-7", Metadata: map[string]string{"n": strconv.Itoa(i)}}
	}
	return jobs
}

func TestRESTv1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("SendsWithEachIDForm", func(t *testing.T) {
		t.Parallel()
		for _, form := range []gwsim.IDForm{gwsim.IDBracketed, gwsim.IDBare, gwsim.IDLocationOnly} {
			t.Run(form.String(), func(t *testing.T) {
				t.Parallel()
				c, b := setupV1(t, gwsim.Config{V1IDForm: form})
				var accepted atomic.Pointer[gwsim.Message]
				b.sim.OnAccept(func(m gwsim.Message) { accepted.Store(&m) })
				res, err := c.Send(ctx, testJob())
				require.NoError(t, err)
				require.Equal(t, Result{MessageID: accepted.Load().ID, Status: "accepted", Detail: "+64211234567"}, res)
				require.Regexp(t, v1Features.id, res.MessageID)
			})
		}
	})

	t.Run("SendsTheRequestExactly", func(t *testing.T) {
		t.Parallel()
		c, b := setupV1(t, gwsim.Config{})
		smsClass := 2
		_, err := c.Send(ctx, &job.Job{ID: "order-1", Destination: "+64211234567", Content: "Kia ora \"Ānanda\"",
			Mask: "ACME", SMSClass: &smsClass})
		require.NoError(t, err)
		r := b.next(t)
		require.Equal(t, http.MethodPost, r.method)
		require.Equal(t, "/rest/gateway/messages", r.path)
		require.Equal(t, "application/vnd.modica.gateway.v1+json", r.header.Get("Accept"))
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		require.Equal(t, UserAgentDefault, r.header.Get("User-Agent"))
		require.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword)),
			r.header.Get("Authorization"))
		require.Empty(t, r.header.Values("Idempotency-Key"))
		require.JSONEq(t, `{"destination":"+64211234567","content":"Kia ora \"Ānanda\"","reference":"order-1",`+
			`"mask":"ACME","sms_class":2}`, string(r.body))
	})

	t.Run("ReadsTheIDEveryWayTheGatewayWritesIt", func(t *testing.T) {
		t.Parallel()
		for name, tc := range map[string]struct {
			status   int
			body     string
			location string
		}{
			"Bracketed":               {201, "[12345]", ""},
			"Bare":                    {201, "12345", ""},
			"WithWhitespace":          {201, " [ 12345 ]\r\n", ""},
			"Quoted":                  {201, `"12345"`, ""},
			"QuotedInBrackets":        {201, `["12345"]`, ""},
			"LocationOnly":            {201, "", "https://api.modicagroup.com/rest/gateway/messages/12345"},
			"RelativeLocation":        {201, "", "/rest/gateway/messages/12345"},
			"LocationWithSlash":       {201, "", "https://api.example/rest/gateway/messages/12345/"},
			"LocationWhenBodyIsOdd":   {201, `{"created":true}`, "https://api.example/messages/12345"},
			"BodyBeforeLocation":      {201, "[12345]", "https://api.example/messages/999"},
			"AnotherSuccess":          {200, "12345", ""},
			"LargestID":               {201, "9223372036854775807", ""},
			"LeadingZerosInAString":   {201, `"0012345"`, ""},
			"LocationWithQuery":       {201, "", "/messages/12345?x=1"},
			"NoContentButALocation":   {204, "", "/rest/gateway/messages/12345"},
			"TwoIDsFallBackToHeader":  {201, "[1,2]", "/messages/12345"},
			"NullBodyFallsBackToo":    {201, "null", "/messages/12345"},
			"NegativeFallsBackToo":    {201, "-5", "/messages/12345"},
			"FractionFallsBackToo":    {201, "1.5", "/messages/12345"},
			"GarbledBodyFallsBackToo": {201, "[123", "/messages/12345"},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c, _ := fakeV1(t, respond(tc.status, tc.body, "Location", tc.location))
				res, err := c.Send(ctx, testJob())
				require.NoError(t, err)
				want := "12345"
				if name == "LargestID" {
					want = tc.body
				}
				require.Equal(t, Result{MessageID: want, Status: "accepted", Detail: "+64211234567"}, res)
			})
		}
	})

	t.Run("ReportsUnknownForSuccessWithoutAnID", func(t *testing.T) {
		t.Parallel()
		for name, tc := range map[string]struct{ body, location string }{
			"Empty":             {"", ""},
			"Zero":              {"0", ""},
			"Negative":          {"[-5]", ""},
			"Exponent":          {"1e3", ""},
			"TooLarge":          {"9223372036854775808", ""},
			"TwoIDs":            {"[1,2]", ""},
			"EmptyBrackets":     {"[]", ""},
			"Object":            {`{"id":12345}`, ""},
			"LocationNotAnID":   {"", "https://api.example/rest/gateway/messages/abc"},
			"LocationNoPath":    {"", "https://api.example"},
			"LocationUnparsabl": {"", "://%zz"},
			"QuotedWord":        {`"abc"`, ""},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c, _ := fakeV1(t, respond(http.StatusCreated, tc.body, "Location", tc.location))
				_, err := c.Send(ctx, testJob())
				requireOutcome(t, err, KindUnknown, 201, CodeInvalidResponse)
				require.ErrorIs(t, err, ErrUnknownOutcome)
			})
		}
	})

	t.Run("ReportsUnknownWhenA201BodyIsCutShort", func(t *testing.T) {
		t.Parallel()
		c, _ := fakeV1(t, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Length", "20")
			w.Header().Set("Location", "/messages/12345")
			w.WriteHeader(http.StatusCreated)
			_, _ = io.WriteString(w, "[123")
			w.(http.Flusher).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
			}
		})
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindUnknown, 201, CodeConnectionClosed)
	})

	t.Run("ClassifiesErrorBodiesLikeV2", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			status int
			body   string
			kind   Kind
			code   string
			desc   string
		}{
			{400, `{"error":"missing_attrib","error-desc":["content is required"]}`, KindRejected, CodeMissingAttrib, "content is required"},
			{400, `{"error-desc":"Invalid scheduled timestamp (must be less than 60 days)","error":"invalid_attrib"}`,
				KindRejected, CodeInvalidAttrib, "Invalid scheduled timestamp (must be less than 60 days)"},
			{400, `{"error":"send_failed","error-desc":["Could not queue message due to an unknown error"]}`,
				KindRetryable, CodeSendFailed, "Could not queue message due to an unknown error"},
			{400, `{"error":"invalid_json","error-desc":"Invalid JSON data in the request body"}`,
				KindRejected, CodeInvalidJSON, "Invalid JSON data in the request body"},
			{500, `{"message":"SMS Gateway error","statusCode":500,"error":"db down"}`, KindRetryable, "http_500", "SMS Gateway error: db down"},
			{404, "404 Not Found. The requested URL was not found on this server.", KindMisconfigured, "http_404",
				"no such path: check the base URL's path (REST v2 /rest/sms/v2, REST v1 /rest/gateway)"},
			{403, "", KindUnauthorized, CodeForbidden, ""},
		} {
			c, _ := fakeV1(t, respond(tc.status, tc.body))
			_, err := c.Send(ctx, testJob())
			e := requireOutcome(t, err, tc.kind, tc.status, tc.code)
			require.Equal(t, tc.desc, e.Description)
		}
	})

	t.Run("GetsAMessage", func(t *testing.T) {
		t.Parallel()
		paths := make(chan string, 4)
		c, n := fakeV1(t, func(w http.ResponseWriter, r *http.Request) {
			paths <- r.Header.Get("Accept") + " " + r.URL.Path
			switch r.URL.Path {
			case "/rest/gateway/messages/12345":
				_, _ = io.WriteString(w, `{"id":12345,"source":"2021","destination":"+64211234567","content":"Hello world!",`+
					`"reference":"order-1","operator":"Spark"}`)
			case "/rest/gateway/messages/7":
				_, _ = io.WriteString(w, `{"id":"7","content":"hi","status":"received"}`)
			case "/rest/gateway/messages/8":
				_, _ = io.WriteString(w, `{"content":"no id"}`)
			default:
				_, _ = io.WriteString(w, `{"id":{"odd":true}}`)
			}
		})
		m, err := c.Get(ctx, "12345")
		require.NoError(t, err)
		require.Equal(t, Message{ID: "12345", Source: "2021", Destination: "+64211234567", Content: "Hello world!",
			Reference: "order-1"}, m)
		m, err = c.Get(ctx, "007")
		require.NoError(t, err)
		require.Equal(t, Message{ID: "7", Content: "hi", Status: "received"}, m)
		require.Equal(t, "application/vnd.modica.gateway.v1+json /rest/gateway/messages/12345", <-paths)
		require.Equal(t, "application/vnd.modica.gateway.v1+json /rest/gateway/messages/7", <-paths, "the id in canonical form")
		m, err = c.Get(ctx, "8")
		require.NoError(t, err)
		require.Equal(t, "8", m.ID, "the id asked for when the answer has none")
		_, err = c.Get(ctx, "9")
		requireOutcome(t, err, KindRetryable, 200, CodeInvalidResponse)

		before := n.Load()
		for _, id := range []string{"", "abc", "-1", "0", "1e3", "12 34", "1/2", "99999999999999999999", "1e41f423-24cf-4fa2-9a8a-888c30653305"} {
			_, err := c.Get(ctx, id)
			require.ErrorContains(t, err, "not a REST v1 message id", id)
			require.Zero(t, KindOf(err), id)
		}
		require.Equal(t, before, n.Load(), "nothing sent for an id that is not one")
	})

	t.Run("HealthAsksForMessageZero", func(t *testing.T) {
		t.Parallel()
		status := atomic.Int32{}
		status.Store(http.StatusNotFound)
		paths := make(chan string, 4)
		c, _ := fakeV1(t, func(w http.ResponseWriter, r *http.Request) {
			paths <- r.Method + " " + r.URL.Path
			w.WriteHeader(int(status.Load()))
		})
		require.NoError(t, c.Health(ctx))
		require.Equal(t, "GET /rest/gateway/messages/0", <-paths)
		status.Store(http.StatusOK)
		require.NoError(t, c.Health(ctx))
		status.Store(http.StatusUnauthorized)
		requireOutcome(t, c.Health(ctx), KindUnauthorized, 401, CodeUnauthorized)
		status.Store(http.StatusServiceUnavailable)
		requireOutcome(t, c.Health(ctx), KindRetryable, 503, "http_503")
	})

	t.Run("BroadcastMapsEachResultToItsJob", func(t *testing.T) {
		t.Parallel()
		c, b := setupV1(t, gwsim.Config{})
		// "X" gets a failure result inside the 201; +64211234567 is given twice
		// and sent twice.
		jobs := broadcastJobs("+64211234567", "X", "+61414123456", "+64211234567")
		results, err := c.Broadcast(ctx, jobs)
		require.NoError(t, err)
		require.Len(t, results, len(jobs))

		ids := map[string]bool{}
		for _, i := range []int{0, 2, 3} {
			require.NoError(t, results[i].Err, "job %d", i)
			res := results[i].Result
			require.Regexp(t, v1Features.id, res.MessageID)
			require.Equal(t, "accepted", res.Status)
			require.Equal(t, jobs[i].Destination, res.Detail)
			m, ok := b.sim.Message(res.MessageID)
			require.True(t, ok)
			require.Equal(t, jobs[i].Destination, m.Destination)
			require.Equal(t, "promo-7", m.Reference)
			ids[res.MessageID] = true
		}
		require.Len(t, ids, 3, "the destination given twice got two messages")

		require.Zero(t, results[1].Result)
		e := requireOutcome(t, results[1].Err, KindRejected, 201, CodeBroadcastFailure)
		require.Equal(t, "Invalid destination (X)", e.Description)
		require.ErrorContains(t, results[1].Err, "broadcast message b1")

		st := b.sim.Stats()
		require.Equal(t, int64(1), st.Broadcasts)
		require.Equal(t, int64(3), st.Accepted)
		require.Equal(t, int64(1), st.BroadcastFailures)
	})

	t.Run("BroadcastSendsOneBody", func(t *testing.T) {
		t.Parallel()
		c, b := setupV1(t, gwsim.Config{})
		jobs := broadcastJobs("+64211234567", "+61414123456")
		scheduled := time.Now().Add(time.Hour).Truncate(time.Second)
		for _, j := range jobs {
			j.Scheduled = new(scheduled.In(time.FixedZone("", 13*3600)))
		}
		jobs[1].Scheduled = new(scheduled.UTC()) // the same instant in another zone
		_, err := c.Broadcast(ctx, jobs)
		require.NoError(t, err)
		r := b.next(t)
		require.Equal(t, http.MethodPost, r.method)
		require.Equal(t, "/rest/gateway/messages/broadcast", r.path)
		require.Equal(t, "application/vnd.modica.gateway.v1+json", r.header.Get("Accept"))
		require.JSONEq(t, `{"destination":["+64211234567","+61414123456"],"content":"Sale on today","source":"2021",`+
			`"reference":"promo-7","scheduled":"`+scheduled.In(time.FixedZone("", 13*3600)).Format(time.RFC3339)+`"}`,
			string(r.body))

		// Without a common reference none is sent: the job ids cannot share one.
		jobs = broadcastJobs("+64211234567", "+61414123456")
		for _, j := range jobs {
			j.Reference = ""
		}
		results, err := c.Broadcast(ctx, jobs)
		require.NoError(t, err)
		require.JSONEq(t, `{"destination":["+64211234567","+61414123456"],"content":"Sale on today","source":"2021"}`,
			string(b.next(t).body))
		m, ok := b.sim.Message(results[0].Result.MessageID)
		require.True(t, ok)
		require.Empty(t, m.Reference)
	})

	t.Run("BroadcastLimitLetsTheCallerSplit", func(t *testing.T) {
		t.Parallel()
		c, b := setupV1(t, gwsim.Config{BroadcastLimit: 2})
		jobs := broadcastJobs("+64211234561", "+64211234562", "+64211234563")
		results, err := c.Broadcast(ctx, jobs)
		require.Nil(t, results)
		require.ErrorIs(t, err, ErrBroadcastLimit)
		require.ErrorIs(t, err, ErrRejected)
		e := requireOutcome(t, err, KindRejected, 400, CodeBroadcastLimit)
		require.Contains(t, e.Description, "Broadcast limit has been exceeded")
		require.Zero(t, b.sim.Stats().Accepted)

		for _, part := range [][]*job.Job{jobs[:2], jobs[2:]} {
			results, err := c.Broadcast(ctx, part)
			require.NoError(t, err)
			for _, r := range results {
				require.NoError(t, r.Err)
			}
		}
		require.Equal(t, int64(3), b.sim.Stats().Accepted)

		require.NotErrorIs(t, &Error{Kind: KindRejected, Code: CodeInvalidAttrib}, ErrBroadcastLimit)
	})

	t.Run("BroadcastRefusesJobsThatDiffer", func(t *testing.T) {
		t.Parallel()
		c, b := setupV1(t, gwsim.Config{})
		one, two := 1, 2
		at := time.Now().Add(time.Hour)
		for field, edit := range map[string]func(*job.Job){
			"content":   func(j *job.Job) { j.Content = "other" },
			"source":    func(j *job.Job) { j.Source = "" },
			"reference": func(j *job.Job) { j.Reference = "promo-8" },
			"class":     func(j *job.Job) { j.Class = "mt_alert" },
			"mask":      func(j *job.Job) { j.Mask = "ACME" },
			"sms_class": func(j *job.Job) { j.SMSClass = &one },
			"scheduled": func(j *job.Job) { j.Scheduled = &at },
			"expires":   func(j *job.Job) { j.Expires = &at },
		} {
			jobs := broadcastJobs("+64211234561", "+64211234562", "+64211234563")
			edit(jobs[2])
			_, err := c.Broadcast(ctx, jobs)
			require.ErrorIs(t, err, ErrBroadcastMismatch, field)
			require.ErrorContains(t, err, `job "b2" has another `+field+` than job "b0"`)
			require.Zero(t, KindOf(err), field)
		}
		jobs := broadcastJobs("+64211234561", "+64211234562")
		jobs[0].SMSClass, jobs[1].SMSClass = &one, &two
		_, err := c.Broadcast(ctx, jobs)
		require.ErrorContains(t, err, "sms_class")
		jobs[1].SMSClass = new(1)
		jobs[0].Scheduled, jobs[1].Scheduled = &at, new(at.Add(time.Second))
		_, err = c.Broadcast(ctx, jobs)
		require.ErrorContains(t, err, "scheduled")

		_, err = c.Broadcast(ctx, nil)
		require.ErrorContains(t, err, "no jobs")
		_, err = c.Broadcast(ctx, []*job.Job{testJob(), nil})
		require.ErrorContains(t, err, "job 1 is nil")
		require.Zero(t, b.sim.Stats().Requests, "nothing was sent")
	})

	t.Run("BroadcastClassifiesAWholeFailure", func(t *testing.T) {
		t.Parallel()
		c, b := setupV1(t, gwsim.Config{RetryAfter: 2 * time.Second})
		jobs := broadcastJobs("+64211234561", "+64211234562")
		for _, tc := range []struct {
			fault  gwsim.Fault
			kind   Kind
			status int
			code   string
		}{
			{gwsim.Fault503, KindRetryable, 503, "http_503"},
			{gwsim.Fault429, KindRetryable, 429, "http_429"},
			{gwsim.FaultSendFailed, KindRetryable, 400, CodeSendFailed},
			{gwsim.FaultInvalidAttrib, KindRejected, 400, CodeInvalidAttrib},
			{gwsim.FaultUnauthorized, KindUnauthorized, 401, CodeUnauthorized},
			{gwsim.FaultAcceptThenReset, KindUnknown, 0, ""},
		} {
			b.sim.Inject(tc.fault)
			results, err := c.Broadcast(ctx, jobs)
			require.Nil(t, results, tc.fault.String())
			var e *Error
			require.ErrorAs(t, err, &e, tc.fault.String())
			require.Equal(t, tc.kind, e.Kind, "%s: %v", tc.fault, err)
			require.Equal(t, tc.status, e.StatusCode, "%s: %v", tc.fault, err)
			if tc.code != "" {
				require.Equal(t, tc.code, e.Code, "%s: %v", tc.fault, err)
			}
			if tc.status == 503 || tc.status == 429 {
				require.Equal(t, 2*time.Second, e.RetryAfter)
			}
		}
		require.Equal(t, int64(2), b.sim.Stats().Accepted, "accept then reset took both")

		jobs[0].SMSClass, jobs[1].SMSClass = new(7), new(7)
		_, err := c.Broadcast(ctx, jobs)
		requireOutcome(t, err, KindRejected, 400, CodeInvalidAttrib)
	})

	t.Run("BroadcastTakesAnyAnswerTheGatewayMightGive", func(t *testing.T) {
		t.Parallel()
		jobs := broadcastJobs("+64211234561", "+64211234562", "+64211234561")
		for name, tc := range map[string]struct {
			body string
			want []string // per job: an id, or "kind/code"
		}{
			"OutOfOrder": {`[{"status":"success","message":null,"destination":"+64211234562","id":2},` +
				`{"status":"success","message":null,"destination":"+64211234561","id":1},` +
				`{"status":"success","message":null,"destination":"+64211234561","id":3}]`, []string{"1", "2", "3"}},
			"StringIDs": {`[{"status":"success","destination":"+64211234561","id":"1"},` +
				`{"status":"success","destination":"+64211234562","id":"2"},` +
				`{"status":"success","destination":"+64211234561","id":"3"}]`, []string{"1", "2", "3"}},
			"MissingResults": {`[{"status":"success","message":null,"destination":"+64211234561","id":1}]`,
				[]string{"1", "unknown/invalid_response", "unknown/invalid_response"}},
			"ResultsForOthersAreIgnored": {`[{"status":"success","destination":"+64219999999","id":9},` +
				`{"status":"success","destination":"+64211234561","id":1},` +
				`{"status":"success","destination":"+64211234561","id":3},` +
				`{"status":"success","destination":"+64211234561","id":4},` +
				`{"status":"failure","message":"Blocked","destination":"+64211234562","id":null}]`,
				[]string{"1", "rejected/broadcast_failure", "3"}},
			"SuccessWithoutID": {`[{"status":"success","destination":"+64211234561","id":null},` +
				`{"status":"success","destination":"+64211234562"},` +
				`{"status":"success","destination":"+64211234561","id":-1}]`,
				[]string{"unknown/invalid_response", "unknown/invalid_response", "unknown/invalid_response"}},
			"UnknownStatus": {`[{"status":"queued","destination":"+64211234561","id":1},` +
				`{"status":"SUCCESS","destination":"+64211234562","id":2},` +
				`{"status":"failure","destination":"+64211234561","message":42}]`,
				[]string{"unknown/invalid_response", "unknown/invalid_response", "rejected/broadcast_failure"}},
			"FieldsOfOtherTypes": {`[{"status":1,"destination":"+64211234561","id":1},` +
				`{"status":"success","destination":6421,"id":2},` +
				`{"status":"success","destination":"+64211234561","id":true}]`,
				[]string{"unknown/invalid_response", "unknown/invalid_response", "unknown/invalid_response"}},
			"EmptyArray": {`[]`, []string{"unknown/invalid_response", "unknown/invalid_response", "unknown/invalid_response"}},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c, _ := fakeV1(t, respond(http.StatusCreated, tc.body, "Content-Type", "application/json"))
				results, err := c.Broadcast(ctx, jobs)
				require.NoError(t, err)
				require.Len(t, results, len(jobs))
				for i, want := range tc.want {
					kind, code, isErr := strings.Cut(want, "/")
					if !isErr {
						require.NoError(t, results[i].Err, "job %d", i)
						require.Equal(t, want, results[i].Result.MessageID, "job %d", i)
						continue
					}
					var e *Error
					require.ErrorAs(t, results[i].Err, &e, "job %d", i)
					require.Equal(t, kind, e.Kind.String(), "job %d: %v", i, results[i].Err)
					require.Equal(t, code, e.Code, "job %d", i)
					require.Equal(t, 201, e.StatusCode)
				}
			})
		}

		for name, body := range map[string]string{
			"Garbled":     `[{"status":"success"`,
			"Object":      `{"results":[]}`,
			"Empty":       ``,
			"NotObjects":  `[1,2,3]`,
			"NullEntries": `[null]`,
		} {
			c, _ := fakeV1(t, respond(http.StatusCreated, body))
			results, err := c.Broadcast(ctx, jobs)
			require.Nil(t, results, name)
			requireOutcome(t, err, KindUnknown, 201, CodeInvalidResponse)
		}
	})

	t.Run("ReceiptsCarryTheIDSendReturned", func(t *testing.T) {
		t.Parallel()
		bodies := make(chan []byte, 16)
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			bodies <- body
		}))
		t.Cleanup(rcv.Close) // after the simulator's callbacks stop
		c, _ := setupV1(t, gwsim.Config{DLRURL: rcv.URL, DLRInterim: []string{}})
		res, err := c.Send(ctx, &job.Job{ID: "j1", Destination: "+64211234567", Content: "hi"})
		require.NoError(t, err)
		results, err := c.Broadcast(ctx, broadcastJobs("+61414123456"))
		require.NoError(t, err)

		want := map[string]string{res.MessageID: "j1", results[0].Result.MessageID: "promo-7"}
		for range 2 {
			var body []byte
			select {
			case body = <-bodies:
			case <-time.After(5 * time.Second):
				require.FailNow(t, "no receipt came")
			}
			r, err := dlr.ParseReceipt(body)
			require.NoError(t, err, "%s", body)
			require.Equal(t, dlr.APIv1, r.API, "%s", body)
			require.Contains(t, want, r.MessageID)
			require.Equal(t, want[r.MessageID], r.Reference)
			require.Equal(t, "received", r.Status)
			delete(want, r.MessageID)
		}
	})

	t.Run("ValidatesConfig", func(t *testing.T) {
		t.Parallel()
		_, err := NewRESTv1(Config{URL: "ftp://api.example"})
		require.ErrorIs(t, err, ErrInvalidConfig)
		_, err = NewRESTv1(Config{URL: "https://api.example", MaxConns: -1})
		require.ErrorIs(t, err, ErrInvalidConfig)

		c, err := NewRESTv1(Config{URL: "https://api.modicagroup.com/rest/gateway/"})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		require.Equal(t, "https://api.modicagroup.com/rest/gateway/messages", c.messagesURL)
		require.Equal(t, "https://api.modicagroup.com/rest/gateway/messages/broadcast", c.broadcastURL)
		require.Equal(t, []string{"application/vnd.modica.gateway.v1+json"}, c.hdrAccept)
		require.Equal(t, TimeoutDefault, c.timeout)
		require.Equal(t, MaxConnsDefault, c.transport.MaxConnsPerHost)
	})
}

var canonicalID = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)

func FuzzParseCreatedID(f *testing.F) {
	for _, seed := range []struct{ body, location string }{
		{"[12345]", ""}, {"12345", ""}, {"", "https://api.modicagroup.com/rest/gateway/messages/12345"},
		{` [ "007" ] `, ""}, {"[1,2]", "/messages/3/"}, {"-1", ""}, {"9223372036854775808", ""},
		{"1e3", "%zz"}, {"[]", "messages/0"}, {"\xff", "\x00"},
	} {
		f.Add([]byte(seed.body), seed.location)
	}
	f.Fuzz(func(t *testing.T, body []byte, location string) {
		id, ok := parseCreatedID(body, location)
		if !ok {
			require.Empty(t, id)
			return
		}
		require.Regexp(t, canonicalID, id)
		n, err := strconv.ParseInt(id, 10, 64)
		require.NoError(t, err)
		require.Positive(t, n)

		// What encoding/json reads as one positive integer, bare or in brackets,
		// is the id, whatever the Location says.
		var bare int64
		var bracketed []int64
		switch {
		case json.Unmarshal(body, &bare) == nil && bare > 0 && digitsOnly(trimJSONSpace(body)):
			require.Equal(t, strconv.FormatInt(bare, 10), id)
		case json.Unmarshal(body, &bracketed) == nil && len(bracketed) == 1 && bracketed[0] > 0 &&
			!bytes.ContainsAny(body, ".eE-\""):
			require.Equal(t, strconv.FormatInt(bracketed[0], 10), id)
		}
	})
}

func digitsOnly(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func FuzzParseBroadcast(f *testing.F) {
	for _, seed := range []string{
		`[{"status":"success","message":null,"destination":"+64211234567","id":12345}]`,
		`[{"status":"failure","message":"Invalid destination (X)","destination":"X","id":null}]`,
		`[{"status":"success","destination":"+64211234567","id":"7"},{"status":"success","destination":"+64211234567","id":8}]`,
		`[]`, `null`, `{}`, `[null]`, `[1]`, `[{"id":1e3}]`, `[{"destination":["x"]}]`, "\xff",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		entries, err := parseBroadcast(body)
		if err != nil {
			require.Nil(t, entries)
			return
		}
		var raw []json.RawMessage
		require.NoError(t, json.Unmarshal(body, &raw), "accepted what is not a JSON array: %q", body)
		require.Len(t, entries, len(raw))
		jobs := make([]*job.Job, 0, len(entries)+1)
		for _, en := range entries {
			if en.id != "" {
				require.Regexp(t, canonicalID, en.id)
			}
			jobs = append(jobs, &job.Job{ID: "j", Destination: en.destination})
		}
		jobs = append(jobs, &job.Job{ID: "extra", Destination: "\x00none"})

		results := matchBroadcast(jobs, entries, http.StatusCreated)
		require.Len(t, results, len(jobs))
		for i, r := range results {
			if r.Err == nil {
				require.Regexp(t, canonicalID, r.Result.MessageID, "job %d", i)
				require.Equal(t, jobs[i].Destination, r.Result.Detail)
				continue
			}
			require.Zero(t, r.Result, "job %d", i)
			var e *Error
			require.True(t, errors.As(r.Err, &e), "job %d: %v", i, r.Err)
			require.Contains(t, []Kind{KindRejected, KindUnknown}, e.Kind)
		}
		require.Error(t, results[len(results)-1].Err, "a job the answer does not name")
	})
}

func FuzzAppendBroadcast(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\n", "Ā😀", "\xff\xe2\x82"} {
		f.Add(s, s+"2")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		jobs := []*job.Job{
			{ID: a, Destination: a, Content: b, Source: b, Reference: a, Class: b, Mask: a},
			{ID: b, Destination: b, Content: b, Source: b, Reference: a, Class: b, Mask: a},
		}
		require.NoError(t, checkBroadcast(jobs))
		body := appendBroadcast(make([]byte, 0, broadcastSize(jobs)), jobs)
		var got struct {
			Destination []string `json:"destination"`
		}
		require.NoError(t, json.Unmarshal(body, &got), "%s", body)
		require.Len(t, got.Destination, 2)
	})
}
