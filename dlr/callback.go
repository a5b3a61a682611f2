package dlr

import "time"

// The gateway API a callback body was recognised as.
const (
	APIv2 = "v2"
	APIv1 = "v1"
)

// Receipt is a delivery receipt (DLR) as it is stored on <prefix>.callbacks.dlr,
// JSON-encoded. Its Nats-Msg-Id is "dlr:<message_id>:<status>", so a receipt the
// gateway sends again is stored once within the duplicate window.
type Receipt struct {
	// MessageID is the gateway's id of the message: a UUID (REST v2) or an
	// integer written in decimal (REST v1).
	MessageID string `json:"message_id"`
	// Status is the gateway's status as it came (an unknown one is kept).
	Status string `json:"status"`
	// Detail and Reference are as the gateway gave them; empty when absent.
	Detail    string `json:"detail,omitempty"`
	Reference string `json:"reference,omitempty"`
	// API is APIv2 or APIv1.
	API string `json:"api"`
	// ReceivedAt is when the receiver got it (UTC).
	ReceivedAt time.Time `json:"received_at"`
}

// Inbound is an inbound (MO) message as it is stored on <prefix>.callbacks.mo,
// JSON-encoded. Its Nats-Msg-Id is "mo:<id>".
type Inbound struct {
	// ID is the gateway's id of the inbound message (UUID, or decimal integer
	// for REST v1).
	ID string `json:"id"`
	// Source is the handset's number; Destination the short code or number it
	// was sent to.
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Content     string `json:"content"`
	Operator    string `json:"operator,omitempty"`
	// Encoding is "base64" when Content is base64 of binary content.
	Encoding string `json:"encoding,omitempty"`
	// ReplyTo is the gateway's id of the message this answers; Reference is that
	// message's reference. Either may be empty.
	ReplyTo   string `json:"reply_to,omitempty"`
	Reference string `json:"reference,omitempty"`
	// API is APIv2 or APIv1.
	API string `json:"api"`
	// ReceivedAt is when the receiver got it (UTC).
	ReceivedAt time.Time `json:"received_at"`
}

// ReceiptMsgID is the Nats-Msg-Id a receipt is stored with.
func ReceiptMsgID(r Receipt) string { return "dlr:" + r.MessageID + ":" + r.Status }

// InboundMsgID is the Nats-Msg-Id an inbound message is stored with.
func InboundMsgID(in Inbound) string { return "mo:" + in.ID }
