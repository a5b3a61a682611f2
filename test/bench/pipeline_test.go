package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPipeline prints, from one run on one machine: end-to-end jobs/s at zero
// and at 20 ms gateway latency, the raw JetStream consume+ack and raw HTTP POST
// ceilings measured in the same run, and the ratio of jobs/s to the lower ceiling,
// against the targets (≥ 0.60 at zero latency, ≥ 0.95 at 20 ms).
//
// Workloads are fixed sizes, not b.N: run it with -benchtime 1x (make bench does).
// BENCH_SCALE=0.1 runs a tenth of each workload for a quick look.
func BenchmarkPipeline(b *testing.B) {
	for b.Loop() {
		fmt.Printf("\njetsms pipeline benchmark: embedded NATS %s, concurrency %d, rate unlimited\n",
			syncSetting(), concurrency)
		fmt.Printf("%-44s %12s %-8s %s\n", "measurement", "value", "unit", "against")

		// Zero gateway latency: the ceilings first, then the pipeline.
		s := startServer(b)
		jsCeiling := rawConsume(b, s, size(200_000))
		report(b, "ceiling: raw JetStream consume+ack", jsCeiling, "msgs/s", "")
		gw0 := startGateway(b, 0)
		http0 := rawHTTP(b, gw0, size(200_000))
		report(b, "ceiling: raw HTTP POST, 0 ms gateway", http0, "req/s", "")
		jobs0 := pipeline(b, s, gw0, size(200_000))
		ratio0 := jobs0 / min(jsCeiling, http0)
		report(b, "pipeline, 0 ms gateway", jobs0, "jobs/s",
			verdict(ratio0, 0.60, lowerName(jsCeiling, http0)))

		// 20 ms gateway latency: concurrency ÷ latency bounds both.
		gw20 := startGateway(b, 20*time.Millisecond)
		http20 := rawHTTP(b, gw20, size(50_000))
		report(b, "ceiling: raw HTTP POST, 20 ms gateway", http20, "req/s",
			fmt.Sprintf("(concurrency/latency = %.0f)", float64(concurrency)/0.020))
		s20 := startServer(b)
		jobs20 := pipeline(b, s20, gw20, size(50_000))
		ratio20 := jobs20 / min(jsCeiling, http20)
		report(b, "pipeline, 20 ms gateway", jobs20, "jobs/s",
			verdict(ratio20, 0.95, lowerName(jsCeiling, http20)))

		b.ReportMetric(jobs0, "jobs/s@0ms")
		b.ReportMetric(ratio0, "ratio@0ms")
		b.ReportMetric(jobs20, "jobs/s@20ms")
		b.ReportMetric(ratio20, "ratio@20ms")
	}
}

func lowerName(js, http float64) string {
	if js < http {
		return "JetStream"
	}
	return "HTTP"
}

// verdict formats a ratio to a ceiling against its target.
func verdict(ratio, target float64, ceiling string) string {
	mark := "MET"
	if ratio < target {
		mark = "MISSED"
	}
	return fmt.Sprintf("%.2f of the %s ceiling (target ≥ %.2f) %s", ratio, ceiling, target, mark)
}
