package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetsms/jetsms/internal/gwsim"
)

// Settings of the backlog memory benchmark.
const (
	// backlogJobs is the backlog of the target, before BENCH_SCALE.
	backlogJobs = 1_000_000
	// rssTargetMB is the target for the worker's resident memory.
	rssTargetMB = 64
	// rssSampleEvery is how often the worker's VmRSS is read.
	rssSampleEvery = 100 * time.Millisecond
	// workerRate and workerBurst leave the rate limiter out of the way.
	workerRate  = 1_000_000
	workerBurst = 1000
	// drainTimeout bounds the drain of the whole backlog.
	drainTimeout = 30 * time.Minute
	// drainStall is the period of the progress check: a drain that accepts no job
	// from one check to the next is reported stuck.
	drainStall = 30 * time.Second
	// exitTimeout bounds the worker's exit after SIGTERM: its default grace period
	// of 20 s and some.
	exitTimeout = 40 * time.Second
	// Gateway credentials of the simulator; `jetsms worker` requires some.
	gatewayUser     = "bench"
	gatewayPassword = "bench-secret"
)

// BenchmarkBacklogMemory drains a backlog of 1,000,000 jobs on the bulk lane with
// `jetsms worker` run as a separate process, built from this module, and prints the
// worker's peak resident memory against the target (< 64 MB, MB meaning 2^20 bytes
// as /proc counts them) and the drain rate.
//
// The embedded JetStream server and the gateway simulator (0 ms latency, keeping no
// messages) run in the benchmark process, so the worker's own memory is measured
// alone: its VmRSS is read from /proc every 100 ms, and VmHWM (the kernel's own
// peak) is read just before SIGTERM. The benchmark process's peak RSS is printed for
// information. The drain is timed from the start of the worker process until every
// job's accepted event has arrived and the jobs stream is empty.
//
// Linux only. Workloads are fixed sizes, not b.N: run it with -benchtime 1x (make
// bench does). BENCH_SCALE=0.05 drains 50,000 jobs for a quick check.
func BenchmarkBacklogMemory(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc/<pid>/status (Linux)")
	}
	bin := buildJetsms(b)
	for b.Loop() {
		n := size(backlogJobs)
		fmt.Printf("\njetsms backlog memory benchmark: %d jobs on the bulk lane, embedded NATS %s, "+
			"`jetsms worker` as a process with concurrency %d and rate %d/s burst %d, gateway simulator at 0 ms keeping no messages%s\n",
			n, syncSetting(), concurrency, workerRate, workerBurst, inheritedGoEnv())
		fmt.Printf("%-44s %12s %-8s %s\n", "measurement", "value", "unit", "against")

		s := startServer(b)
		gw := startSimulator(b, gwsim.Config{Username: gatewayUser, Password: gatewayPassword, Keep: -1})
		subject := s.names.Send("bulk")

		start := time.Now()
		s.publishJobs(b, subject, n)
		published := time.Since(start)
		report(b, "publish backlog to "+subject, float64(n)/published.Seconds(), "msgs/s",
			fmt.Sprintf("(%d jobs in %.1f s)", n, published.Seconds()))

		d := drainWithWorker(b, s, gw, bin, n)
		rate := float64(n) / d.elapsed.Seconds()
		peakMB := kbToMB(d.workerPeakKB)
		report(b, "drain, jetsms worker process", rate, "jobs/s",
			fmt.Sprintf("(%d jobs in %.1f s)", n, d.elapsed.Seconds()))
		report(b, "worker peak RSS (VmRSS every 100 ms)", peakMB, "MB", rssVerdict(peakMB))
		report(b, "worker peak RSS, first half of the drain", kbToMB(d.workerPeakFirstKB), "MB", "")
		report(b, "worker peak RSS, second half of the drain", kbToMB(d.workerPeakSecondKB), "MB", "")
		report(b, "worker VmHWM before SIGTERM", kbToMB(d.workerHWMKB), "MB", rssVerdict(kbToMB(d.workerHWMKB)))
		report(b, "worker RSS when drained, anonymous", kbToMB(d.workerAnonKB), "MB",
			fmt.Sprintf("(plus %.0f MB file-backed: the binary's pages)", kbToMB(d.workerFileKB)))
		report(b, "benchmark process peak RSS (NATS, simulator)", kbToMB(d.selfPeakKB), "MB", "(for information)")

		b.ReportMetric(peakMB, "worker-peak-MB")
		b.ReportMetric(rate, "jobs/s")
	}
}

