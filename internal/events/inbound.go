package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Inbound is an inbound (MO) message as consumers receive it on
// <prefix>.inbound.<destination digits> (docs/contract.md, "Inbound messages").
type Inbound struct {
	ID          string    `json:"id"`
	Source      string    `json:"source"`
	Destination string    `json:"destination"`
	Content     string    `json:"content"`
	Operator    string    `json:"operator"`
	Encoding    string    `json:"encoding"`
	ReplyTo     string    `json:"reply_to"`
	ReplyToJob  string    `json:"reply_to_job"`
	Reference   string    `json:"reference"`
	ReceivedAt  time.Time `json:"received_at"`
}

// InboundOther is the subject token of inbound messages whose destination has
// no digits: sms.inbound._.
const InboundOther = "_"

// Inbound publishes in to <prefix>.inbound.<digits of its destination> with
// Nats-Msg-Id set to the gateway's id (docs/contract.md), and returns once it is stored.
func (p *Publisher) Inbound(ctx context.Context, in Inbound) error {
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode inbound message %s: %w", in.ID, err)
	}
	token := digits(in.Destination)
	if token == "" {
		token = InboundOther
	}
	subject, err := p.names.Inbound(token)
	if err != nil {
		return fmt.Errorf("inbound message %s: destination: %w", in.ID, err)
	}
	msg := &nats.Msg{
		Subject: subject,
		Data:    data,
		Header:  nats.Header{jetstream.MsgIDHeader: []string{in.ID}},
	}
	if err := p.store(ctx, msg); err != nil {
		return fmt.Errorf("publish inbound message %s: %w", in.ID, err)
	}
	return nil
}

func digits(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			out = append(out, s[i])
		}
	}
	return string(out)
}
