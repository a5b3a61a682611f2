package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/job"
)

func TestGetShowsAScheduledJobWaiting(t *testing.T) {
	t.Parallel()
	e := ledger.FromJob(&job.Job{ID: "later", Destination: "+64211234567", Scheduled: new(time.Now().Add(48 * time.Hour))}, time.Now())
	e.Set(job.StatusAccepted, time.Now(), "", "")
	var out bytes.Buffer
	printEntry(&out, e)
	require.Contains(t, out.String(), "accepted (scheduled: waiting for its time at the gateway)")
	require.Contains(t, out.String(), "scheduled")

	e.Scheduled = time.Now().Add(-time.Minute)
	out.Reset()
	printEntry(&out, e)
	require.NotContains(t, out.String(), "waiting for its time")
}

// TestMisconfiguredGatewayIsNotReady: a gateway.url with a wrong base path is
// found by the start-up check before any job is taken: the log names what to
// check, /readyz answers 503 circuit_open, and a job sent meanwhile stays queued, not failed.
func TestMisconfiguredGatewayIsNotReady(t *testing.T) {
	t.Parallel()
	sim, err := gwsim.New(gwsim.Config{Username: "app", Password: "pw"})
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	b := setupRun(t, "--gateway.url", srv.URL+"/rest/v2", "--gateway.username", "app", "--gateway.password", "pw",
		"--worker.max_attempts", "1", "--callbacks.username", "gw", "--callbacks.password", "cbpw")
	url := b.natsURL(t)
	open := b.proc.waitLog(t, startTimeout, "gateway circuit open: no jobs are taken; they stay queued")
	require.Contains(t, open.str("reason"), "check gateway.url")

	running := b.proc.waitLog(t, startTimeout, "jetsms running")
	readyz := running.str("admin") + "/readyz"
	resp, err := http.Get(readyz)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
	// The body gives the reason code; what to check is in the log line above.
	require.Contains(t, string(body), "circuit_open")

	res := runJetsms(t, "send", "--to", "+64211234567", "--text", "hi", "--id", "misconfigured-1",
		"--wait", "--until", "accepted", "--timeout", "2s", "--nats.url", url)
	require.NotEqual(t, 0, res.code, "not accepted while the configuration is wrong")
	require.NotContains(t, res.stdout, "failed")
	require.Zero(t, sim.Stats().Requests, "no job reached the gateway")
}
