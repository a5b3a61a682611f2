package config

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/secret"
)

// testBundle is what the tests of loading need: a directory for files.
type testBundle struct {
	dir string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	return &testBundle{dir: t.TempDir()}
}

// write writes a file in the bundle's directory and returns its path.
func (b *testBundle) write(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(b.dir, name)
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// load registers the flags on a new flag set, parses args and loads with env as the
// environment.
func load(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("jetsms", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterFlags(fs)
	require.NoError(t, fs.Parse(args))
	return f.Load(func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
}

// sandboxEnv is the smallest valid environment: the simulator needs no credentials.
func sandboxEnv(extra ...string) map[string]string {
	env := map[string]string{"JETSMS_GATEWAY_URL": SandboxURL}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

// sandboxDefault is Default with the simulator as gateway.
func sandboxDefault() Config {
	c := Default()
	c.Gateway.URL = SandboxURL
	return c
}

// problemCount is how many problems an error from Load or Validate joins.
func problemCount(err error) int {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		return len(joined.Unwrap())
	}
	return 1
}

func TestDefault(t *testing.T) {
	t.Parallel()

	t.Run("MatchesContract", func(t *testing.T) {
		t.Parallel()
		want := Config{
			NATS: NATS{Embedded: Embedded{StoreDir: "./data", Listen: "127.0.0.1:4222", Sync: Sync{Always: true}}},
			Streams: Streams{
				Prefix: "sms", Replicas: 1, JobsMaxBytes: 1 << 30, MaxAge: 168 * time.Hour,
			},
			Ledger: Ledger{Retention: 7 * 24 * time.Hour},
			Lanes:  []string{"priority", "default", "bulk"},
			Lane: LaneOptions{
				Marketing: []string{"bulk"}, Ambiguous: []string{"bulk=fail"}, MinShare: []string{"bulk=0.1"},
				MaxAge: []string{}, HoldFor: 10 * time.Minute, HoldThen: "resend", Broadcast: []string{},
			},
			Jobs: Jobs{MaxSegments: 10},
			Gateway: Gateway{URL: "https://api.modicagroup.com/rest/sms/v2", API: "v2", Timeout: 10 * time.Second,
				BroadcastMax: 100, BroadcastWait: 200 * time.Millisecond},
			Rate: Rate{PerSecond: 50, Burst: 50, Unit: "messages", Shared: true, DestinationWindow: time.Hour},
			Worker: Worker{
				Concurrency: 64, ConcurrencyMin: 4, MaxAttempts: 10, AckWait: 30 * time.Second, GracePeriod: 20 * time.Second,
			},
			Callbacks: Callbacks{Listen: ":8080", AllowFrom: []string{}, ResolveWithin: 2 * time.Minute, ReconcileAfter: 24 * time.Hour},
			Admin:     Admin{Listen: "127.0.0.1:9090"},
			Sandbox: Sandbox{
				Listen: "127.0.0.1:8090", DLRDelay: time.Second,
				DLRMix: "received=0.97,rejected=0.01,expired=0.01,failed=0.01",
			},
			Log: Log{Level: "info", Format: "auto", Redact: true},
		}
		require.Equal(t, want, Default())

		// The rows of docs/contract.md's configuration table, as Settings gives them.
		contract := map[string][2]string{
			"nats.url":                    {"JETSMS_NATS_URL", ""},
			"nats.embedded.store_dir":     {"JETSMS_NATS_STORE_DIR", "./data"},
			"nats.embedded.listen":        {"JETSMS_NATS_LISTEN", "127.0.0.1:4222"},
			"nats.embedded.sync":          {"JETSMS_NATS_SYNC", "always"},
			"gateway.url":                 {"JETSMS_GATEWAY_URL", "https://api.modicagroup.com/rest/sms/v2"},
			"gateway.api":                 {"JETSMS_GATEWAY_API", "v2"},
			"gateway.username":            {"JETSMS_GATEWAY_USERNAME", ""},
			"gateway.password":            {"JETSMS_GATEWAY_PASSWORD", ""},
			"rate.per_second":             {"JETSMS_RATE_PER_SECOND", "50"},
			"rate.burst":                  {"JETSMS_RATE_BURST", "50"},
			"worker.concurrency":          {"JETSMS_WORKER_CONCURRENCY", "64"},
			"callbacks.listen":            {"JETSMS_CALLBACKS_LISTEN", ":8080"},
			"callbacks.username":          {"JETSMS_CALLBACKS_USERNAME", ""},
			"callbacks.password":          {"JETSMS_CALLBACKS_PASSWORD", ""},
			"admin.listen":                {"JETSMS_ADMIN_LISTEN", "127.0.0.1:9090"},
			"admin.username":              {"JETSMS_ADMIN_USERNAME", ""},
			"admin.password":              {"JETSMS_ADMIN_PASSWORD", ""},
			"admin.allow_unauthenticated": {"JETSMS_ADMIN_ALLOW_UNAUTHENTICATED", "false"},
		}
		found := 0
		for _, s := range Settings() {
			if row, ok := contract[s.Name]; ok {
				found++
				require.Equal(t, row[0], s.Env, s.Name)
				require.Equal(t, row[1], s.Default, s.Name)
			}
		}
		require.Equal(t, len(contract), found)
	})

	t.Run("IsValidWithTheSandbox", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, sandboxDefault().Validate())
		require.True(t, sandboxDefault().IsSandbox())
		require.False(t, Default().IsSandbox())
	})

	t.Run("NeedsGatewayCredentialsOtherwise", func(t *testing.T) {
		t.Parallel()
		err := Default().Validate()
		require.ErrorContains(t, err, "gateway.username: required unless gateway.url is \"sandbox\"")
		require.ErrorContains(t, err, "JETSMS_GATEWAY_USERNAME")
		require.ErrorContains(t, err, "gateway.password: required")
		require.ErrorContains(t, err, "JETSMS_GATEWAY_PASSWORD")
		require.ErrorContains(t, err, "callbacks.username: required, with callbacks.password")
		require.ErrorContains(t, err, "callbacks.allow_unauthenticated: true")
		require.Equal(t, 3, problemCount(err))
	})

	t.Run("SettingsMatchTheYAMLTags", func(t *testing.T) {
		t.Parallel()
		var fromTags []string
		var walk func(prefix string, typ reflect.Type)
		walk = func(prefix string, typ reflect.Type) {
			for f := range typ.Fields() {
				name := prefix + f.Tag.Get("yaml")
				if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[Sync]() {
					walk(name+".", f.Type)
					continue
				}
				fromTags = append(fromTags, name)
			}
		}
		walk("", reflect.TypeFor[Config]())
		var names, envs []string
		for _, s := range Settings() {
			names = append(names, s.Name)
			require.True(t, strings.HasPrefix(s.Env, "JETSMS_"), s.Env)
			require.NotContains(t, envs, s.Env)
			envs = append(envs, s.Env)
			require.NotEmpty(t, s.Help, s.Name)
		}
		require.Equal(t, fromTags, names)
	})

	t.Run("EveryDefaultReadsBackFromEnvAndFlag", func(t *testing.T) {
		t.Parallel()
		env := sandboxEnv()
		var args []string
		for _, s := range Settings() {
			if s.Name == "gateway.url" {
				continue
			}
			env[s.Env] = s.Default
			args = append(args, "--"+s.Name+"="+s.Default)
		}
		got, err := load(t, nil, env)
		require.NoError(t, err)
		require.Equal(t, sandboxDefault(), got)
		got, err = load(t, args, sandboxEnv())
		require.NoError(t, err)
		require.Equal(t, sandboxDefault(), got)
	})
}

func TestLoad(t *testing.T) {
	t.Parallel()

	t.Run("YAMLThenEnvThenFlag", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		path := b.write(t, "jetsms.yaml", "gateway:\n  url: sandbox\nrate:\n  per_second: 10\n")
		env := map[string]string{"JETSMS_RATE_PER_SECOND": "20"}
		flagArg := "--rate.per_second=30"

		got, err := load(t, []string{"--config", path, flagArg}, env)
		require.NoError(t, err)
		require.InDelta(t, 30.0, got.Rate.PerSecond, 0)

		got, err = load(t, []string{"--config", path}, env)
		require.NoError(t, err)
		require.InDelta(t, 20.0, got.Rate.PerSecond, 0)

		got, err = load(t, []string{"--config", path}, nil)
		require.NoError(t, err)
		require.InDelta(t, 10.0, got.Rate.PerSecond, 0)

		got, err = load(t, nil, sandboxEnv())
		require.NoError(t, err)
		require.InDelta(t, RatePerSecondDefault, got.Rate.PerSecond, 0)
	})

	t.Run("ConfigFileFromEnv", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		fromEnv := b.write(t, "env.yaml", "gateway:\n  url: sandbox\nlog:\n  level: debug\n")
		fromFlag := b.write(t, "flag.yaml", "gateway:\n  url: sandbox\nlog:\n  level: warn\n")

		got, err := load(t, nil, map[string]string{ConfigEnv: fromEnv})
		require.NoError(t, err)
		require.Equal(t, "debug", got.Log.Level)

		got, err = load(t, []string{"--config=" + fromFlag}, map[string]string{ConfigEnv: fromEnv})
		require.NoError(t, err)
		require.Equal(t, "warn", got.Log.Level)
	})

	t.Run("MissingConfigFileNamesPath", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(setup(t).dir, "absent.yaml")
		_, err := load(t, []string{"--config", path}, sandboxEnv())
		require.ErrorContains(t, err, path)
		require.ErrorContains(t, err, "--config")
		require.ErrorIs(t, err, os.ErrNotExist)

		_, err = load(t, nil, sandboxEnv(ConfigEnv, path))
		require.ErrorContains(t, err, path)
		require.ErrorContains(t, err, ConfigEnv)
	})

	t.Run("EmptyFileGivesDefaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{"", "# nothing\n", "---\n", "nats:\n"} {
			path := b.write(t, "empty.yaml", body)
			got, err := load(t, []string{"--config", path}, sandboxEnv())
			require.NoError(t, err, "%q", body)
			require.Equal(t, sandboxDefault(), got)
		}
	})

	t.Run("NullLeavesTheSettingAsItWas", func(t *testing.T) {
		t.Parallel()
		path := setup(t).write(t, "c.yaml", "gateway:\n  url: sandbox\nrate:\n  burst:\n  per_second: ~\nnats:\n  url: \"\"\n")
		got, err := load(t, []string{"--config", path}, nil)
		require.NoError(t, err)
		require.Equal(t, sandboxDefault(), got)
	})

	t.Run("UnknownYAMLKeyNamesItAndItsLine", func(t *testing.T) {
		t.Parallel()
		path := setup(t).write(t, "config.yaml", "log:\n  level: info\n\ngatway:\n  url: sandbox\n")
		_, err := load(t, []string{"--config", path}, sandboxEnv())
		require.ErrorContains(t, err, path+`: line 4: unknown setting "gatway"`)
	})

	t.Run("UnknownNestedYAMLKeyNamesItsPath", func(t *testing.T) {
		t.Parallel()
		path := setup(t).write(t, "config.yaml", "nats:\n  tsl:\n    ca: x\n  embedded:\n    sink: always\n")
		_, err := load(t, []string{"--config", path}, sandboxEnv())
		require.ErrorContains(t, err, `line 2: unknown setting "nats.tsl"`)
		require.ErrorContains(t, err, `line 5: unknown setting "nats.embedded.sink"`)
		require.Equal(t, 2, problemCount(err))
	})

	t.Run("BadYAMLShapesAreRefused", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for body, want := range map[string]string{
			"gateway: sandbox\n":                          `line 1: gateway: is a group of settings`,
			"rate:\n  burst:\n    max: 5\n":               `line 3: rate.burst: must be a single value`,
			"rate:\n  burst: [1, 2]\n":                    `line 2: rate.burst: must be a single value`,
			"lanes:\n  a: b\n":                            `line 2: lanes: must be a list`,
			"lanes: [a, [b]]\n":                           `line 1: lanes: each item must be a single value`,
			"- a\n- b\n":                                  `line 1: the file must be a mapping of settings`,
			"log:\n  level: info\nlog:\n  format: json\n": `line 3: "log" appears twice (first on line 1)`,
			"rate: {burst: 5, burst: 6}\n":                `line 1: "rate.burst" appears twice`,
			"log: {level: info}\n---\nlog: {}\n":          `line 2: a second YAML document`,
			"log: [\n":                                    `yaml: line`,
			"? [a]\n: b\n":                                `a setting's name must be a plain word`,
		} {
			path := b.write(t, "c.yaml", body)
			_, err := load(t, []string{"--config", path}, sandboxEnv())
			require.ErrorContains(t, err, path+": ", "%q", body)
			require.ErrorContains(t, err, want, "%q", body)
		}
	})

	t.Run("YAMLAliasesAreFollowed", func(t *testing.T) {
		t.Parallel()
		path := setup(t).write(t, "c.yaml", "gateway:\n  url: sandbox\n  timeout: &t 15s\nworker:\n  grace_period: *t\nlanes: &l [a, b]\n")
		got, err := load(t, []string{"--config", path}, nil)
		require.NoError(t, err)
		require.Equal(t, 15*time.Second, got.Worker.GracePeriod)
		require.Equal(t, []string{"a", "b"}, got.Lanes)
	})

	t.Run("BadDurationFromEnvNamesTheVariable", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, nil, sandboxEnv("JETSMS_WORKER_ACK_WAIT", "30"))
		require.EqualError(t, err, `worker.ack_wait: must be a duration such as 30s, 5m, 2h or 7d (got "30" from JETSMS_WORKER_ACK_WAIT)`)
	})

	t.Run("BadValueFromFlagNamesTheFlag", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, []string{"--rate.burst", "many"}, sandboxEnv())
		require.EqualError(t, err, `rate.burst: must be a whole number (got "many" from --rate.burst)`)
	})

	t.Run("BadValueFromYAMLNamesFileAndLine", func(t *testing.T) {
		t.Parallel()
		path := setup(t).write(t, "c.yaml", "gateway:\n  url: sandbox\n  timeout: soon\n")
		_, err := load(t, []string{"--config", path}, nil)
		require.EqualError(t, err, `gateway.timeout: must be a duration such as 30s, 5m, 2h or 7d (got "soon" from `+path+` line 3)`)
	})

	t.Run("ProblemNamesSettingRuleAndSource", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, nil, sandboxEnv("JETSMS_RATE_PER_SECOND", "-5"))
		require.EqualError(t, err, `rate.per_second: must be greater than 0 (got "-5" from JETSMS_RATE_PER_SECOND)`)
	})

	t.Run("ReportsEveryProblemAtOnce", func(t *testing.T) {
		t.Parallel()
		path := setup(t).write(t, "c.yaml", "worker:\n  concurrency: 0\nbogus: 1\n")
		_, err := load(t, []string{"--config", path, "--log.level=loud"},
			map[string]string{"JETSMS_RATE_BURST": "x", "JETSMS_CALLBACKS_USERNAME": "gw"})
		for _, want := range []string{
			`unknown setting "bogus"`,
			`worker.concurrency: must be from 1 to 10000 (got "0" from ` + path + ` line 2)`,
			`rate.burst: must be a whole number (got "x" from JETSMS_RATE_BURST)`,
			`log.level: must be one of debug, info, warn, error (got "loud" from --log.level)`,
			`gateway.username: required`,
			`gateway.password: required`,
			`callbacks.password: must be set together with callbacks.username, which is set (callbacks.username from JETSMS_CALLBACKS_USERNAME)`,
		} {
			require.ErrorContains(t, err, want)
		}
		require.Equal(t, 7, problemCount(err))
	})

	t.Run("LaterGoodValueDoesNotHideBadFile", func(t *testing.T) {
		t.Parallel()
		path := setup(t).write(t, "c.yaml", "rate:\n  burst: lots\n")
		_, err := load(t, []string{"--config", path, "--rate.burst=5"}, sandboxEnv())
		require.EqualError(t, err, `rate.burst: must be a whole number (got "lots" from `+path+` line 2)`)
	})

	t.Run("EmptyEnvCountsAsUnset", func(t *testing.T) {
		t.Parallel()
		got, err := load(t, nil, sandboxEnv("JETSMS_RATE_BURST", "", "JETSMS_LANES", ""))
		require.NoError(t, err)
		require.Equal(t, sandboxDefault(), got)
	})

	t.Run("EmptyFlagSetsEmpty", func(t *testing.T) {
		t.Parallel()
		got, err := load(t, []string{"--sandbox.faults="}, sandboxEnv("JETSMS_SANDBOX_FAULTS", "500=1"))
		require.NoError(t, err)
		require.Empty(t, got.Sandbox.Faults)
	})

	t.Run("SyncAcceptsAlwaysOrAPositiveDuration", func(t *testing.T) {
		t.Parallel()
		for raw, want := range map[string]Sync{
			"always": {Always: true},
			"100ms":  {Interval: 100 * time.Millisecond},
			"2m":     {Interval: 2 * time.Minute},
		} {
			got, err := load(t, nil, sandboxEnv("JETSMS_NATS_SYNC", raw))
			require.NoError(t, err, raw)
			require.Equal(t, want, got.NATS.Embedded.Sync)
			require.Equal(t, raw, got.NATS.Embedded.Sync.String())
		}
		for _, raw := range []string{"0s", "0", "-1s", "soon", "Always", "never"} {
			_, err := load(t, nil, sandboxEnv("JETSMS_NATS_SYNC", raw))
			require.ErrorContains(t, err, `nats.embedded.sync: must be "always" or a`, raw)
			require.ErrorContains(t, err, `from JETSMS_NATS_SYNC`, raw)
		}
	})

	t.Run("DurationsAcceptDays", func(t *testing.T) {
		t.Parallel()
		for raw, want := range map[string]time.Duration{
			"7d": 168 * time.Hour, "1.5d": 36 * time.Hour, "1d12h": 36 * time.Hour, "90m": 90 * time.Minute, "+2d": 48 * time.Hour,
		} {
			got, err := load(t, nil, sandboxEnv("JETSMS_STREAMS_MAX_AGE", raw))
			require.NoError(t, err, raw)
			require.Equal(t, want, got.Streams.MaxAge, raw)
		}
		for _, raw := range []string{"d", "7", "7dd", "1d-1h", "1e3d", "d7", "999999999999d", ".d"} {
			_, err := load(t, nil, sandboxEnv("JETSMS_STREAMS_MAX_AGE", raw))
			require.ErrorContains(t, err, "streams.max_age: must be a duration", raw)
		}
		_, err := load(t, nil, sandboxEnv("JETSMS_STREAMS_MAX_AGE", "-1d"))
		require.ErrorContains(t, err, `streams.max_age: must be greater than 0 (got "-1d"`)
	})

	t.Run("ByteSizesTakeUnits", func(t *testing.T) {
		t.Parallel()
		for raw, want := range map[string]int64{
			"1GiB": 1 << 30, "512MB": 512e6, "1048576": 1 << 20, "2 KiB": 2048, "3kb": 3000, "1TB": 1e12, "10B": 10,
		} {
			got, err := load(t, nil, sandboxEnv("JETSMS_STREAMS_JOBS_MAX_BYTES", raw))
			require.NoError(t, err, raw)
			require.Equal(t, want, got.Streams.JobsMaxBytes, raw)
		}
		for _, raw := range []string{"GiB", "1PB", "1.5GiB", "9999999999GiB", "1 G", "lots"} {
			_, err := load(t, nil, sandboxEnv("JETSMS_STREAMS_JOBS_MAX_BYTES", raw))
			require.ErrorContains(t, err, "streams.jobs_max_bytes: must be a size in bytes", raw)
		}
	})

	t.Run("LanesFromEnvAreCommaSeparated", func(t *testing.T) {
		t.Parallel()
		got, err := load(t, nil, sandboxEnv("JETSMS_LANES", "a,b"))
		require.NoError(t, err)
		require.Equal(t, []string{"a", "b"}, got.Lanes)

		got, err = load(t, []string{"--lanes", " otp , bulk "}, sandboxEnv())
		require.NoError(t, err)
		require.Equal(t, []string{"otp", "bulk"}, got.Lanes)
	})

	t.Run("LanesFromYAMLAreAListOrCommaSeparated", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{"lanes: [a, b]\n", "lanes:\n  - a\n  - b\n", "lanes: a,b\n"} {
			path := b.write(t, "c.yaml", body)
			got, err := load(t, []string{"--config", path}, sandboxEnv())
			require.NoError(t, err, body)
			require.Equal(t, []string{"a", "b"}, got.Lanes, body)
		}
	})

	t.Run("DuplicateLanesAreRefused", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, nil, sandboxEnv("JETSMS_LANES", "a,b,a"))
		require.EqualError(t, err, `lanes: lane "a" is listed twice (got "a,b,a" from JETSMS_LANES)`)

		path := setup(t).write(t, "c.yaml", "lanes:\n  - bulk\n  - bulk\n")
		_, err = load(t, []string{"--config", path}, sandboxEnv())
		require.EqualError(t, err, `lanes: lane "bulk" is listed twice (got "bulk,bulk" from `+path+` line 2)`)
	})

	t.Run("SecretsNeverShown", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		secrets := map[string]string{
			"JETSMS_GATEWAY_PASSWORD":   "gw-hunter2",
			"JETSMS_NATS_PASSWORD":      "nats-hunter2",
			"JETSMS_NATS_TOKEN":         "tok-hunter2",
			"JETSMS_CALLBACKS_PASSWORD": "cb-hunter2",
		}
		// Every rule a secret takes part in is broken, so each secret's setting is
		// named in the error; the URLs carry passwords too.
		env := map[string]string{
			"JETSMS_NATS_USER":   "bob",
			"JETSMS_NATS_URL":    "nats://bob:url-hunter2@nats-1:4222,nats://:url-hunter3@nats-2:x",
			"JETSMS_GATEWAY_URL": "ftp://gw:url-hunter4@example.com/",
		}
		for k, v := range secrets {
			env[k] = v
		}
		yamlPath := b.write(t, "c.yaml", "gateway:\n  password: yaml-hunter5\ncallbacks:\n  password:\n    nested: yaml-hunter6\n")
		flagSecret := "--nats.token=flag-hunter7"
		_, err := load(t, []string{"--config", yamlPath, flagSecret}, env)
		require.Error(t, err)
		for _, want := range []string{"nats.url:", "gateway.url:", "nats.token:", "callbacks.username:", "callbacks.password:"} {
			require.ErrorContains(t, err, want)
		}
		for _, leak := range []string{"hunter2", "hunter3", "hunter4", "hunter5", "hunter6", "hunter7"} {
			require.NotContains(t, err.Error(), leak)
		}

		// Redacted on a valid configuration with every secret set.
		valid := map[string]string{
			"JETSMS_NATS_URL":           "nats://bob:url-hunter2@nats-1:4222",
			"JETSMS_NATS_USER":          "bob",
			"JETSMS_CALLBACKS_USERNAME": "gateway",
		}
		for k, v := range secrets {
			if k != "JETSMS_NATS_TOKEN" {
				valid[k] = v
			}
		}
		got, err := load(t, []string{"--gateway.username=acme"}, valid)
		require.NoError(t, err)
		require.Equal(t, secret.Secret("gw-hunter2"), got.Gateway.Password)
		out := got.Redacted()
		require.NotContains(t, out, "hunter2")
		require.Contains(t, out, "password: '***'")
		require.Contains(t, out, "url: nats://bob:***@nats-1:4222")
	})

	t.Run("RedactedReloadsToTheSameConfig", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		creds := b.write(t, "nats.creds", "creds")
		env := map[string]string{
			"JETSMS_NATS_URL":                        "nats://a:4222, tls://b:4222",
			"JETSMS_NATS_CREDS":                      creds,
			"JETSMS_NATS_SYNC":                       "250ms",
			"JETSMS_STREAMS_PREFIX":                  "acme.sms",
			"JETSMS_STREAMS_REPLICAS":                "3",
			"JETSMS_STREAMS_JOBS_MAX_BYTES":          "1500000",
			"JETSMS_STREAMS_MAX_AGE":                 "1d2h3m4.5s",
			"JETSMS_LEDGER_BUCKET":                   "true",
			"JETSMS_LANES":                           "otp,null,100",
			"JETSMS_GATEWAY_URL":                     "http://localhost:9999/rest/sms/v1",
			"JETSMS_GATEWAY_API":                     "v1",
			"JETSMS_GATEWAY_USERNAME":                "yes",
			"JETSMS_CALLBACKS_ALLOW_FROM":            "192.0.2.0/24, 2001:db8::1",
			"JETSMS_CALLBACKS_ALLOW_UNAUTHENTICATED": "true",
			"JETSMS_RATE_PER_SECOND":                 "0.25",
			"JETSMS_SANDBOX_FAULTS":                  "500=0.01,503=0.5",
			"JETSMS_SANDBOX_LATENCY":                 "1.5s",
			"JETSMS_LOG_FORMAT":                      "json",
		}
		want, err := load(t, []string{"--gateway.password=pw"}, env)
		require.NoError(t, err)
		path := b.write(t, "redacted.yaml", want.Redacted())
		got, err := load(t, []string{"--config", path}, nil)
		require.NoError(t, err)
		want.Gateway.Password = secret.Redacted
		dropUnknownLanes(&want)
		require.Equal(t, want, got)
	})

	t.Run("LoadBeforeParseIsAnError", func(t *testing.T) {
		t.Parallel()
		fs := flag.NewFlagSet("jetsms", flag.ContinueOnError)
		_, err := RegisterFlags(fs).Load(nil)
		require.ErrorContains(t, err, "Parse")
	})

	t.Run("UsageShowsDefaultAndEnv", func(t *testing.T) {
		t.Parallel()
		fs := flag.NewFlagSet("jetsms", flag.ContinueOnError)
		var out bytes.Buffer
		fs.SetOutput(&out)
		RegisterFlags(fs)
		fs.PrintDefaults()
		require.Contains(t, out.String(), "-gateway.url string")
		require.Contains(t, out.String(), `JETSMS_GATEWAY_URL) (default "https://api.modicagroup.com/rest/sms/v2")`)
		require.Contains(t, out.String(), "-config file")
		require.Contains(t, out.String(), ConfigEnv)
	})

	t.Run("OtherFlagsOfTheSetAreLeftAlone", func(t *testing.T) {
		t.Parallel()
		fs := flag.NewFlagSet("jetsms", flag.ContinueOnError)
		verbose := fs.Bool("verbose", false, "")
		f := RegisterFlags(fs)
		require.NoError(t, fs.Parse([]string{"--verbose", "--gateway.url=sandbox"}))
		got, err := f.Load(func(string) (string, bool) { return "", false })
		require.NoError(t, err)
		require.True(t, *verbose)
		require.Equal(t, sandboxDefault(), got)
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "present.pem")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	missing := filepath.Join(dir, "missing.pem")

	// valid is a configuration that passes, against a real gateway.
	valid := func() Config {
		c := Default()
		c.Gateway.Username = "acme"
		c.Gateway.Password = "pw"
		c.Callbacks.Username, c.Callbacks.Password = "gw", "cb"
		return c
	}
	require.NoError(t, valid().Validate())

	for _, tt := range []struct {
		name    string
		change  func(c *Config)
		setting string
		rule    string
	}{
		{"NATSURLScheme", func(c *Config) { c.NATS.URL = "http://nats:4222" }, "nats.url", "is not a NATS URL"},
		{"NATSURLEmptyEntry", func(c *Config) { c.NATS.URL = "nats://a:4222,,nats://b:4222" }, "nats.url", "entry 2 of the list is empty"},
		{"NATSURLBadPort", func(c *Config) { c.NATS.URL = "nats://a:port" }, "nats.url", "is not a NATS URL"},
		{"NATSCredsMissing", func(c *Config) { c.NATS.Creds = missing }, "nats.creds", `file does not exist (got "` + missing + `")`},
		{"NATSCredsDirectory", func(c *Config) { c.NATS.Creds = dir }, "nats.creds", "is a directory"},
		{"TLSCAMissing", func(c *Config) { c.NATS.TLS.CA = missing }, "nats.tls.ca", "file does not exist"},
		{"TLSCertMissing", func(c *Config) { c.NATS.TLS.Cert, c.NATS.TLS.Key = missing, file }, "nats.tls.cert", "file does not exist"},
		{"TLSKeyMissing", func(c *Config) { c.NATS.TLS.Cert, c.NATS.TLS.Key = file, missing }, "nats.tls.key", "file does not exist"},
		{"TLSCertWithoutKey", func(c *Config) { c.NATS.TLS.Cert = file }, "nats.tls.key", "must be set together with nats.tls.cert"},
		{"TLSKeyWithoutCert", func(c *Config) { c.NATS.TLS.Key = file }, "nats.tls.cert", "must be set together with nats.tls.key"},
		{"NATSUserWithToken", func(c *Config) { c.NATS.User, c.NATS.Token = "bob", "t" }, "nats.token", "cannot be combined with nats.user"},
		{"NATSPasswordWithoutUser", func(c *Config) { c.NATS.Password = "p" }, "nats.password", "needs nats.user"},
		{"StoreDirEmpty", func(c *Config) { c.NATS.Embedded.StoreDir = "" }, "nats.embedded.store_dir", "must not be empty"},
		{"EmbeddedListenNoPort", func(c *Config) { c.NATS.Embedded.Listen = "localhost" }, "nats.embedded.listen", "must be host:port"},
		{"EmbeddedListenBigPort", func(c *Config) { c.NATS.Embedded.Listen = ":70000" }, "nats.embedded.listen", "port number from 0 to 65535"},
		{"SyncZero", func(c *Config) { c.NATS.Embedded.Sync = Sync{} }, "nats.embedded.sync", `must be "always" or a positive duration`},
		{"PrefixEmpty", func(c *Config) { c.Streams.Prefix = "" }, "streams.prefix", "must not be empty"},
		{"PrefixBadToken", func(c *Config) { c.Streams.Prefix = "acme..sms" }, "streams.prefix", "empty token"},
		{"PrefixWildcard", func(c *Config) { c.Streams.Prefix = "sms.>" }, "streams.prefix", "may hold only"},
		{"ReplicasZero", func(c *Config) { c.Streams.Replicas = 0 }, "streams.replicas", "must be from 1 to 5"},
		{"ReplicasSix", func(c *Config) { c.Streams.Replicas, c.NATS.URL = 6, "nats://a:4222" }, "streams.replicas", "must be from 1 to 5"},
		{"ReplicasOnEmbedded", func(c *Config) { c.Streams.Replicas = 3 }, "streams.replicas", "must be 1 with the embedded server"},
		{"JobsMaxBytesZero", func(c *Config) { c.Streams.JobsMaxBytes = 0 }, "streams.jobs_max_bytes", "must be greater than 0"},
		{"MaxAgeZero", func(c *Config) { c.Streams.MaxAge = 0 }, "streams.max_age", "must be greater than 0"},
		{"LedgerBucketDot", func(c *Config) { c.Ledger.Bucket = "sms.ledger" }, "ledger.bucket", "may hold only"},
		{"LanesNone", func(c *Config) { c.Lanes = nil }, "lanes", "at least one lane"},
		{"LanesEmptyName", func(c *Config) { c.Lanes = []string{"a", ""} }, "lanes", "empty lane name"},
		{"LanesBadName", func(c *Config) { c.Lanes = []string{"a.b"} }, "lanes", "may hold only"},
		{"LanesDuplicate", func(c *Config) { c.Lanes = []string{"a", "b", "a"} }, "lanes", `lane "a" is listed twice`},
		{"MaxSegmentsZero", func(c *Config) { c.Jobs.MaxSegments = 0 }, "jobs.max_segments", "must be from 1 to 255"},
		{"MaxSegmentsTooMany", func(c *Config) { c.Jobs.MaxSegments = 256 }, "jobs.max_segments", "must be from 1 to 255"},
		{"GatewayURLScheme", func(c *Config) { c.Gateway.URL = "ftp://gw/" }, "gateway.url", `must be "sandbox" or an absolute http(s) URL`},
		{"GatewayURLRelative", func(c *Config) { c.Gateway.URL = "/rest/sms/v2" }, "gateway.url", `must be "sandbox" or an absolute http(s) URL`},
		{"GatewayAPI", func(c *Config) { c.Gateway.API = "v3" }, "gateway.api", "must be one of v2, v1"},
		{"GatewayUsernameMissing", func(c *Config) { c.Gateway.Username = "" }, "gateway.username", `required unless gateway.url is "sandbox"; set gateway.username in the config file, the environment variable JETSMS_GATEWAY_USERNAME or the flag --gateway.username`},
		{"GatewayPasswordMissing", func(c *Config) { c.Gateway.Password = "" }, "gateway.password", `required unless gateway.url is "sandbox"; set the environment variable JETSMS_GATEWAY_PASSWORD`},
		{"GatewayTimeoutZero", func(c *Config) { c.Gateway.Timeout = 0 }, "gateway.timeout", "must be greater than 0"},
		{"RateZero", func(c *Config) { c.Rate.PerSecond = 0 }, "rate.per_second", `must be greater than 0 (got "0")`},
		{"RateNaN", func(c *Config) { c.Rate.PerSecond = math.NaN() }, "rate.per_second", "must be greater than 0"},
		{"BurstZero", func(c *Config) { c.Rate.Burst = 0 }, "rate.burst", "must be at least 1"},
		{"ConcurrencyZero", func(c *Config) { c.Worker.Concurrency = 0 }, "worker.concurrency", "must be from 1 to 10000"},
		{"ConcurrencyTooMany", func(c *Config) { c.Worker.Concurrency = 10001 }, "worker.concurrency", "must be from 1 to 10000"},
		{"MaxAttemptsZero", func(c *Config) { c.Worker.MaxAttempts = 0 }, "worker.max_attempts", "must be at least 1"},
		{"AckWaitShort", func(c *Config) { c.Worker.AckWait = 4 * time.Second }, "worker.ack_wait", `must be at least 5s (got "4s")`},
		{"GracePeriodNegative", func(c *Config) { c.Worker.GracePeriod = -time.Second }, "worker.grace_period", "must not be negative"},
		{"CallbacksListen", func(c *Config) { c.Callbacks.Listen = "8080" }, "callbacks.listen", "must be host:port"},
		{"CallbacksUserOnly", func(c *Config) { c.Callbacks.Password = "" }, "callbacks.password", "must be set together with callbacks.username"},
		{"CallbacksPasswordOnly", func(c *Config) { c.Callbacks.Username = "" }, "callbacks.username", "must be set together with callbacks.password"},
		{"CallbacksNeitherWithoutAllowUnauthenticated", func(c *Config) { c.Callbacks.Username, c.Callbacks.Password = "", "" }, "callbacks.username", "required, with callbacks.password"},
		{"CallbacksAllowFromNotACIDR", func(c *Config) { c.Callbacks.AllowFrom = []string{"10.0.0.0/8", "gateway.example"} }, "callbacks.allow_from", "entry 2"},
		{"AdminListen", func(c *Config) { c.Admin.Listen = "9090" }, "admin.listen", "must be host:port"},
		{"AdminUserOnly", func(c *Config) { c.Admin.Username = "ops" }, "admin.password", "must be set together with admin.username"},
		{"AdminPasswordOnly", func(c *Config) { c.Admin.Password = "p" }, "admin.username", "must be set together with admin.password"},
		{"PlaceholderGatewayPassword", func(c *Config) { c.Gateway.Password = "CHANGE_ME" }, "gateway.password", `must not be a placeholder such as "CHANGE_ME"`},
		{"PlaceholderCallbacksPassword", func(c *Config) { c.Callbacks.Username, c.Callbacks.Password = "gw", "changeme" }, "callbacks.password", "must not be a placeholder"},
		{"PlaceholderAdminPassword", func(c *Config) { c.Admin.Username, c.Admin.Password = "ops", "Change-Me" }, "admin.password", "must not be a placeholder"},
		{"PlaceholderNATSPassword", func(c *Config) { c.NATS.User, c.NATS.Password = "bob", "password" }, "nats.password", "must not be a placeholder"},
		{"PlaceholderNATSToken", func(c *Config) { c.NATS.Token = "replace-me" }, "nats.token", "must not be a placeholder"},
		{"SandboxListen", func(c *Config) { c.Sandbox.Listen = "127.0.0.1:-1" }, "sandbox.listen", "port number from 0 to 65535"},
		{"SandboxLatencyNegative", func(c *Config) { c.Sandbox.Latency = -time.Millisecond }, "sandbox.latency", "must not be negative"},
		{"LogLevel", func(c *Config) { c.Log.Level = "verbose" }, "log.level", "must be one of debug, info, warn, error"},
		{"LogFormat", func(c *Config) { c.Log.Format = "xml" }, "log.format", "must be one of auto, console, json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tt.change(&c)
			err := c.Validate()
			require.Error(t, err)
			require.Equal(t, 1, problemCount(err), err.Error())
			require.True(t, strings.HasPrefix(err.Error(), tt.setting+": "), err.Error())
			require.ErrorContains(t, err, tt.rule)
		})
	}

	t.Run("AllowsWhatTheRulesAllow", func(t *testing.T) {
		t.Parallel()
		c := valid()
		c.NATS.URL = "nats://u:p@a:4222, tls://b:4222,c:4222,wss://d/ws"
		c.NATS.Creds, c.NATS.TLS = file, TLS{CA: file, Cert: file, Key: file}
		c.NATS.User, c.NATS.Password = "bob", "pw"
		c.NATS.Embedded.Listen, c.Sandbox.Listen = ":0", "[::1]:0"
		c.Streams.Replicas = 5
		c.Streams.Prefix, c.Ledger.Bucket = "acme.sms-1", "acme_ledger"
		c.Callbacks.Username, c.Callbacks.Password = "gw", "pw"
		c.Admin.Listen, c.Admin.Username, c.Admin.Password = ":9090", "ops", "changeme-not" // only the placeholder itself is refused
		c.Worker.GracePeriod, c.Worker.AckWait = 0, 5*time.Second
		c.Gateway.URL = "http://127.0.0.1:8090"
		require.NoError(t, c.Validate())
	})
}

