package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/jetsms/jetsms/internal/loopback"
	"github.com/jetsms/jetsms/internal/redact"
	"github.com/jetsms/jetsms/internal/secret"
	"github.com/jetsms/jetsms/internal/subjects"
)

// Validate checks every setting and returns nil, or one error per problem joined
// with errors.Join. Each problem starts with the setting's name and states the rule,
// e.g. `rate.per_second: must be greater than 0 (got "-5")`; a Config from
// Flags.Load also says where the value came from. Secrets never appear in the
// error. Validate reads the file system: nats.creds and the nats.tls files must
// exist.
func (c Config) Validate() error {
	return errors.Join(c.problems(nil, nil, true)...)
}

// origin is where a loaded setting came from: a source such as
// "JETSMS_RATE_PER_SECOND", "--rate.per_second" or "jetsms.yaml line 4", and the
// text read there.
type origin struct {
	source string
	raw    string
}

// problems checks c. from says where settings came from; settings in skip failed to
// parse, and their errors are already reported.
// needGateway is false for commands that never talk to the gateway, which then need
// no gateway credentials.
func (c *Config) problems(from map[string]origin, skip map[string]bool, needGateway bool) []error {
	var errs []error
	for i := range settings {
		e := &settings[i]
		if skip[e.Name] {
			continue
		}
		if err := e.check(c); err != nil {
			o, known := from[e.Name]
			if !known {
				o.raw = e.get(c)
			}
			errs = append(errs, problem(e, o.raw, o.source, err))
		}
	}
	errs = append(errs, c.crossProblems(from, needGateway)...)
	return append(errs, c.laneProblems(from)...)
}

// problem names the setting, the rule, and the value and its source where they are
// known and may be shown.
func problem(e *entry, raw, source string, rule error) error {
	switch {
	case e.show == showNothing && source != "":
		return fmt.Errorf("%s: %w (from %s)", e.Name, rule, source)
	case e.show == showNothing:
		return fmt.Errorf("%s: %w", e.Name, rule)
	case source != "":
		return fmt.Errorf("%s: %w (got %q from %s)", e.Name, rule, e.display(raw), source)
	}
	return fmt.Errorf("%s: %w (got %q)", e.Name, rule, e.display(raw))
}

// crossProblems checks the rules between settings. Their messages show no values:
// the rules are about which settings are set.
func (c *Config) crossProblems(from map[string]origin, needGateway bool) []error {
	var errs []error
	isSet := func(name string) bool { return byName[name].get(c) != "" }
	// sources is " (a from SOURCE, b from SOURCE)" for the named settings whose
	// source is known.
	sources := func(names ...string) string {
		var known []string
		for _, n := range names {
			if o, ok := from[n]; ok {
				known = append(known, n+" from "+o.source)
			}
		}
		if len(known) == 0 {
			return ""
		}
		return " (" + strings.Join(known, ", ") + ")"
	}
	required := func(name string) {
		e := byName[name]
		switch {
		case isSet(name):
		case e.Secret:
			errs = append(errs, fmt.Errorf(`%s: required unless gateway.url is %q; set the environment variable %s (or %s in the config file)`,
				name, SandboxURL, e.Env, name))
		default:
			errs = append(errs, fmt.Errorf(`%s: required unless gateway.url is %q; set %s in the config file, the environment variable %s or the flag --%s`,
				name, SandboxURL, name, e.Env, name))
		}
	}
	bothOrNeither := func(a, b string) {
		switch {
		case isSet(a) && !isSet(b):
			errs = append(errs, fmt.Errorf("%s: must be set together with %s, which is set%s", b, a, sources(a)))
		case isSet(b) && !isSet(a):
			errs = append(errs, fmt.Errorf("%s: must be set together with %s, which is set%s", a, b, sources(b)))
		}
	}

	if needGateway && !c.IsSandbox() {
		required("gateway.username")
		required("gateway.password")
	}
	errs = append(errs, c.gatewayURLProblems(sources)...)
	bothOrNeither("callbacks.username", "callbacks.password")
	if needGateway && !c.IsSandbox() && !isSet("callbacks.username") && !isSet("callbacks.password") && !c.Callbacks.AllowUnauthenticated {
		// The sandbox gets generated credentials at start (SandboxCallbackCredentials).
		errs = append(errs, errors.New("callbacks.username: required, with callbacks.password, so that only the gateway can post receipts and replies "+
			"(anyone else could end jobs, change the opt-out list and fake inbound messages); "+
			"set both, or set callbacks.allow_unauthenticated: true to accept callbacks from anyone"))
	}
	bothOrNeither("nats.tls.cert", "nats.tls.key")
	bothOrNeither("admin.username", "admin.password")
	if isSet("nats.token") && isSet("nats.user") {
		errs = append(errs, fmt.Errorf("nats.token: cannot be combined with nats.user; use nats.user with nats.password, or nats.token alone%s",
			sources("nats.token", "nats.user")))
	}
	if isSet("nats.password") && !isSet("nats.user") {
		errs = append(errs, fmt.Errorf("nats.password: needs nats.user%s", sources("nats.password")))
	}
	if c.NATS.URL == "" && c.Streams.Replicas > 1 {
		errs = append(errs, fmt.Errorf("streams.replicas: must be 1 with the embedded server (nats.url is empty); more replicas need a NATS cluster%s",
			sources("streams.replicas")))
	}
	return errs
}

