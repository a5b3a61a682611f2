package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/job"
)

// hostile holds what must never reach a terminal raw: a clear-screen sequence, a
// bell, a carriage return, a C1 control, a right-to-left override and a bad byte.
const hostile = "ok\x1b[2J\a\r\u009b31m\u202eevil\xff\nnext"

func requireTerminalSafe(t *testing.T, out string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\a", "\r", "\u009b", "\u202e", "\xff", "\nnext"} {
		require.NotContains(t, out, bad)
	}
	require.Contains(t, out, `ok\u001b[2J\u0007\u000d\u009b31m\u202eevil\xff\u000anext`)
}

func TestTerminalOutputEscapesControls(t *testing.T) {
	t.Parallel()
	require.Equal(t, "plain é 😀", escapeControls("plain é 😀"))

	t.Run("TailEventLine", func(t *testing.T) {
		t.Parallel()
		ev := job.Event{JobID: "j1", Status: job.StatusRejected, Detail: hostile, Error: hostile, Lane: "priority"}
		requireTerminalSafe(t, eventLine(ev))
	})

	t.Run("Get", func(t *testing.T) {
		t.Parallel()
		e := &ledger.Entry{JobID: "j1", Status: job.StatusRejected, Reference: hostile, Destination: "+64211234567",
			Metadata: map[string]string{"k": hostile}}
		e.Set(job.StatusRejected, time.Now(), hostile, hostile)
		var out bytes.Buffer
		printEntry(&out, e)
		requireTerminalSafe(t, out.String())
	})

	t.Run("DeadList", func(t *testing.T) {
		t.Parallel()
		m := &jetstream.RawStreamMsg{Sequence: 1, Time: time.Now(), Header: nats.Header{}}
		m.Header.Set(events.HeaderSubject, "sms.send.x")
		m.Header.Set(events.HeaderJobID, "j1")
		m.Header.Set(events.HeaderReason, "gateway_rejected")
		m.Header.Set(events.HeaderError, hostile)
		var out bytes.Buffer
		printDead(&out, []*jetstream.RawStreamMsg{m})
		requireTerminalSafe(t, out.String())
	})

	t.Run("CampaignStatus", func(t *testing.T) {
		t.Parallel()
		r := &campaign.Record{Name: "spring", State: campaign.StateRunning, File: hostile,
			BadRows: []campaign.RowError{{Line: 2, Row: 1, Reason: hostile}},
			Counts:  campaign.Counts{ByStatus: map[job.Status]int{job.Status(hostile): 1}}}
		var out bytes.Buffer
		printRecord(&out, r)
		requireTerminalSafe(t, out.String())
		out.Reset()
		require.NoError(t, printJSON(safeWriter{&out}, r))
		require.NotContains(t, out.String(), "\u202e")
	})
}
