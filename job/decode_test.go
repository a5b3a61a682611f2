package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testNow is the fixed clock of every decode test.
var testNow = time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)

// validJob is the example job of docs/contract.md, with every field set.
const validJob = `{
  "id": "order-1234-otp",
  "destination": "+64211234567",
  "content": "Your code is 123456",
  "source": "2021",
  "reference": "order-1234",
  "class": "mt_message",
  "mask": "ACME",
  "sms_class": 0,
  "scheduled": "2026-12-01T09:00:00+13:00",
  "expires": "2026-12-01T10:00:00+13:00",
  "metadata": {"tenant": "acme", "user": "42"}
}`

type decodeBundle struct {
	dec Decoder
}

func setupDecode(t *testing.T) *decodeBundle {
	t.Helper()
	return &decodeBundle{dec: Decoder{Now: func() time.Time { return testNow }}}
}

// obj builds a job object from raw JSON members.
func obj(members ...string) []byte {
	return []byte("{" + strings.Join(members, ",") + "}")
}

const (
	dest    = `"destination":"+64211234567"`
	content = `"content":"Hello"`
)

// at formats a time relative to testNow as RFC 3339 in a +13:00 zone.
func at(d time.Duration) string {
	return testNow.Add(d).In(time.FixedZone("NZDT", 13*3600)).Format(time.RFC3339Nano)
}

// problems returns the problems of err, which must be an *InvalidError.
func problems(t *testing.T, err error) []*FieldError {
	t.Helper()
	require.Error(t, err)
	var inv *InvalidError
	require.True(t, errors.As(err, &inv), "%T is not *InvalidError", err)
	require.NotEmpty(t, inv.Problems)
	return inv.Problems
}

type want struct{ field, rule string } // rule is a substring of the rule

