package dispatcher

import (
	"strconv"
	"time"

	"github.com/jetsms/jetsms/internal/jsonw"
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
	b = jsonw.AppendString(b, j.Destination)
	b = append(b, `,"content":`...)
	b = jsonw.AppendString(b, j.Content)
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
	return jsonw.AppendString(b, v)
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
