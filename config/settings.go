package config

import (
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jetsms/jetsms/internal/secret"
)

// Setting describes one setting, for documentation and --help.
type Setting struct {
	// Name is the setting's YAML path and its flag's name, e.g. "rate.per_second".
	Name string
	// Env is its environment variable, e.g. "JETSMS_RATE_PER_SECOND".
	Env string
	// Default is the default as an environment variable or flag would spell it;
	// empty when the default is empty.
	Default string
	// Help says what the setting does and which values it takes.
	Help string
	// Secret is true for passwords and tokens, which are never printed.
	Secret bool
}

// Settings returns every setting in the order of the YAML file.
func Settings() []Setting {
	d := Default()
	out := make([]Setting, len(settings))
	for i := range settings {
		out[i] = settings[i].Setting
		out[i].Default = settings[i].get(&d)
	}
	return out
}

// settings is the one table of settings: the loader, Validate, Redacted, Settings
// and the flags all read it.
var settings = []entry{
	field("nats.url", "JETSMS_NATS_URL", func(c *Config) *string { return &c.NATS.URL }, urlC,
		"NATS server URL, or a comma-separated list of a cluster's URLs; empty starts the embedded server",
		natsURLs),
	field("nats.creds", "JETSMS_NATS_CREDS", func(c *Config) *string { return &c.NATS.Creds }, stringC,
		"NATS credentials file (JWT and NKey seed)", existingFile),
	field("nats.user", "JETSMS_NATS_USER", func(c *Config) *string { return &c.NATS.User }, stringC,
		"NATS user name"),
	field("nats.password", "JETSMS_NATS_PASSWORD", func(c *Config) *secret.Secret { return &c.NATS.Password }, secretC,
		"NATS password", notPlaceholder),
	field("nats.token", "JETSMS_NATS_TOKEN", func(c *Config) *secret.Secret { return &c.NATS.Token }, secretC,
		"NATS authentication token; not with nats.user", notPlaceholder),
	field("nats.tls.ca", "JETSMS_NATS_TLS_CA", func(c *Config) *string { return &c.NATS.TLS.CA }, stringC,
		"CA bundle file that verifies the NATS server", existingFile),
	field("nats.tls.cert", "JETSMS_NATS_TLS_CERT", func(c *Config) *string { return &c.NATS.TLS.Cert }, stringC,
		"client certificate file for NATS; with nats.tls.key", existingFile),
	field("nats.tls.key", "JETSMS_NATS_TLS_KEY", func(c *Config) *string { return &c.NATS.TLS.Key }, stringC,
		"client key file for NATS; with nats.tls.cert", existingFile),
	field("nats.embedded.store_dir", "JETSMS_NATS_STORE_DIR", func(c *Config) *string { return &c.NATS.Embedded.StoreDir }, stringC,
		"directory where the embedded server stores its streams", notEmpty),
	field("nats.embedded.listen", "JETSMS_NATS_LISTEN", func(c *Config) *string { return &c.NATS.Embedded.Listen }, stringC,
		"host:port the embedded server listens on", hostPort),
	field("nats.embedded.sync", "JETSMS_NATS_SYNC", func(c *Config) *Sync { return &c.NATS.Embedded.Sync }, syncC,
		"when the embedded server's writes reach the disk: always (before each acknowledgement), or a positive interval such as 100ms (faster; a power loss can lose the last interval)",
		positiveSync),
	field("streams.prefix", "JETSMS_STREAMS_PREFIX", func(c *Config) *string { return &c.Streams.Prefix }, stringC,
		"prefix of every subject, stream and bucket name, e.g. acme.sms", validPrefix),
	field("streams.replicas", "JETSMS_STREAMS_REPLICAS", func(c *Config) *int { return &c.Streams.Replicas }, intC,
		"replicas of each stream, 1 to 5; more than 1 needs a NATS cluster", between(1, ReplicasMax)),
	field("streams.jobs_max_bytes", "JETSMS_STREAMS_JOBS_MAX_BYTES", func(c *Config) *int64 { return &c.Streams.JobsMaxBytes }, bytesC,
		"size cap of the jobs stream, in bytes or with a unit (KB, MB, GB, KiB, MiB, GiB); when full, producers' publishes are refused",
		positive[int64]),
	field("streams.max_age", "JETSMS_STREAMS_MAX_AGE", func(c *Config) *time.Duration { return &c.Streams.MaxAge }, durationC,
		"how long status events, inbound messages and dead letters are kept, e.g. 168h or 7d", positive[time.Duration]),
	field("ledger.bucket", "JETSMS_LEDGER_BUCKET", func(c *Config) *string { return &c.Ledger.Bucket }, stringC,
		"job ledger KV bucket; empty means <prefix>_ledger with the prefix's dots as underscores", bucketName),
	field("ledger.retention", "JETSMS_LEDGER_RETENTION", func(c *Config) *time.Duration { return &c.Ledger.Retention }, durationC,
		"how long a job's ledger entry is kept after its last change, e.g. 7d", positive[time.Duration]),
	listField("lanes", "JETSMS_LANES", func(c *Config) *[]string { return &c.Lanes },
		"lane names, highest priority first (comma-separated in the environment and flags)", laneNames),
	laneListField("lane.marketing", "JETSMS_LANE_MARKETING", func(c *Config) *[]string { return &c.Lane.Marketing },
		"lanes whose jobs to an opted-out number end suppressed"),
	laneListField("lane.ambiguous", "JETSMS_LANE_AMBIGUOUS", func(c *Config) *[]string { return &c.Lane.Ambiguous },
		"lane=policy pairs: what a lane does with a job whose last submission's outcome is unknown: resend (flagged duplicate_risk), fail (outcome_unknown) or hold; lanes not named resend",
		lanePairs(ambiguousPolicy)),
	laneListField("lane.min_share", "JETSMS_LANE_MIN_SHARE", func(c *Config) *[]string { return &c.Lane.MinShare },
		"lane=fraction pairs: the share of the rate a lane gets while it has work, whatever higher lanes hold",
		lanePairs(shareFraction)),
	laneListField("lane.max_age", "JETSMS_LANE_MAX_AGE", func(c *Config) *[]string { return &c.Lane.MaxAge },
		"lane=duration pairs: a job older than this when taken ends expired instead of being sent",
		lanePairs(laneMaxAge)),
	field("lane.hold_for", "JETSMS_LANE_HOLD_FOR", func(c *Config) *time.Duration { return &c.Lane.HoldFor }, durationC,
		"how long the hold policy waits for a receipt of a job of unknown outcome", positive[time.Duration]),
	field("lane.hold_then", "JETSMS_LANE_HOLD_THEN", func(c *Config) *string { return &c.Lane.HoldThen }, stringC,
		"what the hold policy does when no receipt came: resend or fail", oneOf(AmbiguousResend, AmbiguousFail)),
	laneListField("lane.broadcast", "JETSMS_LANE_BROADCAST", func(c *Config) *[]string { return &c.Lane.Broadcast },
		"lanes whose jobs with identical content are gathered into one REST v1 broadcast (gateway.api v1)"),
	field("jobs.max_segments", "JETSMS_JOBS_MAX_SEGMENTS", func(c *Config) *int { return &c.Jobs.MaxSegments }, intC,
		"most SMS segments a job's content may take, 1 to 255", between(1, MaxSegmentsMax)),
	field("campaign.price_per_segment", "JETSMS_CAMPAIGN_PRICE_PER_SEGMENT", func(c *Config) *float64 { return &c.Campaign.PricePerSegment }, floatC,
		"price of one SMS segment, for the estimated cost of jetsms campaign send --dry-run; 0 gives no estimate", notNegative[float64]),
	field("gateway.url", "JETSMS_GATEWAY_URL", func(c *Config) *string { return &c.Gateway.URL }, urlC,
		`gateway base URL (https://; default the REST v2 URL, or the REST v1 URL with gateway.api v1), or "sandbox" for the built-in simulator`, gatewayURL),
	field("gateway.api", "JETSMS_GATEWAY_API", func(c *Config) *string { return &c.Gateway.API }, stringC,
		"gateway REST API version: v2 or v1", oneOf(APIv2, APIv1)),
	field("gateway.allow_insecure", "JETSMS_GATEWAY_ALLOW_INSECURE", func(c *Config) *bool { return &c.Gateway.AllowInsecure }, boolC,
		"allow a plain http:// gateway.url to a host that is not loopback (the gateway itself takes HTTPS only)"),
	field("gateway.username", "JETSMS_GATEWAY_USERNAME", func(c *Config) *string { return &c.Gateway.Username }, stringC,
		"gateway application name; required unless gateway.url is sandbox"),
	field("gateway.password", "JETSMS_GATEWAY_PASSWORD", func(c *Config) *secret.Secret { return &c.Gateway.Password }, secretC,
		"gateway password; required unless gateway.url is sandbox", notPlaceholder),
	field("gateway.broadcast_max", "JETSMS_GATEWAY_BROADCAST_MAX", func(c *Config) *int { return &c.Gateway.BroadcastMax }, intC,
		"most destinations in one REST v1 broadcast (lane.broadcast)", between(1, 10000)),
	field("gateway.broadcast_wait", "JETSMS_GATEWAY_BROADCAST_WAIT", func(c *Config) *time.Duration { return &c.Gateway.BroadcastWait }, durationC,
		"longest a job waits for others to share its broadcast", positive[time.Duration]),
	field("gateway.timeout", "JETSMS_GATEWAY_TIMEOUT", func(c *Config) *time.Duration { return &c.Gateway.Timeout }, durationC,
		"time limit of one gateway request", positive[time.Duration]),
	field("rate.per_second", "JETSMS_RATE_PER_SECOND", func(c *Config) *float64 { return &c.Rate.PerSecond }, floatC,
		"submissions per second to the gateway", positive[float64]),
	field("rate.burst", "JETSMS_RATE_BURST", func(c *Config) *int { return &c.Rate.Burst }, intC,
		"submissions that may go at once above the rate", atLeast(1)),
	field("rate.unit", "JETSMS_RATE_UNIT", func(c *Config) *string { return &c.Rate.Unit }, stringC,
		"what the rate counts: messages, or segments (a 3-part SMS takes three)", oneOf(RateUnitMessages, RateUnitSegments)),
	field("rate.shared", "JETSMS_RATE_SHARED", func(c *Config) *bool { return &c.Rate.Shared }, boolC,
		"divide the rate among the worker replicas of this deployment (true), or give each replica all of it (false)"),
	field("rate.destination_max", "JETSMS_RATE_DESTINATION_MAX", func(c *Config) *int { return &c.Rate.DestinationMax }, intC,
		"most messages to one number per rate.destination_window; 0 is no limit", notNegative[int]),
	field("rate.destination_window", "JETSMS_RATE_DESTINATION_WINDOW", func(c *Config) *time.Duration { return &c.Rate.DestinationWindow }, durationC,
		"the window of rate.destination_max", positive[time.Duration]),
	field("worker.concurrency", "JETSMS_WORKER_CONCURRENCY", func(c *Config) *int { return &c.Worker.Concurrency }, intC,
		"most submissions in flight at once, 1 to 10000 (sized between worker.concurrency_min and this from the gateway's latency)", between(1, ConcurrencyMax)),
	field("worker.concurrency_min", "JETSMS_WORKER_CONCURRENCY_MIN", func(c *Config) *int { return &c.Worker.ConcurrencyMin }, intC,
		"fewest submissions in flight the sizing goes down to", between(1, ConcurrencyMax)),
	field("worker.max_attempts", "JETSMS_WORKER_MAX_ATTEMPTS", func(c *Config) *int { return &c.Worker.MaxAttempts }, intC,
		"submissions of one job before it fails", atLeast(1)),
	field("worker.ack_wait", "JETSMS_WORKER_ACK_WAIT", func(c *Config) *time.Duration { return &c.Worker.AckWait }, durationC,
		"how long JetStream waits for a job's outcome before delivering it again; at least 5s", atLeastDuration(AckWaitMin)),
	field("worker.grace_period", "JETSMS_WORKER_GRACE_PERIOD", func(c *Config) *time.Duration { return &c.Worker.GracePeriod }, durationC,
		"how long a graceful stop lets jobs in hand finish", notNegative[time.Duration]),
	field("callbacks.listen", "JETSMS_CALLBACKS_LISTEN", func(c *Config) *string { return &c.Callbacks.Listen }, stringC,
		"host:port of the gateway callback receiver", hostPort),
	field("callbacks.username", "JETSMS_CALLBACKS_USERNAME", func(c *Config) *string { return &c.Callbacks.Username }, stringC,
		"HTTP Basic user the gateway's callbacks must carry; with callbacks.password"),
	field("callbacks.password", "JETSMS_CALLBACKS_PASSWORD", func(c *Config) *secret.Secret { return &c.Callbacks.Password }, secretC,
		"HTTP Basic password the gateway's callbacks must carry; with callbacks.username", notPlaceholder),
	field("callbacks.allow_unauthenticated", "JETSMS_CALLBACKS_ALLOW_UNAUTHENTICATED", func(c *Config) *bool { return &c.Callbacks.AllowUnauthenticated }, boolC,
		"true lets worker and receiver start without callbacks.username and callbacks.password and accept callbacks from anyone (warned at every start); without it they refuse to start"),
	listField("callbacks.allow_from", "JETSMS_CALLBACKS_ALLOW_FROM", func(c *Config) *[]string { return &c.Callbacks.AllowFrom },
		"CIDRs or addresses callbacks may come from (the TCP peer, e.g. the gateway's published ranges); others get 403; empty allows any source",
		cidrs),
	field("callbacks.resolve_within", "JETSMS_CALLBACKS_RESOLVE_WITHIN", func(c *Config) *time.Duration { return &c.Callbacks.ResolveWithin }, durationC,
		"how long a receipt for a message id not yet in the ledger is retried before it is published with what is known", positive[time.Duration]),
	field("callbacks.reconcile_after", "JETSMS_CALLBACKS_RECONCILE_AFTER", func(c *Config) *time.Duration { return &c.Callbacks.ReconcileAfter }, durationC,
		"how long after acceptance a job with no final receipt is looked up at the gateway (then published, or ended expired with no_receipt)", positive[time.Duration]),
	field("admin.listen", "JETSMS_ADMIN_LISTEN", func(c *Config) *string { return &c.Admin.Listen }, stringC,
		"host:port of the admin listener (/metrics, /healthz, /readyz); beyond loopback it needs admin.username and admin.password", hostPort),
	field("admin.username", "JETSMS_ADMIN_USERNAME", func(c *Config) *string { return &c.Admin.Username }, stringC,
		"HTTP Basic user of the admin listener (all but /healthz and /readyz); with admin.password"),
	field("admin.password", "JETSMS_ADMIN_PASSWORD", func(c *Config) *secret.Secret { return &c.Admin.Password }, secretC,
		"HTTP Basic password of the admin listener; with admin.username", notPlaceholder),
	field("admin.allow_unauthenticated", "JETSMS_ADMIN_ALLOW_UNAUTHENTICATED", func(c *Config) *bool { return &c.Admin.AllowUnauthenticated }, boolC,
		"let admin.listen be beyond loopback without admin.username and admin.password (anyone who reaches it reads /metrics)"),
	field("sandbox.listen", "JETSMS_SANDBOX_LISTEN", func(c *Config) *string { return &c.Sandbox.Listen }, stringC,
		"host:port of the gateway simulator; port 0 picks a free port", hostPort),
	field("sandbox.latency", "JETSMS_SANDBOX_LATENCY", func(c *Config) *time.Duration { return &c.Sandbox.Latency }, durationC,
		"delay of each simulator answer", notNegative[time.Duration]),
	field("sandbox.faults", "JETSMS_SANDBOX_FAULTS", func(c *Config) *string { return &c.Sandbox.Faults }, stringC,
		"simulated failures as status=probability pairs, e.g. 500=0.01,503=0.01"),
	field("sandbox.callback_url", "JETSMS_SANDBOX_CALLBACK_URL", func(c *Config) *string { return &c.Sandbox.CallbackURL }, urlC,
		"base URL of the callback receiver the simulator sends receipts and inbound messages to; empty: jetsms run's own receiver"),
	field("sandbox.dlr_delay", "JETSMS_SANDBOX_DLR_DELAY", func(c *Config) *time.Duration { return &c.Sandbox.DLRDelay }, durationC,
		"how long after accepting a message the simulator sends its delivery receipts", notNegative[time.Duration]),
	field("sandbox.dlr_mix", "JETSMS_SANDBOX_DLR_MIX", func(c *Config) *string { return &c.Sandbox.DLRMix }, stringC,
		"final receipt statuses of the simulator as status=probability pairs"),
	field("log.level", "JETSMS_LOG_LEVEL", func(c *Config) *string { return &c.Log.Level }, stringC,
		"debug, info, warn or error", oneOf("debug", "info", "warn", "error")),
	field("log.format", "JETSMS_LOG_FORMAT", func(c *Config) *string { return &c.Log.Format }, stringC,
		"auto (console on a terminal, else json), console or json", oneOf("auto", "console", "json")),
	field("log.redact", "JETSMS_LOG_REDACT", func(c *Config) *bool { return &c.Log.Redact }, boolC,
		"keep destination numbers and message text out of the logs (jobs are named by id)"),
}