// rssVerdict compares a resident size to the target.
func rssVerdict(mb float64) string {
	mark := "MET"
	if mb >= rssTargetMB {
		mark = "MISSED"
	}
	return fmt.Sprintf("(target < %d MB) %s", rssTargetMB, mark)
}

func kbToMB(kb int64) float64 { return float64(kb) / 1024 }

// inheritedGoEnv names the Go runtime settings the worker inherits from the
// environment, and the GOFLAGS it is built with, since they change what is
// measured.
func inheritedGoEnv() string {
	var set []string
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GODEBUG", "GOMAXPROCS"} {
		if v, ok := os.LookupEnv(k); ok {
			set = append(set, k+"="+v)
		}
	}
	var out string
	if len(set) > 0 {
		out = "; worker inherits " + strings.Join(set, " ")
	}
	if v := os.Getenv("GOFLAGS"); v != "" {
		out += "; worker built with GOFLAGS=" + v
	}
	return out
}

// buildJetsms builds the jetsms command of this module into a temporary directory
// and returns the binary's path.
func buildJetsms(tb testing.TB) string {
	tb.Helper()
	// The benchmark runs in the bench package's directory; the module root is its
	// parent.
	root, err := filepath.Abs("../..")
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		tb.Fatalf("module root not found beside the bench package: %v", err)
	}
	bin := filepath.Join(tb.TempDir(), "jetsms")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/jetsms")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build ./cmd/jetsms: %v\n%s", err, out)
	}
	return bin
}

// drain is what drainWithWorker measured. Sizes are in kB as /proc gives them.
type drain struct {
	elapsed            time.Duration
	workerPeakKB       int64 // highest VmRSS sampled
	workerPeakFirstKB  int64 // highest VmRSS sampled before half the jobs were accepted
	workerPeakSecondKB int64 // highest VmRSS sampled after
	workerHWMKB        int64 // VmHWM just before SIGTERM
	workerAnonKB       int64 // RssAnon just before SIGTERM: heap, stacks, runtime
	workerFileKB       int64 // RssFile just before SIGTERM: mostly the binary's pages
	selfPeakKB         int64 // highest VmRSS of this process sampled meanwhile
}

