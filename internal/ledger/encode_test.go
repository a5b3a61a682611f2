package ledger

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/job"
)

// requireSameJSON checks that e.encode() reads back as the entry encoding/json
// makes of e reads back.
func requireSameJSON(t *testing.T, e *Entry) {
	t.Helper()
	want, err := json.Marshal(e)
	require.NoError(t, err)
	got := e.encode()
	require.True(t, json.Valid(got), "invalid JSON: %s", got)
	var a, b Entry
	require.NoError(t, json.Unmarshal(want, &a))
	require.NoError(t, json.Unmarshal(got, &b))
	require.Equal(t, a, b)
	var am, bm map[string]any
	require.NoError(t, json.Unmarshal(want, &am))
	require.NoError(t, json.Unmarshal(got, &bm))
	require.Equal(t, am, bm, "the same keys, omitted alike")
}

func TestEncode(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 3, 16, 4, 5, 123456789, time.FixedZone("NZDT", 13*3600))

	t.Run("NewEntry", func(t *testing.T) {
		requireSameJSON(t, newEntry("a"))
	})
	t.Run("EveryField", func(t *testing.T) {
		e := FromJob(&job.Job{ID: "order:<1>&", Destination: "+64211234567", Lane: "bulk", Campaign: "spring",
			Reference: "ref \"q\"\n", Metadata: map[string]string{"z": "1", "a": "\u2028", "m": "bad\xffutf8"},
			Segments: 3, TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Scheduled: &at}, at)
		e.AddMessageID("m-1")
		e.AddMessageID("m-2")
		e.Attempts, e.DuplicateRisk, e.Owner, e.Since = 4, true, "w-1", at
		e.Replay, e.Digest, e.Seq = "77", "d1g", 99
		e.Set(StateSubmitting, at, "", "")
		e.Set(job.StatusAccepted, at.Add(time.Second), "queued at the gateway", "")
		e.History[len(e.History)-1].MessageID = "m-2"
		e.Set(job.StatusFailed, at.Add(2*time.Second), "detail\t", "err\x01")
		requireSameJSON(t, e)
	})
	t.Run("NilHistoryAndZeroTimes", func(t *testing.T) {
		requireSameJSON(t, &Entry{JobID: "x"})
	})
	t.Run("EveryFieldByReflection", func(t *testing.T) {
		// Every field of Entry and Change set, whatever fields they have: a field
		// added to either but not to encode fails here.
		var e Entry
		fill(t, reflect.ValueOf(&e).Elem())
		requireSameJSON(t, &e)
	})
	t.Run("EmptyHistory", func(t *testing.T) {
		requireSameJSON(t, &Entry{JobID: "x", History: []Change{}, MessageIDs: []string{}, Metadata: map[string]string{}})
	})
}

// fill sets every field of the struct v to a value that is not its zero value.
func fill(t *testing.T, v reflect.Value) {
	t.Helper()
	for i := range v.NumField() {
		f := v.Field(i)
		name := v.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Date(2026, 12, 3, 17, 0, i, 1000*i, time.UTC)))
		case f.Kind() == reflect.String:
			f.SetString(name + "-value")
		case f.Kind() == reflect.Int:
			f.SetInt(int64(i + 1))
		case f.Kind() == reflect.Uint64:
			f.SetUint(uint64(i + 1))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.Kind() == reflect.Map && f.Type().Key().Kind() == reflect.String && f.Type().Elem().Kind() == reflect.String:
			f.Set(reflect.ValueOf(map[string]string{"b": name, "a": "1"}))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
			f.Set(reflect.ValueOf([]string{name + "-1", name + "-2"}))
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			s := reflect.MakeSlice(f.Type(), 2, 2)
			fill(t, s.Index(0))
			fill(t, s.Index(1))
			f.Set(s)
		default:
			t.Fatalf("fill: field %s of %s has a type (%s) fill does not know: teach it, and encode", name, v.Type(), f.Type())
		}
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("job-1", "+64211234567", "k", "v", "detail", "m-1")
	f.Add("<&>", "\u2028", "\xff", "\"", "\\", "\x00")
	f.Fuzz(func(t *testing.T, id, dest, k, v, detail, msgID string) {
		e := FromJob(&job.Job{ID: id, Destination: dest, Metadata: map[string]string{k: v}}, time.Unix(1, 2))
		e.AddMessageID(msgID)
		e.Set(StateUnknown, time.Unix(3, 4), detail, v)
		requireSameJSON(t, e)
	})
}
