package dispatcher

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/secret"
	"github.com/jetsms/jetsms/job"
)

const (
	testUser     = "gw_username"
	testPassword = "abcde12345"
	testMsgID    = "1e41f423-24cf-4fa2-9a8a-888c30653305"
	// shortTimeout is Config.Timeout for subtests whose point is a timeout.
	shortTimeout = 200 * time.Millisecond
)

// testBundle is what a subtest needs besides the client: the fake gateway and
// what it saw.
type testBundle struct {
	srv      *httptest.Server
	handler  atomic.Pointer[http.HandlerFunc]
	requests atomic.Int32 // requests that reached the handler
	// release unblocks handlers that wait on it; it is closed at cleanup,
	// before the server is closed.
	release chan struct{}
}

// handle swaps the fake gateway's handler.
func (b *testBundle) handle(h http.HandlerFunc) { b.handler.Store(&h) }

type setupOpts struct {
	tls    bool
	config func(*Config)
}

// setup starts a fake gateway answering 202 and returns a client of it.
func setup(t *testing.T, opts ...func(*setupOpts)) (*RESTv2, *testBundle) {
	t.Helper()
	var o setupOpts
	for _, f := range opts {
		f(&o)
	}
	b := &testBundle{release: make(chan struct{})}
	b.handle(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"id":"`+testMsgID+`","status":"accepted","detail":"+64211234567"}`)
	})
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		(*b.handler.Load())(w, r)
	}))
	if o.tls {
		b.srv.EnableHTTP2 = true
		b.srv.StartTLS()
	} else {
		b.srv.Start()
	}
	t.Cleanup(b.srv.Close)
	t.Cleanup(func() { close(b.release) }) // runs before srv.Close

	cfg := Config{URL: b.srv.URL, Username: testUser, Password: secret.Secret(testPassword)}
	if o.config != nil {
		o.config(&cfg)
	}
	c, err := NewRESTv2(cfg)
	require.NoError(t, err)
	if o.tls {
		c.transport.TLSClientConfig = &tls.Config{RootCAs: testRootCAs(b.srv)}
	}
	t.Cleanup(c.Close)
	return c, b
}

// warm opens a keep-alive connection to the fake gateway (with its default
// handler, before a subtest swaps it), so that a subtest about timeouts does not
// spend its short Timeout on dialling or a TLS handshake. The warming request is
// not counted in b.requests.
func warm(t *testing.T, c *RESTv2, b *testBundle) {
	t.Helper()
	resp, err := (&http.Client{Transport: c.transport}).Get(b.srv.URL + "/warm")
	require.NoError(t, err)
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	b.requests.Store(0)
}

func withConfig(f func(*Config)) func(*setupOpts) { return func(o *setupOpts) { o.config = f } }

func withTLS() func(*setupOpts) { return func(o *setupOpts) { o.tls = true } }

func testRootCAs(srv *httptest.Server) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return pool
}

func testJob() *job.Job {
	return &job.Job{ID: "order-1234-otp", Destination: "+64211234567", Content: "Your code is 123456"}
}

// respond returns a handler that reads the request and answers status with the
// given headers (name, value pairs) and body.
func respond(status int, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// requireOutcome checks that err wraps an *Error of kind, status and code, and
// returns it.
func requireOutcome(t *testing.T, err error, kind Kind, status int, code string) *Error {
	t.Helper()
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, kind, e.Kind, "kind of %v", err)
	require.Equal(t, status, e.StatusCode, "status of %v", err)
	require.Equal(t, code, e.Code, "code of %v", err)
	require.Equal(t, kind, KindOf(err))
	return e
}

func TestRESTv2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("AcceptsWith202", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		res, err := c.Send(ctx, testJob())
		require.NoError(t, err)
		require.Equal(t, Result{MessageID: testMsgID, Status: "accepted", Detail: "+64211234567"}, res)
		require.EqualValues(t, 1, b.requests.Load())
	})

	t.Run("SendsTheRequestExactly", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t, withConfig(func(cfg *Config) { cfg.URL += "/rest/sms/v2/" }))
		type seen struct {
			method, path, query string
			header              http.Header
			body                []byte
		}
		got := make(chan seen, 3)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body}
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"id":"`+testMsgID+`","status":"accepted"}`)
		})

		nz := time.FixedZone("NZDT", 13*3600)
		scheduled := time.Date(2026, 12, 1, 9, 0, 0, 0, nz)
		expires := time.Date(2026, 12, 1, 10, 0, 0, 500, nz) // fraction kept (the docs' "s" digits)
		smsClass := 0
		full := &job.Job{
			ID: "order-1234-otp", Destination: "+64211234567", Content: "Kia ora \"Ānanda\"\n😀",
			Source: "2021", Class: "mt_message", Mask: "ACME", SMSClass: &smsClass,
			Scheduled: &scheduled, Expires: &expires,
			Metadata: map[string]string{"tenant": "acme"}, Lane: "priority",
		}
		_, err := c.Send(ctx, full)
		require.NoError(t, err)
		s := <-got
		require.Equal(t, http.MethodPost, s.method)
		require.Equal(t, "/rest/sms/v2/messages", s.path)
		require.Empty(t, s.query)
		require.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword)),
			s.header.Get("Authorization"))
		require.Equal(t, "application/json", s.header.Get("Content-Type"))
		require.Equal(t, "application/json", s.header.Get("Accept"))
		require.Equal(t, UserAgentDefault, s.header.Get("User-Agent"))
		require.Empty(t, s.header.Values("Idempotency-Key"))
		require.Empty(t, s.header.Values("X-Idempotency-Key"))

		var body map[string]any
		require.NoError(t, json.Unmarshal(s.body, &body))
		require.Equal(t, map[string]any{
			"destination": "+64211234567",
			"content":     "Kia ora \"Ānanda\"\n😀",
			"source":      "2021",
			"reference":   "order-1234-otp", // the job id, as the job has no reference
			"class":       "mt_message",
			"mask":        "ACME",
			"sms_class":   float64(0),
			"scheduled":   "2026-12-01T09:00:00+13:00",
			"expires":     "2026-12-01T10:00:00.0000005+13:00",
		}, body)

		// A job's own reference wins; unset optional fields are left out.
		_, err = c.Send(ctx, &job.Job{ID: "j2", Destination: "+61414123456", Content: "hi", Reference: "order-9"})
		require.NoError(t, err)
		s = <-got
		require.JSONEq(t, `{"destination":"+61414123456","content":"hi","reference":"order-9"}`, string(s.body))

		// UTC keeps "Z".
		utc := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		_, err = c.Send(ctx, &job.Job{Destination: "+61414123456", Content: "hi", Scheduled: &utc})
		require.NoError(t, err)
		s = <-got
		require.JSONEq(t, `{"destination":"+61414123456","content":"hi","scheduled":"2026-12-01T09:00:00Z"}`, string(s.body))
	})

	t.Run("ClassifiesEach400ByItsCode", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, body, code, desc string
			kind                   Kind
		}{
			{"InvalidJSON", `{"error":"invalid_json","error-desc":["Invalid JSON data in the request body"]}`,
				CodeInvalidJSON, "Invalid JSON data in the request body", KindRejected},
			{"MissingAttrib", `{"error":"missing_attrib","error-desc":["destination is required","content is required"]}`,
				CodeMissingAttrib, "destination is required; content is required", KindRejected},
			{"InvalidAttribWithStringDesc", `{"error-desc":"Invalid scheduled timestamp (must be less than 60 days)","error":"invalid_attrib"}`,
				CodeInvalidAttrib, "Invalid scheduled timestamp (must be less than 60 days)", KindRejected},
			{"SendFailedIsRetryable", `{"error":"send_failed","error-desc":["Could not queue message due to an unknown error"]}`,
				CodeSendFailed, "Could not queue message due to an unknown error", KindRetryable},
			{"NoCode", `{"error-desc":"Invalid scheduled timestamp (must be RFC3339)"}`,
				"http_400", "Invalid scheduled timestamp (must be RFC3339)", KindRejected},
			{"UnknownCode", `{"error":"broadcast_limit","error-desc":[]}`, "broadcast_limit", "", KindRejected},
			{"EmptyBody", ``, "http_400", "", KindRejected},
			{"NotJSON", `Bad Request`, "http_400", "", KindRejected},
			{"CodeOfWrongType", `{"error":42,"error-desc":"odd"}`, "http_400", "odd", KindRejected},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				c, b := setup(t)
				b.handle(respond(http.StatusBadRequest, tc.body, "Content-Type", "application/json"))
				_, err := c.Send(ctx, testJob())
				e := requireOutcome(t, err, tc.kind, http.StatusBadRequest, tc.code)
				require.Equal(t, tc.desc, e.Description)
			})
		}
	})

	t.Run("ReadsTheOpenAPIErrorBody", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusInternalServerError,
			`{"message":"SMS Gateway Service V2 error","statusCode":500,"error":"an example error message"}`))
		_, err := c.Send(ctx, testJob())
		e := requireOutcome(t, err, KindRetryable, 500, "http_500")
		require.Equal(t, "SMS Gateway Service V2 error: an example error message", e.Description)
		require.ErrorIs(t, err, ErrRetryable)
	})

	t.Run("ReadsAGatewayCodeInTheOpenAPIBody", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusBadRequest, `{"message":"Invalid attribute","statusCode":400,"error":"invalid_attrib"}`))
		_, err := c.Send(ctx, testJob())
		e := requireOutcome(t, err, KindRejected, 400, CodeInvalidAttrib)
		require.Equal(t, "Invalid attribute", e.Description)
	})

	t.Run("ClassifiesNonJSON500ByStatus", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusInternalServerError, "<html><body>Internal Server Error</body></html>",
			"Content-Type", "text/html"))
		_, err := c.Send(ctx, testJob())
		// No error body of the gateway's: it may have queued the message.
		e := requireOutcome(t, err, KindUnknown, 500, "http_500")
		require.Empty(t, e.Description)
		require.Zero(t, e.RetryAfter)
		require.NoError(t, e.Err)
	})

	t.Run("RejectsScheduledInThePastOn422", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusUnprocessableEntity, `{"error-desc":"Invalid scheduled timestamp (must not be in the past)"}`))
		_, err := c.Send(ctx, testJob())
		e := requireOutcome(t, err, KindRejected, 422, CodeScheduledInPast)
		require.Equal(t, "Invalid scheduled timestamp (must not be in the past)", e.Description)
		require.ErrorIs(t, err, ErrRejected)
	})

	t.Run("HonoursRetryAfterSecondsOn429", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusTooManyRequests, `{"message":"Too Many Requests"}`, "Retry-After", "30"))
		_, err := c.Send(ctx, testJob())
		e := requireOutcome(t, err, KindRetryable, 429, "http_429")
		require.Equal(t, 30*time.Second, e.RetryAfter)
		require.Contains(t, e.Error(), "retry after 30s")
	})

	t.Run("HonoursRetryAfterHTTPDateOn429", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
		c.now = func() time.Time { return now }
		b.handle(respond(http.StatusTooManyRequests, "", "Retry-After", now.Add(2*time.Minute).Format(http.TimeFormat)))
		_, err := c.Send(ctx, testJob())
		e := requireOutcome(t, err, KindRetryable, 429, "http_429")
		require.Equal(t, 2*time.Minute, e.RetryAfter)
	})

	t.Run("RetriesOn503WithRetryAfter", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusServiceUnavailable, `{"message":"Service Unavailable","statusCode":503,"error":"try again later"}`, "Retry-After", "5"))
		_, err := c.Send(ctx, testJob())
		e := requireOutcome(t, err, KindRetryable, 503, "http_503")
		require.Equal(t, 5*time.Second, e.RetryAfter)
	})

	t.Run("UnknownOn5xxWithoutTheGatewaysBody", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{500, 502, 503, 504} {
			c, b := setup(t)
			b.handle(respond(status, "<html>proxy error</html>", "Content-Type", "text/html"))
			_, err := c.Send(ctx, testJob())
			requireOutcome(t, err, KindUnknown, status, fmt.Sprintf("http_%d", status))
			require.ErrorIs(t, err, ErrUnknownOutcome)
		}
		// 502 and 504 come from a proxy whatever their body says.
		c, b := setup(t)
		b.handle(respond(http.StatusBadGateway, `{"message":"x","statusCode":502,"error":"bad gateway"}`))
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindUnknown, 502, "http_502")
	})

	t.Run("RetriesOn408", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusRequestTimeout, ""))
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindRetryable, 408, "http_408")
	})

	t.Run("ReportsUnauthorizedOn401And403", func(t *testing.T) {
		t.Parallel()
		for status, code := range map[int]string{401: CodeUnauthorized, 403: CodeForbidden} {
			c, b := setup(t)
			b.handle(respond(status, `{"message":"Unauthorized"}`))
			_, err := c.Send(ctx, testJob())
			requireOutcome(t, err, KindUnauthorized, status, code)
			require.ErrorIs(t, err, ErrUnauthorized)
			require.NotErrorIs(t, err, ErrRejected)
		}
	})

	t.Run("RejectsOtherClientErrors", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{409, 410, 413, 418} {
			c, b := setup(t)
			b.handle(respond(status, "nope"))
			_, err := c.Send(ctx, testJob())
			requireOutcome(t, err, KindRejected, status, fmt.Sprintf("http_%d", status))
		}
	})

	t.Run("ReportsAWrongConfigurationOn404405406415", func(t *testing.T) {
		t.Parallel()
		for _, status := range []int{404, 405, 406, 415} {
			c, b := setup(t)
			b.handle(respond(status, "nope"))
			_, err := c.Send(ctx, testJob())
			e := requireOutcome(t, err, KindMisconfigured, status, fmt.Sprintf("http_%d", status))
			require.ErrorIs(t, err, ErrMisconfigured)
			require.Contains(t, e.Description, "check")
		}
	})

	t.Run("ReportsRedirectsWithoutFollowing", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://api.example/rest/sms/v2/messages", http.StatusMovedPermanently)
		})
		_, err := c.Send(ctx, testJob())
		e := requireOutcome(t, err, KindMisconfigured, 301, "http_301")
		require.Contains(t, e.Description, "redirected to https://api.example/rest/sms/v2/messages")
		require.EqualValues(t, 1, b.requests.Load())
	})

	t.Run("TakesAnotherSuccessWithAnIDAsAccepted", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusCreated, `{"id":"`+testMsgID+`","status":"accepted"}`))
		res, err := c.Send(ctx, testJob())
		require.NoError(t, err)
		require.Equal(t, testMsgID, res.MessageID)
	})

	t.Run("ReportsUnknownForSuccessWithoutAUsableID", func(t *testing.T) {
		t.Parallel()
		for name, tc := range map[string]struct {
			status int
			body   string
		}{
			"202WithoutID":    {202, `{"status":"accepted"}`},
			"202Garbled":      {202, `{"id":"1e41f4`},
			"202NotJSON":      {202, `accepted`},
			"202Empty":        {202, ``},
			"204":             {204, ``},
			"202WithNumberID": {202, `{"id":42}`},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				c, b := setup(t)
				b.handle(respond(tc.status, tc.body))
				_, err := c.Send(ctx, testJob())
				requireOutcome(t, err, KindUnknown, tc.status, CodeInvalidResponse)
				require.ErrorIs(t, err, ErrUnknownOutcome)
			})
		}
	})

	t.Run("ReportsUnknownWhenA202BodyIsCutShort", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Length", "200")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"id":"`)
			w.(http.Flusher).Flush()
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
			}
		})
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindUnknown, 202, CodeConnectionClosed)
		require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	})

	t.Run("RetriesWhenTheConnectionIsRefused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())
		c, err := NewRESTv2(Config{URL: "http://" + addr, Username: testUser, Password: testPassword})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		_, err = c.Send(ctx, testJob())
		requireOutcome(t, err, KindRetryable, 0, CodeConnectionRefused)
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
		require.ErrorIs(t, err, ErrRetryable)
	})

	t.Run("ReportsUnknownWhenTheConnectionClosesAfterTheRequest", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = conn.Close()
			}
		})
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindUnknown, 0, CodeConnectionClosed)
		require.ErrorIs(t, err, ErrUnknownOutcome)
		require.EqualValues(t, 1, b.requests.Load(), "the transport must not resend the POST")
	})

	t.Run("ReportsUnknownWhenTheGatewayHangsPastTimeout", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t, withConfig(func(cfg *Config) { cfg.Timeout = shortTimeout }))
		warm(t, c, b)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-b.release:
			case <-r.Context().Done():
			}
		})
		start := time.Now()
		_, err := c.Send(ctx, testJob())
		// Either Timeout's deadline or the transport's response-header timeout
		// (also Timeout) ends it, whichever timer fires first.
		requireOutcome(t, err, KindUnknown, 0, CodeTimeout)
		require.Less(t, time.Since(start), 5*time.Second)
		require.EqualValues(t, 1, b.requests.Load())
	})

	t.Run("RetriesWhenNoConnectionFreesUpInTime", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t, withConfig(func(cfg *Config) { cfg.Timeout = shortTimeout; cfg.MaxConns = 1 }))
		// Hold the only connection with a response whose body never ends (the
		// response-header timeout does not apply to a body).
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
			select {
			case <-b.release:
			case <-r.Context().Done():
			}
		})
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.srv.URL+"/hold", nil)
		require.NoError(t, err)
		resp, err := c.transport.RoundTrip(req)
		require.NoError(t, err)
		t.Cleanup(func() { _ = resp.Body.Close() }) // before the handler is released

		_, err = c.Send(ctx, testJob())
		e := requireOutcome(t, err, KindRetryable, 0, CodeTimeout)
		require.ErrorIs(t, e, context.DeadlineExceeded)
		require.EqualValues(t, 1, b.requests.Load(), "the submission never reached the gateway")
	})

	t.Run("RetriesWhenTheCallerCancelledBeforeSending", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.Send(cctx, testJob())
		e := requireOutcome(t, err, KindRetryable, 0, CodeCancelled)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, context.Canceled, e.Err)
		require.Zero(t, b.requests.Load())
	})

	t.Run("ReportsUnknownWhenTheCallerCancelsAfterWriting", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		got := make(chan struct{})
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			close(got)
			select {
			case <-b.release:
			case <-r.Context().Done():
			}
		})
		cctx, cancel := context.WithCancel(ctx)
		go func() { <-got; cancel() }()
		_, err := c.Send(cctx, testJob())
		e := requireOutcome(t, err, KindUnknown, 0, CodeCancelled)
		require.Equal(t, context.Canceled, e.Err)
	})

	t.Run("AcceptsOverHTTP2", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t, withTLS())
		proto := make(chan int, 1)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			proto <- r.ProtoMajor
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"id":"`+testMsgID+`","status":"accepted"}`)
		})
		res, err := c.Send(ctx, testJob())
		require.NoError(t, err)
		require.Equal(t, testMsgID, res.MessageID)
		require.Equal(t, 2, <-proto)
	})

	t.Run("ReportsUnknownWhenHTTP2GatewayHangsPastTimeout", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t, withTLS(), withConfig(func(cfg *Config) { cfg.Timeout = shortTimeout }))
		warm(t, c, b)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-b.release:
			case <-r.Context().Done():
			}
		})
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindUnknown, 0, CodeTimeout)
	})

	t.Run("RetriesOnAnUntrustedCertificate", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t, withTLS())
		c.transport.TLSClientConfig = &tls.Config{} // system roots only
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindRetryable, 0, CodeTLS)
		require.Zero(t, b.requests.Load())
	})

	t.Run("GetsAMessage", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		requests := make(chan *http.Request, 1)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			requests <- r.Clone(context.Background())
			_, _ = io.WriteString(w, `{"id":"`+testMsgID+`","source":"202","destination":"+64211234567",`+
				`"reference":"order-1234","content":"Hello world!","status":"accepted"}`)
		})
		m, err := c.Get(ctx, testMsgID)
		require.NoError(t, err)
		require.Equal(t, Message{ID: testMsgID, Source: "202", Destination: "+64211234567",
			Content: "Hello world!", Status: "accepted", Reference: "order-1234"}, m)
		r := <-requests
		require.Equal(t, http.MethodGet, r.Method)
		require.Equal(t, "/messages", r.URL.Path)
		require.Equal(t, url.Values{"id": {testMsgID}}, r.URL.Query())
		user, pass, ok := r.BasicAuth()
		require.True(t, ok)
		require.Equal(t, testUser, user)
		require.Equal(t, testPassword, pass)

		_, err = c.Get(ctx, "a&b=c")
		require.NoError(t, err)
		require.Equal(t, url.Values{"id": {"a&b=c"}}, (<-requests).URL.Query())

		_, err = c.Get(ctx, "")
		require.Error(t, err)
	})

	t.Run("GetReturnsErrNotFoundOn404", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusNotFound, ""))
		_, err := c.Get(ctx, testMsgID)
		require.ErrorIs(t, err, ErrNotFound)
		require.Zero(t, KindOf(err))
	})

	t.Run("GetClassifiesFailures", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		b.handle(respond(http.StatusServiceUnavailable, ""))
		_, err := c.Get(ctx, testMsgID)
		requireOutcome(t, err, KindRetryable, 503, "http_503")

		b.handle(respond(http.StatusUnauthorized, ""))
		_, err = c.Get(ctx, testMsgID)
		requireOutcome(t, err, KindUnauthorized, 401, CodeUnauthorized)

		b.handle(respond(http.StatusOK, "{"))
		_, err = c.Get(ctx, testMsgID)
		requireOutcome(t, err, KindRetryable, 200, CodeInvalidResponse)

		// A GET that got no answer is safe to repeat: never KindUnknown.
		c, b = setup(t, withConfig(func(cfg *Config) { cfg.Timeout = shortTimeout }))
		warm(t, c, b)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-b.release:
			case <-r.Context().Done():
			}
		})
		_, err = c.Get(ctx, testMsgID)
		requireOutcome(t, err, KindRetryable, 0, CodeTimeout)
	})

	t.Run("ChecksHealth", func(t *testing.T) {
		t.Parallel()
		c, b := setup(t)
		path := make(chan string, 1)
		b.handle(func(w http.ResponseWriter, r *http.Request) {
			path <- r.URL.Path
			_, _ = io.WriteString(w, "ok")
		})
		require.NoError(t, c.Health(ctx))
		require.Equal(t, "/healthz", <-path)

		b.handle(respond(http.StatusInternalServerError, `{"message":"SMS Gateway Service V2 error","statusCode":500,"error":"db down"}`))
		err := c.Health(ctx)
		e := requireOutcome(t, err, KindRetryable, 500, "http_500")
		require.Equal(t, "SMS Gateway Service V2 error: db down", e.Description)
	})

	t.Run("ValidatesConfig", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			cfg  Config
			want string
		}{
			{"NoURL", Config{}, "URL is required"},
			{"URLDoesNotParse", Config{URL: "https://api.example/%zz"}, `URL "https://api.example/%zz" does not parse`},
			{"URLPasswordWithSlash", Config{URL: "https://u:hunter2/x@api.example"}, `URL "https://u:***@api.example" does not parse`},
			{"URLScheme", Config{URL: "ftp://api.example"}, `URL scheme must be https or http, got "ftp"`},
			{"URLWithoutScheme", Config{URL: "api.modicagroup.com/rest/sms/v2"}, "URL scheme"},
			{"URLHost", Config{URL: "https:///rest/sms/v2"}, "URL must have a host"},
			{"URLCredentials", Config{URL: "https://u:hunter2@api.example"}, "URL must not carry credentials"},
			{"URLQuery", Config{URL: "https://api.example/v2?x=1"}, "URL must not have a query"},
			{"UsernameColon", Config{URL: "https://api.example", Username: "a:b"}, "Username must not contain ':'"},
			{"PasswordWithoutUsername", Config{URL: "https://api.example", Password: "x"}, "Username is required"},
			{"Timeout", Config{URL: "https://api.example", Timeout: -time.Second}, "Timeout must be >= 0"},
			{"MaxConns", Config{URL: "https://api.example", MaxConns: -1}, "MaxConns must be >= 0"},
			{"UserAgent", Config{URL: "https://api.example", UserAgent: "x\r\nX-Evil: 1"}, "UserAgent must not contain control characters"},
		} {
			_, err := NewRESTv2(tc.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig, tc.name)
			require.ErrorContains(t, err, tc.want, tc.name)
			require.NotContains(t, err.Error(), "hunter2", tc.name)
		}

		c, err := NewRESTv2(Config{URL: "https://api.modicagroup.com/rest/sms/v2/"})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		require.Equal(t, TimeoutDefault, c.timeout)
		require.Equal(t, "https://api.modicagroup.com/rest/sms/v2/messages", c.messagesURL)
		require.Equal(t, "https://api.modicagroup.com/rest/sms/v2/healthz", c.healthURL)
		require.Equal(t, MaxConnsDefault, c.transport.MaxConnsPerHost)
		require.Equal(t, MaxConnsDefault, c.transport.MaxIdleConnsPerHost)
		require.Equal(t, MaxConnsDefault, c.transport.MaxIdleConns)
		require.Equal(t, TimeoutDefault, c.transport.ResponseHeaderTimeout)
		require.True(t, c.transport.ForceAttemptHTTP2)
		require.Equal(t, []string{UserAgentDefault}, c.hdrUA)
		require.Nil(t, c.hdrAuth)

		c, err = NewRESTv2(Config{URL: "http://127.0.0.1:8080", Timeout: time.Second, MaxConns: 8, UserAgent: "acme/1"})
		require.NoError(t, err)
		t.Cleanup(c.Close)
		require.Equal(t, time.Second, c.timeout)
		require.Equal(t, 8, c.transport.MaxConnsPerHost)
		require.False(t, c.transport.ForceAttemptHTTP2)
		require.Equal(t, []string{"acme/1"}, c.hdrUA)
	})

	t.Run("ClassifiesTransportErrors", func(t *testing.T) {
		t.Parallel()
		urlErr := func(err error) error { return &url.Error{Op: "Post", URL: "https://api.example/messages", Err: err} }
		refused := urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
		reset := urlErr(&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)})
		readReset := urlErr(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)})
		for _, tc := range []struct {
			name       string
			err        error
			arrived    bool
			callerErr  error
			ownTimeout bool
			idempotent bool
			kind       Kind
			code       string
		}{
			{"Refused", refused, false, nil, false, false, KindRetryable, CodeConnectionRefused},
			{"ResetWhileWriting", reset, false, nil, false, false, KindRetryable, CodeConnectionReset},
			{"ResetAfterWriting", readReset, true, nil, false, false, KindUnknown, CodeConnectionReset},
			{"BrokenPipe", urlErr(syscall.EPIPE), false, nil, false, false, KindRetryable, CodeConnectionReset},
			{"EOFBeforeWriting", urlErr(io.EOF), false, nil, false, false, KindRetryable, CodeConnectionClosed},
			{"EOFAfterWriting", urlErr(io.EOF), true, nil, false, false, KindUnknown, CodeConnectionClosed},
			{"UnexpectedEOFAfterWriting", io.ErrUnexpectedEOF, true, nil, false, false, KindUnknown, CodeConnectionClosed},
			{"DNS", urlErr(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "api.example", IsNotFound: true}}),
				false, nil, false, false, KindRetryable, CodeDNS},
			{"DNSTimeout", urlErr(&net.DNSError{Err: "i/o timeout", Name: "api.example", IsTimeout: true}),
				false, nil, false, false, KindRetryable, CodeTimeout},
			{"DialTimeout", urlErr(&net.OpError{Op: "dial", Err: timeoutErr{}}), false, nil, false, false, KindRetryable, CodeTimeout},
			{"Unreachable", urlErr(&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}),
				false, nil, false, false, KindRetryable, CodeDial},
			{"UntrustedCertificate", urlErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}),
				false, nil, false, false, KindRetryable, CodeTLS},
			{"TLSAlert", urlErr(&net.OpError{Op: "remote error", Err: errors.New("tls: handshake failure")}),
				false, nil, false, false, KindRetryable, CodeTLS},
			{"NotTLS", urlErr(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}),
				false, nil, false, false, KindRetryable, CodeTLS},
			{"OwnTimeoutBeforeWriting", urlErr(context.DeadlineExceeded), false, nil, true, false, KindRetryable, CodeTimeout},
			{"OwnTimeoutAfterWriting", urlErr(context.DeadlineExceeded), true, nil, true, false, KindUnknown, CodeTimeout},
			{"HeaderTimeout", urlErr(timeoutErr{}), true, nil, false, false, KindUnknown, CodeTimeout},
			{"CallerCancelledBeforeWriting", urlErr(context.Canceled), false, context.Canceled, false, false, KindRetryable, CodeCancelled},
			{"CallerCancelledAfterWriting", urlErr(context.Canceled), true, context.Canceled, false, false, KindUnknown, CodeCancelled},
			{"CallerDeadline", urlErr(context.DeadlineExceeded), true, context.DeadlineExceeded, false, false, KindUnknown, CodeTimeout},
			{"OtherAfterWriting", errors.New("something odd"), true, nil, false, false, KindUnknown, CodeTransport},
			{"OtherBeforeWriting", errors.New("something odd"), false, nil, false, false, KindRetryable, CodeTransport},
			{"GetAfterWriting", readReset, true, nil, false, true, KindRetryable, CodeConnectionReset},
		} {
			e := classifyTransport(tc.err, tc.arrived, tc.callerErr, tc.ownTimeout, tc.idempotent)
			require.Equal(t, tc.kind, e.Kind, tc.name)
			require.Equal(t, tc.code, e.Code, tc.name)
			require.Zero(t, e.StatusCode, tc.name)
			if tc.callerErr != nil {
				require.Equal(t, tc.callerErr, e.Err, tc.name)
			} else {
				require.Equal(t, tc.err, e.Err, tc.name)
			}
		}
	})

	t.Run("JudgesWhetherTheRequestMayHaveArrived", func(t *testing.T) {
		t.Parallel()
		const (
			headers = "headers"
			ok      = "ok"
			failed  = "failed"
		)
		for _, tc := range []struct {
			events []string
			want   bool
		}{
			{nil, false},
			{[]string{headers}, true}, // e.g. an HTTP/2 stream whose WroteRequest comes late
			{[]string{headers, failed}, false},
			{[]string{headers, ok}, true},
			{[]string{failed}, false}, // the headers were never written
			{[]string{failed, headers}, true},
			{[]string{headers, failed, headers}, true},
			{[]string{headers, failed, headers, failed}, false},
			{[]string{headers, ok, headers, failed}, true}, // written once: may be there
			{[]string{headers, headers, failed}, true},     // a late failure of the first try
		} {
			a := new(attempt)
			for _, ev := range tc.events {
				switch ev {
				case headers:
					a.wroteHeaders()
				case ok:
					a.wroteRequest(httptrace.WroteRequestInfo{})
				case failed:
					a.wroteRequest(httptrace.WroteRequestInfo{Err: syscall.EPIPE})
				}
			}
			require.Equal(t, tc.want, a.mayHaveArrived(), "%v", tc.events)
		}
	})

	t.Run("DescribesErrorsAndMatchesSentinels", func(t *testing.T) {
		t.Parallel()
		e := &Error{Kind: KindRejected, StatusCode: 400, Code: CodeInvalidAttrib, Description: "Invalid scheduled timestamp"}
		require.Equal(t, "rejected: invalid_attrib (HTTP 400): Invalid scheduled timestamp", e.Error())
		e = &Error{Kind: KindRetryable, Code: CodeConnectionRefused, Err: syscall.ECONNREFUSED}
		require.Equal(t, "retryable: connection_refused: connection refused", e.Error())
		wrapped := fmt.Errorf("post message j1: %w", e)
		require.ErrorIs(t, wrapped, ErrRetryable)
		require.ErrorIs(t, wrapped, syscall.ECONNREFUSED)
		require.NotErrorIs(t, wrapped, ErrRejected)
		require.NotErrorIs(t, wrapped, ErrUnknownOutcome)
		require.NotErrorIs(t, wrapped, ErrUnauthorized)
		require.Equal(t, KindRetryable, KindOf(wrapped))
		require.Zero(t, KindOf(nil))
		require.Zero(t, KindOf(errors.New("x")))
		for k, s := range map[Kind]string{KindRejected: "rejected", KindRetryable: "retryable",
			KindUnknown: "unknown", KindUnauthorized: "unauthorized", 0: "Kind(0)", 9: "Kind(9)"} {
			require.Equal(t, s, k.String())
		}
	})

	t.Run("ParsesRetryAfter", func(t *testing.T) {
		t.Parallel()
		now := time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)
		for v, want := range map[string]time.Duration{
			"":                               0,
			"0":                              0,
			" 120 ":                          2 * time.Minute,
			"-5":                             0,
			"1.5":                            0,
			"soon":                           0,
			"99999999999999999999":           time.Duration(retryAfterMaxSeconds) * time.Second,
			"Sun, 22 Nov 2026 09:00:30 GMT":  30 * time.Second,
			"Sun, 22 Nov 2026 08:00:00 GMT":  0, // in the past
			"Sunday, 22-Nov-26 09:01:00 GMT": time.Minute,
		} {
			require.Equal(t, want, retryAfter(v, now), "%q", v)
		}
	})

}

