package dispatcher

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jetsms/jetsms/job"
)

// scheduleLayout is how scheduled and expires are sent: RFC 3339 in the time's
// own offset (so "+13:00" stays "+13:00"), whole seconds as the gateway's
// documentation shows them. Fractions of a second are dropped.
const scheduleLayout = time.RFC3339

// appendMessage appends the REST v2 POST /messages body for j to b.
//
// It is written by hand rather than with encoding/json because it runs once per
// submission on the hot path: this costs one allocation (the body) and no
// reflection. The output is plain JSON; request tests decode it with
// encoding/json and fuzzing checks the string escaping against it.
//
// When j.Reference is empty, j.ID is sent as the reference, so that the
// gateway's delivery receipts and replies, which echo the reference, can always
// be matched to the job.
func appendMessage(b []byte, j *job.Job) []byte {
	b = append(b, `{"destination":`...)
	b = appendJSONString(b, j.Destination)
	b = append(b, `,"content":`...)
	b = appendJSONString(b, j.Content)
	b = appendField(b, `,"source":`, j.Source)
	ref := j.Reference
	if ref == "" {
		ref = j.ID
	}
	b = appendField(b, `,"reference":`, ref)
	b = appendField(b, `,"class":`, j.Class)
	b = appendField(b, `,"mask":`, j.Mask)
	if j.SMSClass != nil {
		b = append(b, `,"sms_class":`...)
		b = strconv.AppendInt(b, int64(*j.SMSClass), 10)
	}
	b = appendTime(b, `,"scheduled":`, j.Scheduled)
	b = appendTime(b, `,"expires":`, j.Expires)
	return append(b, '}')
}

// messageSize returns a capacity that holds j's body without growing in the
// common case (no escaping).
func messageSize(j *job.Job) int {
	n := 160 + len(j.Destination) + len(j.Content) + len(j.Source) + len(j.Class) + len(j.Mask)
	if j.Reference != "" {
		n += len(j.Reference)
	} else {
		n += len(j.ID)
	}
	if j.Scheduled != nil {
		n += 40
	}
	if j.Expires != nil {
		n += 40
	}
	return n
}

func appendField(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, key...)
	return appendJSONString(b, v)
}

func appendTime(b []byte, key string, t *time.Time) []byte {
	if t == nil {
		return b
	}
	b = append(b, key...)
	b = append(b, '"')
	b = t.AppendFormat(b, scheduleLayout)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Like encoding/json, it replaces
// invalid UTF-8 with U+FFFD; unlike it, it leaves <, > and & alone (the body is
// never embedded in HTML).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
