package dispatcher

import (
	"strconv"
	"time"

	"github.com/jetsms/jetsms/internal/jsonw"
	"github.com/jetsms/jetsms/job"
)

// scheduleLayout is how scheduled and expires are sent: RFC 3339 in the time's
// own offset (so "+13:00" stays "+13:00"), with the fraction of a second when
// there is one (trailing zeros dropped; none for a whole second). The gateway's
// "Date Strings" section defines "s = one or more digits representing a decimal
// fraction of a second"; dropping the fraction would move a time less than a
// second ahead into the past, which the gateway refuses with 422.
const scheduleLayout = time.RFC3339Nano

// appendMessage appends the POST /messages body for j to b. REST v2 and REST
// v1 take the same body.
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
	ref := j.Reference
	if ref == "" {
		ref = j.ID
	}
	return appendAttributes(b, j, ref)
}

// appendBroadcast appends the REST v1 POST /messages/broadcast body for jobs to
// b: every job's destination, in order, and the content and options of the
// first job, which checkBroadcast has found equal to the others'. The reference
// is the jobs' common Reference and is left out when that is empty: one
// broadcast carries one reference, so the job ids cannot stand in for it.
func appendBroadcast(b []byte, jobs []*job.Job) []byte {
	b = append(b, `{"destination":[`...)
	for i, j := range jobs {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonw.AppendString(b, j.Destination)
	}
	b = append(b, ']')
	return appendAttributes(b, jobs[0], jobs[0].Reference)
}

// appendAttributes appends the attributes after destination, with ref as the
// reference, and closes the object.
func appendAttributes(b []byte, j *job.Job, ref string) []byte {
	b = append(b, `,"content":`...)
	b = jsonw.AppendString(b, j.Content)
	b = appendField(b, `,"source":`, j.Source)
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
	n := attributesSize(j) + len(j.Destination)
	if j.Reference == "" {
		n += len(j.ID)
	}
	return n
}

// broadcastSize is messageSize for the broadcast of jobs.
func broadcastSize(jobs []*job.Job) int {
	n := attributesSize(jobs[0])
	for _, j := range jobs {
		n += len(j.Destination) + 3 // quotes and comma
	}
	return n
}

func attributesSize(j *job.Job) int {
	n := 160 + len(j.Content) + len(j.Source) + len(j.Class) + len(j.Mask) + len(j.Reference)
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
