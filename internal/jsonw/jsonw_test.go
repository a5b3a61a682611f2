package jsonw

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// requireSameString checks that AppendString(s) is valid JSON that decodes to what
// encoding/json's encoding of s decodes to.
func requireSameString(t *testing.T, s string) {
	t.Helper()
	ours := AppendString(nil, s)
	require.True(t, json.Valid(ours), "%q encodes to invalid JSON %s", s, ours)
	var got, want string
	require.NoError(t, json.Unmarshal(ours, &got))
	std, err := json.Marshal(s)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(std, &want))
	require.Equal(t, want, got)
	require.True(t, utf8.ValidString(got))
}

func TestAppendString(t *testing.T) {
	t.Parallel()
	t.Run("DecodesAsEncodingJSONWould", func(t *testing.T) {
		t.Parallel()
		for _, s := range []string{"", "plain", `"quoted" \back\`, "tab\tnl\ncr\r\x00\x1f\x7f",
			"<b>&amp;</b>", "Ā 😀 \u2028\u2029", "bad \xff utf8 \xe2\x82", "emoji 👍🏽"} {
			requireSameString(t, s)
		}
	})
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "\x00\n", "Ā😀", "\xff\xe2\x82"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { requireSameString(t, s) })
}

func TestAppendStringMap(t *testing.T) {
	t.Parallel()
	for _, m := range []map[string]string{
		{}, {"a": "1"}, {"z": "last", "a": "first", "m": "mid \"q\"", "\xff": "bad key", "": "empty key"},
	} {
		ours := AppendStringMap(nil, m)
		require.True(t, json.Valid(ours), "invalid JSON %s", ours)
		var got, want map[string]string
		require.NoError(t, json.Unmarshal(ours, &got))
		std, err := json.Marshal(m)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(std, &want))
		require.Equal(t, want, got)
		// The same bytes as encoding/json, keys sorted (none of these holds <, >
		// or &, which encoding/json escapes and AppendString leaves alone).
		require.Equal(t, string(std), string(ours))
	}
}