// byName finds an entry of the table by its name.
var byName = func() map[string]*entry {
	m := make(map[string]*entry, len(settings))
	for i := range settings {
		m[settings[i].Name] = &settings[i]
	}
	return m
}()

// isGroup reports whether path names a group of settings, such as "nats" or
// "nats.tls".
func isGroup(path string) bool {
	for i := range settings {
		if strings.HasPrefix(settings[i].Name, path+".") {
			return true
		}
	}
	return false
}

// show says how much of a setting's value a message or output may show.
type show int

const (
	showValue   show = iota
	showURL          // the value, with the password of every URL hidden
	showNothing      // a secret: never its value
)

// entry is one row of the settings table.
type entry struct {
	Setting
	show show
	// number settings are written without quotes in YAML output.
	number bool
	// set parses raw and stores it; its error is the rule, never the value.
	set func(c *Config, raw string) error
	// setItems stores a YAML list's items; only lists have it.
	setItems func(c *Config, items []string)
	// items returns a list's items; only lists have it.
	items func(c *Config) []string
	// get returns the value as set would read it (a secret as "***").
	get func(c *Config) string
	// check applies the setting's own rules.
	check func(c *Config) error
}

// codec reads and writes one type of value.
type codec[T any] struct {
	parse  func(string) (T, error)
	format func(T) string
	show   show
	number bool
}

