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
