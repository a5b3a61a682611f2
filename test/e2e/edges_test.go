package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/job"
)

// postCallback posts body to the receiver's path with the stack's credentials
// and returns the status code and answer.
func (s *stack) postCallback(t testing.TB, path string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.callbacksURL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(callbackUser, callbackPass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(answer)
}

// handled is how many stored callbacks the resolver has handled at least once.
func (s *stack) handled() int64 {
	st := s.resolver.Stats()
	return st.Published + st.Unchanged + st.Retried + st.Unmatched + st.Inbound + st.Failed + st.DeadLettered
}

// requireConnected fails unless the stack's NATS connection never went down.
func (s *stack) requireConnected(t *testing.T) {
	t.Helper()
	require.Equal(t, nats.CONNECTED, s.env.Conn.Status(), "the NATS connection is open")
	require.Zero(t, s.env.Conn.Stats().Reconnects, "and it was never cut")
}

// sendOne sends one job through the stack and waits for its receipt.
func (s *stack) sendOne(t *testing.T, id string) {
	t.Helper()
	s.publish(t, testJob{Job: job.Job{ID: id, Destination: "+64211234567", Content: "still sending"}, lane: "priority"})
	ev := s.status.waitFinal(t, id)
	require.Equal(t, job.StatusReceived, ev.Status, "%+v", ev)
}

// TestEdges: no request from outside can cut jetsms off from NATS.
func TestEdges(t *testing.T) {
	t.Parallel()

	t.Run("CallbackFieldsOf4To64KiBAreRefusedOrStoredAndNATSStaysConnected", func(t *testing.T) {
		t.Parallel()
		s := setup(t, options{})
		const uuid = "1e41f423-24cf-4fa2-9a8a-888c30653305"
		fields := map[string][]string{
			dlr.PathDLR: {"message_id", "id", "status", "detail", "reference"},
			dlr.PathMO:  {"id", "source", "destination", "content", "operator", "encoding", "reply_to", "reference"},
		}
		base := map[string]map[string]string{
			dlr.PathDLR: {"message_id": uuid, "status": "received"},
			dlr.PathMO:  {"id": uuid, "source": "+64211234567", "destination": "2021", "content": "hi"},
		}
		stored := 0
		n := 0
		for path, names := range fields {
			for _, field := range names {
				// Digits survive every clean-up a value goes through (the inbound
				// subject keeps a destination's digits), so they are the worst case.
				for _, size := range []int{4 << 10, 16 << 10, 60 << 10, 64 << 10} {
					n++
					values := map[string]string{}
					for k, v := range base[path] {
						values[k] = v
					}
					if field == "id" && path == dlr.PathDLR {
						delete(values, "message_id")
					}
					if field == "id" && path == dlr.PathMO || field == "message_id" {
						values[field] = strings.Repeat("7", size)
					} else {
						values[field] = strings.Repeat("9", size)
					}
					if field != "id" && field != "message_id" && path == dlr.PathMO {
						values["id"] = fmt.Sprintf("mo-%d", n) // each MO its own
					}
					var body bytes.Buffer
					body.WriteString("{")
					first := true
					for k, v := range values {
						if !first {
							body.WriteString(",")
						}
						first = false
						fmt.Fprintf(&body, "%q:%q", k, v)
					}
					body.WriteString("}")
					code, answer := s.postCallback(t, path, body.Bytes())
					if size == 64<<10 {
						// With the rest of the body, over the 64 KiB a body may have.
						require.Equal(t, http.StatusRequestEntityTooLarge, code, "%s %s of 64 KiB: %s", path, field, answer)
						continue
					}
					switch code {
					case http.StatusOK:
						stored++
					case http.StatusBadRequest:
						require.Contains(t, answer, `"field":"`+field+`"`, "%s %s of %d bytes: the 400 names the field", path, field, size)
						require.Less(t, len(answer), 512, "the answer does not echo the value")
					default:
						t.Fatalf("%s with %s of %d bytes: answered %d %s; want 400 or 200", path, field, size, code, answer)
					}
				}
			}
		}
		require.Positive(t, stored, "content is bounded by the body alone, so some were stored")
		eventually(t, 20*time.Second, "the resolver to handle every stored callback", func() bool {
			return s.handled() >= int64(stored)
		})
		s.requireConnected(t)
		s.sendOne(t, "after-long-callbacks")
		s.requireConnected(t)
	})

	t.Run("AJobOnALongCampaignTokenFailsWithADeadLetterAndNATSStaysConnected", func(t *testing.T) {
		t.Parallel()
		s := setup(t, options{})
		dead := brokertest.Watch(t, s.env.JS, s.names.DeadStream())
		// Published with a plain publish: a JetStream publish would name a reply
		// subject too, and the test's own line would pass the server's limit.
		campaign := strings.Repeat("c", 3900)
		require.NoError(t, s.env.Conn.Publish("sms.send.bulk."+campaign,
			[]byte(`{"id":"long-campaign","destination":"+64211234567","content":"hi"}`)))
		ev := s.status.waitFinal(t, "long-campaign")
		require.Equal(t, job.StatusFailed, ev.Status)
		require.Contains(t, ev.Error, "its campaign")
		require.Less(t, len(ev.Error), 512, "the error quotes the subject cut short")
		require.Empty(t, ev.Campaign, "the token is not kept as a campaign")
		letters := dead.WaitFor(t, 10*time.Second, "the dead letter", func(ms []brokertest.Msg) bool { return len(ms) == 1 })
		require.Equal(t, string(events.ReasonInvalidSubject), letters[0].Header.Get(events.HeaderReason))
		s.requireConnected(t)
		s.sendOne(t, "after-long-campaign")
		s.requireConnected(t)
	})
}

// TestEdgesStrayLane: a job on a 3,900-character lane token is ended by the
// sweep of unknown lanes, and the connection stays.
func TestEdgesStrayLane(t *testing.T) {
	t.Parallel()
	s := setup(t, options{})
	lane := strings.Repeat("l", 3900)
	require.NoError(t, s.env.Conn.Publish("sms.send."+lane,
		[]byte(`{"id":"long-lane","destination":"+64211234567","content":"hi"}`)))
	ev := s.status.waitFinal(t, "long-lane")
	require.Equal(t, job.StatusFailed, ev.Status)
	require.Equal(t, "_", ev.Lane, "a lane that cannot be a name is not kept")
	require.Less(t, len(ev.Error), 256, "the error quotes the lane cut short")
	s.requireConnected(t)
	s.sendOne(t, "after-long-lane")
	s.requireConnected(t)
}
