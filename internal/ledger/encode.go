package ledger

import (
	"strconv"
	"time"

	"github.com/jetsms/jetsms/internal/jsonw"
)

// encode returns e as JSON: the object encoding/json makes of Entry (the same
// fields, names and omissions; metadata keys sorted), without reflection, since
// every job's entry is written at least twice. Like package jsonw it leaves <, >
// and & unescaped; encoding/json reads both forms alike.
func (e *Entry) encode() []byte {
	b := make([]byte, 0, 512+64*len(e.History))
	b = append(b, `{"job_id":`...)
	b = jsonw.AppendString(b, e.JobID)
	b = append(b, `,"lane":`...)
	b = jsonw.AppendString(b, e.Lane)
	b = optString(b, `,"campaign":`, e.Campaign)
	b = append(b, `,"destination":`...)
	b = jsonw.AppendString(b, e.Destination)
	b = optString(b, `,"reference":`, e.Reference)
	if len(e.Metadata) > 0 {
		b = jsonw.AppendStringMap(append(b, `,"metadata":`...), e.Metadata)
	}
	b = append(b, `,"segments":`...)
	b = strconv.AppendInt(b, int64(e.Segments), 10)
	b = optString(b, `,"message_id":`, e.MessageID)
	if len(e.MessageIDs) > 0 {
		b = append(b, `,"message_ids":[`...)
		for i, id := range e.MessageIDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.AppendString(b, id)
		}
		b = append(b, ']')
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	b = append(b, `,"status":`...)
	b = jsonw.AppendString(b, string(e.Status))
	b = optString(b, `,"detail":`, e.Detail)
	b = optString(b, `,"error":`, e.Error)
	if e.DuplicateRisk {
		b = append(b, `,"duplicate_risk":true`...)
	}
	b = optString(b, `,"owner":`, e.Owner)
	b = optTime(b, `,"since":`, e.Since)
	b = optString(b, `,"replay":`, e.Replay)
	b = optTime(b, `,"scheduled":`, e.Scheduled)
	b = optString(b, `,"digest":`, e.Digest)
	if e.Seq != 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, e.Seq, 10)
	}
	b = optString(b, `,"traceparent":`, e.TraceParent)
	b = appendTime(append(b, `,"created":`...), e.Created)
	b = appendTime(append(b, `,"updated":`...), e.Updated)
	b = append(b, `,"history":`...)
	if e.History == nil {
		b = append(b, `null`...)
	} else {
		b = append(b, '[')
		for i := range e.History {
			if i > 0 {
				b = append(b, ',')
			}
			c := &e.History[i]
			b = append(b, `{"status":`...)
			b = jsonw.AppendString(b, string(c.Status))
			b = appendTime(append(b, `,"at":`...), c.At)
			b = optString(b, `,"detail":`, c.Detail)
			b = optString(b, `,"error":`, c.Error)
			b = optString(b, `,"message_id":`, c.MessageID)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func optString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return jsonw.AppendString(append(b, key...), s)
}

func optTime(b []byte, key string, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return appendTime(append(b, key...), t)
}

// appendTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
