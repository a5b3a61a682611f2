package bench

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// BenchmarkPipelineOnly runs just the zero-latency reference loop and pipeline,
// with the server and the gateway as processes, for profiling: run it alone with
// -benchtime 1x and BENCH_PROFILE=<dir>, which gets CPU profiles of the worker
// process and of the server for each (make bench leaves it out). BENCH_LATENCY
// sets the gateway's latency (default 0, e.g. 20ms).
func BenchmarkPipelineOnly(b *testing.B) {
	for b.Loop() {
		s := startServerProcess(b)
		latency, _ := time.ParseDuration(os.Getenv("BENCH_LATENCY"))
		gw := startGatewayProcess(b, latency)
		ref := reference(b, s, gw, size(50_000), "reference-0ms")
		reportCPU(b, fmt.Sprintf("reference loop: %.0f jobs/s", ref.rate), ref, "")
		write := storedWrite(b, s, size(100_000))
		reportCPU(b, "stored write, pipelined", write, "")
		guardFloor(b, ref, write)
		r := runPipeline(b, s, gw, size(100_000), "pipeline-0ms")
		reportCPU(b, fmt.Sprintf("pipeline: %.0f jobs/s", r.rate), r,
			fmt.Sprintf("%.2f× the reference's CPU, %.2f of its rate", float64(r.cpu())/float64(ref.cpu()), r.rate/ref.rate))
		fmt.Printf("submission slot: claim %.2f ms + gateway request %.2f ms\n", ms(r.claim), ms(r.request))
		b.ReportMetric(r.rate, "jobs/s")
	}
}
