package deadletter_test

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/deadletter"
	"github.com/jetsms/jetsms/internal/events"
)

func TestReadPagesAndReplayOnce(t *testing.T) {
	env := brokertest.Run(t)
	ctx := t.Context()
	pub := events.New(env.JS, env.Names)
	for i := range 6 {
		reason := events.ReasonRetriesExhausted
		if i%3 == 2 {
			reason = events.ReasonExpired
		}
		require.NoError(t, pub.DeadLetter(ctx, events.Dead{Lane: "default", JobID: fmt.Sprintf("j%d", i+1),
			Subject: env.Names.Send("default"), Data: []byte(`{"id":"x"}`), StreamSeq: uint64(i + 1), Reason: reason}))
	}
	stream, err := env.JS.Stream(ctx, env.Names.DeadStream())
	require.NoError(t, err)

	// A page of two, then the next from where it stopped.
	page, next, err := deadletter.Read(ctx, stream, env.Names.DeadAll(), deadletter.Filter{Limit: 2})
	require.NoError(t, err)
	require.Len(t, page, 2)
	require.Equal(t, uint64(3), next)
	page, _, err = deadletter.Read(ctx, stream, env.Names.DeadAll(), deadletter.Filter{Limit: 2, From: next})
	require.NoError(t, err)
	require.Equal(t, "j3", page[0].Header.Get(events.HeaderJobID))

	// A reason filter; the scan bound stops early and says where to go on.
	expired, next, err := deadletter.Read(ctx, stream, env.Names.DeadAll(), deadletter.Filter{Reason: "expired"})
	require.NoError(t, err)
	require.Len(t, expired, 2)
	require.Zero(t, next)
	_, next, err = deadletter.Read(ctx, stream, env.Names.DeadAll(), deadletter.Filter{Reason: "expired", Scan: 2})
	require.NoError(t, err)
	require.Equal(t, uint64(3), next)

	// Counted by reason and lane from the headers, whole or bounded.
	lane := func(subject string) string { l, _, _ := env.Names.ParseSend(subject); return l }
	counts, err := deadletter.Count(ctx, env.JS, env.Names.DeadStream(), env.Names.DeadAll(), 100, lane)
	require.NoError(t, err)
	require.True(t, counts.Complete)
	require.Equal(t, 6, counts.Read)
	require.Equal(t, map[string]map[string]int{"retries_exhausted": {"default": 4}, "expired": {"default": 2}}, counts.ByReason)
	counts, err = deadletter.Count(ctx, env.JS, env.Names.DeadStream(), env.Names.DeadAll(), 4, lane)
	require.NoError(t, err)
	require.False(t, counts.Complete)
	require.Equal(t, 4, counts.Read)

	// Replayed twice from the same reading: one job stored, the letter gone.
	sel, _, err := deadletter.Read(ctx, stream, env.Names.Dead("default"), deadletter.Filter{Seqs: map[uint64]bool{4: true}})
	require.NoError(t, err)
	require.Len(t, sel, 1)
	require.NoError(t, deadletter.Replay(ctx, env.JS, stream, sel[0]))
	err = deadletter.Replay(ctx, env.JS, stream, sel[0])
	require.Error(t, err, "the second replay finds its letter removed")
	jobs, err := env.JS.Stream(ctx, env.Names.JobsStream())
	require.NoError(t, err)
	info, err := jobs.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), info.State.Msgs)
	m, err := jobs.GetMsg(ctx, info.State.FirstSeq)
	require.NoError(t, err)
	require.Equal(t, "j4:replay:4", m.Header.Get(jetstream.MsgIDHeader))
	require.Equal(t, "4", m.Header.Get(events.HeaderReplay))
}