func FuzzAppendMessage(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\n", "Ā😀", "\xff\xe2\x82"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		j := &job.Job{ID: s, Destination: s, Content: s, Source: s, Class: s, Mask: s}
		body := appendMessage(nil, j)
		require.True(t, json.Valid(body), "%s", body)
	})
}

// timeoutErr is a net.Error that timed out, like a dial or header timeout.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// BenchmarkSend submits against a local gateway answering 202 from 64
// goroutines. allocs/op counts the test server's allocations as well as the
// client's; BenchmarkAppendMessage isolates the request encoding.
func BenchmarkSend(b *testing.B) {
	const concurrency = 64
	body := []byte(`{"id":"` + testMsgID + `","status":"accepted","detail":"+64211234567"}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	c, err := NewRESTv2(Config{URL: srv.URL, Username: testUser, Password: testPassword, MaxConns: concurrency})
	require.NoError(b, err)
	defer c.Close()
	j := testJob()
	ctx := context.Background()

	b.SetParallelism(max(1, concurrency/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(ctx, j); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkAppendMessage measures encoding a full job's request body.
func BenchmarkAppendMessage(b *testing.B) {
	scheduled := time.Date(2026, 12, 1, 9, 0, 0, 0, time.FixedZone("", 13*3600))
	smsClass := 1
	j := &job.Job{ID: "order-1234-otp", Destination: "+64211234567", Content: strings.Repeat("Your code is 123456. ", 7),
		Source: "2021", Class: "mt_message", Mask: "ACME", SMSClass: &smsClass, Scheduled: &scheduled}
	b.ReportAllocs()
	for b.Loop() {
		_ = appendMessage(make([]byte, 0, messageSize(j)), j)
	}
}