// The rules of single settings. Each states what a value must be.

func between(lo, hi int) rule[int] {
	return func(n int) error {
		if n < lo || n > hi {
			return fmt.Errorf("must be from %d to %d", lo, hi)
		}
		return nil
	}
}

func atLeast(lo int) rule[int] {
	return func(n int) error {
		if n < lo {
			return fmt.Errorf("must be at least %d", lo)
		}
		return nil
	}
}

func positive[T cmp.Ordered](v T) error {
	var zero T
	// Written as !(v > 0) so that NaN, which a hand-built Config may hold, fails.
	if !(v > zero) { //nolint:staticcheck // QF1001: v <= zero would let NaN through
		return errors.New("must be greater than 0")
	}
	return nil
}

func notNegative[T cmp.Ordered](v T) error {
	var zero T
	if v < zero {
		return errors.New("must not be negative")
	}
	return nil
}

func atLeastDuration(lo time.Duration) rule[time.Duration] {
	return func(d time.Duration) error {
		if d < lo {
			return fmt.Errorf("must be at least %s", formatDuration(lo))
		}
		return nil
	}
}

func positiveSync(s Sync) error {
	if !s.Always && s.Interval <= 0 {
		return errors.New(`must be "always" or a positive duration such as 100ms`)
	}
	return nil
}

func oneOf(allowed ...string) rule[string] {
	return func(s string) error {
		if slices.Contains(allowed, s) {
			return nil
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

func notEmpty(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func hostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("must be host:port, such as 127.0.0.1:4222 or :8080")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("must be host:port with a port number from 0 to 65535")
	}
	return nil
}

// placeholders are passwords that example files carry, compared in lower case
// without punctuation ("CHANGE_ME" is "changeme").
var placeholders = []string{
	"changeme", "changeit", "changethis", "replaceme", "placeholder", "password", "secret",
	"example", "todo", "fixme", "yourpassword", "xxx", "xxxx", "xxxxx", "xxxxxxxx",
}

// notPlaceholder refuses an obvious placeholder password, so that an example file
// or manifest applied unchanged does not run with a password anyone can read.
func notPlaceholder(s secret.Secret) error {
	if !s.IsSet() {
		return nil
	}
	var b strings.Builder
	for _, r := range strings.ToLower(s.Reveal()) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(r)
		}
	}
	if slices.Contains(placeholders, b.String()) {
		return errors.New(`must not be a placeholder such as "CHANGE_ME"; set a real password (e.g. openssl rand -base64 24)`)
	}
	return nil
}

func existingFile(path string) error {
	if path == "" {
		return nil
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("file does not exist")
	case err != nil:
		return fmt.Errorf("file cannot be read: %w", err)
	case info.IsDir():
		return errors.New("is a directory, not a file")
	}
	return nil
}

func validPrefix(p string) error { return subjects.ValidatePrefix(p) }

func bucketName(b string) error {
	if b == "" {
		return nil
	}
	if err := subjects.ValidateToken(b); err != nil {
		return fmt.Errorf("bucket name %w", err)
	}
	return nil
}

