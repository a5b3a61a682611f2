// Package clustertest runs a JetStream cluster of in-process NATS servers for tests.
package clustertest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// Timeouts of the helper.
const (
	// ReadyTimeout bounds how long Start and Restart wait for a node to accept
	// connections and for JetStream to have a current meta leader.
	ReadyTimeout = 30 * time.Second
	// pollEvery is how often the cluster's state is looked at while waiting: the
	// servers signal no event for a leader election.
	pollEvery = 20 * time.Millisecond
)

// ClusterName is the name of the cluster's routes.
const ClusterName = "jetsms-test"

// Cluster is a running JetStream cluster. Its methods must be called from the
// test's goroutine or with the test still running; they fail the test on error.
type Cluster struct {
	t     testing.TB
	mu    sync.Mutex
	nodes []*node
}

// node is one server: the options it restarts with, and the server while it runs.
type node struct {
	opts *server.Options
	srv  *server.Server // nil while stopped
}

// Start runs n servers clustered with routes to each other (n = 1 runs a single
// server, not clustered), each with JetStream storing in its own t.TempDir(), on
// free ports of 127.0.0.1, and returns once every node accepts
// connections and JetStream has a meta leader that answers an account-info
// request. Every node is stopped at cleanup.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("clustertest: a cluster needs at least one node, got %d", n)
	}
	ports := freePorts(t, 2*n)
	clientPorts, routePorts := ports[:n], ports[n:]
	c := &Cluster{t: t, nodes: make([]*node, n)}
	for i := range n {
		var routes []*url.URL
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
			}
		}
		c.nodes[i] = &node{opts: &server.Options{
			ServerName:         fmt.Sprintf("n%d", i),
			Host:               "127.0.0.1",
			Port:               clientPorts[i],
			JetStream:          true,
			StoreDir:           t.TempDir(),
			JetStreamMaxMemory: 64 << 20,
			JetStreamMaxStore:  1 << 30,
			NoLog:              true,
			NoSigs:             true,
		}}
		if n > 1 {
			c.nodes[i].opts.Cluster = server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: routePorts[i]}
			c.nodes[i].opts.Routes = routes
		}
	}
	t.Cleanup(c.stopAll)
	for i := range c.nodes {
		c.start(i)
	}
	for i := range c.nodes {
		c.waitReady(i)
	}
	c.waitForMeta(-1)
	return c
}

// Len is the number of nodes, running or stopped.
func (c *Cluster) Len() int { return len(c.nodes) }

// URLs is the client URL of every node, comma-separated, as nats.Connect and
// jetsms's nats.url take them. Stopped nodes are listed too: they come back on
// the same port.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port)
	}
	return strings.Join(urls, ",")
}

// Server returns node i's server, or nil while it is stopped.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Stop shuts node i down and waits until it has; its files stay for Restart. The
// others see the node leave: leaderships it held move to them once they notice.
// It is a shutdown in process, not a kill -9: the node closes its connections
// and flushes its files first. Stopping a stopped node does nothing.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	srv := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Restart starts node i again on its ports and files and returns once it accepts
// connections and has caught up with the cluster's meta leader. A running node is
// stopped first.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	c.start(i)
	c.waitReady(i)
	c.waitForMeta(i)
}

// StreamLeader returns the index of the node leading stream in the global
// account, or -1 when no running node leads it.
func (c *Cluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if n.srv != nil && n.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// Connect opens a client connection to every node's URL, which reconnects to
// another node when its node stops, and closes it at cleanup.
func (c *Cluster) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(c.URLs(),
		nats.Name(t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectJitter(0, 0),
	)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// start creates and starts node i's server from its options.
func (c *Cluster) start(i int) {
	c.t.Helper()
	srv, err := server.NewServer(c.nodes[i].opts.Clone())
	require.NoError(c.t, err, "clustertest: node %d", i)
	srv.Start()
	c.mu.Lock()
	c.nodes[i].srv = srv
	c.mu.Unlock()
}

// waitReady waits until node i accepts client connections.
func (c *Cluster) waitReady(i int) {
	c.t.Helper()
	if !c.Server(i).ReadyForConnections(ReadyTimeout) {
		c.t.Fatalf("clustertest: node %d not ready for connections within %s", i, ReadyTimeout)
	}
}

// waitForMeta waits until a running node is JetStream's meta leader, every
// running node (or only node i, when i ≥ 0) is current with it, and an
// account-info request through the cluster succeeds.
func (c *Cluster) waitForMeta(i int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !c.metaSettled(i) {
		select {
		case <-ctx.Done():
			c.t.Fatalf("clustertest: no current JetStream meta leader within %s", ReadyTimeout)
		case <-tick.C:
		}
	}
	nc, err := nats.Connect(c.URLs(), nats.Name("clustertest"))
	require.NoError(c.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(c.t, err)
	for {
		reqCtx, reqCancel := context.WithTimeout(ctx, time.Second)
		_, err := js.AccountInfo(reqCtx)
		reqCancel()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("clustertest: JetStream account info within %s: %v", ReadyTimeout, err)
		case <-tick.C:
		}
	}
}

// metaSettled reports whether a meta leader runs and the nodes waited for are
// current with it.
func (c *Cluster) metaSettled(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	leader := false
	for j, n := range c.nodes {
		if n.srv == nil {
			continue
		}
		if !n.srv.JetStreamEnabled() {
			return false
		}
		leader = leader || n.srv.JetStreamIsLeader()
		if (i < 0 || i == j) && !n.srv.JetStreamIsCurrent() {
			return false
		}
	}
	return leader
}

// stopAll stops every running node.
func (c *Cluster) stopAll() {
	for i := range c.nodes {
		c.Stop(i)
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. They are held open
// together so that none repeats, then released for the servers to take.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range listeners {
			_ = ln.Close()
		}
	}()
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		listeners = append(listeners, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}
