package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// gatewayPassword is a password given through the environment; no output may
// show it.
const gatewayPassword = "pw-7f3c-must-not-leak"

func TestConfig(t *testing.T) {
	t.Parallel()

	t.Run("ConfigErrorsNameTheSetting", func(t *testing.T) {
		t.Parallel()

		t.Run("FlagValueBreaksRule", func(t *testing.T) {
			t.Parallel()
			res := runJetsms(t, "worker", "--rate.per_second=-1")
			require.Equal(t, 1, res.code)
			require.Contains(t, res.stderr, `rate.per_second: must be greater than 0 (got "-1" from --rate.per_second)`)
		})

		t.Run("FlagValueDoesNotParse", func(t *testing.T) {
			t.Parallel()
			res := runJetsms(t, "worker", "--rate.burst=many")
			require.Equal(t, 1, res.code)
			require.Contains(t, res.stderr, `rate.burst: must be a whole number (got "many" from --rate.burst)`)
		})

		t.Run("EnvValueNamesTheVariable", func(t *testing.T) {
			t.Parallel()
			// A process of its own, so the environment is its alone. The listeners
			// and store are safe ones in case it started after all.
			p := startJetsms(t, []string{"JETSMS_RATE_PER_SECOND=0"}, "run",
				"--nats.embedded.store_dir", t.TempDir(),
				"--nats.embedded.listen", "127.0.0.1:0", "--sandbox.listen", "127.0.0.1:0", "--admin.listen", "127.0.0.1:0")
			require.Equal(t, 1, p.wait(t, exitTimeout))
			require.Contains(t, p.output(), `jetsms run: rate.per_second: must be greater than 0 (got "0" from JETSMS_RATE_PER_SECOND)`)
		})

		t.Run("WorkerNeedsGatewayCredentials", func(t *testing.T) {
			t.Parallel()
			res := runJetsms(t, "worker")
			require.Equal(t, 1, res.code)
			require.Contains(t, res.stderr, `gateway.username: required unless gateway.url is "sandbox"`)
			require.Contains(t, res.stderr, `gateway.password: required unless gateway.url is "sandbox"; set the environment variable JETSMS_GATEWAY_PASSWORD`)
		})

		t.Run("RunNeedsNoGatewayCredentials", func(t *testing.T) {
			t.Parallel()
			// A bad setting stops start-up before anything listens; the message
			// is about it alone, since run defaults to the sandbox.
			res := runJetsms(t, "run", "--worker.concurrency=0")
			require.Equal(t, 1, res.code)
			require.Contains(t, res.stderr, `worker.concurrency: must be from 1 to 10000 (got "0" from --worker.concurrency)`)
			require.NotContains(t, res.stderr, "gateway.")
		})

		t.Run("UnknownFlagIsUsage", func(t *testing.T) {
			t.Parallel()
			res := runJetsms(t, "worker", "--rate.nope=1")
			require.Equal(t, 2, res.code)
			require.Contains(t, res.stderr, "flag provided but not defined: -rate.nope")
		})
	})

	t.Run("ConfigPrintsEffectiveSettingsWithSecretsRedacted", func(t *testing.T) {
		t.Parallel()
		p := startJetsms(t, []string{"JETSMS_GATEWAY_USERNAME=acme", "JETSMS_GATEWAY_PASSWORD=" + gatewayPassword,
			"JETSMS_CALLBACKS_USERNAME=gw", "JETSMS_CALLBACKS_PASSWORD=" + gatewayPassword + "-cb"},
			"config", "--rate.per_second", "12.5")
		require.Equal(t, 0, p.wait(t, exitTimeout), "stderr: %v", p.output())
		out := p.stdout.String()
		require.NotContains(t, out, gatewayPassword)
		require.Contains(t, out, `allow_unauthenticated: "false"`, "the new settings are listed")

		var cfg struct {
			Gateway struct{ URL, Username, Password string }
			Rate    struct {
				PerSecond float64 `yaml:"per_second"`
				Burst     int
			}
			NATS struct {
				Embedded struct{ Listen string }
			}
		}
		require.NoError(t, yaml.Unmarshal([]byte(out), &cfg), "the output is YAML:\n%s", out)
		require.Equal(t, "acme", cfg.Gateway.Username, "from the environment")
		require.Equal(t, "***", cfg.Gateway.Password, "a set secret shows as ***")
		require.Equal(t, 12.5, cfg.Rate.PerSecond, "from the flag")
		require.Equal(t, 50, cfg.Rate.Burst, "the default")
		require.Equal(t, "https://api.modicagroup.com/rest/sms/v2", cfg.Gateway.URL)
		require.Equal(t, "127.0.0.1:4222", cfg.NATS.Embedded.Listen)
	})

	t.Run("ConfigWorksOnAFreshMachine", func(t *testing.T) {
		t.Parallel()
		// No config file, no data directory, no credentials: the defaults, and a
		// note that a worker would need gateway credentials.
		p := startJetsms(t, []string{"JETSMS_CONFIG=", "JETSMS_GATEWAY_URL=", "JETSMS_GATEWAY_USERNAME=", "JETSMS_GATEWAY_PASSWORD="}, "config")
		require.Equal(t, 0, p.wait(t, exitTimeout), "stderr: %v", p.output())
		var cfg struct{ Gateway struct{ URL string } }
		require.NoError(t, yaml.Unmarshal([]byte(p.stdout.String()), &cfg))
		require.Equal(t, "https://api.modicagroup.com/rest/sms/v2", cfg.Gateway.URL)
		require.Contains(t, strings.Join(p.output(), "\n"), "gateway.username and gateway.password are not set")
		entries, err := os.ReadDir(p.cmd.Dir)
		require.NoError(t, err)
		require.Empty(t, entries, "nothing written to the working directory")
	})

	t.Run("ConfigErrorsNeverShowSecrets", func(t *testing.T) {
		t.Parallel()
		p := startJetsms(t, []string{"JETSMS_GATEWAY_USERNAME=acme", "JETSMS_GATEWAY_PASSWORD=" + gatewayPassword},
			"config", "--gateway.url", "ftp://gw.example", "--callbacks.password", gatewayPassword)
		require.Equal(t, 1, p.wait(t, exitTimeout))
		require.Empty(t, p.stdout.String())
		stderr := p.output()
		require.Contains(t, stderr, `jetsms config: gateway.url: must be "sandbox" or an absolute http(s) URL such as https://api.modicagroup.com/rest/sms/v2 (got "ftp://gw.example" from --gateway.url)`)
		require.Contains(t, stderr, "callbacks.username: must be set together with callbacks.password, which is set (callbacks.password from --callbacks.password)")
		for _, l := range stderr {
			require.NotContains(t, l, gatewayPassword)
		}
	})
}
