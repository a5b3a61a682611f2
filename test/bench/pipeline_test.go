package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPipeline prints, from one run on one machine: end-to-end jobs/s at zero
// and at 20 ms gateway latency, beside a plain consume → POST → ack loop (the
// reference, see reference) and the raw JetStream consume+ack and raw HTTP POST
// ceilings, all measured in the same run, with the CPU time per job of the
// consuming process and of the NATS server. The targets: at 0 ms, jobs/s at least
// 0.80 of the reference's and CPU per job (worker + server) at most 1.6 times the
// reference's; at 20 ms, at least 0.95 of the lower ceiling.
//
// The NATS server and the gateway simulator run as child processes (see
// TestMain), so that each process's own accounting gives its CPU: the worker's
// (this process: getrusage) holds neither the server's nor the gateway's.
//
// Workloads are fixed sizes, not b.N: run it with -benchtime 1x (make bench does).
// BENCH_SCALE=0.1 runs a tenth of each workload for a quick look; BENCH_PROFILE=dir
// writes CPU profiles of the worker process and of the server for each measurement.
func BenchmarkPipeline(b *testing.B) {
	for b.Loop() {
		fmt.Printf("\njetsms pipeline benchmark: NATS server as a process %s, concurrency %d, rate unlimited\n",
			syncSetting(), concurrency)
		fmt.Println("CPU per job: the worker process from getrusage(RUSAGE_SELF), the NATS server process from /proc/<pid>/stat,")
		fmt.Println("over the time from the consumer's start to the last ack; the gateway simulator is a third process.")
		fmt.Printf("%-44s %12s %-8s %s\n", "measurement", "value", "unit", "against")

		// Zero gateway latency: the ceilings first, then the reference loop and the
		// pipeline.
		s := startServerProcess(b)
		jsCeiling := rawConsume(b, s, size(200_000))
		report(b, "ceiling: raw JetStream consume+ack", jsCeiling, "msgs/s", "")
		gw0 := startGatewayProcess(b, 0)
		http0 := rawHTTP(b, gw0, size(200_000))
		report(b, "ceiling: raw HTTP POST, 0 ms gateway", http0, "req/s", "")
		ref0 := reference(b, s, gw0, size(100_000), "reference-0ms")
		report(b, "reference loop (consume → POST → ack), 0 ms", ref0.rate, "jobs/s",
			fmt.Sprintf("%.2f of the %s ceiling", ref0.rate/min(jsCeiling, http0), lowerName(jsCeiling, http0)))
		reportCPU(b, "  CPU per job, reference loop", ref0, "")
		write := storedWrite(b, s, size(200_000))
		reportCPU(b, "  CPU per stored write, pipelined", write, "(a KV put of a ledger entry's size)")
		guardFloor(b, ref0, write)
		jobs0 := runPipeline(b, s, gw0, size(200_000), "pipeline-0ms")
		ratio0 := jobs0.rate / ref0.rate
		report(b, "pipeline, 0 ms gateway", jobs0.rate, "jobs/s",
			verdictOf(ratio0, "≥", 0.80, "of the reference loop's")+
				fmt.Sprintf("; %.2f of the %s ceiling", jobs0.rate/min(jsCeiling, http0), lowerName(jsCeiling, http0)))
		cpuRatio := float64(jobs0.cpu()) / float64(ref0.cpu())
		reportCPU(b, "  CPU per job, pipeline", jobs0, verdictOf(cpuRatio, "≤", 1.6, "times the reference loop's"))

		// 20 ms gateway latency: concurrency ÷ latency bounds both.
		gw20 := startGatewayProcess(b, 20*time.Millisecond)
		http20 := rawHTTP(b, gw20, size(50_000))
		report(b, "ceiling: raw HTTP POST, 20 ms gateway", http20, "req/s",
			fmt.Sprintf("(concurrency/latency = %.0f)", float64(concurrency)/0.020))
		s20 := startServerProcess(b)
		ref20 := reference(b, s20, gw20, size(25_000), "reference-20ms")
		report(b, "reference loop, 20 ms gateway", ref20.rate, "jobs/s",
			fmt.Sprintf("%.2f of the %s ceiling", ref20.rate/min(jsCeiling, http20), lowerName(jsCeiling, http20)))
		reportCPU(b, "  CPU per job, reference loop", ref20, "")
		jobs20 := runPipeline(b, s20, gw20, size(50_000), "pipeline-20ms")
		ratio20 := jobs20.rate / min(jsCeiling, http20)
		report(b, "pipeline, 20 ms gateway", jobs20.rate, "jobs/s",
			verdictOf(ratio20, "≥", 0.95, "of the "+lowerName(jsCeiling, http20)+" ceiling"))
		reportCPU(b, "  CPU per job, pipeline", jobs20, fmt.Sprintf("%.2f times the reference loop's", float64(jobs20.cpu())/float64(ref20.cpu())))
		// A slot holds the claim and the request: against a raw POST's slot, the
		// target leaves 1/0.95 − 1 of it for everything else.
		rawSlot := time.Duration(float64(concurrency) / http20 * float64(time.Second))
		report2(b, "  submission slot: claim + gateway request", ms(jobs20.claim+jobs20.request), "ms",
			fmt.Sprintf("(%.2f + %.2f); a raw POST's slot %.2f ms (concurrency ÷ ceiling), the 0.95 target allows a slot of %.2f ms",
				ms(jobs20.claim), ms(jobs20.request), ms(rawSlot), ms(rawSlot)/0.95))

		b.ReportMetric(jobs0.rate, "jobs/s@0ms")
		b.ReportMetric(ratio0, "ref-ratio@0ms")
		b.ReportMetric(cpuRatio, "cpu-ratio@0ms")
		b.ReportMetric(float64(jobs0.cpu().Microseconds()), "cpu-µs/job@0ms")
		b.ReportMetric(jobs20.rate, "jobs/s@20ms")
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
	return verdictOf(ratio, "≥", target, "of the "+ceiling+" ceiling")
}

// verdictOf formats a ratio against a target that it must reach (≥) or not
// exceed (≤).
func verdictOf(ratio float64, cmp string, target float64, what string) string {
	met := ratio >= target
	if cmp == "≤" {
		met = ratio <= target
	}
	mark := "MET"
	if !met {
		mark = "MISSED"
	}
	return fmt.Sprintf("%.2f %s (target %s %.2f) %s", ratio, what, cmp, target, mark)
}

// reportCPU prints a measurement's CPU per job: worker + server.
func reportCPU(tb testing.TB, name string, r result, against string) {
	tb.Helper()
	report(tb, name, float64(r.cpu().Microseconds()), "µs/job",
		fmt.Sprintf("(worker %d + server %d) %s", r.worker.Microseconds(), r.server.Microseconds(), against))
}
