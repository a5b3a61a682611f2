package campaign

import (
	"bytes"
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/job"
)

func jsonEvent(ev job.Event) ([]byte, error) { return json.Marshal(ev) }

func natsMsg(subject string, data []byte, msgID string) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
