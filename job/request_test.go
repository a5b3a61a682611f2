package job

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckTraceParent(t *testing.T) {
	good := []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more",
	}
	for _, tp := range good {
		require.NoError(t, CheckTraceParent(tp), tp)
	}
	bad := map[string]string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\x1b":  "longer than version 00",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b\n-01":     "lower-case hex",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":      "lower-case hex",
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":      "version ff",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":      "all-zero trace id",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":      "all-zero parent id",
		"00-4bf92f3577b34da6a3ce929d0e0e4736":                          "too short",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x":     "does not start with '-'",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-\x7f": "not visible ASCII",
		strings.Repeat("a", TraceParentMaxLen+1):                       "at most 256",
	}
	for tp, want := range bad {
		err := CheckTraceParent(tp)
		require.Error(t, err, "%q", tp)
		require.Contains(t, err.Error(), want, "%q", tp)
		require.True(t, strings.HasPrefix(err.Error(), "traceparent: "))
	}
}

func TestDecodeTextFieldLimits(t *testing.T) {
	dec := Decoder{Now: func() time.Time { return testNow }}
	_, err := dec.Decode([]byte(`{"destination":"+64211234567","content":"hi","source":"20\u001b[2J21","reference":"` +
		strings.Repeat("r", ReferenceMaxLen+1) + `","class":"mt","mask":"A\u0085"}`))
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), `source: "20\x1b[2J21" has the control character U+001B at byte offset 2`)
	require.Contains(t, err.Error(), "reference: is 129 characters; at most 128 are allowed")
	require.Contains(t, err.Error(), "mask: ")
	require.NotContains(t, err.Error(), "class:")

	j, err := dec.Decode([]byte(`{"destination":"+64211234567","content":"hi","source":"` + strings.Repeat("é", SourceMaxLen) + `"}`))
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("é", SourceMaxLen), j.Source)
}

func TestDigest(t *testing.T) {
	dec := Decoder{Now: func() time.Time { return testNow }}
	a, err := dec.Decode([]byte(`{"id":"x","destination":"+64211234567","content":"hi","metadata":{"a":"b"}}`))
	require.NoError(t, err)
	b, err := dec.Decode([]byte(`{"id":"x","destination":"+64211234567","content":"hi"}`))
	require.NoError(t, err)
	b.Lane, b.Campaign = "bulk", "c"
	require.Equal(t, a.Digest(), b.Digest(), "metadata, lane and campaign do not reach the gateway")
	require.Len(t, a.Digest(), 32)

	for _, other := range []string{
		`{"destination":"+64211234568","content":"hi"}`,
		`{"destination":"+64211234567","content":"hi!"}`,
		`{"destination":"+64211234567","content":"h","source":"i"}`,
		`{"destination":"+64211234567","content":"hi","reference":"r"}`,
		`{"destination":"+64211234567","content":"hi","sms_class":0}`,
		`{"destination":"+64211234567","content":"hi","expires":"2026-11-23T10:00:00Z"}`,
	} {
		c, err := dec.Decode([]byte(other))
		require.NoError(t, err, other)
		require.NotEqual(t, a.Digest(), c.Digest(), other)
	}
}
