package job

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

var (
	fuzzDestination = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	fuzzID          = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
)

// FuzzDecode checks that Decode never panics, never accepts input that breaks a
// rule, and agrees with encoding/json on every field it accepts.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		validJob,
		`{"destination":"+64211234567","content":"Hello"}`,
		`{"destination":"0211234567","content":""}`,
		`{"destination":"+64 21","content":"€€[]","sms_class":1.5,"metadata":{"a":1}}`,
		`{"id":"a b","destination":"+64211234567","content":"😀","scheduled":"2026-12-01T09:00:00"}`,
		`{"destination":"+64211234567","content":"x","scheduled":"2026-11-23T09:00:00Z","expires":"2026-11-23T08:00:00Z"}`,
		`{"\u0069d":"x","destination":"+64211234567","content":"a\"b\\c\u00e9\ud83d\ude00","metadata":{"k\n":"v\u2028"}}`,
		`{"destination":"+64211234567","destination":5,"content":null,"x":[{"}":"]"}]}`,
		"{\"destination\":\"+64211234567\",\"content\":\"caf\xe9\"}",
		"{\"destination\":\"+64211234567\",\"content\":\"ok\",\"note\":\"\xff\"}",
		`{"destination":"+64211234567",}`,
		`[1,2]`, `null`, ``, ` `, `"x"`, `{`, `{}`, `{"a":}`,
		`{"destination":"+64211234567","content":"` + strings.Repeat("a", 307) + `"}`,
		`{"destination":"+64211234567","content":"x","metadata":{"a":"` + strings.Repeat("x", 300) + `"}}`,
	} {
		f.Add([]byte(seed))
	}

	// Small limits keep the inputs that reach them small, which the fuzzer can
	// mutate and minimise quickly; TestDecode covers the default limits.
	dec := Decoder{MaxSegments: 2, Now: func() time.Time { return testNow }}
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := dec.Decode(data)

		// Whatever happened, what came back is safe to publish.
		require.True(t, utf8.ValidString(j.ID) && utf8.ValidString(j.Destination) && utf8.ValidString(j.Content))
		for k, v := range j.Metadata {
			require.True(t, utf8.ValidString(k) && utf8.ValidString(v))
		}
		if j.ID != "" {
			require.Regexp(t, fuzzID, j.ID, "an id that breaks its rule is never returned")
		}
		require.Empty(t, j.Lane)
		require.Empty(t, j.Campaign)

		// The scanner accepts exactly what encoding/json accepts.
		syntaxBad := hasProblem(err, "job", "not a JSON object (") && !hasProblem(err, "job", "not a JSON object (found ")
		require.Equal(t, !json.Valid(data), syntaxBad, "json.Valid disagrees: %v", err)

		if err != nil {
			var inv *InvalidError
			require.True(t, errors.As(err, &inv))
			require.ErrorIs(t, err, ErrInvalid)
			require.NotEmpty(t, inv.Problems)
			for _, p := range inv.Problems {
				require.NotEmpty(t, p.Field)
				require.NotEmpty(t, p.Rule)
			}
			return
		}

		// Accepted: every rule holds.
		require.True(t, utf8.Valid(data), "input that is not UTF-8 was accepted")
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(data, &m), "input that is not an object was accepted")

		require.Regexp(t, fuzzDestination, j.Destination)
		require.NotEmpty(t, j.Content)
		n, enc := Segments(j.Content)
		require.Equal(t, n, j.Segments)
		require.Equal(t, enc, j.Encoding)
		require.True(t, j.Segments >= 1 && j.Segments <= dec.MaxSegments, "segments %d", j.Segments)
		if j.SMSClass != nil {
			require.True(t, *j.SMSClass >= 0 && *j.SMSClass <= 3)
		}
		if j.Scheduled != nil {
			require.False(t, j.Scheduled.Before(testNow.Add(-time.Minute)))
			require.False(t, j.Scheduled.After(testNow.Add(MaxScheduleAhead)))
			if j.Expires != nil {
				require.True(t, j.Expires.After(*j.Scheduled))
			}
		}
		if raw := m["metadata"]; raw != nil {
			require.LessOrEqual(t, len(raw), MaxMetadataBytes)
		}

		// And agrees with encoding/json, field by field.
		strField := func(key, got string) {
			var want string
			if raw, ok := m[key]; ok && string(raw) != "null" {
				require.NoError(t, json.Unmarshal(raw, &want), key)
			}
			require.Equal(t, want, got, key)
		}
		strField("id", j.ID)
		strField("destination", j.Destination)
		strField("content", j.Content)
		strField("source", j.Source)
		strField("reference", j.Reference)
		strField("class", j.Class)
		strField("mask", j.Mask)
		if raw, ok := m["sms_class"]; ok && string(raw) != "null" {
			var want int
			require.NoError(t, json.Unmarshal(raw, &want))
			require.NotNil(t, j.SMSClass)
			require.Equal(t, want, *j.SMSClass)
		} else {
			require.Nil(t, j.SMSClass)
		}
		for key, got := range map[string]*time.Time{"scheduled": j.Scheduled, "expires": j.Expires} {
			if raw, ok := m[key]; ok && string(raw) != "null" {
				var want time.Time
				require.NoError(t, json.Unmarshal(raw, &want), key)
				require.NotNil(t, got, key)
				require.True(t, want.Equal(*got), key)
			} else {
				require.Nil(t, got, key)
			}
		}
		if raw, ok := m["metadata"]; ok && string(raw) != "null" {
			var want map[string]string
			require.NoError(t, json.Unmarshal(raw, &want))
			require.Len(t, j.Metadata, len(want))
			for k, v := range want {
				require.Equal(t, v, j.Metadata[k], k)
			}
		} else {
			require.Nil(t, j.Metadata)
		}
	})
}

