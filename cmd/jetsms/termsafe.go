package main

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// escapeControls returns s with every character that could steer a terminal or
// fake a line — C0 controls (tab and line breaks too), DEL, C1 controls, the
// Unicode line and paragraph separators and the bidirectional overrides — written
// as \u followed by four hex digits, and each invalid UTF-8 byte as \xNN. Text
// from outside (a receipt's detail, an MO's source, a bad row of a CSV file) is
// printed through it.
func escapeControls(s string) string {
	return escape(s, false)
}

func escape(s string, keepNewlines bool) string {
	escaped := func(r rune) bool { return unsafeRune(r) && (!keepNewlines || r != '\n') }
	i := strings.IndexFunc(s, escaped)
	if i < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[0])
		case escaped(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[:size])
		}
		s = s[size:]
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r < 0x20 || r >= 0x7f && r < 0xa0 || r == '\u2028' || r == '\u2029' ||
		r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069' || r == '\u200e' || r == '\u200f'
}

// safeWriter escapes what escapeControls escapes, except line breaks, in all that
// is written through it. Each Write must hold whole UTF-8 sequences.
type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(s.w, escape(string(p), true)); err != nil {
		return 0, err
	}
	return len(p), nil
}