// rule says what is wrong with a value, or returns nil.
type rule[T any] func(T) error

// field builds the entry of a setting stored in the field ptr returns.
func field[T any](name, env string, ptr func(*Config) *T, cd codec[T], help string, rules ...rule[T]) entry {
	return entry{
		Setting: Setting{Name: name, Env: env, Help: help, Secret: cd.show == showNothing},
		show:    cd.show,
		number:  cd.number,
		set: func(c *Config, raw string) error {
			v, err := cd.parse(raw)
			if err != nil {
				return err
			}
			*ptr(c) = v
			return nil
		},
		get: func(c *Config) string { return cd.format(*ptr(c)) },
		check: func(c *Config) error {
			for _, r := range rules {
				if err := r(*ptr(c)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// listField builds the entry of a list setting, which YAML may give as a list and
// the environment and flags give comma-separated.
func listField(name, env string, ptr func(*Config) *[]string, help string, rules ...rule[[]string]) entry {
	e := field(name, env, ptr, listC, help, rules...)
	e.setItems = func(c *Config, items []string) { *ptr(c) = items }
	e.items = func(c *Config) []string { return *ptr(c) }
	return e
}

// laneListField is a listField of lane names or lane=value pairs whose Redacted
// form leaves out lanes that are not configured, so that a file written from
// the defaults with other lanes loads again.
func laneListField(name, env string, ptr func(*Config) *[]string, help string, rules ...rule[[]string]) entry {
	e := listField(name, env, ptr, help, rules...)
	e.items = func(c *Config) []string {
		var out []string
		for _, item := range *ptr(c) {
			lane, _, _ := strings.Cut(item, "=")
			if slices.Contains(c.Lanes, strings.TrimSpace(lane)) {
				out = append(out, item)
			}
		}
		return out
	}
	return e
}

// display is the value as messages and Redacted may show it.
func (e *entry) display(raw string) string {
	switch e.show {
	case showNothing:
		return secret.Secret(raw).String()
	case showURL:
		return redactURLs(raw)
	}
	return raw
}

// yamlNode is the setting's value in c as Redacted writes it.
func (e *entry) yamlNode(c *Config) *yaml.Node {
	if e.items != nil {
		seq := &yaml.Node{Kind: yaml.SequenceNode}
		for _, item := range e.items(c) {
			seq.Content = append(seq.Content, strScalar(item))
		}
		return seq
	}
	v := e.display(e.get(c))
	if e.number {
		// Numbers are written plain, so the file reads "burst: 50", not "50".
		return &yaml.Node{Kind: yaml.ScalarNode, Value: v}
	}
	return strScalar(v)
}

// The codecs. Their parse errors state the rule and never echo the value: the
// caller adds the value where it may be shown.
var (
	stringC = codec[string]{parse: func(s string) (string, error) { return s, nil }, format: func(s string) string { return s }}
	urlC    = codec[string]{parse: stringC.parse, format: stringC.format, show: showURL}
	secretC = codec[secret.Secret]{
		parse:  func(s string) (secret.Secret, error) { return secret.Secret(s), nil },
		format: secret.Secret.String,
		show:   showNothing,
	}
	intC      = codec[int]{parse: parseInt, format: strconv.Itoa, number: true}
	floatC    = codec[float64]{parse: parseFloat, format: func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }, number: true}
	durationC = codec[time.Duration]{parse: parseDuration, format: formatDuration}
	bytesC    = codec[int64]{parse: parseByteSize, format: formatByteSize}
	syncC     = codec[Sync]{parse: parseSync, format: Sync.String}
	boolC     = codec[bool]{parse: parseBool, format: strconv.FormatBool}
	listC     = codec[[]string]{parse: splitList, format: func(l []string) string { return strings.Join(l, ",") }}
)

func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, errors.New("must be a whole number")
	}
	return n, nil
}

func parseFloat(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("must be a number")
	}
	return f, nil
}

var errDuration = errors.New("must be a duration such as 30s, 5m, 2h or 7d")

// parseDuration reads a Go duration, or days followed by an optional Go duration
// ("7d", "1.5d", "1d12h"), which time.ParseDuration does not accept.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	days, rest, hasDays := strings.Cut(s, "d")
	if !hasDays {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errDuration
		}
		return d, nil
	}
	sign := time.Duration(1)
	if after, ok := strings.CutPrefix(days, "-"); ok {
		sign, days = -1, after
	} else {
		days = strings.TrimPrefix(days, "+")
	}
	if !isDecimal(days) || strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+") {
		return 0, errDuration
	}
	n, err := strconv.ParseFloat(days, 64)
	ns := n * float64(24*time.Hour)
	if err != nil || ns >= math.MaxInt64 {
		return 0, errDuration
	}
	total := time.Duration(ns)
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r > math.MaxInt64-total {
			return 0, errDuration
		}
		total += r
	}
	return sign * total, nil
}

