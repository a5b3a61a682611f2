package events

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/job"
)

// requireLikeEncodingJSON checks that appendEvent and encoding/json make the same
// object of ev.
func requireLikeEncodingJSON(t *testing.T, ev job.Event) {
	t.Helper()
	ours := encodeEvent(&ev)
	require.True(t, json.Valid(ours), "%s", ours)
	std, err := json.Marshal(ev)
	require.NoError(t, err)
	var got, want map[string]any
	require.NoError(t, json.Unmarshal(ours, &got))
	require.NoError(t, json.Unmarshal(std, &want))
	require.Equal(t, want, got)
	var back job.Event
	require.NoError(t, json.Unmarshal(ours, &back))
	require.True(t, back.At.Equal(ev.At))
}

func TestEncodeEvent(t *testing.T) {
	t.Parallel()
	t.Run("MatchesEncodingJSON", func(t *testing.T) {
		t.Parallel()
		full := job.Event{
			JobID: "order-1234-otp", MessageID: "1e41f423-24cf-4fa2-9a8a-888c30653305", Status: job.StatusReceived,
			Final: true, Detail: "+64211234567", Error: "", Destination: "+64211234567", Reference: "order-1234",
			Lane: "priority", Campaign: "", Metadata: map[string]string{"tenant": "acme", "user": "42", "a\"b": "<x>"},
			Attempts: 1, Segments: 1, DuplicateRisk: true, At: time.Date(2026, 11, 22, 9, 0, 1, 123456000, time.UTC),
		}
		requireLikeEncodingJSON(t, full)
		dup := full
		dup.Duplicate, dup.Seq = true, 7
		requireLikeEncodingJSON(t, dup)
		requireLikeEncodingJSON(t, job.Event{At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
		odd := full
		odd.Error = "line\nbreak \xff bad utf8"
		odd.Metadata = nil
		requireLikeEncodingJSON(t, odd)
	})
}

func FuzzEncodeEvent(f *testing.F) {
	f.Add("id", "detail", "meta-key", "meta-value", 3, int64(1_700_000_000_123_456_789))
	f.Add("", "\x00\xff", "", "\u2028", -1, int64(0))
	f.Fuzz(func(t *testing.T, id, detail, key, value string, attempts int, nanos int64) {
		requireLikeEncodingJSON(t, job.Event{
			JobID: id, Detail: detail, Error: detail, Status: job.Status(key), Metadata: map[string]string{key: value},
			Attempts: attempts, Segments: attempts, At: time.Unix(0, nanos).UTC(),
		})
	})
}