// drainWithWorker runs `jetsms worker` against s and gw until the n jobs stored on
// the jobs stream are accepted and acked, sampling its memory, then stops it with
// SIGTERM and requires a clean exit.
func drainWithWorker(tb testing.TB, s *server, gw *gateway, bin string, n int) drain {
	tb.Helper()
	ctx := context.Background()
	accepted, done, sub := s.countAccepted(tb, n)

	logPath := filepath.Join(tb.TempDir(), "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "worker")
	cmd.Env = workerEnv(s.url, gw.url)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	before := gw.sim.Stats().Accepted
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	// On every way out, the worker is gone before the server and its temp dirs.
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	workerLog := func() string { return tail(logPath, 4096) }

	half := int64(n) / 2
	sampler := startRSSSampler(cmd.Process.Pid, func() bool { return accepted.Load() >= half })
	defer sampler.stop()

	// A drain that stops making progress fails early, with what the server, the
	// simulator and the worker's goroutines were doing.
	stalled := func(why string) {
		diag := drainState(s, gw)
		_ = cmd.Process.Signal(syscall.SIGQUIT) // the Go runtime dumps every goroutine
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		tb.Fatalf("%s: %d of %d jobs accepted (%d events dropped by the counting subscription)\n%s\nworker log, with the goroutines of jetsms's own code from its SIGQUIT dump:\n%s",
			why, accepted.Load(), n, droppedOf(sub), diag, ownGoroutines(tail(logPath, 8<<20)))
	}
	// A watchdog, not a wait: the drain itself ends on done.
	progress := time.NewTicker(drainStall)
	defer progress.Stop()
	deadline := time.After(drainTimeout)
	for last := int64(-1); ; {
		select {
		case <-done:
		case <-exited:
			tb.Fatalf("jetsms worker exited during the drain (%v) with %d of %d jobs accepted; its log:\n%s",
				waitErr, accepted.Load(), n, workerLog())
		case <-deadline:
			stalled("drain not done within " + drainTimeout.String())
		case <-progress.C:
			if now := accepted.Load(); now != last {
				last = now
				continue
			}
			stalled("no job accepted for " + drainStall.String())
		}
		break
	}
	stream, err := s.js.Stream(ctx, s.names.JobsStream())
	if err != nil {
		tb.Fatal(err)
	}
	waitEmpty(tb, stream)
	d := drain{elapsed: time.Since(start)}

	// Last reading while the worker still runs, drained and idle.
	sampler.stop()
	d.workerPeakKB, d.workerPeakFirstKB, d.workerPeakSecondKB, d.selfPeakKB =
		sampler.peak, sampler.peakFirst, sampler.peakSecond, sampler.selfPeak
	if sampler.err != nil {
		tb.Fatalf("sample worker memory: %v", sampler.err)
	}
	status, err := procStatus(strconv.Itoa(cmd.Process.Pid))
	if err != nil {
		tb.Fatalf("read worker memory before SIGTERM: %v", err)
	}
	d.workerHWMKB = status["VmHWM"]
	d.workerAnonKB, d.workerFileKB = status["RssAnon"], status["RssFile"]
	d.workerPeakKB = max(d.workerPeakKB, status["VmRSS"])

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(exitTimeout):
		tb.Fatalf("jetsms worker still running %s after SIGTERM; its log:\n%s", exitTimeout, workerLog())
	}
	if waitErr != nil {
		tb.Fatalf("jetsms worker after SIGTERM: %v (exit code 0 expected); its log:\n%s", waitErr, workerLog())
	}
	if got := gw.sim.Stats().Accepted - before; got != int64(n) {
		tb.Fatalf("gateway accepted %d messages for %d jobs", got, n)
	}
	return d
}

// workerEnv is the worker's environment: this process's, less any JETSMS_ setting
// (and JETSMS_CONFIG) a developer may have exported, plus the benchmark's settings.
func workerEnv(natsURL, gatewayURL string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JETSMS_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"JETSMS_NATS_URL="+natsURL,
		"JETSMS_GATEWAY_URL="+gatewayURL,
		"JETSMS_GATEWAY_USERNAME="+gatewayUser,
		"JETSMS_GATEWAY_PASSWORD="+gatewayPassword,
		// Callbacks need credentials (issue 12); none arrive in this benchmark.
		"JETSMS_CALLBACKS_USERNAME=gw", "JETSMS_CALLBACKS_PASSWORD=bench-callbacks",
		"JETSMS_RATE_PER_SECOND="+strconv.Itoa(workerRate),
		"JETSMS_RATE_BURST="+strconv.Itoa(workerBurst),
		"JETSMS_WORKER_CONCURRENCY="+strconv.Itoa(concurrency),
		"JETSMS_STREAMS_JOBS_MAX_BYTES="+strconv.Itoa(jobsMaxBytes),
		"JETSMS_LOG_LEVEL=warn",
		"JETSMS_LOG_FORMAT=json",
		// The admin listener (issue 12) on a free port, not 9090.
		"JETSMS_ADMIN_LISTEN=127.0.0.1:0",
	)
}

// drainState describes the jobs stream, the bulk lane's consumer and the
// simulator, for the failure message of a stuck drain.
func drainState(s *server, gw *gateway) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out strings.Builder
	if stream, err := s.js.Stream(ctx, s.names.JobsStream()); err != nil {
		fmt.Fprintf(&out, "jobs stream: %v\n", err)
	} else if info, err := stream.Info(ctx); err != nil {
		fmt.Fprintf(&out, "jobs stream: %v\n", err)
	} else {
		fmt.Fprintf(&out, "jobs stream: %d messages, %d bytes\n", info.State.Msgs, info.State.Bytes)
	}
	if cons, err := s.js.Consumer(ctx, s.names.JobsStream(), s.names.Consumer("bulk")); err != nil {
		fmt.Fprintf(&out, "bulk consumer: %v\n", err)
	} else if info, err := cons.Info(ctx); err != nil {
		fmt.Fprintf(&out, "bulk consumer: %v\n", err)
	} else {
		fmt.Fprintf(&out, "bulk consumer: pending %d, ack pending %d, redelivered %d, waiting pulls %d, delivered %d, ack floor %d\n",
			info.NumPending, info.NumAckPending, info.NumRedelivered, info.NumWaiting, info.Delivered.Consumer, info.AckFloor.Consumer)
	}
	st := gw.sim.Stats()
	fmt.Fprintf(&out, "simulator: %d requests, %d accepted, %d rejected, %d unauthorized, faults %v",
		st.Requests, st.Accepted, st.Rejected, st.Unauthorized, st.Faults)
	return out.String()
}

