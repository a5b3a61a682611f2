package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
