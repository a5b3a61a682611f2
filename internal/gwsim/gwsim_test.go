package gwsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// testNow is the simulator clock in tests that check scheduled times.
var testNow = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// eventWait bounds every wait for an event; nothing in these tests should take
// nearly this long.
const eventWait = 10 * time.Second

type testBundle struct {
	sim     *Simulator
	srv     *httptest.Server
	client  *http.Client
	cfg     Config
	held    chan struct{} // a hang began
	ended   chan struct{} // a hang ended and its handler is returning
	user    string
	pass    string
	baseURL string

	// Callback events, one signal each, buffered for the largest test.
	delivered chan struct{} // a receipt or MO was delivered
	failed    chan struct{} // an attempt failed and its retry is queued
	gaveUp    chan struct{} // a receipt or MO was given up
}

// setup starts cfg's simulator behind an httptest server. Cleanup ends held
// requests first, then closes the server.
func setup(t *testing.T, cfg Config) *testBundle {
	t.Helper()
	sim, err := New(cfg)
	require.NoError(t, err)
	b := &testBundle{
		sim:       sim,
		cfg:       cfg,
		held:      make(chan struct{}, 16),
		ended:     make(chan struct{}, 16),
		delivered: make(chan struct{}, 8192),
		failed:    make(chan struct{}, 8192),
		gaveUp:    make(chan struct{}, 8192),
		user:      cfg.Username,
		pass:      cfg.Password,
	}
	sim.hooks = &testHooks{
		holdStarted:       func() { notify(b.held) },
		holdEnded:         func() { notify(b.ended) },
		callbackDelivered: func() { notify(b.delivered) },
		callbackFailed:    func() { notify(b.failed) },
		callbackGaveUp:    func() { notify(b.gaveUp) },
	}
	b.srv = httptest.NewServer(sim)
	t.Cleanup(b.srv.Close)
	t.Cleanup(sim.Close)
	transport := &http.Transport{MaxIdleConnsPerHost: 8}
	t.Cleanup(transport.CloseIdleConnections)
	b.client = &http.Client{Transport: transport}
	b.baseURL = b.srv.URL + BasePath
	if cfg.API == APIv1 {
		b.baseURL = b.srv.URL + BasePathV1
	}
	return b
}

// notify signals ch without ever blocking the handler that calls it.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// answer is a response read in full.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (b *testBundle) request(t *testing.T, client *http.Client, method, path, body string) (answer, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, b.baseURL+path, rd)
	require.NoError(t, err)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if b.user != "" || b.pass != "" {
		req.SetBasicAuth(b.user, b.pass)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: data}, err
}

// giveUpWhenHeld posts a message, waits until the simulator holds it, checks that
// no answer came meanwhile, then cancels the request and returns its error.
func (b *testBundle) giveUpWhenHeld(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.baseURL+"/messages", strings.NewReader(validBody))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	errs := make(chan error, 1)
	go func() {
		resp, err := b.client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		errs <- err
	}()
	waitFor(t, b.held, "the hold to begin")
	select {
	case err := <-errs:
		require.FailNow(t, "the held request ended before the client gave up", "error: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-errs:
		return err
	case <-time.After(eventWait):
		require.FailNow(t, "the request did not end when the client gave up")
		return nil
	}
}

func (b *testBundle) do(t *testing.T, method, path, body string) answer {
	t.Helper()
	a, err := b.request(t, b.client, method, path, body)
	require.NoError(t, err)
	return a
}

func (b *testBundle) post(t *testing.T, body string) answer {
	t.Helper()
	return b.do(t, http.MethodPost, "/messages", body)
}

// accepted is the 202 body.
type accepted struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

func (b *testBundle) send(t *testing.T, body string) accepted {
	t.Helper()
	a := b.post(t, body)
	require.Equal(t, http.StatusAccepted, a.status, "body: %s", a.body)
	var acc accepted
	require.NoError(t, json.Unmarshal(a.body, &acc))
	return acc
}

// gwError is the gateway's error body with the description left raw, to tell its
// array form from its string form.
type gwError struct {
	Error string          `json:"error"`
	Desc  json.RawMessage `json:"error-desc"`
}

func parseError(t *testing.T, body []byte) gwError {
	t.Helper()
	var e gwError
	require.NoError(t, json.Unmarshal(body, &e), "body: %s", body)
	return e
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(eventWait):
		require.FailNow(t, "timed out waiting: "+what)
	}
}

const validBody = `{"destination":"+64211234567","content":"Hello world!"}`

