package events_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/job"
)

func TestPublisher(t *testing.T) {
	t.Parallel()

	type bundle struct {
		env    *brokertest.Env
		pub    *events.Publisher
		status *brokertest.Watcher
		dead   *brokertest.Watcher
	}
	setup := func(t *testing.T) *bundle {
		t.Helper()
		env := brokertest.Run(t)
		return &bundle{
			env: env, pub: events.New(env.JS, env.Names),
			status: brokertest.Watch(t, env.JS, env.Names.StatusStream()),
			dead:   brokertest.Watch(t, env.JS, env.Names.DeadStream()),
		}
	}
	ctx := context.Background()
	j := &job.Job{ID: "order-1", Destination: "+64211234567", Reference: "ref-1", Lane: "priority",
		Campaign: "c1", Segments: 2, Metadata: map[string]string{"tenant": "acme"}}

	t.Run("StatusGoesToItsSubjectWithTheContractFields", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ev := j.Event(job.StatusAccepted, time.Date(2026, 11, 22, 9, 0, 1, 0, time.FixedZone("NZ", 13*3600)))
		ev.MessageID, ev.Attempts = "uuid-1", 1
		require.NoError(t, b.pub.Status(ctx, ev))
		msgs := b.status.WaitFor(t, 5*time.Second, "event", func(ms []brokertest.Msg) bool { return len(ms) == 1 })
		require.Equal(t, "sms.status.accepted", msgs[0].Subject)
		require.Equal(t, "order-1:accepted", msgs[0].Header.Get(jetstream.MsgIDHeader))
		var fields map[string]any
		require.NoError(t, json.Unmarshal(msgs[0].Data, &fields))
		for _, k := range []string{"job_id", "message_id", "status", "final", "detail", "error", "destination",
			"reference", "lane", "campaign", "metadata", "attempts", "segments", "duplicate_risk", "at"} {
			require.Contains(t, fields, k)
		}
		require.Equal(t, "2026-11-21T20:00:01Z", fields["at"], "times are UTC")
		require.Equal(t, false, fields["final"])
		require.Equal(t, map[string]any{"tenant": "acme"}, fields["metadata"])
	})

	t.Run("RepublishedEventIsStoredOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ev := j.Event(job.StatusFailed, time.Now())
		require.NoError(t, b.pub.Status(ctx, ev))
		require.NoError(t, b.pub.Status(ctx, ev))
		marker := j.Event(job.StatusExpired, time.Now())
		marker.JobID = "marker"
		require.NoError(t, b.pub.Status(ctx, marker))
		msgs := b.status.WaitFor(t, 5*time.Second, "marker", func(ms []brokertest.Msg) bool {
			return len(brokertest.EventsOf(ms, "marker")) == 1
		})
		require.Len(t, brokertest.EventsOf(msgs, "order-1"), 1)
	})

	t.Run("MsgIDSaysWhereAStatusRepeats", func(t *testing.T) {
		t.Parallel()
		retry := j.Event(job.StatusRetrying, time.Now())
		retry.Attempts = 3
		require.Equal(t, "order-1:retrying:3", events.MsgID(retry))
		acc := j.Event(job.StatusAccepted, time.Now())
		acc.MessageID = "m2"
		require.Equal(t, "order-1:accepted", events.MsgID(acc))
		acc.DuplicateRisk = true
		require.Equal(t, "order-1:accepted:m2", events.MsgID(acc))
	})

	t.Run("DeadLetterKeepsTheJobAsPublished", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		d := events.Dead{
			Lane: "bulk", JobID: "order-1", Subject: "sms.send.bulk.c1", Data: []byte(`{"raw":true}`),
			Header:    nats.Header{jetstream.MsgIDHeader: []string{"order-1"}, "Traceparent": []string{"00-abc"}},
			StreamSeq: 42, Reason: events.ReasonGatewayRejected, Error: "invalid_attrib\r\nX-Injected: 1",
		}
		require.NoError(t, b.pub.DeadLetter(ctx, d))
		require.NoError(t, b.pub.DeadLetter(ctx, d), "a redelivered job is dead-lettered once")
		other := d
		other.JobID, other.StreamSeq = "marker", 43
		require.NoError(t, b.pub.DeadLetter(ctx, other))
		msgs := b.dead.WaitFor(t, 5*time.Second, "dead letters", func(ms []brokertest.Msg) bool { return len(ms) >= 2 })
		require.Len(t, msgs, 2)
		m := msgs[0]
		require.Equal(t, "sms.dead.bulk", m.Subject)
		require.Equal(t, `{"raw":true}`, string(m.Data))
		require.Equal(t, "gateway_rejected", m.Header.Get(events.HeaderReason))
		require.Equal(t, "invalid_attrib  X-Injected: 1", m.Header.Get(events.HeaderError), "a line break cannot end the header")
		require.Empty(t, m.Header.Get("X-Injected"))
		require.Equal(t, "sms.send.bulk.c1", m.Header.Get(events.HeaderSubject))
		require.Equal(t, "order-1", m.Header.Get(events.HeaderOriginalMsgID))
		require.Equal(t, "order-1:42", m.Header.Get(jetstream.MsgIDHeader))
		require.Equal(t, "00-abc", m.Header.Get("Traceparent"), "the producer's headers are kept")
	})

	t.Run("StoreFailureIsReturned", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		require.NoError(t, b.env.JS.DeleteStream(ctx, b.env.Names.StatusStream()))
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := b.pub.Status(sctx, j.Event(job.StatusAccepted, time.Now()))
		require.ErrorContains(t, err, "publish accepted event of job order-1")
	})
}
