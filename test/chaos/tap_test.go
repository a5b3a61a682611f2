//go:build linux

package chaos

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

var tapFlag = flag.Bool("chaos.tap", false, "write every ledger write, status event and job ack each case's processes publish to tap.log in the case's artifact directory (go test -artifacts keeps it)")

// tap records, when -chaos.tap is set, what the case's processes publish to the
// ledger, the status stream and the jobs stream's acks, as a core NATS subscriber
// sees it: with the time it arrived here and the header that makes a ledger
// write a compare-and-set. A write the server never stored shows here and not in
// the ledger, which is how a lost write is told from one never made. Messages
// published while this connection is away are missed.
func (r *rig) tap(t *testing.T) {
	t.Helper()
	if !*tapFlag {
		return
	}
	f, err := os.Create(filepath.Join(r.logDir, "tap.log"))
	if err != nil {
		t.Fatalf("tap: %v", err)
	}
	w := bufio.NewWriter(f)
	var mu sync.Mutex
	record := func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, "%s %s expect=%s id=%s %s\n", time.Now().UTC().Format("15:04:05.000000"), m.Subject,
			m.Header.Get(nats.ExpectedLastSubjSeqHdr), m.Header.Get(nats.MsgIdHdr), m.Data)
	}
	// Registered first, so it runs after the subscriptions have ended.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if err := w.Flush(); err != nil {
			t.Errorf("tap: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Errorf("tap: %v", err)
		}
	})
	for _, subject := range []string{"$KV." + r.names.LedgerBucket() + ".>", r.names.StatusAll(), "$JS.ACK." + r.names.JobsStream() + ".>"} {
		sub, err := r.nc.Subscribe(subject, record)
		if err != nil {
			t.Fatalf("tap %s: %v", subject, err)
		}
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			t.Fatalf("tap %s: %v", subject, err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
	}
}