// isDecimal reports whether s is digits with at most one decimal point.
func isDecimal(s string) bool {
	digits, points := 0, 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
			points++
		default:
			return false
		}
	}
	return digits > 0 && points <= 1
}

// formatDuration writes d as time.Duration does, without zero minutes and seconds
// ("168h", not "168h0m0s").
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// byteUnits are the units of a byte size, largest first, as formatByteSize tries them.
var byteUnits = []struct {
	name string
	size int64
}{
	{"TiB", 1 << 40}, {"TB", 1e12}, {"GiB", 1 << 30}, {"GB", 1e9},
	{"MiB", 1 << 20}, {"MB", 1e6}, {"KiB", 1 << 10}, {"KB", 1e3}, {"B", 1},
}

var errByteSize = errors.New("must be a size in bytes such as 1073741824, 512MiB or 1GiB")

// parseByteSize reads a whole number of bytes with an optional unit; KB, MB, GB and
// TB are powers of 1000, KiB, MiB, GiB and TiB powers of 1024. Units are not case
// sensitive.
func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	end := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '-' && r != '+' })
	if end < 0 {
		end = len(s)
	}
	n, err := strconv.ParseInt(s[:end], 10, 64)
	if err != nil {
		return 0, errByteSize
	}
	unit := strings.TrimSpace(s[end:])
	if unit == "" {
		return n, nil
	}
	for _, u := range byteUnits {
		if strings.EqualFold(unit, u.name) {
			if n > math.MaxInt64/u.size || n < math.MinInt64/u.size {
				return 0, errByteSize
			}
			return n * u.size, nil
		}
	}
	return 0, errByteSize
}

// formatByteSize writes n with the largest unit that divides it.
func formatByteSize(n int64) string {
	for _, u := range byteUnits {
		if n != 0 && u.size > 1 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return false, errors.New("must be true or false")
	}
	return b, nil
}

func parseSync(s string) (Sync, error) {
	s = strings.TrimSpace(s)
	if s == "always" {
		return Sync{Always: true}, nil
	}
	d, err := parseDuration(s)
	if err != nil {
		return Sync{}, errors.New(`must be "always" or a duration such as 100ms`)
	}
	return Sync{Interval: d}, nil
}

// splitList reads a comma-separated list; spaces around items are dropped, and an
// empty string is an empty list.
func splitList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return []string{}, nil
	}
	items := strings.Split(s, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	return items, nil
}