// FuzzLoadYAML feeds arbitrary files to the loader. It must never panic; a file it
// accepts gives a configuration that passes Validate, and whose Redacted output
// loads back to the same configuration.
func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte(sandboxDefault().Redacted()))
	f.Add([]byte("gateway:\n  url: sandbox\n"))
	f.Add([]byte("gateway: {url: sandbox}\nlanes: [a, b]\nnats: {embedded: {sync: 100ms}}\nstreams: {max_age: 7d, jobs_max_bytes: 2GiB}\n"))
	f.Add([]byte("gateway:\n  url: sandbox\n  timeout: &t 1s\nworker:\n  grace_period: *t\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("nats: &n {tls: *n}\n"))
	f.Add([]byte("gatway:\n  url: sandbox\n"))
	f.Add([]byte("---\n---\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newLoader()
		l.readYAML("fuzz.yaml", data)
		cfg, err := l.finish()
		if err != nil {
			return
		}
		require.NoError(t, cfg.Validate())

		again := newLoader()
		again.readYAML("redacted.yaml", []byte(cfg.Redacted()))
		reloaded, err := again.finish()
		require.NoError(t, err, cfg.Redacted())
		// Redacted hides secrets and URL passwords: those alone may differ.
		for _, s := range []*secret.Secret{&cfg.NATS.Password, &cfg.NATS.Token, &cfg.Gateway.Password, &cfg.Callbacks.Password} {
			if s.IsSet() {
				*s = secret.Redacted
			}
		}
		cfg.NATS.URL = redactURLs(cfg.NATS.URL)
		cfg.Gateway.URL = redactURLs(cfg.Gateway.URL)
		dropUnknownLanes(&cfg)
		require.Equal(t, cfg, reloaded)
	})
}

// dropUnknownLanes removes from the lane options the lanes that are not
// configured, as Redacted leaves them out.
func dropUnknownLanes(c *Config) {
	for _, name := range []string{"lane.marketing", "lane.ambiguous", "lane.min_share", "lane.max_age", "lane.broadcast"} {
		byName[name].setItems(c, append([]string{}, byName[name].items(c)...))
	}
}

func TestGatewayURL(t *testing.T) {
	t.Parallel()
	creds := func(extra ...string) map[string]string {
		env := map[string]string{"JETSMS_GATEWAY_USERNAME": "app", "JETSMS_GATEWAY_PASSWORD": "pw",
			"JETSMS_CALLBACKS_USERNAME": "gw", "JETSMS_CALLBACKS_PASSWORD": "cbpw"}
		for i := 0; i+1 < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		return env
	}

	t.Run("PlainHTTPOnlyToLoopbackOrWhenAllowed", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, nil, creds("JETSMS_GATEWAY_URL", "http://api.modicagroup.com/rest/sms/v2"))
		require.ErrorContains(t, err, "gateway.url: must be https:// (the gateway redirects plain HTTP to HTTPS)")
		require.ErrorContains(t, err, "gateway.allow_insecure")
		for _, u := range []string{"http://127.0.0.1:8090/rest/sms/v2", "http://localhost/rest/sms/v2", "http://[::1]:80/rest/sms/v2"} {
			_, err = load(t, nil, creds("JETSMS_GATEWAY_URL", u))
			require.NoError(t, err, u)
		}
		_, err = load(t, []string{"--gateway.allow_insecure", "true"}, creds("JETSMS_GATEWAY_URL", "http://gw.internal/rest/sms/v2"))
		require.NoError(t, err)
	})

	t.Run("V1TakesTheV1DefaultURL", func(t *testing.T) {
		t.Parallel()
		cfg, err := load(t, []string{"--gateway.api", "v1"}, creds())
		require.NoError(t, err)
		require.Equal(t, GatewayURLV1Default, cfg.Gateway.URL)
		cfg, err = load(t, nil, creds())
		require.NoError(t, err)
		require.Equal(t, GatewayURLDefault, cfg.Gateway.URL)
	})

	t.Run("RefusesAnAPIAndURLMismatch", func(t *testing.T) {
		t.Parallel()
		_, err := load(t, []string{"--gateway.api", "v1", "--gateway.url", GatewayURLDefault}, creds())
		require.ErrorContains(t, err, "gateway.url: its path /rest/sms/v2 is the REST v2 API's, but gateway.api is v1")
		_, err = load(t, []string{"--gateway.url", "https://api.example/rest/gateway/"}, creds())
		require.ErrorContains(t, err, "gateway.url: its path /rest/gateway is the REST v1 API's, but gateway.api is v2")
		// Another brand's or a proxy's path is not second-guessed.
		_, err = load(t, []string{"--gateway.api", "v1", "--gateway.url", "https://sms.example/api"}, creds())
		require.NoError(t, err)
	})
}

func TestCallbackSecurity(t *testing.T) {
	t.Parallel()

	t.Run("AllowFromTakesCIDRsAndAddresses", func(t *testing.T) {
		t.Parallel()
		c := Callbacks{AllowFrom: []string{"192.0.2.0/24", " 198.51.100.7 ", "2001:db8::/32", "10.1.2.3/8"}}
		got := c.AllowFromPrefixes()
		require.Len(t, got, 4)
		require.Equal(t, "192.0.2.0/24", got[0].String())
		require.Equal(t, "198.51.100.7/32", got[1].String())
		require.Equal(t, "2001:db8::/32", got[2].String())
		require.Equal(t, "10.0.0.0/8", got[3].String(), "masked")
	})

	t.Run("TheSandboxGetsGeneratedCredentials", func(t *testing.T) {
		t.Parallel()
		c := sandboxDefault()
		made, err := c.SandboxCallbackCredentials()
		require.NoError(t, err)
		require.True(t, made)
		require.NotEmpty(t, c.Callbacks.Username)
		require.GreaterOrEqual(t, len(c.Callbacks.Password.Reveal()), 32)
		other := sandboxDefault()
		_, err = other.SandboxCallbackCredentials()
		require.NoError(t, err)
		require.NotEqual(t, c.Callbacks.Password, other.Callbacks.Password, "random each start")

		// Configured credentials, allow_unauthenticated and a real gateway are left alone.
		set := sandboxDefault()
		set.Callbacks.Username, set.Callbacks.Password = "gw", "mine"
		made, err = set.SandboxCallbackCredentials()
		require.NoError(t, err)
		require.False(t, made)
		require.Equal(t, "mine", set.Callbacks.Password.Reveal())
		open := sandboxDefault()
		open.Callbacks.AllowUnauthenticated = true
		made, _ = open.SandboxCallbackCredentials()
		require.False(t, made)
		gateway := Default()
		made, _ = gateway.SandboxCallbackCredentials()
		require.False(t, made)
	})

	t.Run("AllowUnauthenticatedStartsWithoutCredentials", func(t *testing.T) {
		t.Parallel()
		c := Default()
		c.Gateway.Username, c.Gateway.Password = "acme", "pw"
		require.ErrorContains(t, c.Validate(), "callbacks.username: required")
		c.Callbacks.AllowUnauthenticated = true
		require.NoError(t, c.Validate())
	})
}
