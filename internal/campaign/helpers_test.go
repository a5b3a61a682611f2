package campaign

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

func jsonEvent(ev job.Event) ([]byte, error) { return json.Marshal(ev) }

func natsMsg(subject string, data []byte, msgID string) *nats.Msg {
	return &nats.Msg{Subject: subject, Data: data, Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// campaignSubject is the subject of a campaign's jobs, for names the tests chose.
func campaignSubject(t testing.TB, names subjects.Names, lane, name string) string {
	t.Helper()
	s, err := names.SendCampaign(lane, name)
	require.NoError(t, err)
	return s
}