// ownGoroutines shortens a log that ends in a Go goroutine dump to its log lines and
// the goroutines running jetsms's own code, at most 64 KiB of them.
func ownGoroutines(log string) string {
	var out strings.Builder
	for block := range strings.SplitSeq(log, "\n\n") {
		if strings.HasPrefix(block, "goroutine ") && !strings.Contains(block, "github.com/jetsms/jetsms/") {
			continue
		}
		if out.Len()+len(block) > 64<<10 {
			out.WriteString("[...]\n")
			break
		}
		out.WriteString(block)
		out.WriteString("\n\n")
	}
	return out.String()
}

// droppedOf is how many messages the subscription dropped as a slow consumer, or -1
// when that cannot be told.
func droppedOf(sub *nats.Subscription) int {
	n, err := sub.Dropped()
	if err != nil {
		return -1
	}
	return n
}

// rssSampler reads the resident size of a process and of this one every
// rssSampleEvery and keeps the peaks. Its fields may be read after stop returns.
type rssSampler struct {
	quit     chan struct{}
	finished chan struct{}

	peak       int64 // kB
	peakFirst  int64 // kB, while secondHalf reported false
	peakSecond int64 // kB, once it reported true
	selfPeak   int64 // kB
	err        error // the first failed reading of the process
}

// startRSSSampler samples pid until stop. secondHalf says which half of the drain
// a sample belongs to.
func startRSSSampler(pid int, secondHalf func() bool) *rssSampler {
	r := &rssSampler{quit: make(chan struct{}), finished: make(chan struct{})}
	id := strconv.Itoa(pid)
	go func() {
		defer close(r.finished)
		// Sampling at a fixed period, not waiting for an event: a ticker is the tool.
		tick := time.NewTicker(rssSampleEvery)
		defer tick.Stop()
		r.sample(id, secondHalf())
		for {
			select {
			case <-r.quit:
				r.sample(id, secondHalf())
				return
			case <-tick.C:
				r.sample(id, secondHalf())
			}
		}
	}()
	return r
}

func (r *rssSampler) sample(pid string, secondHalf bool) {
	if self, err := procStatus("self"); err == nil {
		r.selfPeak = max(r.selfPeak, self["VmRSS"])
	}
	if r.err != nil {
		return
	}
	st, err := procStatus(pid)
	if err != nil {
		r.err = err
		return
	}
	rss := st["VmRSS"]
	r.peak = max(r.peak, rss)
	if secondHalf {
		r.peakSecond = max(r.peakSecond, rss)
	} else {
		r.peakFirst = max(r.peakFirst, rss)
	}
}

// stop takes one last sample and stops sampling; it is safe to call more than once.
func (r *rssSampler) stop() {
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	<-r.finished
}

// procStatus reads the kB figures (VmRSS, VmHWM...) of /proc/<pid>/status; pid may
// be "self".
func procStatus(pid string) (map[string]int64, error) {
	data, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		value, isKB := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !ok || !isKB {
			continue
		}
		if kb, err := strconv.ParseInt(value, 10, 64); err == nil {
			out[key] = kb
		}
	}
	if _, ok := out["VmRSS"]; !ok {
		return nil, errors.New("/proc/" + pid + "/status: no VmRSS (the process has exited)")
	}
	return out, nil
}

// tail returns the last n bytes of a file, for failure messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > n {
		_, _ = f.Seek(st.Size()-n, 0)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(f)
	return buf.String()
}
