package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/dlr"
)

// Targets of the callback ingestion benchmark.
const (
	callbacksRatioTarget = 0.50                  // of the raw async publish rate
	callbacksP99Target   = 20 * time.Millisecond // one callback, request to answer
	// callbacksWarmup requests open the keep-alive connections before timing.
	callbacksWarmup = 1000
	callbackUser    = "gateway"
	callbackPass    = "bench-secret"
)

// receiptBody is a REST v2 DLR with its id left for the caller to append.
const (
	receiptHead = `{"message_id":"1e41f423-24cf-4fa2-9a8a-`
	receiptTail = `","status":"received","detail":"+64211234567","reference":"order-1234"}`
)

func receiptFor(i int) []byte {
	b := make([]byte, 0, len(receiptHead)+12+len(receiptTail))
	b = append(b, receiptHead...)
	b = fmt.Appendf(b, "%012d", i)
	return append(b, receiptTail...)
}

// BenchmarkCallbacks prints, from one run on one machine: the delivery receipts per
// second the callback receiver stores and answers 200 (each after its PubAck) for 64
// keep-alive HTTP clients on loopback, and the p99 latency of one callback, beside
// the raw JetStream async publish rate of the same run and the same message (the
// ceiling), against the targets (≥ 0.50 of the ceiling, p99 < 20 ms). The rate of
// a no-op HTTP handler with the same clients is printed for information: it is the
// ceiling of the HTTP half alone.
//
// Workloads are fixed sizes, not b.N: run it with -benchtime 1x. BENCH_SCALE=0.1
// runs a tenth of each workload for a quick look.
func BenchmarkCallbacks(b *testing.B) {
	for b.Loop() {
		fmt.Printf("\njetsms callback ingestion benchmark: embedded NATS %s, %d keep-alive HTTP clients on loopback, Basic credentials\n",
			syncSetting(), concurrency)
		fmt.Printf("%-44s %12s %-8s %s\n", "measurement", "value", "unit", "against")

		s := startServer(b)
		ceiling := rawPublish(b, s, size(200_000))
		report(b, "ceiling: raw JetStream async publish", ceiling, "msgs/s", "")

		noop := postCallbacks(b, noopURL(b), size(100_000))
		report(b, "information: HTTP POST to a no-op handler", noop.rate, "req/s", "")

		rc, err := dlr.New(dlr.Config{Username: callbackUser, Password: callbackPass}, s.js, s.names, nil)
		if err != nil {
			b.Fatal(err)
		}
		n := size(100_000)
		got := postCallbacks(b, serve(b, rc), n)
		ratio := got.rate / ceiling
		report(b, "callbacks stored, 200 after PubAck", got.rate, "dlr/s",
			verdict(ratio, callbacksRatioTarget, "JetStream async publish"))
		mark := "MET"
		if got.p99 >= callbacksP99Target {
			mark = "MISSED"
		}
		fmt.Printf("%-44s %12.2f %-8s %s\n", "callback latency p99", ms(got.p99), "ms",
			fmt.Sprintf("(p50 %.2f ms, max %.2f ms) target < %.0f ms %s", ms(got.p50), ms(got.max), ms(callbacksP99Target), mark))

		// Every callback answered 200 is in the stream, once.
		if st := rc.Stats().DLR; st.Stored != int64(n+callbacksWarmup) || st.Duplicate != 0 {
			b.Fatalf("receiver stats %+v after %d callbacks", st, n+callbacksWarmup)
		}
		stream, err := s.js.Stream(context.Background(), s.names.CallbacksStream())
		if err != nil {
			b.Fatal(err)
		}
		info, err := stream.Info(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if info.State.Msgs != uint64(n+callbacksWarmup) {
			b.Fatalf("callbacks stream holds %d messages after %d callbacks", info.State.Msgs, n+callbacksWarmup)
		}

		b.ReportMetric(got.rate, "dlr/s")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(ms(got.p99), "p99-ms")
		b.ReportMetric(ceiling, "publish/s")
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// rawPublish publishes n receipts, as the receiver stores them, with a Nats-Msg-Id
// each, to a stream of its own set up as the callbacks stream is, as fast as async
// publishing allows: the JetStream ceiling.
func rawPublish(tb testing.TB, s *server, n int) float64 {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "RAWCB", Subjects: []string{"rawcb.>"}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	}); err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = s.js.DeleteStream(ctx, "RAWCB") }()
	// The stored form of one receipt, as the receiver writes it.
	data := []byte(`{"message_id":"1e41f423-24cf-4fa2-9a8a-888c30653305","status":"received","detail":"+64211234567",` +
		`"reference":"order-1234","api":"v2","received_at":"2026-11-22T09:00:05.123456789Z"}`)
	start := time.Now()
	for i := range n {
		if i%4096 == 4095 {
			<-s.js.PublishAsyncComplete()
		}
		if _, err := s.js.PublishMsgAsync(&nats.Msg{Subject: "rawcb.dlr", Data: data,
			Header: nats.Header{jetstream.MsgIDHeader: []string{"dlr:" + strconv.Itoa(i) + ":received"}}}); err != nil {
			tb.Fatal(err)
		}
	}
	select {
	case <-s.js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		tb.Fatal("raw publishing did not complete")
	}
	return float64(n) / time.Since(start).Seconds()
}

// serve runs h behind the receiver's own server on loopback until the benchmark
// ends, and returns the URL of the DLR route.
func serve(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := dlr.NewServer(dlr.ServerConfig{Addr: ln.Addr().String()}, h, nil)
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			tb.Error(err)
		}
	})
	return "http://" + ln.Addr().String() + dlr.PathDLR
}

// noopURL serves a handler that reads the body and answers 200, as the receiver
// does, without parsing or storing anything.
func noopURL(tb testing.TB) string {
	tb.Helper()
	return serve(tb, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"stored"}` + "\n"))
	}))
}

// callbackRun is what postCallbacks measured.
type callbackRun struct {
	rate          float64 // callbacks answered 200 per second
	p50, p99, max time.Duration
}

// postCallbacks posts callbacksWarmup receipts, then n more, each with its own id,
// from `concurrency` goroutines over keep-alive connections with credentials; it
// times the n and each one's request-to-answer latency. Anything but 200 fails the
// benchmark.
func postCallbacks(tb testing.TB, url string, n int) callbackRun {
	tb.Helper()
	tr := &http.Transport{MaxIdleConns: concurrency, MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	post := func(i int) error {
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(receiptFor(i)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(callbackUser, callbackPass)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("callback %d: HTTP %d", i, resp.StatusCode)
		}
		return nil
	}
	run := func(from, to int, lat []time.Duration) error {
		var next atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var first error
		for range concurrency {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= to {
						return
					}
					start := time.Now()
					err := post(i)
					if lat != nil {
						lat[i-from] = time.Since(start)
					}
					if err != nil {
						mu.Lock()
						if first == nil {
							first = err
						}
						mu.Unlock()
						return
					}
				}
			})
		}
		wg.Wait()
		return first
	}

	if err := run(0, callbacksWarmup, nil); err != nil {
		tb.Fatal(err)
	}
	lat := make([]time.Duration, n)
	start := time.Now()
	if err := run(callbacksWarmup, callbacksWarmup+n, lat); err != nil {
		tb.Fatal(err)
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	return callbackRun{
		rate: float64(n) / elapsed.Seconds(),
		p50:  lat[n/2],
		p99:  lat[min(n-1, n*99/100)],
		max:  lat[n-1],
	}
}
