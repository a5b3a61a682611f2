package job

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"time"
	"unicode/utf8"
)

// Limits of the strings a job passes to the gateway as they are. The gateway's
// documents give none (see docs/gateway.md); these are generous for what each
// field holds — a sender id or short code, a producer's reference, a message class
// name — and keep a job's request and every event it makes small.
const (
	SourceMaxLen    = 32
	ReferenceMaxLen = 128
	ClassMaxLen     = 32
	MaskMaxLen      = 32
	// TraceParentMaxLen bounds the traceparent header: 55 for version 00, a
	// little more room for the fields a later version may add.
	TraceParentMaxLen = 256
)

// checkText adds a problem when field's value v is longer than max characters or
// holds a control character (C0, DEL or C1): such text would reach the gateway,
// the handset and every event as it is.
func checkText(inv *InvalidError, field, v string, maxLen int) {
	if n := utf8.RuneCountInString(v); n > maxLen {
		inv.addf(field, "is %d characters; at most %d are allowed", n, maxLen)
		return
	}
	for i, r := range v {
		if isControl(r) {
			inv.addf(field, "%s has the control character %U at byte offset %d; control characters are not allowed",
				quoteShort(v), r, i)
			return
		}
	}
}

func isControl(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 }

// CheckTraceParent says what is wrong with a traceparent header value, or returns
// nil. It follows W3C Trace Context: version-traceid-parentid-flags in lower-case
// hex (2-32-16-2 digits), the version not ff, neither id all zeros; a version
// other than 00 may add fields after a further '-'.
func CheckTraceParent(tp string) error {
	bad := func(rule string) error {
		return &FieldError{Field: TraceParentHeader, Rule: strconv.Quote(cut(tp, 64)) + " " + rule}
	}
	const size = 55 // 00-<32>-<16>-<2>
	switch {
	case len(tp) > TraceParentMaxLen:
		return &FieldError{Field: TraceParentHeader, Rule: fmt.Sprintf("is %d bytes; at most %d are allowed", len(tp), TraceParentMaxLen)}
	case len(tp) < size:
		return bad("is too short for version-traceid-parentid-flags (2-32-16-2 hex digits)")
	case tp[2] != '-' || tp[35] != '-' || tp[52] != '-':
		return bad("is not version-traceid-parentid-flags (2-32-16-2 hex digits)")
	case !lowerHex(tp[0:2]) || !lowerHex(tp[3:35]) || !lowerHex(tp[36:52]) || !lowerHex(tp[53:55]):
		return bad("must hold lower-case hex digits only")
	case tp[0:2] == "ff":
		return bad("has the invalid version ff")
	case tp[0:2] == "00" && len(tp) != size:
		return bad("is longer than version 00 allows")
	case len(tp) > size && tp[size] != '-':
		return bad("has text after its flags that does not start with '-'")
	case allZero(tp[3:35]):
		return bad("has an all-zero trace id")
	case allZero(tp[36:52]):
		return bad("has an all-zero parent id")
	}
	for i := size; i < len(tp); i++ {
		if c := tp[i]; c < 0x21 || c > 0x7e {
			return bad("holds a character that is not visible ASCII")
		}
	}
	return nil
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// cut shortens s to at most n bytes, on a rune boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Digest sums what the gateway would be asked to send for j: destination,
// content, source, reference, class, mask, sms_class, scheduled and expires (not
// metadata, lane or campaign, which never reach the gateway). Two jobs with the
// same digest make the same request. It is 32 hex digits (128 bits of SHA-256).
func (j *Job) Digest() string {
	h := sha256.New()
	for _, s := range [...]string{j.Destination, j.Content, j.Source, j.Reference, j.Class, j.Mask} {
		writeField(h, []byte(s))
	}
	smsClass := "-"
	if j.SMSClass != nil {
		smsClass = strconv.Itoa(*j.SMSClass)
	}
	writeField(h, []byte(smsClass))
	writeField(h, timeField(j.Scheduled))
	writeField(h, timeField(j.Expires))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// writeField writes b with its length first, so that fields cannot run into
// each other.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

func timeField(t *time.Time) []byte {
	if t == nil {
		return []byte("-")
	}
	return []byte(t.UTC().Format(time.RFC3339Nano))
}
