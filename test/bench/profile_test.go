package bench

import "testing"

// BenchmarkPipelineOnly runs just the zero-latency pipeline, for profiling: run it
// alone with -benchtime 1x and -cpuprofile (make bench leaves it out).
func BenchmarkPipelineOnly(b *testing.B) {
	for b.Loop() {
		s := startServer(b)
		gw := startGateway(b, 0)
		b.ReportMetric(pipeline(b, s, gw, size(100_000)), "jobs/s")
	}
}