func laneNames(lanes []string) error {
	if len(lanes) == 0 {
		return errors.New("must list at least one lane, highest priority first")
	}
	seen := make(map[string]bool, len(lanes))
	for _, l := range lanes {
		if l == "" {
			return errors.New("must not hold an empty lane name")
		}
		if err := subjects.ValidateToken(l); err != nil {
			return fmt.Errorf("lane name %w", err)
		}
		if l == "_" || l == "_callbacks" {
			// The dead-letter tokens of jobs without a lane and of callbacks.
			return fmt.Errorf("lane name %q is reserved", l)
		}
		if seen[l] {
			return fmt.Errorf("lane %q is listed twice", l)
		}
		seen[l] = true
	}
	return nil
}

// natsURLs checks a NATS URL or comma-separated list. Its messages show each URL
// with its password hidden, and never url.Parse's error, which would show it.
func natsURLs(list string) error {
	if list == "" {
		return nil
	}
	for i, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return fmt.Errorf("entry %d of the list is empty", i+1)
		}
		full := part
		if !strings.Contains(part, "://") {
			full = "nats://" + part // as nats.go reads a URL without a scheme
		}
		u, err := url.Parse(full)
		if err != nil || u.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
			return fmt.Errorf("%q is not a NATS URL such as nats://host:4222 (schemes nats, tls, ws and wss)", redactURLs(part))
		}
	}
	return nil
}

// gatewayURLProblems checks gateway.url against gateway.allow_insecure and
// gateway.api: plain HTTP only to a loopback host or when allowed (the gateway
// redirects it to HTTPS, which would stop every job), and a documented base path
// only with its own API version.
func (c *Config) gatewayURLProblems(sources func(...string) string) []error {
	if c.IsSandbox() {
		return nil
	}
	u, err := url.Parse(c.Gateway.URL)
	if err != nil || u.Host == "" {
		return nil // reported by the rule of gateway.url
	}
	var errs []error
	if u.Scheme == "http" && !c.Gateway.AllowInsecure && !loopback.Host(u.Hostname()) {
		errs = append(errs, fmt.Errorf("gateway.url: must be https:// (the gateway redirects plain HTTP to HTTPS); "+
			"http:// is allowed for a loopback host, or with gateway.allow_insecure: true%s", sources("gateway.url")))
	}
	path := strings.TrimRight(u.Path, "/")
	switch {
	case c.Gateway.API == APIv1 && strings.HasSuffix(path, "/rest/sms/v2"):
		errs = append(errs, fmt.Errorf("gateway.url: its path /rest/sms/v2 is the REST v2 API's, but gateway.api is v1; "+
			"use the REST v1 base URL (e.g. %s) or gateway.api: v2%s", GatewayURLV1Default, sources("gateway.url", "gateway.api")))
	case c.Gateway.API == APIv2 && strings.HasSuffix(path, "/rest/gateway"):
		errs = append(errs, fmt.Errorf("gateway.url: its path /rest/gateway is the REST v1 API's, but gateway.api is v2; "+
			"use the REST v2 base URL (e.g. %s) or gateway.api: v1%s", GatewayURLDefault, sources("gateway.url", "gateway.api")))
	}
	return errs
}

// cidrs checks callbacks.allow_from: each entry a CIDR (192.0.2.0/24,
// 2001:db8::/32) or a single address.
func cidrs(list []string) error {
	for i, s := range list {
		if _, err := parsePrefix(s); err != nil {
			return fmt.Errorf("entry %d, %s, is not a CIDR such as 192.0.2.0/24 or an IP address", i+1, redact.Quote(s))
		}
	}
	return nil
}

func gatewayURL(s string) error {
	if s == SandboxURL {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || !slices.Contains([]string{"http", "https"}, u.Scheme) {
		return fmt.Errorf("must be %q or an absolute http(s) URL such as %s", SandboxURL, GatewayURLDefault)
	}
	return nil
}

// redactURLs hides the password of every URL in a comma-separated list, or the
// whole user part when it has no password (it may be a token); see redact.URL.
func redactURLs(list string) string { return redact.URL(list) }
