package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxSegmentsDefault is the default cap on the segments of one job's content.
const MaxSegmentsDefault = 10

// MaxScheduleAhead is how far ahead a job may be scheduled (the gateway's limit).
const MaxScheduleAhead = 60 * 24 * time.Hour

// Limits of the strings a job passes to the gateway as they are, in bytes of
// UTF-8 (docs/contract.md). The gateway's documents give none; these leave room
// for any short code, sender id or reference a producer uses.
const (
	MaxSourceBytes    = 64
	MaxReferenceBytes = 128
	MaxClassBytes     = 64
	MaxMaskBytes      = 64
)

// MaxMetadataBytes is the largest metadata object, as JSON: the field's value as
// sent, whitespace and escapes included.
const MaxMetadataBytes = 4096

// scheduleGrace is how far in the past scheduled may be and still count as "now":
// the producer's clock and ours disagree a little, and a job scheduled for the
// current second should be sent, not refused.
const scheduleGrace = time.Minute

// Destination limits: E.164 allows at most 15 digits; no country's numbers are
// shorter than 7 digits with the country code.
const (
	destinationMinDigits = 7
	destinationMaxDigits = 15
	destinationExample   = "+64211234567"
	timeExample          = "2026-12-01T09:00:00+13:00"
	idMaxLen             = 128
)

// ErrInvalid is the family of every *InvalidError: errors.Is(err, ErrInvalid)
// reports that a job broke a rule of the wire contract and must not be retried.
var ErrInvalid = errors.New("invalid job")

// FieldError is one broken rule: Field is the JSON field name ("job" for the
// message as a whole), Rule says what is wrong with it.
type FieldError struct {
	Field string
	Rule  string
}

// Error returns "<field>: <rule>".
func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

// InvalidError lists every rule a job breaks. Decode returns it never empty, in a
// fixed order: problems of the message as a whole (field "job") and text that is
// not UTF-8 first, then the rules broken, in the field order of the wire contract.
type InvalidError struct {
	Problems []*FieldError
}

// Error returns the problems joined by "; ".
func (e *InvalidError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Field)
		b.WriteString(": ")
		b.WriteString(p.Rule)
	}
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// err returns a copy of e as an error, or nil when e holds no problem.
func (e *InvalidError) err() error {
	if len(e.Problems) == 0 {
		return nil
	}
	return &InvalidError{Problems: e.Problems}
}

func (e *InvalidError) add(field, rule string) {
	e.Problems = append(e.Problems, &FieldError{Field: field, Rule: rule})
}

func (e *InvalidError) addf(field, format string, args ...any) {
	e.add(field, fmt.Sprintf(format, args...))
}

// Decoder checks jobs against the rules of the wire contract. Zero fields take defaults
// (MaxSegments: MaxSegmentsDefault; Now: time.Now). A Decoder is a value and is safe
// for concurrent use as long as Now is.
type Decoder struct {
	// MaxSegments caps the SMS parts of a job's content; zero or less means
	// MaxSegmentsDefault.
	MaxSegments int
	// Now is the clock scheduled is checked against; nil means time.Now.
	Now func() time.Time
}

// The known fields, in the order of the wire contract (and of reported problems).
const (
	fID = iota
	fDestination
	fContent
	fSource
	fReference
	fClass
	fMask
	fSMSClass
	fScheduled
	fExpires
	fMetadata
	nFields
)

var fieldNames = [nFields]string{
	fID:          "id",
	fDestination: "destination",
	fContent:     "content",
	fSource:      "source",
	fReference:   "reference",
	fClass:       "class",
	fMask:        "mask",
	fSMSClass:    "sms_class",
	fScheduled:   "scheduled",
	fExpires:     "expires",
	fMetadata:    "metadata",
}

func fieldIndex(key []byte) int {
	switch string(key) { // compiled to comparisons: no allocation
	case "id":
		return fID
	case "destination":
		return fDestination
	case "content":
		return fContent
	case "source":
		return fSource
	case "reference":
		return fReference
	case "class":
		return fClass
	case "mask":
		return fMask
	case "sms_class":
		return fSMSClass
	case "scheduled":
		return fScheduled
	case "expires":
		return fExpires
	case "metadata":
		return fMetadata
	}
	return -1
}

