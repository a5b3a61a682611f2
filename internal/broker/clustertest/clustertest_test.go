package clustertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

func TestCluster(t *testing.T) {
	t.Parallel()

	t.Run("R3StreamTakesPublishesWithANodeDownAndCatchesItUp", func(t *testing.T) {
		t.Parallel()
		c := Start(t, 3)
		require.Len(t, strings.Split(c.URLs(), ","), 3)
		leaders := 0
		for i := range c.Len() {
			require.True(t, c.Server(i).JetStreamIsClustered(), "node %d", i)
			if c.Server(i).JetStreamIsLeader() {
				leaders++
			}
		}
		require.Equal(t, 1, leaders, "meta leaders")
		_, js := c.Connect(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "ORDERS", Subjects: []string{"orders.>"}, Replicas: 3, Storage: jetstream.FileStorage,
		})
		require.NoError(t, err)
		for i := range 5 {
			publish(ctx, t, js, fmt.Sprintf("orders.%d", i))
		}

		// The stream's leader is the node whose loss matters most.
		leader := c.StreamLeader("ORDERS")
		require.NotEqual(t, -1, leader)
		c.Stop(leader)
		require.Nil(t, c.Server(leader))
		for i := 5; i < 10; i++ {
			publish(ctx, t, js, fmt.Sprintf("orders.%d", i))
		}
		require.NotEqual(t, leader, c.StreamLeader("ORDERS"))

		c.Restart(leader)
		publish(ctx, t, js, "orders.10")
		waitFor(ctx, t, "all three replicas current with 11 messages", func() bool {
			info, err := js.Stream(ctx, "ORDERS")
			if err != nil {
				return false
			}
			si := info.CachedInfo()
			if si.State.Msgs != 11 || si.Cluster == nil || len(si.Cluster.Replicas) != 2 {
				return false
			}
			for _, r := range si.Cluster.Replicas {
				if !r.Current || r.Offline {
					return false
				}
			}
			return true
		})
	})

	t.Run("OneNodeRunsStandalone", func(t *testing.T) {
		t.Parallel()
		c := Start(t, 1)
		require.False(t, c.Server(0).JetStreamIsClustered())
		_, js := c.Connect(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ONE", Subjects: []string{"one"}})
		require.NoError(t, err)
		publish(ctx, t, js, "one")
	})

	t.Run("StopIsSafeTwice", func(t *testing.T) {
		t.Parallel()
		c := Start(t, 1)
		c.Stop(0)
		c.Stop(0)
		require.Nil(t, c.Server(0))
	})
}

// publish stores one message on subject, trying again while the cluster elects a
// leader, until ctx ends.
func publish(ctx context.Context, t *testing.T, js jetstream.JetStream, subject string) {
	t.Helper()
	var last error
	waitFor(ctx, t, "a publish to "+subject, func() bool {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, last = js.Publish(attemptCtx, subject, []byte("x"))
		return last == nil
	})
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
