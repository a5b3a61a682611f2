package console

import (
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

func TestClean(t *testing.T) {
	require.Equal(t, `red \x1b[31m, bell \x07, line\x0a, sep \u2028, ok é ✓`, clean("red \x1b[31m, bell \a, line\n, sep \u2028, ok é ✓"))
	require.Equal(t, "•••", listText("+64 21 123 4567"))
	require.Equal(t, "attempt 3 of 5", listText("attempt 3 of 5"))
}

// FuzzClean: whatever comes from NATS, the cleaned text has no rune that does not
// print.
func FuzzClean(f *testing.F) {
	f.Add("plain")
	f.Add("\x1b]0;title\a\r\n\u202e")
	f.Fuzz(func(t *testing.T, s string) {
		out := clean(s)
		if i := strings.IndexFunc(out, func(r rune) bool { return r != ' ' && !unicode.IsPrint(r) }); i >= 0 {
			t.Fatalf("clean(%q) = %q keeps a non-printing rune at %d", s, out, i)
		}
	})
}
