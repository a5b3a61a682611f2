package bench

import (
	"context"
	"fmt"

	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/ratelimit"
)

// BenchmarkPacing prints, from one run: (a) the latency from publish to gateway of
// priority jobs while a bulk backlog drains at 500/s, beside the raw JetStream
// publish-to-consume latency of the same run; (b) the rate achieved against the
// rate configured, over 10 s at 500/s and 5,000/s with jetsms's default burst and a
// concurrency ceiling of 256 (and at 5,000/s with the default ceiling of 64 and
// with a burst of 1, for information), with the largest count in any 100 ms window
// and in any second; (d) the rate achieved at 2,000/s through a 20 ms and a 200 ms
// gateway, with the concurrency the worker chose. (c), the memory of a
// 1,000,000-job backlog, is BenchmarkBacklogMemory.
func BenchmarkPacing(b *testing.B) {
	for b.Loop() {
		fmt.Printf("\njetsms pacing benchmark: embedded NATS %s\n", syncSetting())
		fmt.Printf("%-44s %12s %-8s %s\n", "measurement", "value", "unit", "against")

		// (a) Priority latency behind a draining bulk backlog.
		// Each case ends (its worker, simulator and server stopped) before the next
		// starts: the bulk backlog here would otherwise go on draining at 500/s
		// beside every later measurement.
		sc := newCase(b)
		s := startServer(sc)
		raw50, raw99 := rawLatency(sc, s, 500)
		report2(b, "ceiling: raw JetStream publish→consume p50", ms(raw50), "ms", "")
		report2(b, "ceiling: raw JetStream publish→consume p99", ms(raw99), "ms", "")
		p50, p99 := priorityLatency(sc, s, size(100_000), 500, 200)
		sc.end()
		tokenInterval := time.Second / 500
		report2(b, "priority publish→gateway p50, bulk at 500/s", ms(p50), "ms", "")
		report2(b, "priority publish→gateway p99, bulk at 500/s", ms(p99), "ms",
			latencyVerdict(p99, 50*time.Millisecond+tokenInterval))
		b.ReportMetric(ms(p99), "ms-p99-priority")

		// (b) Rate accuracy, with the burst jetsms ships (rate.burst) and
		// worker.concurrency raised to 256, as docs/operations.md advises when
		// jetsms_concurrency_limit sits at its ceiling below the rate. Two lines for
		// information: 5,000/s with the default ceiling of 64, and with a burst of 1,
		// which allows no catching up — a token the scheduler wakes too late for is
		// lost, so that line shows how precisely this machine's timers pace.
		for _, c := range []struct {
			rate        float64
			burst, conc int
			info        bool
		}{
			{500, config.RateBurstDefault, 256, false},
			{5000, config.RateBurstDefault, 256, false},
			{5000, config.RateBurstDefault, concurrency, true},
			{5000, 1, 256, true},
		} {
			sc := newCase(b)
			s := startServer(sc)
			gw := startSimulator(sc, gwsim.Config{Keep: -1})
			run := pacedRun(sc, s, gw, c.rate, c.burst, c.conc, measureWindow())
			sc.end()
			ratio := run.achieved / c.rate
			against := rangeVerdict(ratio, 0.98, 1.00)
			if c.info {
				against = fmt.Sprintf("%.3f of configured (information)", ratio)
			}
			report2(b, fmt.Sprintf("rate achieved at %.0f/s (burst %d, ceiling %d)", c.rate, c.burst, c.conc),
				run.achieved, "msgs/s", against)
			report2(b, fmt.Sprintf("  largest count in 100 ms at %.0f/s", c.rate), float64(run.maxWindow), "msgs",
				fmt.Sprintf("(rate×0.1 s + burst = %.0f, at the gateway's arrivals); concurrency chosen %d",
					c.rate*0.1+float64(c.burst), run.concurrency))
			report2(b, fmt.Sprintf("  largest count in 1 s at %.0f/s", c.rate), float64(run.maxSecond), "msgs",
				fmt.Sprintf("(rate + burst = %.0f)", c.rate+float64(c.burst)))
			if !c.info {
				b.ReportMetric(ratio, fmt.Sprintf("ratio@%.0f/s", c.rate))
			}
		}

		// (d) Concurrency sized by latency.
		for _, lat := range []time.Duration{20 * time.Millisecond, 200 * time.Millisecond} {
			sc := newCase(b)
			s := startServer(sc)
			gw := startSimulator(sc, gwsim.Config{Keep: -1, Latency: lat})
			const rate = 2000
			run := pacedRun(sc, s, gw, rate, config.RateBurstDefault, 2000, measureWindow())
			sc.end()
			ratio := run.achieved / rate
			report2(b, fmt.Sprintf("rate achieved at 2000/s, %s gateway (burst %d)", lat, config.RateBurstDefault), run.achieved, "msgs/s",
				fmt.Sprintf("%s; concurrency chosen %d (rate×latency = %.0f)", atLeastVerdict(ratio, 0.97),
					run.concurrency, rate*lat.Seconds()))
			b.ReportMetric(ratio, fmt.Sprintf("ratio@%s", lat))
		}
	}
}

// measureWindow is the 10 s of the targets, shorter with BENCH_SCALE.
func measureWindow() time.Duration {
	return time.Duration(float64(10*time.Second) * float64(size(1_000_000)) / 1_000_000)
}