// Decode reads one job's JSON. It returns the job as far as it could be read (so the
// caller can still publish a failed event with its id, destination and metadata), and,
// when the job breaks any rule, an *InvalidError naming every field and rule broken.
// It sets Segments and Encoding from Content. It never sets Lane or Campaign.
//
// Field names match exactly (unlike encoding/json, "Destination" is an unknown
// field); when a field appears twice the last one counts, as in encoding/json; a
// JSON null counts as the field being absent. A scheduled time up to one minute in
// the past is accepted as "now" (clock skew between producer and jetsms). An expires
// already past is not a decode error: the worker ends such a job as expired.
//
// When the job is invalid, the returned job holds each field that has the right JSON
// type, with these exceptions: ID is set only when it meets its rule (it goes into
// NATS headers, and the caller then falls back to the Nats-Msg-Id header or a new
// UUID as for an absent id); SMSClass, Scheduled and Expires are set only when they
// could be parsed; Metadata is left nil when it is over MaxMetadataBytes, and holds
// only its string values otherwise. Text that was not valid UTF-8 holds U+FFFD in
// place of each bad byte. Nothing is read from input that is not a JSON object.
func (d Decoder) Decode(data []byte) (Job, error) {
	var j Job
	// Problems collect in a value that stays on the stack; a valid job allocates
	// no error.
	var inv InvalidError

	// Checked before anything is decoded: encoding/json would turn each bad byte
	// into U+FFFD without a word.
	validUTF8 := utf8.Valid(data)

	// One pass checks the JSON syntax and finds the known fields.
	var raw [nFields][]byte
	var off [nFields]int
	start := skipSpace(data, 0)
	it := members{data: data, i: start}
	if start < len(data) && data[start] == '{' {
		for it.next() {
			if f := it.field(); f >= 0 {
				raw[f], off[f] = it.val, it.valOff
			}
		}
	}
	if start == len(data) || data[start] != '{' || it.bad || skipSpace(data, it.i) != len(data) {
		if !validUTF8 {
			inv.addf("job", "not valid UTF-8 (byte offset %d)", invalidUTF8At(data))
		}
		if start < len(data) && data[start] != '{' && json.Valid(data) {
			inv.addf("job", "not a JSON object (found %s at byte offset %d)", jsonKind(data[start]), start)
		} else {
			inv.add("job", "not a JSON object ("+syntaxProblem(data)+")")
		}
		return Job{}, inv.err()
	}

	// Name the fields whose text is not UTF-8, and skip their other rules: their
	// decoded text holds U+FFFD, not what the producer meant.
	var badUTF8 [nFields]bool
	if !validUTF8 {
		if i := invalidUTF8At(data); !insideField(&raw, &off, i) {
			inv.addf("job", "not valid UTF-8 (byte offset %d)", i)
		}
		for f := range nFields {
			if i := invalidUTF8At(raw[f]); i >= 0 {
				inv.addf(fieldNames[f], "not valid UTF-8 (byte offset %d)", off[f]+i)
				badUTF8[f] = true
			}
		}
	}

	// id
	if v, ok := str(&inv, fID, raw[fID], validUTF8); ok && v != "" {
		if !badUTF8[fID] && validID(&inv, v) {
			j.ID = v
		}
	}

	// destination
	if v, ok := str(&inv, fDestination, raw[fDestination], validUTF8); ok {
		j.Destination = v
		if !badUTF8[fDestination] {
			validDestination(&inv, v)
		}
	} else if isAbsent(raw[fDestination]) {
		inv.add("destination", "is required")
	}

	// content
	if v, ok := str(&inv, fContent, raw[fContent], validUTF8); ok {
		j.Content = v
		j.Segments, j.Encoding = Segments(v)
		if !badUTF8[fContent] {
			d.validContent(&inv, v, j.Segments, j.Encoding)
		}
	} else if isAbsent(raw[fContent]) {
		inv.add("content", "is required")
	}

	// Strings passed to the gateway as they are, each bounded: the gateway's
	// documents give no limit, and a receipt's reference is looked up by name.
	for _, f := range []struct {
		field int
		dst   *string
		max   int
	}{
		{fSource, &j.Source, MaxSourceBytes},
		{fReference, &j.Reference, MaxReferenceBytes},
		{fClass, &j.Class, MaxClassBytes},
		{fMask, &j.Mask, MaxMaskBytes},
	} {
		*f.dst, _ = str(&inv, f.field, raw[f.field], validUTF8)
		if len(*f.dst) > f.max {
			inv.addf(fieldNames[f.field], "is %d bytes; at most %d are allowed", len(*f.dst), f.max)
		}
	}

	// sms_class
	if r := raw[fSMSClass]; !isAbsent(r) {
		// Only an integer literal: 1.0, 1e0 and "1" are refused, as encoding/json
		// refuses them for an int.
		if len(r) == 1 && r[0] >= '0' && r[0] <= '3' {
			c := int(r[0] - '0')
			j.SMSClass = &c
		} else {
			inv.add("sms_class", "must be an integer from 0 to 3")
		}
	}

	// scheduled and expires
	if v, ok := str(&inv, fScheduled, raw[fScheduled], validUTF8); ok && !badUTF8[fScheduled] {
		if t, ok := parseTime(&inv, "scheduled", v); ok {
			j.Scheduled = &t
			now := d.now()
			switch {
			case t.Before(now.Add(-scheduleGrace)):
				inv.addf("scheduled", "%s is in the past (now is %s)",
					quoteShort(v), now.UTC().Format(time.RFC3339))
			case t.After(now.Add(MaxScheduleAhead)):
				inv.addf("scheduled", "%s is more than %d days ahead (now is %s)",
					quoteShort(v), int(MaxScheduleAhead/(24*time.Hour)), now.UTC().Format(time.RFC3339))
			}
		}
	}
	if v, ok := str(&inv, fExpires, raw[fExpires], validUTF8); ok && !badUTF8[fExpires] {
		if t, ok := parseTime(&inv, "expires", v); ok {
			j.Expires = &t
			if j.Scheduled != nil && !t.After(*j.Scheduled) {
				inv.addf("expires", "%s is not after scheduled %s",
					quoteShort(v), j.Scheduled.Format(time.RFC3339Nano))
			}
		}
	}

	// metadata
	if r := raw[fMetadata]; !isAbsent(r) {
		if r[0] != '{' {
			inv.add("metadata", "must be an object of string values")
		} else {
			j.Metadata = readMetadata(&inv, r, validUTF8)
		}
	}

	return j, inv.err()
}

