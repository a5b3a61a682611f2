// Package secret holds credentials in a type that never prints them.
package secret

import "log/slog"

// Redacted is what a Secret prints in place of its value.
const Redacted = "***"

// Secret is a password or token. Its String, GoString, JSON, text and slog forms
// are all Redacted (or empty when unset), so a secret that reaches a log line, a
// printed config or an error message shows as "***". Reveal gives the value to the
// one place that needs it.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret has a value.
func (s Secret) IsSet() bool { return s != "" }

// String returns Redacted, or "" when the secret is unset.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `secret.Secret("` + s.String() + `")` }

// MarshalText is used by encoding/json, YAML and zap's reflection encoder.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps log/slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }
