// Package config loads jetsms's settings from a YAML file, JETSMS_* environment variables and flags, and checks every one.
package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/admin"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/ledger"
	resolver "github.com/jetsms/jetsms/internal/resolve"
	"github.com/jetsms/jetsms/internal/secret"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/worker"
)

// Defaults of the settings, as docs/contract.md ("Configuration") gives them. A
// default that a package applies itself is that package's constant, read from
// there; the others belong to the deployment and are defined here. A setting whose
// default is empty or zero has no constant. The lanes' default is returned by
// LanesDefault, and nats.embedded.sync defaults to Sync{Always: true}.
const (
	StoreDirDefault     = "./data"
	NATSListenDefault   = "127.0.0.1:4222"
	PrefixDefault       = subjects.PrefixDefault
	ReplicasDefault     = 1
	JobsMaxBytesDefault = broker.JobsMaxBytesDefault
	MaxAgeDefault       = broker.MaxAgeDefault
	MaxSegmentsDefault  = job.MaxSegmentsDefault
	GatewayURLDefault   = "https://api.modicagroup.com/rest/sms/v2"
	// GatewayURLV1Default is gateway.url's default when gateway.api is v1.
	GatewayURLV1Default      = "https://api.modicagroup.com/rest/gateway"
	GatewayAPIDefault        = APIv2
	GatewayTimeoutDefault    = dispatcher.TimeoutDefault
	BroadcastMaxDefault      = dispatcher.BatchMaxSizeDefault
	BroadcastWaitDefault     = dispatcher.BatchMaxWaitDefault
	RatePerSecondDefault     = 50.0
	RateBurstDefault         = 50
	ConcurrencyDefault       = worker.ConcurrencyDefault
	ConcurrencyMinDefault    = worker.ConcurrencyMinDefault
	DestinationWindowDefault = time.Hour
	MaxAttemptsDefault       = worker.MaxAttemptsDefault
	AckWaitDefault           = worker.AckWaitDefault
	GracePeriodDefault       = 20 * time.Second
	CallbacksListenDefault   = dlr.ListenDefault
	AdminListenDefault       = admin.ListenDefault
	LedgerRetentionDefault   = ledger.RetentionDefault
	ResolveWithinDefault     = resolver.ResolveWithinDefault
	ReconcileAfterDefault    = resolver.ReconcileAfterDefault
	DLRDelayDefault          = time.Second
	DLRMixDefault            = "received=0.97,rejected=0.01,expired=0.01,failed=0.01"
	SandboxListenDefault     = "127.0.0.1:8090"
	LogLevelDefault          = "info"
	LogFormatDefault         = "auto"
)

// Limits of the numeric settings, as Validate checks them.
const (
	ReplicasMax    = 5
	MaxSegmentsMax = 255
	ConcurrencyMax = 10000
	AckWaitMin     = 5 * time.Second
)

// SandboxURL is the gateway.url that selects the built-in gateway simulator.
const SandboxURL = "sandbox"

// The gateway APIs of gateway.api: Modica REST v2 (UUID ids, 202 Accepted) and
// REST v1 (integer ids, 201 Created).
const (
	APIv2 = "v2"
	APIv1 = "v1"
)

// ConfigEnv names the environment variable read as the YAML file's path when
// --config is not given.
const ConfigEnv = "JETSMS_CONFIG"

// LanesDefault returns the default lanes, highest priority first: priority
// (one-time passwords, alerts), default, and bulk (campaigns).
func LanesDefault() []string { return []string{"priority", "default", "bulk"} }

// Config is every setting of jetsms. Default returns the defaults; RegisterFlags and
// Flags.Load read one from a file, the environment and flags and check it. A Config
// built by hand should be checked with Validate: its zero value is not valid.
type Config struct {
	NATS    NATS    `yaml:"nats"`
	Streams Streams `yaml:"streams"`
	Ledger  Ledger  `yaml:"ledger"`
	// Lanes are the lane names, highest priority first; jobs are published to
	// <prefix>.send.<lane>. Default: LanesDefault.
	Lanes []string `yaml:"lanes"`
	// Lane holds per-lane options; LaneConfigs resolves them.
	Lane      LaneOptions `yaml:"lane"`
	Jobs      Jobs        `yaml:"jobs"`
	Campaign  Campaign    `yaml:"campaign"`
	Gateway   Gateway     `yaml:"gateway"`
	Rate      Rate        `yaml:"rate"`
	Worker    Worker      `yaml:"worker"`
	Callbacks Callbacks   `yaml:"callbacks"`
	Admin     Admin       `yaml:"admin"`
	Sandbox   Sandbox     `yaml:"sandbox"`
	Log       Log         `yaml:"log"`
}

