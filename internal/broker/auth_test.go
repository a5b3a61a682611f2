package broker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/secret"
)

func TestEmbeddedAuth(t *testing.T) {
	t.Parallel()

	start := func(t *testing.T, cfg broker.EmbeddedConfig) *broker.Embedded {
		t.Helper()
		if cfg.Listen == "" {
			cfg.Listen = "127.0.0.1:0"
		}
		emb, err := broker.StartEmbedded(cfg, nil)
		require.NoError(t, err)
		t.Cleanup(emb.Stop)
		return emb
	}
	connect := func(t *testing.T, cfg broker.ConnectConfig) (*nats.Conn, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nc, err := broker.Connect(ctx, cfg, nil)
		if err == nil {
			t.Cleanup(nc.Close)
		}
		return nc, err
	}

	t.Run("RefusesAClientWithoutCredentials", func(t *testing.T) {
		t.Parallel()
		emb := start(t, broker.EmbeddedConfig{StoreDir: t.TempDir()})
		_, err := nats.Connect(emb.ClientURL(), nats.NoReconnect())
		require.ErrorIs(t, err, nats.ErrAuthorization)
		_, err = nats.Connect(emb.ClientURL(), nats.UserInfo(broker.EmbeddedUser, "guess"), nats.NoReconnect())
		require.ErrorIs(t, err, nats.ErrAuthorization)
	})

	t.Run("ConnectWithoutThePasswordIsRefusedNotAWait", func(t *testing.T) {
		t.Parallel()
		emb := start(t, broker.EmbeddedConfig{StoreDir: t.TempDir()})
		// The context outlasts the test's other waits: the refusal, not the
		// deadline, ends Connect.
		_, err := connect(t, broker.ConnectConfig{URL: emb.ClientURL(), LocalCredentialsDir: t.TempDir()})
		require.ErrorIs(t, err, nats.ErrAuthorization)
		require.NotErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("ASecondClientConnectsWithThePasswordFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		emb := start(t, broker.EmbeddedConfig{StoreDir: dir})
		require.Equal(t, filepath.Join(dir, broker.PasswordFile), emb.PasswordFile())
		nc, err := connect(t, broker.ConnectConfig{URL: emb.ClientURL(), LocalCredentialsDir: dir})
		require.NoError(t, err)
		require.True(t, nc.IsConnected())
		// Also as the nats CLI would: the user and the file's password.
		data, err := os.ReadFile(emb.PasswordFile())
		require.NoError(t, err)
		plain, err := nats.Connect(emb.ClientURL(), nats.UserInfo(broker.EmbeddedUser, strings.TrimSpace(string(data))))
		require.NoError(t, err)
		plain.Close()
	})

	t.Run("ThePasswordFileIsMode0600AndLongEnough", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		emb := start(t, broker.EmbeddedConfig{StoreDir: dir})
		info, err := os.Stat(emb.PasswordFile())
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm())
		creds, found, err := broker.ReadCredentials(dir)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, broker.EmbeddedUser, creds.User)
		require.GreaterOrEqual(t, len(creds.Password.Reveal()), 40)
		// No temporary file is left beside it.
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			require.False(t, strings.HasPrefix(e.Name(), "."+broker.PasswordFile), e.Name())
		}
	})

	t.Run("ARestartReusesTheCredentials", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		first, err := broker.LoadOrCreateCredentials(dir)
		require.NoError(t, err)
		emb := start(t, broker.EmbeddedConfig{StoreDir: dir})
		addr := emb.Server().Addr().String()
		emb.Stop()
		again := start(t, broker.EmbeddedConfig{StoreDir: dir, Listen: addr})
		second, found, err := broker.ReadCredentials(dir)
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, first, second)
		plain, err := nats.Connect(again.ClientURL(), nats.UserInfo(first.User, first.Password.Reveal()))
		require.NoError(t, err)
		plain.Close()
	})

	t.Run("ExplicitCredentialsWin", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// A password file from an earlier start is not used when credentials are given.
		_, err := broker.LoadOrCreateCredentials(dir)
		require.NoError(t, err)
		emb := start(t, broker.EmbeddedConfig{StoreDir: dir, Auth: broker.Credentials{User: "ops", Password: "s3cret-ops"}})
		require.Empty(t, emb.PasswordFile())
		_, err = nats.Connect(emb.ClientURL(), nats.NoReconnect())
		require.ErrorIs(t, err, nats.ErrAuthorization)
		_, err = connect(t, broker.ConnectConfig{URL: emb.ClientURL(), User: "ops", Password: secret.Secret("s3cret-ops"), LocalCredentialsDir: dir})
		require.NoError(t, err)

		tok := start(t, broker.EmbeddedConfig{StoreDir: t.TempDir(), Auth: broker.Credentials{Token: "tok-123"}})
		_, err = connect(t, broker.ConnectConfig{URL: tok.ClientURL(), Token: "tok-123"})
		require.NoError(t, err)
	})

	t.Run("TheServerIsGivenAHashAndDoesNotWarn", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			auth broker.Credentials
			// hashed is false for a password bcrypt cannot take (over 72 bytes):
			// the server is given it as it is, and warns of a plaintext password.
			hashed bool
		}{
			{"generated", broker.Credentials{}, true},
			{"password", broker.Credentials{User: "ops", Password: "s3cret-ops"}, true},
			{"token", broker.Credentials{Token: "tok-123"}, true},
			{"long password", broker.Credentials{User: "ops", Password: secret.Secret(strings.Repeat("p", 100))}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				core, logs := observer.New(zap.WarnLevel)
				dir := t.TempDir()
				emb, err := broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: dir, Listen: "127.0.0.1:0", Auth: tc.auth}, zap.New(core))
				require.NoError(t, err)
				t.Cleanup(emb.Stop)
				warned := logs.FilterMessageSnippet("Plaintext").Len() > 0
				require.Equal(t, !tc.hashed, warned, "plaintext warning logged")

				creds := tc.auth
				if creds.IsZero() {
					var found bool
					creds, found, err = broker.ReadCredentials(dir)
					require.NoError(t, err)
					require.True(t, found)
				}
				right := nats.UserInfo(creds.User, creds.Password.Reveal())
				wrong := nats.UserInfo(creds.User, creds.Password.Reveal()+"x")
				if creds.Token.IsSet() {
					right, wrong = nats.Token(creds.Token.Reveal()), nats.Token(creds.Token.Reveal()+"x")
				}
				nc, err := nats.Connect(emb.ClientURL(), right, nats.NoReconnect())
				require.NoError(t, err)
				nc.Close()
				_, err = nats.Connect(emb.ClientURL(), wrong, nats.NoReconnect())
				require.ErrorIs(t, err, nats.ErrAuthorization)
			})
		}
	})

	t.Run("RefusesAPasswordFileOthersCanRead", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		_, err := broker.LoadOrCreateCredentials(dir)
		require.NoError(t, err)
		require.NoError(t, os.Chmod(broker.PasswordPath(dir), 0o644))
		_, err = broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: dir, Listen: "127.0.0.1:0"}, nil)
		require.ErrorContains(t, err, "mode 0644 lets other users read it; chmod 600 it")
		_, err = connect(t, broker.ConnectConfig{URL: "nats://127.0.0.1:1", LocalCredentialsDir: dir})
		require.ErrorContains(t, err, "chmod 600 it")
	})

	t.Run("RefusesToListenBeyondLoopbackWithoutAuth", func(t *testing.T) {
		t.Parallel()
		for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
			_, err := broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: t.TempDir(), Listen: listen, NoAuth: true}, nil)
			require.ErrorContains(t, err, "refusing to listen beyond loopback without authentication", listen)
		}
	})

	t.Run("ListeningEverywhereIsReachedOnLoopbackWithTheFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		emb := start(t, broker.EmbeddedConfig{StoreDir: dir, Listen: "0.0.0.0:0"})
		require.True(t, strings.HasPrefix(emb.ClientURL(), "nats://127.0.0.1:"), emb.ClientURL())
		_, err := nats.Connect(emb.ClientURL(), nats.NoReconnect())
		require.ErrorIs(t, err, nats.ErrAuthorization)
		_, err = connect(t, broker.ConnectConfig{URL: emb.ClientURL(), LocalCredentialsDir: dir})
		require.NoError(t, err)
	})
}
