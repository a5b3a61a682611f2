// Package brokertest runs a real embedded JetStream server for tests: random port,
// store in the test's temporary directory, stopped at cleanup.
package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/subjects"
)

// Env is a running server with a client connection and the contract's streams.
type Env struct {
	Server *broker.Embedded
	URL    string
	Conn   *nats.Conn
	JS     jetstream.JetStream
	Names  subjects.Names
}

// Start runs a server whose store lives in dir (so a test can restart it on the same
// files), connects to it and declares the streams. Everything is stopped at cleanup.
func Start(t testing.TB, dir string) *Env {
	t.Helper()
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{
		StoreDir: dir,
		Listen:   "127.0.0.1:0",
		NoAuth:   true, // tests connect with plain nats.Connect(URL)
	}, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	require.NoError(t, err)
	t.Cleanup(srv.Stop)
	return connect(t, srv)
}

// Run is Start in a fresh temporary directory.
func Run(t testing.TB) *Env {
	t.Helper()
	return Start(t, t.TempDir())
}

func connect(t testing.TB, srv *broker.Embedded) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := broker.Connect(ctx, broker.ConnectConfig{URL: srv.ClientURL(), Name: t.Name()}, nil)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	names, err := subjects.New(subjects.PrefixDefault)
	require.NoError(t, err)
	require.NoError(t, broker.EnsureStreams(ctx, js, broker.StreamsConfig{Names: names}))
	return &Env{Server: srv, URL: srv.ClientURL(), Conn: nc, JS: js, Names: names}
}
