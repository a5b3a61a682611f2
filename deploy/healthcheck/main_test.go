package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine outlives them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHealthcheck(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			_, _ = io.WriteString(w, "ready\n")
		default:
			http.Error(w, "not ready: starting or stopping", http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	// The checks use the default client; its idle connections would outlive the test.
	t.Cleanup(http.DefaultClient.CloseIdleConnections)

	for name, tc := range map[string]struct {
		args []string
		code int
		says string
	}{
		"ExitsZeroWhenReady":          {args: []string{srv.URL + "/readyz"}, code: 0},
		"ExitsOneWhenNotReady":        {args: []string{srv.URL + "/other"}, code: 1, says: "503 Service Unavailable: not ready"},
		"ExitsOneWhenNothingListens":  {args: []string{"http://127.0.0.1:1/readyz"}, code: 1, says: "connection refused"},
		"ExitsTwoOnTooManyArguments":  {args: []string{"a", "b"}, code: 2, says: "usage"},
		"ExitsOneOnAURLItCannotParse": {args: []string{"http://[::1"}, code: 1, says: "url"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			require.Equal(t, tc.code, run(tc.args, &stderr), stderr.String())
			require.Contains(t, stderr.String(), tc.says)
		})
	}
}