func (d Decoder) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d Decoder) maxSegments() int {
	if d.MaxSegments > 0 {
		return d.MaxSegments
	}
	return MaxSegmentsDefault
}

// str reads field f as a string. It reports false, and adds a problem when the value
// is not a string, when the field is absent or null.
func str(inv *InvalidError, f int, r []byte, validUTF8 bool) (string, bool) {
	if isAbsent(r) {
		return "", false
	}
	s, ok := jsonString(r, validUTF8)
	if !ok {
		inv.add(fieldNames[f], "must be a string")
	}
	return s, ok
}

// isAbsent reports whether a raw value stands for an absent field.
func isAbsent(r []byte) bool {
	return len(r) == 0 || r[0] == 'n' // null: the only valid JSON value starting with n
}

// jsonString returns the text of the valid JSON value r when it is a string.
func jsonString(r []byte, validUTF8 bool) (string, bool) {
	if len(r) < 2 || r[0] != '"' {
		return "", false
	}
	body := r[1 : len(r)-1]
	if validUTF8 && bytes.IndexByte(body, '\\') < 0 {
		return string(body), true
	}
	// Escapes or bad bytes: let encoding/json unescape and replace them.
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return "", false
	}
	return s, true
}

func validID(inv *InvalidError, id string) bool {
	if n := utf8.RuneCountInString(id); n > idMaxLen {
		inv.addf("id", "is %d characters; at most %d are allowed", n, idMaxLen)
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '-' {
			continue
		}
		r, _ := utf8.DecodeRuneInString(id[i:])
		inv.addf("id", "%s has %q at byte offset %d; use only A-Z a-z 0-9 . _ : -", quoteShort(id), r, i)
		return false
	}
	return true
}

func validDestination(inv *InvalidError, s string) {
	switch {
	case s == "":
		inv.add("destination", "is required")
	case s[0] == '+':
		digits := s[1:]
		for i := 0; i < len(digits); i++ {
			if c := digits[i]; c < '0' || c > '9' {
				inv.addf("destination", "%s must have digits only after the +, e.g. %s", quoteShort(s), destinationExample)
				return
			}
		}
		switch n := len(digits); {
		case n > 0 && digits[0] == '0':
			inv.addf("destination", "%s starts with 0 after the +: a country code never does; e.g. %s", quoteShort(s), destinationExample)
		case n < destinationMinDigits:
			inv.addf("destination", "%s is too short: %d digits; at least %d are needed", quoteShort(s), n, destinationMinDigits)
		case n > destinationMaxDigits:
			inv.addf("destination", "%s is too long: %d digits; E.164 allows at most %d", quoteShort(s), n, destinationMaxDigits)
		}
	case strings.HasPrefix(s, "00"):
		inv.addf("destination", "%s starts with an international dialling prefix; write + in place of it, e.g. %s", quoteShort(s), destinationExample)
	case s[0] == '0':
		inv.addf("destination", "%s is a local number; use international format, e.g. %s", quoteShort(s), destinationExample)
	default:
		inv.addf("destination", "%s is not in international format: + then the country code and number, e.g. %s", quoteShort(s), destinationExample)
	}
}

func (d Decoder) validContent(inv *InvalidError, content string, n int, enc Encoding) {
	if content == "" {
		inv.add("content", "must not be empty")
		return
	}
	limit := d.maxSegments()
	if n <= limit {
		return
	}
	gsm, ucs := limit*gsm7Part, limit*ucs2Part
	verb := "are"
	if limit == 1 {
		gsm, ucs, verb = gsm7Single, ucs2Single, "is"
	}
	name := "GSM-7"
	if enc == UCS2 {
		name = "UCS-2"
	}
	inv.addf("content", "takes %d segments (%s, %s characters); at most %d %s allowed (%s GSM-7 or %s UCS-2 characters)",
		n, name, thousands(Characters(content, enc)), limit, verb, thousands(gsm), thousands(ucs))
}