// hasProblem reports whether err has a problem of field whose rule starts with rule.
func hasProblem(err error, field, rule string) bool {
	var inv *InvalidError
	if !errors.As(err, &inv) {
		return false
	}
	for _, p := range inv.Problems {
		if p.Field == field && strings.HasPrefix(p.Rule, rule) {
			return true
		}
	}
	return false
}

// FuzzSegments checks that Segments never panics and that its count agrees with the
// encoding it picks and the characters the content takes in it.
func FuzzSegments(f *testing.F) {
	for _, seed := range []string{
		"", "a", strings.Repeat("a", 160), strings.Repeat("a", 161),
		strings.Repeat("a", 152) + "€" + strings.Repeat("a", 152),
		strings.Repeat("я", 66) + "😀" + strings.Repeat("я", 66),
		gsmBasic, gsmExtension, "a\xffb", "`", "\t\f",
	} {
		f.Add(seed)
	}
	gsmSet := map[rune]bool{}
	for _, r := range gsmBasic + gsmExtension {
		gsmSet[r] = true
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, enc := Segments(s)
		if s == "" {
			require.Equal(t, 0, n)
			return
		}
		require.GreaterOrEqual(t, n, 1)

		gsm := true
		for _, r := range s {
			if !gsmSet[r] {
				gsm = false
				break
			}
		}
		if gsm {
			require.Equal(t, GSM7, enc)
		} else {
			require.Equal(t, UCS2, enc)
		}

		single, part := gsm7Single, gsm7Part
		if enc == UCS2 {
			single, part = ucs2Single, ucs2Part
		}
		c := Characters(s, enc)
		if c <= single {
			require.Equal(t, 1, n)
			return
		}
		// Each part holds part units, less at most one left empty so that a pair
		// is not split.
		require.GreaterOrEqual(t, n, (c+part-1)/part)
		require.LessOrEqual(t, n, (c+part-2)/(part-1))
	})
}
