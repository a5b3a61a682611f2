// Package redact makes values safe to log: a URL without its credentials, and a
// value from outside cut to a bounded length. Every log line and error text that
// quotes a value jetsms did not choose goes through Cut or Quote, so no request can
// make a line long; every URL that may carry credentials goes through URL.
package redact

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBytes is the most of a value from outside that Cut keeps.
const MaxBytes = 64

// Cut returns s when it is at most MaxBytes long, else its first MaxBytes (cut at a
// character boundary) followed by "…(N bytes)".
func Cut(s string) string {
	if len(s) <= MaxBytes {
		return s
	}
	cut := MaxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}

// Quote is strconv.Quote of Cut(s): a value quoted in an error names its start and
// length only.
func Quote(s string) string {
	if len(s) <= MaxBytes {
		return strconv.Quote(s)
	}
	c := Cut(s)
	i := strings.LastIndex(c, "…(")
	return strconv.Quote(c[:i]) + c[i:]
}

// URL hides the credentials of every URL in a comma-separated list: a password
// becomes "***", and so does a user part without a password (it may be a token).
// The user-info is found by parsing the text itself (everything up to the last '@'
// after the scheme), not by url.Parse, so a password holding any character — '#',
// '/', '?', '@' — is hidden whole, and a URL that url.Parse refuses is hidden too.
func URL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		trimmed := strings.TrimSpace(p)
		lead := p[:strings.Index(p, trimmed)] // spaces around an element are kept
		parts[i] = lead + one(trimmed) + p[len(lead)+len(trimmed):]
	}
	return strings.Join(parts, ",")
}

func one(raw string) string {
	// The user-info ends at the last '@' before the host; a password may hold
	// '#', '/', '?' or '@', which url.Parse would take for the start of a
	// fragment, path or query, or the host. So the user-info is cut off first.
	scheme, rest, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		rest = raw
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return raw // no user-info: nothing to hide
	}
	user := "***"
	if name, _, hasPass := strings.Cut(rest[:at], ":"); hasPass {
		// A user name with a password is shown; a user part alone may be a token.
		if unescaped, err := url.PathUnescape(name); err == nil {
			user = url.PathEscape(unescaped) + ":***"
		}
	}
	out := user + "@" + rest[at+1:]
	if hasScheme {
		out = scheme + "://" + out
	}
	return out
}
