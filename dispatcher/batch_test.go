package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/job"
)

func v1Batcher(t *testing.T, simCfg gwsim.Config, cfg BatchConfig) (*Batcher, *gwsim.Simulator) {
	t.Helper()
	simCfg.API = gwsim.APIv1
	sim, err := gwsim.New(simCfg)
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	c, err := NewRESTv1(Config{URL: srv.URL + gwsim.BasePathV1})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	bt, err := NewBatcher(c, cfg)
	require.NoError(t, err)
	require.NoError(t, bt.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, bt.Stop(context.Background())) })
	return bt, sim
}

// sendAll sends jobs at once through bt and returns their results in order.
func sendAll(bt *Batcher, jobs []*job.Job) []BroadcastResult {
	out := make([]BroadcastResult, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			res, err := bt.Send(context.Background(), j)
			out[i] = BroadcastResult{Result: res, Err: err}
		})
	}
	wg.Wait()
	return out
}

func campaignJobs(n int, content string) []*job.Job {
	jobs := make([]*job.Job, n)
	for i := range jobs {
		jobs[i] = &job.Job{ID: fmt.Sprintf("b-%s-%d", content, i), Destination: fmt.Sprintf("+6421000%04d", i), Content: content}
	}
	return jobs
}

func TestBatcher(t *testing.T) {
	t.Parallel()

	t.Run("LikeJobsShareOneBroadcastAndEachGetsItsOwnId", func(t *testing.T) {
		t.Parallel()
		bt, sim := v1Batcher(t, gwsim.Config{}, BatchConfig{MaxSize: 10, MaxWait: time.Minute})
		results := sendAll(bt, campaignJobs(10, "hello"))
		seen := map[string]bool{}
		for i, r := range results {
			require.NoError(t, r.Err, i)
			require.NotEmpty(t, r.Result.MessageID)
			require.False(t, seen[r.Result.MessageID], "ids are distinct")
			seen[r.Result.MessageID] = true
		}
		require.EqualValues(t, 1, sim.Stats().Broadcasts, "ten jobs, one request (the batch filled before the wait)")
	})

	t.Run("DifferentContentGoesApartAndALoneJobAsAPlainMessage", func(t *testing.T) {
		t.Parallel()
		bt, sim := v1Batcher(t, gwsim.Config{}, BatchConfig{MaxSize: 10, MaxWait: 50 * time.Millisecond})
		jobs := append(campaignJobs(3, "one"), campaignJobs(1, "two")...)
		for _, r := range sendAll(bt, jobs) {
			require.NoError(t, r.Err)
		}
		st := sim.Stats()
		require.EqualValues(t, 1, st.Broadcasts)
		require.EqualValues(t, 4, st.Accepted)
	})

	t.Run("AFailureEntryFailsOnlyItsJob", func(t *testing.T) {
		t.Parallel()
		bt, _ := v1Batcher(t, gwsim.Config{}, BatchConfig{MaxSize: 3, MaxWait: time.Minute})
		jobs := campaignJobs(3, "partial")
		jobs[1].Destination = "+0" // not a number the gateway takes
		results := sendAll(bt, jobs)
		require.NoError(t, results[0].Err)
		require.NoError(t, results[2].Err)
		var e *Error
		require.True(t, errors.As(results[1].Err, &e), "%v", results[1].Err)
		require.Equal(t, KindRejected, e.Kind)
		require.Equal(t, CodeBroadcastFailure, e.Code)
	})

	t.Run("BroadcastLimitSplitsTheBatch", func(t *testing.T) {
		t.Parallel()
		bt, sim := v1Batcher(t, gwsim.Config{BroadcastLimit: 4}, BatchConfig{MaxSize: 10, MaxWait: time.Minute})
		for _, r := range sendAll(bt, campaignJobs(10, "split")) {
			require.NoError(t, r.Err)
		}
		require.EqualValues(t, 10, sim.Stats().Accepted, "every job sent once after the split")
	})
}

func TestTraceParentGoesToTheGateway(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("traceparent")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"1e41f423-24cf-4fa2-9a8a-888c30653305","status":"accepted"}`))
	}))
	t.Cleanup(srv.Close)
	c, err := NewRESTv2(Config{URL: srv.URL + gwsim.BasePath})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	_, err = c.Send(context.Background(), &job.Job{ID: "t", Destination: "+64211234567", Content: "hi", TraceParent: tp})
	require.NoError(t, err)
	require.Equal(t, tp, <-got)
	_, err = c.Send(context.Background(), &job.Job{ID: "u", Destination: "+64211234567", Content: "hi"})
	require.NoError(t, err)
	require.Empty(t, <-got, "no header without a trace")
}
