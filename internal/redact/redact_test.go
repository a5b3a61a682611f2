package redact

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for _, pass := range []string{"plain", "p#ss", "p/ss", "p?ss", "p@ss", "p:ss", "%zz", "a b", "#/?@:"} {
		for _, in := range []string{
			"nats://jetsms:" + pass + "@nats.example:4222",
			"tls://jetsms:" + pass + "@10.0.0.1:4222,nats://u:" + pass + "@h2:4222",
			"jetsms:" + pass + "@nats.example:4222",
		} {
			out := URL(in)
			require.NotContains(t, out, pass, "password %q of %q in %q", pass, in, out)
			require.Contains(t, out, "***")
			require.Contains(t, out, "4222", "port kept")
		}
	}
	require.Equal(t, "nats://jetsms:***@h:4222", URL("nats://jetsms:s3cret@h:4222"))
	require.Equal(t, "nats://***@h:4222", URL("nats://tokenvalue@h:4222"))
	require.Equal(t, "nats://h:4222,nats://h2:4222", URL("nats://h:4222,nats://h2:4222"))
}

func TestCut(t *testing.T) {
	t.Parallel()
	require.Equal(t, "short", Cut("short"))
	long := strings.Repeat("9", 4000)
	require.Equal(t, strings.Repeat("9", MaxBytes)+"…(4000 bytes)", Cut(long))
	require.LessOrEqual(t, len(Quote(long)), MaxBytes+32)
	// A cut never splits a character.
	multi := strings.Repeat("é", 100)
	require.True(t, strings.HasPrefix(Cut(multi), strings.Repeat("é", MaxBytes/2)))
}
