package bench

import "testing"

// BenchmarkPipelineOnly runs just the zero-latency pipeline, for profiling:
// go test -run '^$' -bench PipelineOnly -benchtime 1x -cpuprofile cpu.out ./bench/
func BenchmarkPipelineOnly(b *testing.B) {
	for b.Loop() {
		s := startServer(b)
		gw := startGateway(b, 0)
		b.ReportMetric(pipeline(b, s, gw, size(100_000)), "jobs/s")
	}
}