// parseTime reads an RFC 3339 time with its zone offset, which it keeps.
func parseTime(inv *InvalidError, field, v string) (time.Time, bool) {
	// time.Parse alone lets through what RFC 3339 does not (a one-digit hour, a
	// comma before the fraction, an offset of +24:00): the shape is checked first,
	// and time.Parse checks the ranges of each part.
	switch dateTime, zoned := rfc3339Shape(v); {
	case dateTime && !zoned:
		inv.addf(field, "%s has no time zone; use RFC 3339 with an offset, e.g. %s", quoteShort(v), timeExample)
		return time.Time{}, false
	case dateTime:
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t, true
		}
	}
	inv.addf(field, "%s is not an RFC 3339 time with a time zone, e.g. %s", quoteShort(v), timeExample)
	return time.Time{}, false
}

// rfc3339Shape reports whether s is shaped as an RFC 3339 date and time
// (2006-01-02T15:04:05, then an optional fraction), and whether a valid zone (Z or
// an offset ±hh:mm) follows. It does not check the ranges of the date and time.
func rfc3339Shape(s string) (dateTime, zoned bool) {
	const shape = "0000-00-00T00:00:00" // 0 stands for a digit
	if len(s) < len(shape) {
		return false, false
	}
	for i := 0; i < len(shape); i++ {
		if shape[i] == '0' && !isDigit(s[i]) || shape[i] != '0' && s[i] != shape[i] {
			return false, false
		}
	}
	i := len(shape)
	if i < len(s) && s[i] == '.' {
		j := skipDigitsString(s, i+1)
		if j == i+1 {
			return false, false
		}
		i = j
	}
	switch z := s[i:]; {
	case z == "":
		return true, false
	case z == "Z":
		return true, true
	case len(z) == 6 && (z[0] == '+' || z[0] == '-') && isDigit(z[1]) && isDigit(z[2]) &&
		z[3] == ':' && isDigit(z[4]) && isDigit(z[5]):
		hh := int(z[1]-'0')*10 + int(z[2]-'0')
		mm := int(z[4]-'0')*10 + int(z[5]-'0')
		return hh <= 23 && mm <= 59, true
	}
	return false, false
}

func skipDigitsString(s string, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

// readMetadata reads the valid JSON object r. It returns its string values, or nil
// when r is over MaxMetadataBytes.
func readMetadata(inv *InvalidError, r []byte, validUTF8 bool) map[string]string {
	if len(r) > MaxMetadataBytes {
		inv.addf("metadata", "is %s bytes as JSON; at most %s are allowed",
			thousands(len(r)), thousands(MaxMetadataBytes))
		return nil
	}
	var m map[string]string
	bad, badKey := 0, ""
	for it := (members{data: r}); it.next(); {
		v, ok := jsonString(it.val, validUTF8)
		k, _ := jsonString(it.key, validUTF8)
		if !ok {
			if bad == 0 {
				badKey = k
			}
			bad++
			continue
		}
		if m == nil {
			m = make(map[string]string, 4)
		}
		m[k] = v
	}
	if bad > 0 {
		more := ""
		if bad > 1 {
			more = fmt.Sprintf(" (and %d more)", bad-1)
		}
		inv.addf("metadata", "values must be strings; %s is not%s", quoteShort(badKey), more)
	}
	return m
}

// quoteShort quotes s for a message, cutting it to a readable length.
func quoteShort(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "…"
}

// thousands formats n with a comma between each group of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	if len(s) <= 3 {
		return neg + s
	}
	var b strings.Builder
	b.WriteString(neg)
	head := len(s) % 3
	if head == 0 {
		head = 3
	}
	b.WriteString(s[:head])
	for i := head; i < len(s); i += 3 {
		b.WriteByte(',')
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// invalidUTF8At returns the offset of the first byte of b that is not valid UTF-8,
// or -1.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// insideField reports whether offset i lies inside one of the raw field values.
func insideField(raw *[nFields][]byte, off *[nFields]int, i int) bool {
	for f := range nFields {
		if raw[f] != nil && i >= off[f] && i < off[f]+len(raw[f]) {
			return true
		}
	}
	return false
}

// syntaxProblem describes why data is not valid JSON, and where.
func syntaxProblem(data []byte) string {
	var v struct{}
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte offset %d", se.Error(), se.Offset)
	}
	if err != nil {
		return err.Error()
	}
	return "invalid JSON"
}

// jsonKind names the JSON value that starts with c.
func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