func TestSimulator(t *testing.T) {
	t.Parallel()

	t.Run("AcceptsValidMessageWith202AndUUID", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		var got []Message
		var mu sync.Mutex
		b.sim.OnAccept(func(m Message) {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		})

		a := b.post(t, validBody)
		require.Equal(t, http.StatusAccepted, a.status)
		require.Equal(t, "application/json", a.header.Get("Content-Type"))
		var acc accepted
		require.NoError(t, json.Unmarshal(a.body, &acc))
		id, err := uuid.Parse(acc.ID)
		require.NoError(t, err)
		require.Equal(t, uuid.Version(4), id.Version())
		require.Equal(t, uuid.RFC4122, id.Variant())
		require.Equal(t, "accepted", acc.Status)
		require.Equal(t, "+64211234567", acc.Detail)

		mu.Lock()
		defer mu.Unlock()
		require.Len(t, got, 1)
		require.Equal(t, acc.ID, got[0].ID)
		require.Equal(t, "mt_message", got[0].Class)
		st := b.sim.Stats()
		require.Equal(t, int64(1), st.Requests)
		require.Equal(t, int64(1), st.Accepted)
		require.Empty(t, st.Faults)
	})

	t.Run("AnswersOnlyUnderBasePath", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.baseURL = b.srv.URL
		for _, path := range []string{"/messages", "/rest/gateway/messages", "/rest/sms/v1/messages", "/healthz"} {
			a := b.do(t, http.MethodPost, path, validBody)
			require.Equal(t, http.StatusNotFound, a.status, path)
		}
		require.Zero(t, b.sim.Stats().Requests)
		a := b.do(t, http.MethodPost, BasePath+"/messages", validBody)
		require.Equal(t, http.StatusAccepted, a.status)
		var acc accepted
		require.NoError(t, json.Unmarshal(a.body, &acc))
		g := b.do(t, http.MethodGet, BasePath+"/messages?id="+acc.ID, "")
		require.Equal(t, http.StatusOK, g.status)
		require.Equal(t, b.srv.URL+BasePath+"/messages?id="+acc.ID, g.header.Get("Location"))
	})

	t.Run("GetReturnsAcceptedMessage", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Username: "app", Password: "pw", Now: func() time.Time { return testNow }})
		acc := b.send(t, `{"destination":"+64211234567","content":"Hi \"there\"","source":"2021",`+
			`"reference":"order-1","class":"alerts","mask":"ACME","sms_class":2,`+
			`"scheduled":"2026-12-01T09:00:00+13:00","expires":"2026-12-01T10:00:00+13:00"}`)

		a := b.do(t, http.MethodGet, "/messages?id="+acc.ID, "")
		require.Equal(t, http.StatusOK, a.status)
		require.Equal(t, "application/json", a.header.Get("Content-Type"))
		require.Equal(t, b.baseURL+"/messages?id="+acc.ID, a.header.Get("Location"))
		var got map[string]any
		require.NoError(t, json.Unmarshal(a.body, &got))
		require.Equal(t, map[string]any{
			"id": acc.ID, "source": "2021", "destination": "+64211234567",
			"content": `Hi "there"`, "status": "accepted", "reference": "order-1",
		}, got)

		m, ok := b.sim.Message(acc.ID)
		require.True(t, ok)
		require.Equal(t, "alerts", m.Class)
		require.Equal(t, "ACME", m.Mask)
		require.NotNil(t, m.SMSClass)
		require.Equal(t, 2, *m.SMSClass)
		require.NotNil(t, m.Scheduled)
		require.True(t, m.Scheduled.Equal(time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC)))
		require.NotNil(t, m.Expires)
		require.Equal(t, testNow, m.At)
		require.Equal(t, int64(1), b.sim.Stats().Lookups)
	})

	t.Run("GetLeavesOutEmptyReference", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		acc := b.send(t, validBody)
		a := b.do(t, http.MethodGet, "/messages?id="+acc.ID, "")
		require.Equal(t, http.StatusOK, a.status)
		var got map[string]any
		require.NoError(t, json.Unmarshal(a.body, &got))
		require.NotContains(t, got, "reference")
	})

	t.Run("GetUnknownIs404", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.send(t, validBody)
		require.Equal(t, http.StatusNotFound, b.do(t, http.MethodGet, "/messages?id="+uuid.NewString(), "").status)
		require.Equal(t, http.StatusNotFound, b.do(t, http.MethodGet, "/messages?id=not-a-uuid", "").status)
		a := b.do(t, http.MethodGet, "/messages", "")
		require.Equal(t, http.StatusBadRequest, a.status)
		require.Equal(t, "missing_attrib", parseError(t, a.body).Error)
	})

	t.Run("RequiresBasicAuth", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Username: "app", Password: "pw"})
		acc := b.send(t, validBody)

		for _, creds := range []struct{ user, pass string }{{"", ""}, {"app", "wrong"}, {"other", "pw"}} {
			b.user, b.pass = creds.user, creds.pass
			a := b.post(t, validBody)
			require.Equal(t, http.StatusUnauthorized, a.status, "credentials %q:%q", creds.user, creds.pass)
			require.Contains(t, a.header.Get("WWW-Authenticate"), "Basic")
			require.Equal(t, http.StatusUnauthorized, b.do(t, http.MethodGet, "/messages?id="+acc.ID, "").status)
		}
		b.user, b.pass = "app", "pw"
		require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/messages?id="+acc.ID, "").status)

		st := b.sim.Stats()
		require.Equal(t, int64(1), st.Accepted)
		require.Equal(t, int64(6), st.Unauthorized)
		require.Equal(t, int64(4), st.Requests)
	})

	t.Run("SetCredentialsChangesWhatIsRequired", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Username: "app", Password: "old"})
		b.user, b.pass = "app", "new"
		require.Equal(t, http.StatusUnauthorized, b.post(t, validBody).status)

		b.sim.SetCredentials("app", "new")
		acc := b.send(t, validBody)
		require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/messages?id="+acc.ID, "").status)
		b.user, b.pass = "app", "old"
		require.Equal(t, http.StatusUnauthorized, b.post(t, validBody).status)

		// Both empty turns the check off.
		b.sim.SetCredentials("", "")
		b.user, b.pass = "", ""
		b.send(t, validBody)

		st := b.sim.Stats()
		require.Equal(t, int64(2), st.Accepted)
		require.Equal(t, int64(2), st.Unauthorized)
	})

	t.Run("SetCredentialsIsSafeDuringRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Username: "app", Password: "pw"})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 25 {
					a, err := b.request(t, b.client, http.MethodPost, "/messages", validBody)
					if err == nil && a.status != http.StatusAccepted && a.status != http.StatusUnauthorized {
						t.Errorf("status %d: %s", a.status, a.body)
					}
				}
			})
		}
		for i := range 100 {
			b.sim.SetCredentials("app", fmt.Sprint("pw", i%2))
		}
		wg.Wait()
		st := b.sim.Stats()
		require.Equal(t, int64(100), st.Accepted+st.Unauthorized)
	})

	t.Run("AcceptsLowerCaseBasicScheme", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Username: "app", Password: "pw"})
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.baseURL+"/messages", strings.NewReader(validBody))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("app", "pw")
		req.Header.Set("Authorization", "basic"+strings.TrimPrefix(req.Header.Get("Authorization"), "Basic"))
		resp, err := b.client.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
	})

	t.Run("EachValidationRuleWithItsCode", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Now: func() time.Time { return testNow }})
		const (
			array = "array"
			str   = "string"
		)
		for _, tc := range []struct {
			name   string
			body   string
			status int
			code   string
			form   string
			desc   string // substring of the description
		}{
			{"NotJSON", `destination=+64211234567`, 400, "invalid_json", str, "Invalid JSON"},
			{"TruncatedJSON", `{"destination":"+64211234567"`, 400, "invalid_json", str, "Invalid JSON"},
			{"EmptyBody", ``, 400, "invalid_json", str, "Invalid JSON"},
			{"NotAnObject", `["+64211234567","hi"]`, 400, "invalid_json", str, "JSON object"},
			{"MissingDestination", `{"content":"hi"}`, 400, "missing_attrib", array, "destination"},
			{"EmptyDestination", `{"destination":"","content":"hi"}`, 400, "missing_attrib", array, "destination"},
			{"MissingContent", `{"destination":"+64211234567"}`, 400, "missing_attrib", array, "content"},
			{"NullBody", `null`, 400, "missing_attrib", array, "destination"},
			{"LocalDestination", `{"destination":"0211234567","content":"hi"}`, 400, "invalid_attrib", array, "international"},
			{"DestinationWithLetters", `{"destination":"+6421ABC567","content":"hi"}`, 400, "invalid_attrib", array, "destination"},
			{"DestinationWithSpaces", `{"destination":"+64 21 123 4567","content":"hi"}`, 400, "invalid_attrib", array, "destination"},
			{"DestinationTooLong", `{"destination":"+1234567890123456","content":"hi"}`, 400, "invalid_attrib", array, "destination"},
			{"DestinationCountryCodeZero", `{"destination":"+0211234567","content":"hi"}`, 400, "invalid_attrib", array, "destination"},
			{"DestinationNumber", `{"destination":64211234567,"content":"hi"}`, 400, "invalid_attrib", array, "destination"},
			{"ContentNumber", `{"destination":"+64211234567","content":42}`, 400, "invalid_attrib", array, "content"},
			{"SourceObject", `{"destination":"+64211234567","content":"hi","source":{}}`, 400, "invalid_attrib", array, "source"},
			{"SMSClassTooHigh", `{"destination":"+64211234567","content":"hi","sms_class":4}`, 400, "invalid_attrib", array, "sms_class"},
			{"SMSClassNegative", `{"destination":"+64211234567","content":"hi","sms_class":-1}`, 400, "invalid_attrib", array, "sms_class"},
			{"SMSClassString", `{"destination":"+64211234567","content":"hi","sms_class":"1"}`, 400, "invalid_attrib", array, "sms_class"},
			{"SMSClassFraction", `{"destination":"+64211234567","content":"hi","sms_class":1.5}`, 400, "invalid_attrib", array, "sms_class"},
			{"ExpiresNotRFC3339", `{"destination":"+64211234567","content":"hi","expires":"tomorrow"}`, 400, "invalid_attrib", array, "expires"},
			{"ScheduledNotRFC3339", `{"destination":"+64211234567","content":"hi","scheduled":"2026-12-01 09:00:00"}`, 400, "invalid_attrib", str, "Invalid scheduled timestamp (must be RFC3339)"},
			{"ScheduledWithoutZone", `{"destination":"+64211234567","content":"hi","scheduled":"2026-12-01T09:00:00"}`, 400, "invalid_attrib", str, "Invalid scheduled timestamp (must be RFC3339)"},
			{"ScheduledNumber", `{"destination":"+64211234567","content":"hi","scheduled":1764579600}`, 400, "invalid_attrib", array, "scheduled"},
			{"Scheduled60DaysAhead", `{"destination":"+64211234567","content":"hi","scheduled":"2027-01-21T09:00:00Z"}`, 400, "invalid_attrib", str, "Invalid scheduled timestamp (must be less than 60 days)"},
			{"ScheduledInThePast", `{"destination":"+64211234567","content":"hi","scheduled":"2026-11-22T08:59:59Z"}`, 422, "invalid_attrib", str, "must not be in the past"},
		} {
			a := b.post(t, tc.body)
			require.Equal(t, tc.status, a.status, "%s: %s", tc.name, a.body)
			require.Equal(t, "application/json", a.header.Get("Content-Type"), tc.name)
			e := parseError(t, a.body)
			require.Equal(t, tc.code, e.Error, tc.name)
			var desc string
			switch tc.form {
			case array:
				var descs []string
				require.NoError(t, json.Unmarshal(e.Desc, &descs), "%s: error-desc %s is not an array of strings", tc.name, e.Desc)
				require.NotEmpty(t, descs, tc.name)
				desc = strings.Join(descs, "; ")
			case str:
				require.NoError(t, json.Unmarshal(e.Desc, &desc), "%s: error-desc %s is not a string", tc.name, e.Desc)
			}
			require.Contains(t, desc, tc.desc, tc.name)
		}
		st := b.sim.Stats()
		require.Equal(t, int64(0), st.Accepted)
		require.Equal(t, st.Requests, st.Rejected)
	})

	t.Run("AcceptsTheEdgesOfTheRules", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Now: func() time.Time { return testNow }})
		for _, body := range []string{
			`{"destination":"+123456789012345","content":"hi"}`,
			`{"destination":"+64211234567","content":"hi","sms_class":0}`,
			`{"destination":"+64211234567","content":"hi","sms_class":3}`,
			`{"destination":"+64211234567","content":"hi","scheduled":"2026-11-22T09:00:00Z"}`,
			`{"destination":"+64211234567","content":"hi","scheduled":"2027-01-21T08:59:59.999Z"}`,
			`{"destination":"+64211234567","content":"hi","scheduled":"2026-11-22T22:00:00+13:00"}`,
			`{"destination":"+64211234567","content":"hi","unknown":"ignored"}`,
		} {
			a := b.post(t, body)
			require.Equal(t, http.StatusAccepted, a.status, "%s: %s", body, a.body)
		}
	})

	t.Run("ScheduledPastIs422", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Now: func() time.Time { return testNow }})
		a := b.post(t, `{"destination":"+64211234567","content":"hi","scheduled":"2026-11-22T21:59:00+13:00"}`)
		require.Equal(t, http.StatusUnprocessableEntity, a.status)
		e := parseError(t, a.body)
		require.Equal(t, "invalid_attrib", e.Error)
		require.JSONEq(t, `"Invalid scheduled timestamp (must not be in the past)"`, string(e.Desc))
		require.Equal(t, int64(1), b.sim.Stats().Rejected)
	})

	t.Run("BodyTooLargeIs413", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		body := `{"destination":"+64211234567","content":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
		require.Equal(t, http.StatusRequestEntityTooLarge, b.post(t, body).status)
		require.Equal(t, int64(1), b.sim.Stats().Rejected)
	})

	t.Run("InjectedFaultsComeInOrder", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.sim.Inject(Fault503, Fault503)
		require.Equal(t, http.StatusServiceUnavailable, b.post(t, validBody).status)
		require.Equal(t, http.StatusServiceUnavailable, b.post(t, validBody).status)
		b.send(t, validBody)

		b.sim.Inject(FaultNone, Fault429)
		b.sim.Inject(FaultSendFailed)
		b.send(t, validBody)
		require.Equal(t, http.StatusTooManyRequests, b.post(t, validBody).status)
		require.Equal(t, http.StatusBadRequest, b.post(t, validBody).status)
		b.send(t, validBody)

		st := b.sim.Stats()
		require.Equal(t, int64(7), st.Requests)
		require.Equal(t, int64(3), st.Accepted)
		require.Equal(t, map[Fault]int64{Fault503: 2, Fault429: 1, FaultSendFailed: 1}, st.Faults)
	})

	t.Run("InjectedFaultAnswers", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Username: "app", Password: "pw"})
		for _, tc := range []struct {
			fault  Fault
			status int
			check  func(t *testing.T, a answer)
		}{
			{Fault500, 500, func(t *testing.T, a answer) {
				require.True(t, strings.HasPrefix(a.header.Get("Content-Type"), "text/plain"))
			}},
			{FaultOpenAPIError, 500, func(t *testing.T, a answer) {
				var e struct {
					Message    *string `json:"message"`
					StatusCode int     `json:"statusCode"`
					Error      *string `json:"error"`
				}
				require.NoError(t, json.Unmarshal(a.body, &e))
				require.NotNil(t, e.Message)
				require.NotNil(t, e.Error)
				require.Equal(t, 500, e.StatusCode)
			}},
			{FaultSendFailed, 400, func(t *testing.T, a answer) {
				require.JSONEq(t, `{"error":"send_failed","error-desc":"Could not queue message due to an unknown error"}`, string(a.body))
			}},
			{FaultInvalidAttrib, 400, func(t *testing.T, a answer) {
				require.Equal(t, "invalid_attrib", parseError(t, a.body).Error)
			}},
			{FaultUnauthorized, 401, func(t *testing.T, a answer) {}},
		} {
			b.sim.Inject(tc.fault)
			a := b.post(t, validBody)
			require.Equal(t, tc.status, a.status, "%v: %s", tc.fault, a.body)
			tc.check(t, a)
		}
		st := b.sim.Stats()
		require.Equal(t, int64(0), st.Accepted)
		require.Equal(t, int64(0), st.Unauthorized, "an injected 401 counts as a fault")
		require.Len(t, st.Faults, 5)
	})

	t.Run("SendFailedYieldsToValidation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.sim.Inject(FaultSendFailed)
		a := b.post(t, `{"content":"hi"}`)
		require.Equal(t, http.StatusBadRequest, a.status)
		require.Equal(t, "missing_attrib", parseError(t, a.body).Error)
		st := b.sim.Stats()
		require.Empty(t, st.Faults)
		require.Equal(t, int64(1), st.Rejected)
	})

	t.Run("RetryAfterOn429And503", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			retryAfter time.Duration
			want       string
		}{
			{0, "1"},
			{100 * time.Millisecond, "1"},
			{2 * time.Second, "2"},
			{2500 * time.Millisecond, "3"},
		} {
			b := setup(t, Config{RetryAfter: tc.retryAfter})
			b.sim.Inject(Fault429, Fault503)
			a := b.post(t, validBody)
			require.Equal(t, http.StatusTooManyRequests, a.status)
			require.Equal(t, tc.want, a.header.Get("Retry-After"), "RetryAfter %v", tc.retryAfter)
			a = b.post(t, validBody)
			require.Equal(t, http.StatusServiceUnavailable, a.status)
			require.Equal(t, tc.want, a.header.Get("Retry-After"), "RetryAfter %v", tc.retryAfter)
		}
	})

	t.Run("LatencyDelaysTheAnswer", func(t *testing.T) {
		t.Parallel()
		const latency = 50 * time.Millisecond
		b := setup(t, Config{Latency: latency, Jitter: 10 * time.Millisecond})
		start := time.Now()
		b.send(t, validBody)
		require.GreaterOrEqual(t, time.Since(start), latency)
	})

	t.Run("TimeoutFaultHoldsUntilClientGivesUp", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{}) // HangFor is the 30s default
		var accepts atomic.Int64
		b.sim.OnAccept(func(Message) { accepts.Add(1) })
		b.sim.Inject(FaultTimeout)

		// The client gives up once the server holds the request, not after a fixed
		// timeout, which a loaded machine could spend before the request arrives.
		err := b.giveUpWhenHeld(t)
		require.ErrorIs(t, err, context.Canceled)
		waitFor(t, b.ended, "the hold to end after the client left")

		st := b.sim.Stats()
		require.Equal(t, int64(0), st.Accepted)
		require.Equal(t, int64(0), accepts.Load())
		require.Equal(t, int64(0), st.Held)
		require.Equal(t, map[Fault]int64{FaultTimeout: 1}, st.Faults)
		b.send(t, validBody)
	})

	t.Run("TimeoutFaultEndsAfterHangFor", func(t *testing.T) {
		t.Parallel()
		const hangFor = 50 * time.Millisecond
		b := setup(t, Config{HangFor: hangFor})
		b.sim.Inject(FaultTimeout)
		start := time.Now()
		_, err := b.request(t, b.client, http.MethodPost, "/messages", validBody)
		require.Error(t, err, "the connection closes without an answer")
		require.GreaterOrEqual(t, time.Since(start), hangFor)
		waitFor(t, b.ended, "the hold to end")
	})

	t.Run("CloseEndsHeldRequests", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.sim.Inject(FaultTimeout, FaultAcceptThenHang)
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				_, err := b.request(t, b.client, http.MethodPost, "/messages", validBody)
				errs <- err
			}()
		}
		waitFor(t, b.held, "the first hold")
		waitFor(t, b.held, "the second hold")
		require.Equal(t, int64(2), b.sim.Stats().Held)
		b.sim.Close()
		for range 2 {
			select {
			case err := <-errs:
				require.Error(t, err)
			case <-time.After(eventWait):
				require.FailNow(t, "Close did not end a held request")
			}
		}
		b.sim.Close() // safe twice
		require.Equal(t, int64(1), b.sim.Stats().Accepted)
	})

	t.Run("ResetFaultGivesNoResponse", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		var accepts atomic.Int64
		b.sim.OnAccept(func(Message) { accepts.Add(1) })
		b.send(t, validBody) // so the reset hits a kept-alive connection too
		b.sim.Inject(FaultReset)
		a, err := b.request(t, b.client, http.MethodPost, "/messages", validBody)
		require.Error(t, err, "got an answer: %d %s", a.status, a.body)

		st := b.sim.Stats()
		require.Equal(t, int64(1), st.Accepted)
		require.Equal(t, int64(1), accepts.Load())
		require.Equal(t, map[Fault]int64{FaultReset: 1}, st.Faults)
		b.send(t, validBody)
	})

	t.Run("AcceptThenResetCountsAsAccepted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		got := make(chan Message, 1)
		b.sim.OnAccept(func(m Message) { got <- m })
		b.sim.Inject(FaultAcceptThenReset)
		_, err := b.request(t, b.client, http.MethodPost, "/messages", `{"destination":"+64211234567","content":"hi","reference":"r-1"}`)
		require.Error(t, err)

		m := <-got // OnAccept ran before the reset
		require.Equal(t, "r-1", m.Reference)
		kept, ok := b.sim.Message(m.ID)
		require.True(t, ok)
		require.Equal(t, m, kept)
		st := b.sim.Stats()
		require.Equal(t, int64(1), st.Accepted)
		require.Equal(t, map[Fault]int64{FaultAcceptThenReset: 1}, st.Faults)
	})

	t.Run("AcceptThenHangCountsAsAccepted", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.sim.Inject(FaultAcceptThenHang)
		require.ErrorIs(t, b.giveUpWhenHeld(t), context.Canceled)
		waitFor(t, b.ended, "the hold to end after the client left")
		st := b.sim.Stats()
		require.Equal(t, int64(1), st.Accepted)
		require.Equal(t, int64(0), st.Held)
		require.Equal(t, map[Fault]int64{FaultAcceptThenHang: 1}, st.Faults)
	})

	t.Run("AcceptThenFaultsYieldToValidation", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.sim.Inject(FaultAcceptThenReset, FaultAcceptThenHang)
		require.Equal(t, http.StatusBadRequest, b.post(t, `{"destination":"0211234567","content":"hi"}`).status)
		require.Equal(t, http.StatusBadRequest, b.post(t, `{"destination":"0211234567","content":"hi"}`).status)
		st := b.sim.Stats()
		require.Equal(t, int64(0), st.Accepted)
		require.Empty(t, st.Faults)
	})

	t.Run("MixIsRespected", func(t *testing.T) {
		t.Parallel()
		// The draws are what is under test, so requests go straight to ServeHTTP:
		// 10,000 round trips over loopback would add time and nothing else.
		b := setup(t, Config{Faults: Mix{Status503: 0.10, Status500: 0.05, Status429: 0.05, SendFailed: 0.05}})
		const n = 10_000
		counts := map[int]int{}
		for range n {
			rec := httptest.NewRecorder()
			req := postRequest(validBody)
			b.sim.ServeHTTP(rec, req)
			counts[rec.Code]++
		}
		// Each band is more than six standard deviations wide on either side.
		between := func(status int, lo, hi float64) {
			got := float64(counts[status]) / n
			require.True(t, got >= lo && got <= hi, "status %d: %.4f of requests, want %.2f–%.2f", status, got, lo, hi)
		}
		between(http.StatusServiceUnavailable, 0.08, 0.12)
		between(http.StatusInternalServerError, 0.035, 0.065)
		between(http.StatusTooManyRequests, 0.035, 0.065)
		between(http.StatusBadRequest, 0.035, 0.065)
		between(http.StatusAccepted, 0.72, 0.78)

		st := b.sim.Stats()
		require.Equal(t, int64(n), st.Requests)
		require.Equal(t, int64(counts[http.StatusAccepted]), st.Accepted)
		require.Equal(t, int64(counts[http.StatusServiceUnavailable]), st.Faults[Fault503])
		require.Equal(t, int64(counts[http.StatusBadRequest]), st.Faults[FaultSendFailed])
	})

	t.Run("ZeroMixNeverFaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		for range 1000 {
			rec := httptest.NewRecorder()
			b.sim.ServeHTTP(rec, postRequest(validBody))
			require.Equal(t, http.StatusAccepted, rec.Code)
		}
	})

	t.Run("ParseMixReadsEveryKey", func(t *testing.T) {
		t.Parallel()
		m, err := ParseMix(" 500=0.01, 503=0.02,429=0.01,send_failed=0.01,timeout=0.001,reset=0.001," +
			"openapi_500=0.002,accept_then_reset=0.003,accept_then_hang=0.004")
		require.NoError(t, err)
		want := Mix{Status500: 0.01, Status503: 0.02, Status429: 0.01, SendFailed: 0.01, Timeout: 0.001,
			Reset: 0.001, OpenAPIError: 0.002, AcceptThenReset: 0.003, AcceptThenHang: 0.004}
		require.Equal(t, want, m)
		again, err := ParseMix(m.String())
		require.NoError(t, err)
		require.Equal(t, m, again)

		m, err = ParseMix("")
		require.NoError(t, err)
		require.Equal(t, Mix{}, m)
		require.Equal(t, "", m.String())
		_, err = ParseMix("503=0.7,500=0.2,429=0.1")
		require.NoError(t, err, "a sum of exactly 1 is allowed despite rounding")
		m, err = ParseMix("503=0.1, ,")
		require.NoError(t, err)
		require.Equal(t, Mix{Status503: 0.1}, m)
	})

	t.Run("ParseMixErrorsNameTheKey", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			in   string
			want []string
		}{
			{"502=0.1", []string{`"502"`, "unknown key", "send_failed"}},
			{"503=abc", []string{"503", `"abc"`, "not a number"}},
			{"503=", []string{"503", "not a number"}},
			{"503=1.5", []string{"Status503", "503", "1.5", "from 0 to 1"}},
			{"429=-0.1", []string{"Status429", "-0.1"}},
			{"timeout=NaN", []string{"Timeout", "NaN"}},
			{"503", []string{`"503"`, "key=chance"}},
			{"503=0.1,503=0.2", []string{`"503"`, "twice"}},
			{"503=0.6,500=0.6", []string{"add up to 1.2", "at most 1"}},
		} {
			_, err := ParseMix(tc.in)
			require.ErrorIs(t, err, ErrInvalidMix, tc.in)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w, tc.in)
			}
		}
	})

	t.Run("NewNamesTheBadField", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			cfg  Config
			want string
		}{
			{Config{Latency: -time.Second}, "Latency"},
			{Config{Jitter: -time.Second}, "Jitter"},
			{Config{RetryAfter: -time.Second}, "RetryAfter"},
			{Config{HangFor: -time.Second}, "HangFor"},
			{Config{Faults: Mix{Reset: 2}}, "Faults: gwsim: invalid fault mix: Reset"},
		} {
			_, err := New(tc.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.Contains(t, err.Error(), tc.want)
		}
		_, err := New(Config{Faults: Mix{Reset: 2}})
		require.ErrorIs(t, err, ErrInvalidMix)
	})

	t.Run("KeepBoundsMemory", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Keep: 10})
		ids := make([]string, 100)
		for i := range ids {
			ids[i] = b.send(t, fmt.Sprintf(`{"destination":"+6421%07d","content":"hi"}`, i)).ID
		}
		for i, id := range ids {
			_, ok := b.sim.Message(id)
			status := b.do(t, http.MethodGet, "/messages?id="+id, "").status
			if i < 90 {
				require.False(t, ok, "message %d should have been dropped", i)
				require.Equal(t, http.StatusNotFound, status)
			} else {
				require.True(t, ok, "message %d should be kept", i)
				require.Equal(t, http.StatusOK, status)
			}
		}
		require.Len(t, b.sim.store.ring, 10)
		require.Len(t, b.sim.store.index, 10)
	})

	t.Run("NegativeKeepKeepsNone", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Keep: -1})
		acc := b.send(t, validBody)
		_, ok := b.sim.Message(acc.ID)
		require.False(t, ok)
		require.Equal(t, http.StatusNotFound, b.do(t, http.MethodGet, "/messages?id="+acc.ID, "").status)
	})

	t.Run("AcceptsConcurrentlyWithUniqueIDs", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Faults: Mix{Status503: 0.2}})
		var mu sync.Mutex
		seen := map[string]bool{}
		dups := 0
		b.sim.OnAccept(func(m Message) {
			mu.Lock()
			defer mu.Unlock()
			if seen[m.ID] {
				dups++
			}
			seen[m.ID] = true
		})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 25 {
					_, _ = b.request(t, b.client, http.MethodPost, "/messages", validBody)
				}
			})
		}
		wg.Wait()
		st := b.sim.Stats()
		require.Equal(t, int64(200), st.Requests)
		require.Equal(t, st.Requests, st.Accepted+st.Faults[Fault503])
		mu.Lock()
		defer mu.Unlock()
		require.Zero(t, dups, "ids given twice")
		require.Len(t, seen, int(st.Accepted))
	})

	t.Run("Healthz", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{Username: "app", Password: "pw"})
		b.user, b.pass = "", ""
		require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/healthz", "").status)
		require.Equal(t, http.StatusMethodNotAllowed, b.do(t, http.MethodPost, "/healthz", "{}").status)
	})

	t.Run("UnknownRoutes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		require.Equal(t, http.StatusNotFound, b.do(t, http.MethodGet, "/", "").status)
		require.Equal(t, http.StatusNotFound, b.do(t, http.MethodPost, "/messages/broadcast", validBody).status)
		a := b.do(t, http.MethodPut, "/messages", validBody)
		require.Equal(t, http.StatusMethodNotAllowed, a.status)
		require.Contains(t, a.header.Get("Allow"), "POST")
		require.Equal(t, int64(0), b.sim.Stats().Requests)
	})

	t.Run("FaultNamesAreMixKeys", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "503", Fault503.String())
		require.Equal(t, "accept_then_hang", FaultAcceptThenHang.String())
		require.Equal(t, "Fault(99)", Fault(99).String())
	})
}

// FuzzParseMix checks that ParseMix never panics and that what it accepts is valid
// and survives a round trip through String.
func FuzzParseMix(f *testing.F) {
	for _, seed := range []string{"", "503=0.1", "500=0.01,503=0.02,429=0.01,send_failed=0.01,timeout=0.001,reset=0.001",
		"503=1e-3", "503=0x1p-2", "503=1.5", "x=1", "503=0.5,503=0.5", "=", ",,,"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		m, err := ParseMix(in)
		if err != nil {
			require.ErrorIs(t, err, ErrInvalidMix)
			return
		}
		require.NoError(t, m.Validate())
		again, err := ParseMix(m.String())
		require.NoError(t, err)
		require.Equal(t, m, again)
	})
}

// FuzzDecode checks that any body gets either a message with the required
// attributes in valid form or a rejection with a gateway error body.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{validBody, "", "null", "[]", `{"destination":"+1","content":"x"}`,
		`{"destination":"+64211234567","content":"hi","sms_class":3,"scheduled":"2026-11-23T00:00:00Z"}`,
		`{"destination":"+64211234567","content":"hi","scheduled":"2026-11-22T08:00:00Z"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, rej := decode(body, testNow)
		if rej != nil {
			require.Contains(t, []int{400, 422}, rej.status)
			var e gwError
			require.NoError(t, json.Unmarshal(rej.body, &e))
			require.NotEmpty(t, e.Error)
			require.NotEmpty(t, e.Desc)
			return
		}
		require.True(t, international(m.Destination), m.Destination)
		require.NotEmpty(t, m.Content)
		require.NotEmpty(t, m.Class)
		if m.SMSClass != nil {
			require.True(t, *m.SMSClass >= 0 && *m.SMSClass <= 3)
		}
		if m.Scheduled != nil {
			require.False(t, m.Scheduled.Before(testNow))
			require.True(t, m.Scheduled.Before(testNow.Add(ScheduleLimit)))
		}
	})
}

// BenchmarkSimulator measures POST /messages over real HTTP on loopback: 64
// goroutines share a keep-alive client, so client and server compete for the same
// cores.
func BenchmarkSimulator(b *testing.B) {
	sim, err := New(Config{Username: "app", Password: "pw"})
	require.NoError(b, err)
	srv := httptest.NewServer(sim)
	b.Cleanup(srv.Close)
	b.Cleanup(sim.Close)
	transport := &http.Transport{MaxIdleConnsPerHost: 64, MaxIdleConns: 64}
	b.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: transport}
	url := srv.URL + BasePath + "/messages"
	body := []byte(validBody)

	const goroutines = 64
	b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.SetBasicAuth("app", "pw")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	require.Equal(b, int64(b.N), sim.Stats().Accepted)
}

// postRequest is a POST /messages under BasePath with a JSON body, for ServeHTTP.
func postRequest(body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, BasePath+"/messages", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}
