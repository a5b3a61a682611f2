package gwsim

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStrict covers what makes the simulator as strict as the gateway's
// documents: media types, the HTTPS redirect, scheduled receipts, both receipt
// shapes, MO references, and the proxy and outage faults.
func TestStrict(t *testing.T) {
	t.Parallel()

	// raw sends one request with the given Accept and Content-Type ("" leaves
	// a header out).
	raw := func(t *testing.T, b *testBundle, method, path, accept, contentType, body string) answer {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, b.baseURL+path, strings.NewReader(body))
		require.NoError(t, err)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if b.user != "" {
			req.SetBasicAuth(b.user, b.pass)
		}
		resp, err := b.client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		return answer{status: resp.StatusCode, header: resp.Header}
	}

	t.Run("ChecksAcceptAndContentTypePerAPI", func(t *testing.T) {
		t.Parallel()
		v2 := setup(t, Config{})
		for _, tc := range []struct {
			accept, contentType string
			want                int
		}{
			{"", "application/json", http.StatusAccepted},
			{"application/json", "application/json; charset=utf-8", http.StatusAccepted},
			{"*/*", "application/json", http.StatusAccepted},
			{"application/vnd.modica.gateway.v1+json", "application/json", http.StatusNotAcceptable},
			{"text/html", "application/json", http.StatusNotAcceptable},
			{"application/json", "", http.StatusUnsupportedMediaType},
			{"application/json", "text/plain", http.StatusUnsupportedMediaType},
		} {
			a := raw(t, v2, http.MethodPost, "/messages", tc.accept, tc.contentType, validBody)
			require.Equal(t, tc.want, a.status, "v2 Accept %q Content-Type %q", tc.accept, tc.contentType)
		}
		require.Equal(t, http.StatusNotAcceptable,
			raw(t, v2, http.MethodGet, "/healthz", "application/vnd.modica.gateway.v1+json", "", "").status)

		v1 := setup(t, v1Config())
		for _, accept := range []string{"", "application/vnd.modica.gateway.v1+json", "application/json"} {
			a := raw(t, v1, http.MethodPost, "/messages", accept, "application/json", validBody)
			require.Equal(t, http.StatusCreated, a.status, "v1 Accept %q", accept)
		}
		require.Equal(t, http.StatusNotAcceptable,
			raw(t, v1, http.MethodPost, "/messages", "application/xml", "application/json", validBody).status)
	})

	t.Run("RedirectsPlainHTTPToHTTPS", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{RedirectHTTPS: true})
		client := &http.Client{Transport: b.client.Transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		a, err := b.request(t, client, http.MethodPost, "/messages", validBody)
		require.NoError(t, err)
		require.Equal(t, http.StatusMovedPermanently, a.status)
		require.Equal(t, "https://"+strings.TrimPrefix(b.srv.URL, "http://")+BasePath+"/messages", a.header.Get("Location"))
		require.Zero(t, b.sim.Stats().Requests, "nothing reached the API")
		b.sim.SetRedirectHTTPS(false)
		b.send(t, validBody)
	})

	t.Run("ScheduledReceiptsComeAtTheScheduledTime", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		var ahead atomic.Int64
		b := setup(t, Config{DLRURL: rc.url, DLRInterim: noInterim,
			Now: func() time.Time { return testNow.Add(time.Duration(ahead.Load())) }})
		acc := b.send(t, `{"destination":"+64211234567","content":"later","scheduled":"`+
			testNow.Add(48*time.Hour).Format(time.RFC3339Nano)+`"}`)
		now := b.send(t, validBody)
		require.Equal(t, now.ID, rc.next(t).fields(t)["message_id"], "a message sent now gets its receipt at once")
		waitFor(t, b.delivered, "the receipt delivered")
		b.sim.ReleaseDue() // not due yet: nothing
		rc.none(t)
		m, ok := b.sim.Message(acc.ID)
		require.True(t, ok)
		require.Equal(t, StatusAccepted, m.Status)
		require.Equal(t, int64(1), b.sim.Stats().ReceiptsPending)

		ahead.Store(int64(48 * time.Hour))
		b.sim.ReleaseDue()
		got := rc.next(t).fields(t)
		require.Equal(t, acc.ID, got["message_id"])
		require.Equal(t, StatusReceived, got["status"])
	})

	t.Run("SendsTheOpenAPIReceiptShape", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{DLRURL: rc.url, DLRInterim: noInterim, DLRShape: DLRShapeID})
		acc := b.send(t, `{"destination":"+64211234567","content":"hi","reference":"r-1"}`)
		require.Equal(t, map[string]string{"id": acc.ID, "status": StatusReceived, "detail": "+64211234567"},
			rc.next(t).fields(t))
		_, err := New(Config{DLRShape: "uuid"})
		require.ErrorIs(t, err, ErrInvalidConfig)
	})

	t.Run("MOReferenceOnlyWithReplyTo", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		b := setup(t, Config{MOURL: rc.url})
		_, err := b.sim.SendMO(context.Background(), MO{Source: "+64211234567", Destination: "2021", Content: "hi", Reference: "r-1"})
		require.ErrorIs(t, err, ErrInvalidMO)
		require.ErrorContains(t, err, "reply_to")
	})

	t.Run("ProxyFaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.sim.Inject(Fault502, Fault504)
		a := b.post(t, validBody)
		require.Equal(t, http.StatusBadGateway, a.status)
		require.Zero(t, b.sim.Stats().Accepted)
		a = b.post(t, validBody)
		require.Equal(t, http.StatusGatewayTimeout, a.status)
		require.Equal(t, int64(1), b.sim.Stats().Accepted, "a 504 may follow the gateway's acceptance")
	})

	t.Run("OutageTakesEveryRequest", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{})
		b.sim.SetOutage(true)
		require.Equal(t, http.StatusServiceUnavailable, b.do(t, http.MethodGet, "/healthz", "").status)
		require.Equal(t, http.StatusServiceUnavailable, b.post(t, validBody).status)
		b.sim.SetOutage(false)
		require.Equal(t, http.StatusOK, b.do(t, http.MethodGet, "/healthz", "").status)
	})
}
