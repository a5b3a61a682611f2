package worker

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/jetsms/jetsms/dispatcher"
)

func TestCircuit(t *testing.T) {
	t.Parallel()

	newTest := func(changes *[]bool) *circuit {
		return newCircuit(3, time.Second, 4*time.Second, time.Now, zap.NewNop(), func(open bool) { *changes = append(*changes, open) })
	}

	t.Run("ClosedAdmitsAtOnceAndOpensAfterARunOfFailures", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var changes []bool
			c := newTest(&changes)
			require.NoError(t, c.admit(t.Context()))
			c.failed("503", false)
			c.failed("503", false)
			c.succeeded() // a success in between restarts the count
			c.failed("503", false)
			c.failed("503", false)
			open, _ := c.open()
			require.False(t, open)
			c.failed("503", false)
			open, reason := c.open()
			require.True(t, open)
			require.Equal(t, "503", reason)
			require.Equal(t, []bool{true}, changes)

			start := time.Now()
			require.NoError(t, c.admit(t.Context()))
			require.Equal(t, time.Second, time.Since(start), "the trial waits one probe interval")
		})
	})

	t.Run("CredentialsOpenAtOnceFailedTrialsWaitLongerASuccessCloses", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var changes []bool
			c := newTest(&changes)
			c.failed("401", true)
			for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
				start := time.Now()
				require.NoError(t, c.admit(t.Context()))
				require.Equal(t, want, time.Since(start))
				c.failed("401", true) // the trial failed
			}
			// A second taker while a trial is out waits for the next interval.
			start := time.Now()
			require.NoError(t, c.admit(t.Context()))
			done := make(chan time.Duration)
			go func() {
				s := time.Now()
				_ = c.admit(context.Background())
				done <- time.Since(s)
			}()
			synctest.Wait()
			c.succeeded()
			require.Zero(t, <-done, "closing lets every waiter go at once")
			require.Equal(t, 4*time.Second, time.Since(start))
			require.Equal(t, []bool{true, false}, changes)
			open, _ := c.open()
			require.False(t, open)

			// Closed again, it opens again with the shortest interval.
			c.failed("401", true)
			start = time.Now()
			require.NoError(t, c.admit(t.Context()))
			require.Equal(t, time.Second, time.Since(start))
		})
	})

	t.Run("AdmitEndsWithItsContext", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var changes []bool
			c := newTest(&changes)
			c.failed("401", true)
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			require.ErrorIs(t, c.admit(ctx), context.DeadlineExceeded)
		})
	})

	t.Run("ProbesWithoutATrialJobOneLogLinePerFailedProbe", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			var changes []bool
			c := newCircuit(3, time.Second, 4*time.Second, time.Now, zap.New(core), func(open bool) { changes = append(changes, open) })
			probes := 0
			c.probe = func(context.Context) error {
				probes++
				if probes < 3 {
					return &dispatcher.Error{Kind: dispatcher.KindMisconfigured, StatusCode: 404, Code: "http_404", Description: "no such path"}
				}
				return nil
			}
			c.check(t.Context())
			open, reason := c.open()
			require.True(t, open, "the start-up check opens the circuit")
			require.Contains(t, reason, "check gateway.url")
			start := time.Now()
			require.NoError(t, c.admit(t.Context()), "admit returns once a probe succeeded")
			require.Equal(t, 3, probes)
			require.Equal(t, time.Second+2*time.Second, time.Since(start), "probes at the doubling interval")
			require.Equal(t, []bool{true, false}, changes)
			require.Equal(t, 2, logs.Len(), "the opening, and one line for the failed probe")
			require.Equal(t, 1, logs.FilterMessage("gateway circuit still open: the probe failed").Len())

			// Many takers while open: one probe at a time, all admitted by it.
			c.failed("401", true)
			probes = 2 // the next probe succeeds
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() { require.NoError(t, c.admit(context.Background())) })
			}
			wg.Wait()
			require.Equal(t, 3, probes)
		})
	})
}