func report2(tb testing.TB, name string, value float64, unit, against string) {
	tb.Helper()
	if value < 100 {
		fmt.Printf("%-44s %12.2f %-8s %s\n", name, value, unit, against)
		return
	}
	report(tb, name, value, unit, against)
}

func latencyVerdict(got, target time.Duration) string {
	mark := "MET"
	if got >= target {
		mark = "MISSED"
	}
	return fmt.Sprintf("target < %.0f ms %s", ms(target), mark)
}

func rangeVerdict(ratio, lo, hi float64) string {
	mark := "MET"
	if ratio < lo || ratio > hi+0.005 {
		mark = "MISSED"
	}
	return fmt.Sprintf("%.3f of configured (target %.2f–%.2f) %s", ratio, lo, hi, mark)
}

func atLeastVerdict(ratio, lo float64) string {
	mark := "MET"
	if ratio < lo {
		mark = "MISSED"
	}
	return fmt.Sprintf("%.3f of configured (target ≥ %.2f) %s", ratio, lo, mark)
}

// rawLatency publishes n messages one at a time to a stream of its own and
// measures publish to delivery on a push-style ordered consumer.
func rawLatency(tb testing.TB, s *server, n int) (p50, p99 time.Duration) {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAWLAT", Subjects: []string{"rawlat"}}); err != nil {
		tb.Fatal(err)
	}
	cons, err := s.js.OrderedConsumer(ctx, "RAWLAT", jetstream.OrderedConsumerConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	got := make(chan time.Time, n)
	cc, err := cons.Consume(func(jetstream.Msg) { got <- time.Now() })
	if err != nil {
		tb.Fatal(err)
	}
	defer cc.Stop()
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := s.js.Publish(ctx, "rawlat", []byte(jobBody)); err != nil {
			tb.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(start))
		time.Sleep(2 * time.Millisecond) // the pace of the priority jobs below
	}
	return percentiles(lat)
}

func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(lat)
	return lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
}

// priorityLatency stores a bulk backlog, starts a worker paced at rate, and then
// publishes n priority jobs 20 ms apart, measuring each from publish to its
// arrival at the gateway.
func priorityLatency(tb testing.TB, s *server, backlog int, rate float64, n int) (p50, p99 time.Duration) {
	tb.Helper()
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	gw := startSimulator(tb, gwsim.Config{Keep: -1})
	gw.sim.OnAccept(func(m gwsim.Message) {
		if len(m.Reference) > 4 && m.Reference[:4] == "prio" {
			mu.Lock()
			arrived[m.Reference] = time.Now()
			mu.Unlock()
		}
	})
	s.publishJobs(tb, s.names.Send("bulk"), backlog)
	lim, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{PerSecond: rate, Burst: 1})
	if err != nil {
		tb.Fatal(err)
	}
	startApp(tb, s, gw, lim, concurrency, []string{"bulk=0.1"})
	time.Sleep(time.Second) // let the bulk drain reach its pace
	published := map[string]time.Time{}
	for i := range n {
		id := fmt.Sprintf("prio-%d", i)
		published[id] = time.Now()
		body := fmt.Sprintf(`{"id":%q,"destination":"+64211234567","content":"Your code is 123456"}`, id)
		if _, err := s.js.PublishMsg(context.Background(), &nats.Msg{Subject: s.names.Send("priority"), Data: []byte(body),
			Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}); err != nil {
			tb.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done := len(arrived) == n
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("only %d of %d priority jobs arrived", len(arrived), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	lat := make([]time.Duration, 0, n)
	for id, at := range published {
		lat = append(lat, arrived[id].Sub(at))
	}
	return percentiles(lat)
}

type paced struct {
	achieved    float64
	maxWindow   int // in any 100 ms
	maxSecond   int // in any second
	concurrency int
}

// pacedRun stores a backlog larger than rate×window allows, starts a worker with
// an adaptive limiter at rate, and counts arrivals at the gateway over window
// after one second of warm-up.
func pacedRun(tb testing.TB, s *server, gw *gateway, rate float64, burst, conc int, window time.Duration) paced {
	tb.Helper()
	total := int(rate*(window.Seconds()+3)) + 1000
	var mu sync.Mutex
	var times []time.Time
	var count atomic.Int64
	gw.sim.OnAccept(func(gwsim.Message) {
		count.Add(1)
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
	})
	s.publishJobs(tb, s.names.Send("bulk"), total)
	lim, err := ratelimit.NewAdaptive(ratelimit.AdaptiveConfig{PerSecond: rate, Burst: burst})
	if err != nil {
		tb.Fatal(err)
	}
	w := startApp(tb, s, gw, lim, conc, nil).Worker()
	time.Sleep(time.Second)
	start, before := time.Now(), count.Load()
	time.Sleep(window)
	elapsed, after := time.Since(start), count.Load()
	chosen := w.ConcurrencyLimit()
	mu.Lock()
	defer mu.Unlock()
	return paced{
		achieved:    float64(after-before) / elapsed.Seconds(),
		maxWindow:   maxIn(times, 100*time.Millisecond),
		maxSecond:   maxIn(times, time.Second),
		concurrency: chosen,
	}
}

// maxIn is the largest number of times within any span of d.
func maxIn(times []time.Time, d time.Duration) int {
	best, lo := 0, 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= d {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}