func requireProblems(t *testing.T, err error, wants ...want) {
	t.Helper()
	ps := problems(t, err)
	got := make([]string, len(ps))
	for i, p := range ps {
		got[i] = p.Error()
	}
	require.Len(t, ps, len(wants), "problems: %q", got)
	for i, w := range wants {
		require.Equal(t, w.field, ps[i].Field, "problems: %q", got)
		require.Contains(t, ps[i].Rule, w.rule, "problems: %q", got)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()

	t.Run("ValidJobRoundTripsEveryField", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode([]byte(validJob))
		require.NoError(t, err)

		require.Equal(t, "order-1234-otp", j.ID)
		require.Equal(t, "+64211234567", j.Destination)
		require.Equal(t, "Your code is 123456", j.Content)
		require.Equal(t, "2021", j.Source)
		require.Equal(t, "order-1234", j.Reference)
		require.Equal(t, "mt_message", j.Class)
		require.Equal(t, "ACME", j.Mask)
		require.NotNil(t, j.SMSClass)
		require.Equal(t, 0, *j.SMSClass)
		require.NotNil(t, j.Scheduled)
		require.Equal(t, "2026-12-01T09:00:00+13:00", j.Scheduled.Format(time.RFC3339))
		_, offset := j.Scheduled.Zone()
		require.Equal(t, 13*3600, offset, "the producer's offset is kept")
		require.NotNil(t, j.Expires)
		require.Equal(t, "2026-12-01T10:00:00+13:00", j.Expires.Format(time.RFC3339))
		require.Equal(t, map[string]string{"tenant": "acme", "user": "42"}, j.Metadata)
		require.Equal(t, 1, j.Segments)
		require.Equal(t, GSM7, j.Encoding)
		require.Empty(t, j.Lane)
		require.Empty(t, j.Campaign)
	})

	t.Run("MinimalJobIsValid", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode(obj(dest, content))
		require.NoError(t, err)
		require.Equal(t, Job{Destination: "+64211234567", Content: "Hello", Segments: 1, Encoding: GSM7}, j)
	})

	t.Run("ZeroDecoderTakesDefaults", func(t *testing.T) {
		t.Parallel()
		_, err := Decoder{}.Decode(obj(dest, `"content":"`+strings.Repeat("a", 1530)+`"`))
		require.NoError(t, err)
		_, err = Decoder{}.Decode(obj(dest, `"content":"`+strings.Repeat("a", 1531)+`"`))
		requireProblems(t, err, want{"content", "takes 11 segments"})
		_, err = Decoder{}.Decode(obj(dest, content, `"scheduled":"2000-01-01T00:00:00Z"`))
		requireProblems(t, err, want{"scheduled", "in the past"})
	})

	t.Run("StringsAreUnescaped", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode(obj(dest, `"content":"Line\nTwo \u00e9 \"q\" \ud83d\ude00"`,
			`"metadata":{"k\u0065y":"v\/1"}`))
		require.NoError(t, err)
		require.Equal(t, "Line\nTwo é \"q\" 😀", j.Content)
		require.Equal(t, UCS2, j.Encoding)
		require.Equal(t, map[string]string{"key": "v/1"}, j.Metadata)
	})

	t.Run("UnknownFieldsAreIgnored", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode(obj(`"extra":{"deep":[1,"}",{"a":null}]}`, dest, `"n":-1.5e3`, content, `"t":true`, `"lane":"bulk"`, `"segments":99`))
		require.NoError(t, err)
		require.Equal(t, "+64211234567", j.Destination)
		require.Equal(t, "Hello", j.Content)
		require.Empty(t, j.Lane, "lane comes from the subject, never the body")
		require.Equal(t, 1, j.Segments, "segments come from the content, never the body")
	})

	t.Run("FieldNamesMatchExactly", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		_, err := b.dec.Decode(obj(`"Destination":"+64211234567"`, content))
		requireProblems(t, err, want{"destination", "is required"})
	})

	t.Run("EscapedKeyMatches", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode(obj(`"\u0069d":"x1"`, dest, content))
		require.NoError(t, err)
		require.Equal(t, "x1", j.ID)
	})

	t.Run("LastOfDuplicateFieldsCounts", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode(obj(`"destination":"0211234567"`, dest, content))
		require.NoError(t, err)
		require.Equal(t, "+64211234567", j.Destination)
	})

	t.Run("NullIsAbsent", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode(obj(dest, content, `"id":null`, `"source":null`, `"sms_class":null`,
			`"scheduled":null`, `"expires":null`, `"metadata":null`))
		require.NoError(t, err)
		require.Equal(t, Job{Destination: "+64211234567", Content: "Hello", Segments: 1, Encoding: GSM7}, j)
	})

	t.Run("LocalNumberIsRefusedWithHint", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		_, err := b.dec.Decode(obj(`"destination":"0211234567"`, content))
		require.EqualError(t, err,
			`destination: "0211234567" is a local number; use international format, e.g. +64211234567`)
		require.ErrorIs(t, err, ErrInvalid)
	})

	t.Run("MissingDestinationIsRequired", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		_, err := b.dec.Decode(obj(content))
		require.EqualError(t, err, "destination: is required")
	})

	t.Run("ContentTooLongSaysByHowMuch", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		_, err := b.dec.Decode(obj(dest, `"content":"`+strings.Repeat("a", 1836)+`"`))
		require.EqualError(t, err, "content: takes 12 segments (GSM-7, 1,836 characters); "+
			"at most 10 are allowed (1,530 GSM-7 or 670 UCS-2 characters)")
	})

	t.Run("MaxSegmentsOfOne", func(t *testing.T) {
		t.Parallel()
		dec := Decoder{MaxSegments: 1, Now: func() time.Time { return testNow }}
		_, err := dec.Decode(obj(dest, `"content":"`+strings.Repeat("a", 160)+`"`))
		require.NoError(t, err)
		_, err = dec.Decode(obj(dest, `"content":"`+strings.Repeat("a", 161)+`"`))
		require.EqualError(t, err, "content: takes 2 segments (GSM-7, 161 characters); "+
			"at most 1 is allowed (160 GSM-7 or 70 UCS-2 characters)")
	})

	t.Run("MultipleProblemsAreReportedTogether", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode(obj(`"id":"job-7"`, `"destination":"0211234567"`, `"content":""`,
			`"sms_class":9`, `"scheduled":"2026-12-01T09:00:00"`, `"metadata":{"tenant":"acme","n":1}`))
		requireProblems(t, err,
			want{"destination", "is a local number"},
			want{"content", "must not be empty"},
			want{"sms_class", "must be an integer from 0 to 3"},
			want{"scheduled", "has no time zone"},
			want{"metadata", `values must be strings; "n" is not`},
		)
		require.Equal(t, `destination: "0211234567" is a local number; use international format, e.g. +64211234567; `+
			`content: must not be empty; sms_class: must be an integer from 0 to 3; `+
			`scheduled: "2026-12-01T09:00:00" has no time zone; use RFC 3339 with an offset, e.g. 2026-12-01T09:00:00+13:00; `+
			`metadata: values must be strings; "n" is not`, err.Error())

		// What a failed event needs is still there.
		require.Equal(t, "job-7", j.ID)
		require.Equal(t, "0211234567", j.Destination)
		require.Equal(t, map[string]string{"tenant": "acme"}, j.Metadata)
	})

	t.Run("InvalidIDIsNotReturned", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode(obj(`"id":"a\nb"`, dest, content))
		requireProblems(t, err, want{"id", `has '\n' at byte offset 1`})
		require.Empty(t, j.ID, "an id that breaks its rule must not reach NATS headers")
		require.Equal(t, "+64211234567", j.Destination)
	})

	t.Run("InvalidUTF8IsRefusedNotReplaced", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		data := obj(`"id":"x1"`, dest, "\"content\":\"caf\xe9 ok\"", `"metadata":{"a":"b"}`)
		j, err := b.dec.Decode(data)
		requireProblems(t, err, want{"content", fmt.Sprintf("not valid UTF-8 (byte offset %d)", bytes.IndexByte(data, 0xe9))})
		require.Equal(t, "x1", j.ID)
		require.Equal(t, "+64211234567", j.Destination)
		require.Equal(t, map[string]string{"a": "b"}, j.Metadata)
		require.Equal(t, "caf\uFFFD ok", j.Content, "returned text is valid UTF-8")
	})

	t.Run("SegmentsAndEncodingAreSetFromContent", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		j, err := b.dec.Decode(obj(dest, `"content":"`+strings.Repeat("я", 71)+`"`))
		require.NoError(t, err)
		require.Equal(t, 2, j.Segments)
		require.Equal(t, UCS2, j.Encoding)
	})

	t.Run("FieldErrorFormat", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, "content: is required", (&FieldError{Field: "content", Rule: "is required"}).Error())
		inv := &InvalidError{Problems: []*FieldError{{"a", "x"}, {"b", "y"}}}
		require.Equal(t, "a: x; b: y", inv.Error())
		require.ErrorIs(t, fmt.Errorf("decode job 7: %w", inv), ErrInvalid)
	})

	t.Run("SyntaxAgreesWithEncodingJSON", func(t *testing.T) {
		t.Parallel()
		b := setupDecode(t)
		nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
		for _, member := range []string{
			`"a":01`, `"a":-`, `"a":-01`, `"a":1.`, `"a":.5`, `"a":1e`, `"a":1e+`, `"a":+1`, `"a":-0.0e+0`, `"a":1E-7`,
			`"a":"\u12"`, `"a":"\u12g4"`, `"a":"\x"`, `"a":"\ud800"`, "\"a\":\"tab\there\"", "\"a\":\"\x7f\"",
			`"a":tru`, `"a":truex`, `"a":nul`, `"a":null `, `"a":false`,
			`"a":[1,]`, `"a":[,1]`, `"a":[1 2]`, `"a":[[],{},"",[{}]]`, `"a":{"b":}`, `"a":{"b":1,}`, `"a":{"b"}`,
			`"a" 1`, `,`, `"a":1,`, `"a":1}`, `"a":1]`, `"a":[}`, `a:1`, `'a':1`, `"a":"b"c`, `"a`,
			`"a":` + nest(9999), `"a":` + nest(10000), `"a":{"b":` + nest(9998) + `}`, `"a":{"b":` + nest(9999) + `}`,
		} {
			data := obj(dest, content, member)
			_, err := b.dec.Decode(data)
			require.Equal(t, json.Valid(data), err == nil, "%.60s: %v", member, err)
		}
	})

	// Every rule, one case each: the field and a substring of the rule expected.
	long := func(s string, n int) string { return strings.Repeat(s, n) }
	cases := []struct {
		name  string
		data  []byte
		wants []want
	}{
		// The message as a whole.
		{"EmptyInputIsNotAnObject", []byte(""), []want{{"job", "not a JSON object (unexpected end of JSON input at byte offset 0)"}}},
		{"MalformedJSONSaysWhere", []byte(`{"destination":"+64211234567",}`), []want{{"job", "not a JSON object (invalid character '}' looking for beginning of object key string at byte offset 31)"}}},
		{"TruncatedJSON", []byte(`{"destination":`), []want{{"job", "not a JSON object (unexpected end of JSON input"}}},
		{"TrailingGarbage", []byte(`{} {}`), []want{{"job", "not a JSON object (invalid character '{' after top-level value"}}},
		{"ArrayIsNotAnObject", []byte(` [1]`), []want{{"job", "not a JSON object (found an array at byte offset 1)"}}},
		{"StringIsNotAnObject", []byte(`"x"`), []want{{"job", "found a string"}}},
		{"NumberIsNotAnObject", []byte(`12`), []want{{"job", "found a number"}}},
		{"NullIsNotAnObject", []byte(`null`), []want{{"job", "found null"}}},
		{"BooleanIsNotAnObject", []byte(`true`), []want{{"job", "found a boolean"}}},
		{"InvalidUTF8InMalformedJSON", []byte("{\"a\":\"\xff\""), []want{{"job", "not valid UTF-8 (byte offset 6)"}, {"job", "not a JSON object"}}},
		{"EmptyObjectLacksRequiredFields", []byte(`{}`), []want{{"destination", "is required"}, {"content", "is required"}}},

		// id
		{"IDWithBadCharacter", obj(`"id":"order 1"`, dest, content), []want{{"id", `"order 1" has ' ' at byte offset 5; use only A-Z a-z 0-9 . _ : -`}}},
		{"IDWithNonASCII", obj(`"id":"ordér"`, dest, content), []want{{"id", `has 'é' at byte offset 3`}}},
		{"IDOf129Characters", obj(`"id":"`+long("a", 129)+`"`, dest, content), []want{{"id", "is 129 characters; at most 128 are allowed"}}},
		{"IDNotAString", obj(`"id":5`, dest, content), []want{{"id", "must be a string"}}},

		// destination
		{"DestinationNull", obj(`"destination":null`, content), []want{{"destination", "is required"}}},
		{"DestinationEmpty", obj(`"destination":""`, content), []want{{"destination", "is required"}}},
		{"DestinationNotAString", obj(`"destination":5`, content), []want{{"destination", "must be a string"}}},
		{"DestinationWithSpaces", obj(`"destination":"+64 21 123 4567"`, content), []want{{"destination", `"+64 21 123 4567" must have digits only after the +`}}},
		{"DestinationWithDashes", obj(`"destination":"+64-21-1234567"`, content), []want{{"destination", "digits only after the +"}}},
		{"DestinationWithLetters", obj(`"destination":"+64CALLME"`, content), []want{{"destination", "digits only after the +"}}},
		{"DestinationWithoutPlus", obj(`"destination":"64211234567"`, content), []want{{"destination", `"64211234567" is not in international format`}}},
		{"DestinationWithDiallingPrefix", obj(`"destination":"0064211234567"`, content), []want{{"destination", "international dialling prefix; write + in place of it"}}},
		{"DestinationCountryCodeZero", obj(`"destination":"+0211234567"`, content), []want{{"destination", "starts with 0 after the +"}}},
		{"DestinationTooShort", obj(`"destination":"+641234"`, content), []want{{"destination", `"+641234" is too short: 6 digits; at least 7`}}},
		{"DestinationPlusAlone", obj(`"destination":"+"`, content), []want{{"destination", "too short: 0 digits"}}},
		{"DestinationOver15Digits", obj(`"destination":"+1234567890123456"`, content), []want{{"destination", "too long: 16 digits; E.164 allows at most 15"}}},
		{"DestinationLongIsCutInMessage", obj(`"destination":"+`+long("1", 5000)+`"`, content), []want{{"destination", `"+111111111111111111111111111111111111111111111111111111111111111"… is too long: 5000 digits`}}},

		// content
		{"ContentMissing", obj(dest), []want{{"content", "is required"}}},
		{"ContentEmpty", obj(dest, `"content":""`), []want{{"content", "must not be empty"}}},
		{"ContentNotAString", obj(dest, `"content":["a"]`), []want{{"content", "must be a string"}}},
		{"ContentUCS2TooLong", obj(dest, `"content":"`+long("я", 671)+`"`), []want{{"content", "takes 11 segments (UCS-2, 671 characters); at most 10 are allowed"}}},

		// strings passed as they are
		{"SourceNotAString", obj(dest, content, `"source":2021`), []want{{"source", "must be a string"}}},
		{"ReferenceNotAString", obj(dest, content, `"reference":true`), []want{{"reference", "must be a string"}}},
		{"ClassNotAString", obj(dest, content, `"class":[]`), []want{{"class", "must be a string"}}},
		{"MaskNotAString", obj(dest, content, `"mask":{}`), []want{{"mask", "must be a string"}}},

		// sms_class
		{"SMSClassString", obj(dest, content, `"sms_class":"x"`), []want{{"sms_class", "must be an integer from 0 to 3"}}},
		{"SMSClassQuotedDigit", obj(dest, content, `"sms_class":"1"`), []want{{"sms_class", "must be an integer from 0 to 3"}}},
		{"SMSClassFraction", obj(dest, content, `"sms_class":1.5`), []want{{"sms_class", "must be an integer from 0 to 3"}}},
		{"SMSClassExponent", obj(dest, content, `"sms_class":1e0`), []want{{"sms_class", "must be an integer from 0 to 3"}}},
		{"SMSClassNegative", obj(dest, content, `"sms_class":-1`), []want{{"sms_class", "must be an integer from 0 to 3"}}},
		{"SMSClassFour", obj(dest, content, `"sms_class":4`), []want{{"sms_class", "must be an integer from 0 to 3"}}},
		{"SMSClassHuge", obj(dest, content, `"sms_class":30000000000000000000000`), []want{{"sms_class", "must be an integer from 0 to 3"}}},
		{"SMSClassBoolean", obj(dest, content, `"sms_class":true`), []want{{"sms_class", "must be an integer from 0 to 3"}}},

		// scheduled
		{"ScheduledWithoutZone", obj(dest, content, `"scheduled":"2026-12-01T09:00:00"`), []want{{"scheduled", `"2026-12-01T09:00:00" has no time zone; use RFC 3339 with an offset`}}},
		{"ScheduledWithoutZoneFraction", obj(dest, content, `"scheduled":"2026-12-01T09:00:00.5"`), []want{{"scheduled", "has no time zone"}}},
		{"ScheduledDateOnly", obj(dest, content, `"scheduled":"2026-12-01"`), []want{{"scheduled", `"2026-12-01" is not an RFC 3339 time with a time zone`}}},
		{"ScheduledNotATime", obj(dest, content, `"scheduled":"tomorrow"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledOneDigitHour", obj(dest, content, `"scheduled":"2026-12-01T9:00:00+13:00"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledCommaFraction", obj(dest, content, `"scheduled":"2026-12-01T09:00:00,5+13:00"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledEmptyFraction", obj(dest, content, `"scheduled":"2026-12-01T09:00:00.+13:00"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledOffsetWithoutColon", obj(dest, content, `"scheduled":"2026-12-01T09:00:00+1300"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledOffsetHoursOnly", obj(dest, content, `"scheduled":"2026-12-01T09:00:00+13"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledOffset24Hours", obj(dest, content, `"scheduled":"2026-12-01T09:00:00+24:00"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledOffset60Minutes", obj(dest, content, `"scheduled":"2026-12-01T09:00:00+13:60"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledSpaceForT", obj(dest, content, `"scheduled":"2026-12-01 09:00:00+13:00"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledMonth13", obj(dest, content, `"scheduled":"2026-13-01T09:00:00+13:00"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledFebruary30", obj(dest, content, `"scheduled":"2027-02-30T09:00:00+13:00"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledHour24", obj(dest, content, `"scheduled":"2026-12-01T24:00:00+13:00"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledTrailingText", obj(dest, content, `"scheduled":"2026-12-01T09:00:00+13:00 NZDT"`), []want{{"scheduled", "is not an RFC 3339 time"}}},
		{"ScheduledNotAString", obj(dest, content, `"scheduled":1764565200`), []want{{"scheduled", "must be a string"}}},
		{"ScheduledInThePast", obj(dest, content, `"scheduled":"`+at(-2*time.Minute)+`"`), []want{{"scheduled", "is in the past (now is 2026-11-22T09:00:00Z)"}}},
		{"ScheduledDaysInThePast", obj(dest, content, `"scheduled":"2026-11-01T09:00:00Z"`), []want{{"scheduled", "is in the past"}}},
		{"Scheduled61DaysAhead", obj(dest, content, `"scheduled":"`+at(61*24*time.Hour)+`"`), []want{{"scheduled", "is more than 60 days ahead"}}},
		{"ScheduledJustOver60DaysAhead", obj(dest, content, `"scheduled":"`+at(MaxScheduleAhead+time.Second)+`"`), []want{{"scheduled", "is more than 60 days ahead"}}},

		// expires
		{"ExpiresBeforeScheduled", obj(dest, content, `"scheduled":"`+at(time.Hour)+`"`, `"expires":"`+at(time.Minute)+`"`), []want{{"expires", "is not after scheduled 2026-11-22T23:00:00+13:00"}}},
		{"ExpiresEqualToScheduled", obj(dest, content, `"scheduled":"`+at(time.Hour)+`"`, `"expires":"`+at(time.Hour)+`"`), []want{{"expires", "is not after scheduled"}}},
		{"ExpiresBeforeScheduledInOtherZone", obj(dest, content, `"scheduled":"2026-12-01T09:00:00+13:00"`, `"expires":"2026-11-30T19:59:59Z"`), []want{{"expires", "is not after scheduled"}}},
		{"ExpiresWithoutZone", obj(dest, content, `"expires":"2026-12-01T09:00:00"`), []want{{"expires", "has no time zone"}}},
		{"ExpiresNotAString", obj(dest, content, `"expires":false`), []want{{"expires", "must be a string"}}},

		// metadata
		{"MetadataNumberValue", obj(dest, content, `"metadata":{"a":1}`), []want{{"metadata", `values must be strings; "a" is not`}}},
		{"MetadataManyBadValues", obj(dest, content, `"metadata":{"ok":"x","a":null,"b":{},"c":[]}`), []want{{"metadata", `"a" is not (and 2 more)`}}},
		{"MetadataNotAnObject", obj(dest, content, `"metadata":"tenant=acme"`), []want{{"metadata", "must be an object of string values"}}},
		{"MetadataArray", obj(dest, content, `"metadata":[{"a":"b"}]`), []want{{"metadata", "must be an object of string values"}}},
		{"MetadataOver4KiB", obj(dest, content, `"metadata":{"a":"`+long("x", 4090)+`"}`), []want{{"metadata", "is 4,098 bytes as JSON; at most 4,096 are allowed"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupDecode(t)
			_, err := b.dec.Decode(tc.data)
			requireProblems(t, err, tc.wants...)
			require.ErrorIs(t, err, ErrInvalid)
		})
	}

	// Bad bytes are named by field, at their offset in the message.
	badUTF8 := []struct {
		name   string
		data   []byte
		fields []string // one per bad byte (0x80 and up), in order
	}{
		{"InvalidUTF8InUnknownFieldNamesJob", obj(dest, content, "\"note\":\"\xff\""), []string{"job"}},
		{"InvalidUTF8InKeyNamesJob", obj(dest, content, "\"\xc3\":1"), []string{"job"}},
		{"InvalidUTF8InDestination", obj("\"destination\":\"+6421\xff\"", content), []string{"destination"}},
		{"InvalidUTF8InID", obj("\"id\":\"a\xffb\"", dest, content), []string{"id"}},
		{"InvalidUTF8InMetadataValue", obj(dest, content, "\"metadata\":{\"a\":\"\x80\"}"), []string{"metadata"}},
		{"InvalidUTF8InMetadataKey", obj(dest, content, "\"metadata\":{\"\xed\xa0\x80\":\"b\"}"), []string{"metadata"}}, // a UTF-16 surrogate: not UTF-8
		{"InvalidUTF8InTwoFields", obj(dest, "\"content\":\"\xff\"", "\"mask\":\"\xfe\""), []string{"content", "mask"}},
		{"InvalidUTF8InUnknownFieldAndContent", obj("\"x\":\"\xff\"", dest, "\"content\":\"\xfe\""), []string{"job", "content"}},
	}
	for _, tc := range badUTF8 {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupDecode(t)
			_, err := b.dec.Decode(tc.data)
			var wants []want
			for i, c := range tc.data {
				if c >= 0x80 && (i == 0 || tc.data[i-1] < 0x80) && len(wants) < len(tc.fields) {
					wants = append(wants, want{tc.fields[len(wants)], fmt.Sprintf("not valid UTF-8 (byte offset %d)", i)})
				}
			}
			requireProblems(t, err, wants...)
		})
	}

	// The edges of each rule, on the side that is allowed.
	allowed := []struct {
		name string
		data []byte
	}{
		{"IDEmptyCountsAsAbsent", obj(`"id":""`, dest, content)},
		{"IDOf128Characters", obj(`"id":"`+long("a", 128)+`"`, dest, content)},
		{"IDWithEveryAllowedCharacter", obj(`"id":"AZaz09._:-"`, dest, content)},
		{"Destination7Digits", obj(`"destination":"+6412345"`, content)},
		{"Destination15Digits", obj(`"destination":"+123456789012345"`, content)},
		{"SMSClassZero", obj(dest, content, `"sms_class":0`)},
		{"SMSClassThree", obj(dest, content, `"sms_class":3`)},
		{"ScheduledWithinOneMinuteGrace", obj(dest, content, `"scheduled":"`+at(-30*time.Second)+`"`)},
		{"ScheduledNow", obj(dest, content, `"scheduled":"`+at(0)+`"`)},
		{"ScheduledInUTC", obj(dest, content, `"scheduled":"2026-12-01T09:00:00Z"`)},
		{"ScheduledWithFraction", obj(dest, content, `"scheduled":"2026-12-01T09:00:00.123456789-05:00"`)},
		{"ScheduledWithNegativeZeroOffset", obj(dest, content, `"scheduled":"2026-12-01T09:00:00-00:00"`)},
		{"ScheduledExactly60DaysAhead", obj(dest, content, `"scheduled":"`+at(MaxScheduleAhead)+`"`)},
		{"ExpiresInThePastIsForTheWorker", obj(dest, content, `"expires":"2020-01-01T00:00:00Z"`)},
		{"ExpiresWithoutScheduled", obj(dest, content, `"expires":"`+at(time.Hour)+`"`)},
		{"MetadataEmpty", obj(dest, content, `"metadata":{}`)},
		{"MetadataExactly4KiB", obj(dest, content, `"metadata":{"a":"`+long("x", 4088)+`"}`)},
		{"ContentWithWhitespaceAround", []byte(" \n\t{ \"destination\" : \"+64211234567\" ,\r\n \"content\" : \"hi\" } \n")},
	}
	for _, tc := range allowed {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupDecode(t)
			_, err := b.dec.Decode(tc.data)
			require.NoError(t, err)
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	dec := Decoder{Now: func() time.Time { return testNow }}
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"Minimal", obj(dest, `"content":"Your code is 123456"`)},
		{"EveryField", []byte(validJob)},
		{"Invalid", obj(`"destination":"0211234567"`, `"content":""`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.data)))
			for b.Loop() {
				_, _ = dec.Decode(bc.data)
			}
		})
	}
}
