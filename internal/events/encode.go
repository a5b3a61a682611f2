package events

import (
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jetsms/jetsms/internal/jsonw"
	"github.com/jetsms/jetsms/job"
)

// appendEvent appends ev as the JSON of the wire contract: the same object
// encoding/json makes of job.Event (metadata keys sorted, at in RFC 3339 with
// nanoseconds), without reflection, since every job publishes at least one.
func appendEvent(b []byte, ev *job.Event) []byte {
	b = append(b, `{"job_id":`...)
	b = jsonw.AppendString(b, ev.JobID)
	b = append(b, `,"message_id":`...)
	b = jsonw.AppendString(b, ev.MessageID)
	b = append(b, `,"status":`...)
	b = jsonw.AppendString(b, string(ev.Status))
	b = append(b, `,"final":`...)
	b = strconv.AppendBool(b, ev.Final)
	b = append(b, `,"detail":`...)
	b = jsonw.AppendString(b, ev.Detail)
	b = append(b, `,"error":`...)
	b = jsonw.AppendString(b, ev.Error)
	b = append(b, `,"destination":`...)
	b = jsonw.AppendString(b, ev.Destination)
	b = append(b, `,"reference":`...)
	b = jsonw.AppendString(b, ev.Reference)
	b = append(b, `,"lane":`...)
	b = jsonw.AppendString(b, ev.Lane)
	b = append(b, `,"campaign":`...)
	b = jsonw.AppendString(b, ev.Campaign)
	if len(ev.Metadata) > 0 {
		b = jsonw.AppendStringMap(append(b, `,"metadata":`...), ev.Metadata)
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(ev.Attempts), 10)
	b = append(b, `,"segments":`...)
	b = strconv.AppendInt(b, int64(ev.Segments), 10)
	b = append(b, `,"duplicate_risk":`...)
	b = strconv.AppendBool(b, ev.DuplicateRisk)
	if ev.Duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	b = append(b, `,"at":"`...)
	b = ev.At.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}

// bufs recycles encoding buffers; each event's bytes are copied into its message.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// encodeEvent returns ev's JSON in a new slice of exactly its size.
func encodeEvent(ev *job.Event) []byte {
	bp := bufs.Get().(*[]byte)
	b := appendEvent((*bp)[:0], ev)
	out := slices.Clone(b)
	*bp = b
	bufs.Put(bp)
	return out
}