// NATS says which NATS server to use and how to authenticate to it.
type NATS struct {
	// URL is one URL or a comma-separated list of a cluster's URLs. Empty starts
	// the embedded server.
	URL string `yaml:"url"`
	// Creds is a credentials file (JWT and NKey seed).
	Creds string `yaml:"creds"`
	// User and Password are user/password authentication.
	User     string        `yaml:"user"`
	Password secret.Secret `yaml:"password"`
	// Token is token authentication; it cannot be combined with User.
	Token    secret.Secret `yaml:"token"`
	TLS      TLS           `yaml:"tls"`
	Embedded Embedded      `yaml:"embedded"`
}

// TLS names the files of a TLS connection to NATS: a CA bundle to verify the
// server, and a client certificate and key (both or neither).
type TLS struct {
	CA   string `yaml:"ca"`
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Embedded configures the embedded NATS server, used when NATS.URL is empty.
type Embedded struct {
	// StoreDir is where JetStream keeps its files. Default: StoreDirDefault.
	StoreDir string `yaml:"store_dir"`
	// Listen is the host:port other programs connect to. Default: NATSListenDefault.
	Listen string `yaml:"listen"`
	// Sync says when writes reach the disk. Default: Sync{Always: true}.
	Sync Sync `yaml:"sync"`
}

// Sync is nats.embedded.sync: either Always (every write reaches the disk before it
// is acknowledged), or a positive Interval on which writes are flushed; an
// operating-system crash or power loss can then lose the last interval's writes.
type Sync struct {
	Always   bool
	Interval time.Duration
}

// String returns "always" or the interval, as the setting is written.
func (s Sync) String() string {
	if s.Always {
		return "always"
	}
	return formatDuration(s.Interval)
}

// MarshalText writes the setting's form, so that a Sync marshals as "always" or
// "100ms".
func (s Sync) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Streams sets the stream names' prefix and the streams' limits.
type Streams struct {
	// Prefix starts every subject, stream and bucket name. Default: PrefixDefault.
	Prefix string `yaml:"prefix"`
	// Replicas is each stream's replica count, 1 to ReplicasMax; more than 1 needs
	// a NATS cluster. Default: ReplicasDefault.
	Replicas int `yaml:"replicas"`
	// JobsMaxBytes caps the jobs stream. Default: JobsMaxBytesDefault.
	JobsMaxBytes int64 `yaml:"jobs_max_bytes"`
	// MaxAge is how long status events, inbound messages and dead letters are
	// kept. Default: MaxAgeDefault.
	MaxAge time.Duration `yaml:"max_age"`
}

// Ledger configures the job ledger (a KV bucket).
type Ledger struct {
	// Bucket is the bucket's name; empty means <prefix>_ledger.
	Bucket string `yaml:"bucket"`
	// Retention is how long an entry is kept after its last change. Default:
	// LedgerRetentionDefault.
	Retention time.Duration `yaml:"retention"`
}

// Jobs holds the rules jobs must meet.
type Jobs struct {
	// MaxSegments is the most SMS segments a job's content may take, 1 to
	// MaxSegmentsMax. Default: MaxSegmentsDefault.
	MaxSegments int `yaml:"max_segments"`
}

// Campaign holds the settings of `jetsms campaign`.
type Campaign struct {
	// PricePerSegment is the price of one SMS segment, for the estimated cost of a
	// campaign's dry run; zero gives no estimate.
	PricePerSegment float64 `yaml:"price_per_segment"`
}

// Gateway says which SMS gateway to send to and how.
type Gateway struct {
	// URL is SandboxURL or an absolute https URL (http only for a loopback host
	// or with AllowInsecure). Default: GatewayURLDefault, or
	// GatewayURLV1Default when API is APIv1.
	URL string `yaml:"url"`
	// API is APIv2 or APIv1. Default: GatewayAPIDefault.
	API string `yaml:"api"`
	// AllowInsecure lets URL be plain http:// to a host that is not loopback
	// (a TLS-terminating proxy on a private network). The gateway itself
	// redirects plain HTTP to HTTPS.
	AllowInsecure bool `yaml:"allow_insecure"`
	// Username and Password are required unless URL is SandboxURL.
	Username string        `yaml:"username"`
	Password secret.Secret `yaml:"password"`
	// BroadcastMax and BroadcastWait bound the REST v1 broadcasts of
	// lane.broadcast lanes: most destinations in one, longest wait for others.
	BroadcastMax  int           `yaml:"broadcast_max"`
	BroadcastWait time.Duration `yaml:"broadcast_wait"`
	// Timeout bounds one request. Default: GatewayTimeoutDefault.
	Timeout time.Duration `yaml:"timeout"`
}

// Rate paces submissions to the gateway.
type Rate struct {
	// PerSecond is the sustained rate. Default: RatePerSecondDefault.
	PerSecond float64 `yaml:"per_second"`
	// Burst is how many submissions may go at once. Default: RateBurstDefault.
	Burst int `yaml:"burst"`
	// Unit is what the rate counts: RateUnitMessages or RateUnitSegments.
	// Default: RateUnitDefault.
	Unit string `yaml:"unit"`
	// Shared divides the rate among the worker replicas of one deployment (they
	// announce themselves in a KV bucket). Default: true.
	Shared bool `yaml:"shared"`
	// DestinationMax, when above 0, bounds the messages to one number per
	// DestinationWindow; excess jobs are delayed.
	DestinationMax    int           `yaml:"destination_max"`
	DestinationWindow time.Duration `yaml:"destination_window"`
}

// What rate.unit counts.
const (
	RateUnitMessages = "messages"
	RateUnitSegments = "segments"
	RateUnitDefault  = RateUnitMessages
)

// Worker configures the workers that take jobs and send them.
type Worker struct {
	// Concurrency is how many jobs are in hand at once, 1 to ConcurrencyMax.
	// Default: ConcurrencyDefault.
	Concurrency int `yaml:"concurrency"`
	// ConcurrencyMin is the floor of the submissions in flight when they are
	// sized from the gateway's latency and the rate; Concurrency is the ceiling.
	// Default: ConcurrencyMinDefault.
	ConcurrencyMin int `yaml:"concurrency_min"`
	// MaxAttempts bounds the submissions of one job. Default: MaxAttemptsDefault.
	MaxAttempts int `yaml:"max_attempts"`
	// AckWait is how long JetStream waits for a job's outcome before it delivers
	// the job again; at least AckWaitMin. Default: AckWaitDefault.
	AckWait time.Duration `yaml:"ack_wait"`
	// GracePeriod is how long a graceful stop lets jobs in hand finish. Default:
	// GracePeriodDefault.
	GracePeriod time.Duration `yaml:"grace_period"`
}

// Callbacks configures the receiver of the gateway's DLR and MO callbacks.
type Callbacks struct {
	// Listen is host:port. Default: CallbacksListenDefault.
	Listen string `yaml:"listen"`
	// Username and Password, both or neither, are the HTTP Basic credentials the
	// gateway must send.
	Username string        `yaml:"username"`
	Password secret.Secret `yaml:"password"`
	// AllowUnauthenticated lets worker and receiver start without Username and
	// Password, accepting callbacks from anyone (warned at every start). Off by
	// default: they refuse to start without credentials.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// AllowFrom, when not empty, is the CIDRs (or single addresses) callbacks
	// may come from; others get 403. See AllowFromPrefixes.
	AllowFrom []string `yaml:"allow_from"`
	// ResolveWithin is how long a receipt whose message id is not yet in the
	// ledger is retried before it is published with what is known. Default:
	// ResolveWithinDefault.
	ResolveWithin time.Duration `yaml:"resolve_within"`
	// ReconcileAfter is how long after its acceptance a job with no final receipt
	// is looked up at the gateway. Default: ReconcileAfterDefault.
	ReconcileAfter time.Duration `yaml:"reconcile_after"`
}

// Admin configures the operator listener: /metrics, /healthz, /readyz and the
// pages other components add, apart from the public callbacks.
type Admin struct {
	// Listen is host:port. Default: AdminListenDefault (this machine only).
	Listen string `yaml:"listen"`
	// Username and Password, both or neither, are the HTTP Basic credentials
	// every path but /healthz and /readyz requires. Without them the listener is
	// refused beyond loopback unless AllowUnauthenticated is set.
	Username string        `yaml:"username"`
	Password secret.Secret `yaml:"password"`
	// AllowUnauthenticated lets Listen be beyond loopback without credentials.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
}

// AllowFromPrefixes is AllowFrom parsed: a single address is a prefix of its full
// length. Entries that do not parse are left out; Load refuses them.
func (c Callbacks) AllowFromPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.AllowFrom {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func parsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// SandboxCallbackCredentials fills in generated callback credentials for the
// built-in simulator when the gateway is the sandbox and none are configured (and
// unauthenticated callbacks are not allowed): the receiver then requires them and
// the simulator's callback URLs carry them, so callbacks are authenticated even in
// the quick start. It returns whether it generated them.
func (c *Config) SandboxCallbackCredentials() (bool, error) {
	if !c.IsSandbox() || c.Callbacks.Username != "" || c.Callbacks.AllowUnauthenticated {
		return false, nil
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return false, fmt.Errorf("generate sandbox callback credentials: %w", err)
	}
	c.Callbacks.Username = "sandbox"
	c.Callbacks.Password = secret.Secret(hex.EncodeToString(b[:]))
	return true, nil
}

// Sandbox configures the built-in gateway simulator.
type Sandbox struct {
	// Listen is host:port; port 0 picks a free port. Default: SandboxListenDefault.
	Listen string `yaml:"listen"`
	// Latency delays each answer.
	Latency time.Duration `yaml:"latency"`
	// Faults is a list of status=probability pairs such as "500=0.01,503=0.01".
	// It is kept as written: the simulator checks it.
	Faults string `yaml:"faults"`
	// CallbackURL is the base URL of the callback receiver the simulator sends
	// receipts and inbound messages to (…/callbacks/dlr, …/callbacks/mo); it may
	// carry user:password@. Empty: `jetsms run` uses its own receiver, and
	// `jetsms sandbox` sends none.
	CallbackURL string `yaml:"callback_url"`
	// DLRDelay is how long after accepting a message the simulator sends its
	// receipts. Default: DLRDelayDefault.
	DLRDelay time.Duration `yaml:"dlr_delay"`
	// DLRMix is the final receipts' statuses as status=probability pairs. It is
	// kept as written: the simulator checks it. Default: DLRMixDefault.
	DLRMix string `yaml:"dlr_mix"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default: LogLevelDefault.
	Level string `yaml:"level"`
	// Format is auto (console on a terminal, else json), console or json.
	// Default: LogFormatDefault.
	Format string `yaml:"format"`
	// Redact keeps destination numbers and message text out of the logs; jobs
	// are named by id. Default: true.
	Redact bool `yaml:"redact"`
}

// Default returns the default configuration. It is not valid as it is: it has no
// gateway credentials.
func Default() Config {
	return Config{
		NATS: NATS{
			Embedded: Embedded{StoreDir: StoreDirDefault, Listen: NATSListenDefault, Sync: Sync{Always: true}},
		},
		Streams: Streams{
			Prefix:       PrefixDefault,
			Replicas:     ReplicasDefault,
			JobsMaxBytes: JobsMaxBytesDefault,
			MaxAge:       MaxAgeDefault,
		},
		Lanes:  LanesDefault(),
		Lane:   LaneOptionsDefault(),
		Ledger: Ledger{Retention: LedgerRetentionDefault},
		Jobs:   Jobs{MaxSegments: MaxSegmentsDefault},
		Gateway: Gateway{
			URL: GatewayURLDefault, API: GatewayAPIDefault, Timeout: GatewayTimeoutDefault,
			BroadcastMax: BroadcastMaxDefault, BroadcastWait: BroadcastWaitDefault,
		},
		Rate: Rate{
			PerSecond: RatePerSecondDefault, Burst: RateBurstDefault, Unit: RateUnitDefault, Shared: true,
			DestinationWindow: DestinationWindowDefault,
		},
		Worker: Worker{
			Concurrency:    ConcurrencyDefault,
			ConcurrencyMin: ConcurrencyMinDefault,
			MaxAttempts:    MaxAttemptsDefault,
			AckWait:        AckWaitDefault,
			GracePeriod:    GracePeriodDefault,
		},
		Callbacks: Callbacks{Listen: CallbacksListenDefault, AllowFrom: []string{}, ResolveWithin: ResolveWithinDefault, ReconcileAfter: ReconcileAfterDefault},
		Admin:     Admin{Listen: AdminListenDefault},
		Sandbox:   Sandbox{Listen: SandboxListenDefault, DLRDelay: DLRDelayDefault, DLRMix: DLRMixDefault},
		Log:       Log{Level: LogLevelDefault, Format: LogFormatDefault, Redact: true},
	}
}

// IsSandbox reports whether gateway.url selects the built-in gateway simulator. It
// is not named Sandbox because the Sandbox field has that name.
func (c Config) IsSandbox() bool { return c.Gateway.URL == SandboxURL }

// Redacted returns the effective configuration as YAML, in the file's layout, with
// every secret (and the password of a URL) shown as "***". Loading the output gives
// the same configuration except for those secrets.
func (c Config) Redacted() string {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for i := range settings {
		e := &settings[i]
		parent := root
		path := strings.Split(e.Name, ".")
		for _, group := range path[:len(path)-1] {
			parent = childMapping(parent, group)
		}
		parent.Content = append(parent.Content, strScalar(path[len(path)-1]), e.yamlNode(&c))
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		// Every scalar is valid UTF-8 and tagged, so encoding cannot fail; say so
		// in the output rather than print a partial config.
		return "# config cannot be shown: " + err.Error() + "\n"
	}
	if err := enc.Close(); err != nil {
		return "# config cannot be shown: " + err.Error() + "\n"
	}
	return buf.String()
}

// childMapping returns the mapping under key in m, adding it when missing.
func childMapping(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	child := &yaml.Node{Kind: yaml.MappingNode}
	m.Content = append(m.Content, strScalar(key), child)
	return child
}

// strScalar is a string scalar; the encoder quotes it when it would otherwise read
// as another type.
func strScalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.ToValidUTF8(v, "\uFFFD")}
}
