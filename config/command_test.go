package config

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCommandOptions covers what a command may change about loading: its own
// defaults, and whether gateway credentials are needed at all.
func TestCommandOptions(t *testing.T) {
	t.Parallel()

	load := func(t *testing.T, args []string, env map[string]string, prepare func(*Flags)) (Config, error) {
		t.Helper()
		fs := flag.NewFlagSet("jetsms", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f := RegisterFlags(fs)
		prepare(f)
		require.NoError(t, fs.Parse(args))
		return f.Load(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}

	t.Run("SetDefaultIsOverriddenByEverySource", func(t *testing.T) {
		t.Parallel()
		sandbox := func(f *Flags) { f.SetDefault("gateway.url", SandboxURL) }
		cfg, err := load(t, nil, nil, sandbox)
		require.NoError(t, err, "the sandbox needs no credentials")
		require.True(t, cfg.IsSandbox())

		cfg, err = load(t, nil, map[string]string{
			"JETSMS_GATEWAY_URL": "https://gw.example/rest/sms/v2", "JETSMS_GATEWAY_USERNAME": "u", "JETSMS_GATEWAY_PASSWORD": "p",
			"JETSMS_CALLBACKS_USERNAME": "gw", "JETSMS_CALLBACKS_PASSWORD": "cb",
		}, sandbox)
		require.NoError(t, err)
		require.Equal(t, "https://gw.example/rest/sms/v2", cfg.Gateway.URL)

		_, err = load(t, []string{"--gateway.url", "https://gw.example/rest/sms/v2"}, nil, sandbox)
		require.ErrorContains(t, err, "gateway.username: required")
	})

	t.Run("SetDefaultOfUnknownSettingIsAnError", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, nil, nil, func(f *Flags) { f.SetDefault("gateway.nope", "x") })
		require.ErrorContains(t, err, `unknown setting "gateway.nope"`)
	})

	t.Run("ClientNeedsNoGatewayCredentials", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, nil, nil, func(*Flags) {})
		require.ErrorContains(t, err, "gateway.username: required")
		cfg, err := load(t, nil, nil, func(f *Flags) { f.Client() })
		require.NoError(t, err)
		require.Equal(t, GatewayURLDefault, cfg.Gateway.URL)
		// Every other rule still holds.
		_, err = load(t, []string{"--rate.per_second", "-1"}, nil, func(f *Flags) { f.Client() })
		require.ErrorContains(t, err, "rate.per_second")
	})
}
