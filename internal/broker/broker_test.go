package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/subjects"
)

func TestStreams(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) (*brokertest.Env, context.Context) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return brokertest.Run(t), ctx
	}

	t.Run("CreatesTheContractStreams", func(t *testing.T) {
		t.Parallel()
		env, ctx := setup(t)
		jobs, err := env.JS.Stream(ctx, "SMS_JOBS")
		require.NoError(t, err)
		cfg := jobs.CachedInfo().Config
		require.Equal(t, jetstream.WorkQueuePolicy, cfg.Retention)
		require.Equal(t, jetstream.FileStorage, cfg.Storage)
		require.Equal(t, jetstream.DiscardNew, cfg.Discard)
		require.Equal(t, 2*time.Minute, cfg.Duplicates)
		require.Equal(t, broker.JobsMaxBytesDefault, cfg.MaxBytes)
		require.Equal(t, []string{"sms.send.>"}, cfg.Subjects)
		for _, name := range []string{"SMS_STATUS", "SMS_INBOUND", "SMS_DEAD"} {
			s, err := env.JS.Stream(ctx, name)
			require.NoError(t, err, name)
			require.Equal(t, jetstream.LimitsPolicy, s.CachedInfo().Config.Retention, name)
			require.Equal(t, broker.MaxAgeDefault, s.CachedInfo().Config.MaxAge, name)
		}
	})

	t.Run("FullJobsStreamPushesProducersBack", func(t *testing.T) {
		t.Parallel()
		env, ctx := setup(t)
		require.NoError(t, broker.EnsureStreams(ctx, env.JS, broker.StreamsConfig{Names: env.Names, JobsMaxBytes: 4096}))
		var err error
		for i := 0; i < 100 && err == nil; i++ {
			_, err = env.JS.Publish(ctx, "sms.send.bulk", make([]byte, 500))
		}
		require.ErrorContains(t, err, "maximum bytes exceeded")
	})

	t.Run("UpdatesLimitsOfAnExistingStream", func(t *testing.T) {
		t.Parallel()
		env, ctx := setup(t)
		require.NoError(t, broker.EnsureStreams(ctx, env.JS, broker.StreamsConfig{Names: env.Names, MaxAge: time.Hour}))
		s, err := env.JS.Stream(ctx, "SMS_STATUS")
		require.NoError(t, err)
		require.Equal(t, time.Hour, s.CachedInfo().Config.MaxAge)
	})

	t.Run("FixedSettingMismatchIsAClearError", func(t *testing.T) {
		t.Parallel()
		env, ctx := setup(t)
		names, err := subjects.New("other")
		require.NoError(t, err)
		_, err = env.JS.CreateStream(ctx, jetstream.StreamConfig{
			Name: names.JobsStream(), Subjects: []string{names.SendAll()}, Storage: jetstream.MemoryStorage,
		})
		require.NoError(t, err)
		err = broker.EnsureStreams(ctx, env.JS, broker.StreamsConfig{Names: names})
		require.ErrorIs(t, err, broker.ErrStreamMismatch)
		require.ErrorContains(t, err, "stream OTHER_JOBS: storage is Memory but jetsms needs File")
	})

	t.Run("OverlappingStreamIsNamedInTheError", func(t *testing.T) {
		t.Parallel()
		env, ctx := setup(t)
		_, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "SQUAT", Subjects: []string{"x.status.>"}})
		require.NoError(t, err)
		names, err := subjects.New("x")
		require.NoError(t, err)
		err = broker.EnsureStreams(ctx, env.JS, broker.StreamsConfig{Names: names})
		require.ErrorContains(t, err, "X_STATUS")
	})
}

func TestConnect(t *testing.T) {
	t.Parallel()

	t.Run("WaitsForAServerThatIsNotUpYet", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// Learn a free port from a first server, stop it, then connect before the
		// second one starts on the same port.
		first, err := broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: dir, Listen: "127.0.0.1:0"}, nil)
		require.NoError(t, err)
		url := first.ClientURL()
		addr := first.Server().Addr().String()
		first.Stop()

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		type result struct {
			err error
		}
		done := make(chan result, 1)
		go func() {
			// The servers require the password they generated in dir.
			nc, err := broker.Connect(ctx, broker.ConnectConfig{URL: url, LocalCredentialsDir: dir}, nil)
			if err == nil {
				nc.Close()
			}
			done <- result{err}
		}()
		second, err := broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: dir, Listen: addr}, nil)
		require.NoError(t, err)
		defer second.Stop()
		require.NoError(t, (<-done).err)
	})

	t.Run("GivesUpWhenTheContextEnds", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := broker.Connect(ctx, broker.ConnectConfig{URL: "nats://user:pw@127.0.0.1:1"}, nil)
		require.ErrorIs(t, err, context.Canceled)
		require.NotContains(t, err.Error(), "pw")
	})
}
