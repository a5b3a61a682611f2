package dlr

import (
	"time"

	"github.com/jetsms/jetsms/internal/jsonw"
)

// appendReceipt appends r as the JSON encoding/json makes of Receipt (empty
// omitempty fields left out, received_at in RFC 3339 with nanoseconds), without
// reflection, since every callback is encoded once on the request path.
func appendReceipt(b []byte, r *Receipt) []byte {
	b = append(b, `{"message_id":`...)
	b = jsonw.AppendString(b, r.MessageID)
	b = append(b, `,"status":`...)
	b = jsonw.AppendString(b, r.Status)
	b = appendOptional(b, `,"detail":`, r.Detail)
	b = appendOptional(b, `,"reference":`, r.Reference)
	b = append(b, `,"api":`...)
	b = jsonw.AppendString(b, r.API)
	return appendReceivedAt(b, r.ReceivedAt)
}

// appendInbound appends in as the JSON encoding/json makes of Inbound.
func appendInbound(b []byte, in *Inbound) []byte {
	b = append(b, `{"id":`...)
	b = jsonw.AppendString(b, in.ID)
	b = append(b, `,"source":`...)
	b = jsonw.AppendString(b, in.Source)
	b = append(b, `,"destination":`...)
	b = jsonw.AppendString(b, in.Destination)
	b = append(b, `,"content":`...)
	b = jsonw.AppendString(b, in.Content)
	b = appendOptional(b, `,"operator":`, in.Operator)
	b = appendOptional(b, `,"encoding":`, in.Encoding)
	b = appendOptional(b, `,"reply_to":`, in.ReplyTo)
	b = appendOptional(b, `,"reference":`, in.Reference)
	b = append(b, `,"api":`...)
	b = jsonw.AppendString(b, in.API)
	return appendReceivedAt(b, in.ReceivedAt)
}

func appendOptional(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, key...)
	return jsonw.AppendString(b, s)
}

func appendReceivedAt(b []byte, t time.Time) []byte {
	b = append(b, `,"received_at":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...)
}
