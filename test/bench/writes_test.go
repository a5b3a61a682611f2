package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/job"
)

// writesBucket is the stored-write measurement's own bucket, made like the
// ledger's: file storage, one revision per key, per-message TTLs.
const writesBucket = "BENCH_WRITES"

// storedWrite measures what one stored write costs, worker and server together,
// written the cheapest way there is: n KV puts of a ledger entry's size to fresh
// keys, published asynchronously and awaited 512 at a time (no round trip waited
// for one by one; a window, so that a server syncing every write does not stall
// the publisher). It is the unit of the send guard's floor: every job needs some
// stored writes of its own besides the job and its ack (see BenchmarkPipeline).
func storedWrite(tb testing.TB, s *server, n int) result {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: writesBucket, History: 1, TTL: 24 * time.Hour, LimitMarkerTTL: time.Minute,
		Storage: jetstream.FileStorage,
	}); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = s.js.DeleteKeyValue(ctx, writesBucket) }()
	// An accepted job's ledger entry, as the worker writes it for a bench job.
	j := &job.Job{ID: "0190b6b2-7c1e-7d3a-9f4e-2b8c6d1a5e30", Lane: "bulk", Destination: "+64211234567",
		Content: "Your code is 123456", Metadata: map[string]string{"tenant": "acme"}, Segments: 1}
	now := time.Now()
	e := ledger.FromJob(j, now)
	e.Set(ledger.StateSubmitting, now, "", "")
	e.Owner, e.Since, e.Attempts, e.Seq = "worker-7f3c", now, 1, 123456
	e.Set(job.StatusAccepted, now, "+64211234567", "")
	e.MessageID = "5b0f1c7e-3a2d-4e8f-9c6b-1d2e3f4a5b6c"
	entry, err := json.Marshal(e)
	if err != nil {
		tb.Fatal(err)
	}
	const window = 512
	u := measure(tb, s, nil, "")
	for i := range n {
		if _, err := s.js.PublishMsgAsync(&nats.Msg{Subject: "$KV." + writesBucket + ".j." + strconv.Itoa(i), Data: entry},
			jetstream.WithMsgTTL(time.Hour)); err != nil {
			tb.Fatal(err)
		}
		if (i+1)%window == 0 || i == n-1 {
			select {
			case <-s.js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				tb.Fatal("stored writes not answered within a minute")
			}
		}
	}
	return u.done(tb, n)
}

// guardFloor prints the least CPU per job the send guard can cost on this server,
// and that figure against the 1.6× target: the reference loop's CPU plus k stored
// writes at the cheapest cost measured above, k being the records each job needs
// of its own — the claim (looked up by job id on redelivery, stored before the
// POST), the message-id index (receipts name the gateway's id; the gateway's
// documents make `reference` optional in them) and the accepted event (the
// contract's per-job event). Everything else the worker does (the ledger's
// accepted mark, pacing, lanes, decoding, metrics) comes on top.
//
// The rate at 0 ms is bound by the machine's CPU (the reference loop's line shows
// how many of its cores the three processes kept busy), so the floor bounds it
// too: at best the reference's rate × the reference's CPU per job ÷ the floor's,
// the gateway process's share counted in both.
func guardFloor(tb testing.TB, ref, write result) {
	tb.Helper()
	const records = 3
	floor := ref.cpu() + records*write.cpu()
	report(tb, fmt.Sprintf("  floor: reference + %d stored writes", records), float64(floor.Microseconds()), "µs/job",
		fmt.Sprintf("%.2f times the reference loop's; the 1.6 target allows %d µs", float64(floor)/float64(ref.cpu()),
			(ref.cpu()*16/10).Microseconds()))
	if ref.gateway > 0 {
		all := ref.cpu() + ref.gateway
		best := ref.rate * float64(all) / float64(floor+ref.gateway)
		report(tb, "  floor's best rate, 0 ms", best, "jobs/s",
			fmt.Sprintf("%.2f of the reference loop's (target 0.80): the reference kept %.2f cores busy, gateway %d µs/job included",
				best/ref.rate, ref.rate*all.Seconds(), ref.gateway.Microseconds()))
	}
}
