package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/campaign"
)

// Settings of the campaign benchmark.
const (
	// campaignRows is the recipients file of the target, before
	// BENCH_SCALE.
	campaignRows = 1_000_000
	// campaignRatioTarget is the target for rows/s from CSV into
	// JetStream, as a share of the raw async publish rate of the same run.
	campaignRatioTarget = 0.50
	// campaignRSSTargetMB is the target for the publisher's memory.
	campaignRSSTargetMB = 100
	// campaignTemplate uses two columns besides the destination.
	campaignTemplate = "Kia ora {{.name}}, your spring code is {{.code}}. Reply STOP to opt out"
	// campaignTimeout bounds one publish of the whole file.
	campaignTimeout = 20 * time.Minute
)

// BenchmarkCampaignPublish writes a recipients file of 1,000,000 rows to a temporary
// file and prints, from one run on one machine:
//
//   - the raw JetStream async publish rate: the same number of jobs, pre-built,
//     published with the campaign publisher's window of outstanding PubAcks;
//   - rows/s from the CSV file into JetStream with campaign.Publisher in this
//     process, and its ratio to the raw rate against the target (≥ 0.50);
//   - `jetsms campaign send` run as a separate process, built from this module:
//     its rows/s, and its peak resident memory against the target (< 100 MB, MB
//     meaning 2^20 bytes as /proc counts them), sampled from /proc every 100 ms,
//     and its VmHWM (the kernel's own peak) read just before it exits.
//
// The embedded JetStream server runs in the benchmark process; its stream is purged
// between the measurements. Linux only (for /proc). Run with -benchtime 1x;
// BENCH_SCALE=0.1 publishes 100,000 rows for a quick look.
func BenchmarkCampaignPublish(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("needs /proc/<pid>/status (Linux)")
	}
	bin := buildJetsms(b)
	for b.Loop() {
		n := size(campaignRows)
		file, fileBytes := writeRecipients(b, n)
		fmt.Printf("\njetsms campaign benchmark: %d-row recipients file (%.0f MB), template of 2 columns, embedded NATS %s, publish window %d%s\n",
			n, float64(fileBytes)/(1<<20), syncSetting(), campaign.WindowDefault, inheritedGoEnv())
		fmt.Printf("%-44s %12s %-8s %s\n", "measurement", "value", "unit", "against")

		s := startServer(b)
		raw := rawAsyncPublish(b, s, n)
		report(b, "ceiling: raw JetStream async publish", raw, "msgs/s", fmt.Sprintf("(%d outstanding PubAcks at most)", campaign.WindowDefault))
		purgeJobs(b, s)

		rate := publishCampaign(b, s, file, n)
		report(b, "campaign publish, CSV to JetStream", rate, "rows/s", verdict(rate/raw, campaignRatioTarget, "raw async publish"))
		purgeJobs(b, s)

		p := campaignProcess(b, s, bin, file, n)
		procRate := float64(n) / p.elapsed.Seconds()
		peakMB := kbToMB(p.peakKB)
		report(b, "jetsms campaign send process", procRate, "rows/s", fmt.Sprintf("(%.2f of raw; process start to exit)", procRate/raw))
		report(b, "campaign send peak RSS (VmRSS every 100 ms)", peakMB, "MB", campaignRSSVerdict(peakMB))
		report(b, "campaign send VmHWM at exit", kbToMB(p.hwmKB), "MB", campaignRSSVerdict(kbToMB(p.hwmKB)))

		b.ReportMetric(rate, "rows/s")
		b.ReportMetric(rate/raw, "ratio")
		b.ReportMetric(peakMB, "send-peak-MB")
	}
}

func campaignRSSVerdict(mb float64) string {
	mark := "MET"
	if mb >= campaignRSSTargetMB {
		mark = "MISSED"
	}
	return fmt.Sprintf("(target < %d MB) %s", campaignRSSTargetMB, mark)
}

// writeRecipients writes n rows to a temporary CSV file and returns its path and
// size.
func writeRecipients(tb testing.TB, n int) (string, int64) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "recipients.csv")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintln(w, "destination,name,code")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "+6421%08d,Person %d,%06d\n", i, i, i%1_000_000)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path, st.Size()
}

// rawAsyncPublish publishes n pre-built jobs of a campaign's size with
// Nats-Msg-Id set, keeping at most the campaign window of PubAcks outstanding as
// the publisher does: JetStream's ceiling for a campaign.
func rawAsyncPublish(tb testing.TB, s *server, n int) float64 {
	tb.Helper()
	subject, err := s.names.SendCampaign("bulk", "raw")
	if err != nil {
		tb.Fatal(err)
	}
	msgs := make([]*nats.Msg, 0, 1024)
	for i := range 1024 {
		id := campaign.JobID("raw", i+1)
		body := fmt.Sprintf(`{"id":%q,"destination":"+6421%08d","content":"Kia ora Person %d, your spring code is %06d. Reply STOP to opt out"}`, id, i, i, i)
		msgs = append(msgs, &nats.Msg{Subject: subject, Data: []byte(body)})
	}
	window := make([]jetstream.PubAckFuture, 0, campaign.WindowDefault)
	head := 0
	wait := func(f jetstream.PubAckFuture) {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			tb.Fatal(err)
		case <-time.After(time.Minute):
			tb.Fatal("no PubAck within a minute")
		}
	}
	start := time.Now()
	for i := range n {
		if len(window)-head >= campaign.WindowDefault {
			wait(window[head])
			head++
			if head == len(window) {
				window, head = window[:0], 0
			} else if head >= 4096 {
				window = window[:copy(window, window[head:])]
				head = 0
			}
		}
		tmpl := msgs[i%len(msgs)]
		m := &nats.Msg{Subject: tmpl.Subject, Data: tmpl.Data,
			Header: nats.Header{jetstream.MsgIDHeader: []string{"raw:" + strconv.Itoa(i+1)}}}
		f, err := s.js.PublishMsgAsync(m)
		if err != nil {
			tb.Fatal(err)
		}
		window = append(window, f)
	}
	for _, f := range window[head:] {
		wait(f)
	}
	return float64(n) / time.Since(start).Seconds()
}

// publishCampaign publishes the file with campaign.Publisher in this process and
// returns its rows/s.
func publishCampaign(tb testing.TB, s *server, path string, n int) float64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), campaignTimeout)
	defer cancel()
	store, err := campaign.Open(ctx, s.js, campaign.StoreConfig{Bucket: s.names.CampaignBucket()})
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := campaign.NewPublisher(campaign.PublisherConfig{Names: s.names, Store: store}, s.js, nil)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	res, err := pub.Send(ctx, campaign.Spec{Name: "bench", Lane: "bulk", Template: campaignTemplate}, f)
	if err != nil {
		tb.Fatal(err)
	}
	elapsed := time.Since(start)
	if res.Published != n || res.BadRows != 0 {
		tb.Fatalf("published %d jobs with %d bad rows from %d rows", res.Published, res.BadRows, n)
	}
	requireStored(tb, s, n)
	return float64(n) / elapsed.Seconds()
}

// campaignRun is what campaignProcess measured; sizes in kB as /proc gives them.
type campaignRun struct {
	elapsed time.Duration
	peakKB  int64
	hwmKB   int64
}

// campaignProcess runs `jetsms campaign send` on the file against s, sampling its
// memory until it exits.
func campaignProcess(tb testing.TB, s *server, bin, path string, n int) campaignRun {
	tb.Helper()
	logPath := filepath.Join(tb.TempDir(), "send.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "campaign", "send", "--name", "bench-process", "--file", path,
		"--template", campaignTemplate, "--lane", "bulk")
	cmd.Env = workerEnv(s.url, "sandbox")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	sampler := startRSSSampler(cmd.Process.Pid, func() bool { return false })
	// The process exits when done, so its VmHWM cannot be read after the work:
	// it is sampled alongside VmRSS, and the last reading kept.
	hwm := startHWMSampler(cmd.Process.Pid)
	var waitErr error
	select {
	case waitErr = <-exited:
	case <-time.After(campaignTimeout):
		_ = cmd.Process.Kill()
		<-exited
		tb.Fatalf("jetsms campaign send not done within %s; its output:\n%s", campaignTimeout, tail(logPath, 4096))
	}
	run := campaignRun{elapsed: time.Since(start)}
	sampler.stop()
	run.peakKB = sampler.peak
	run.hwmKB = hwm.stop()
	if waitErr != nil {
		tb.Fatalf("jetsms campaign send: %v; its output:\n%s", waitErr, tail(logPath, 4096))
	}
	requireStored(tb, s, n)
	return run
}

// hwmSampler keeps the last VmHWM read from a process, every rssSampleEvery.
type hwmSampler struct {
	quit, finished chan struct{}
	kb             int64
}

func startHWMSampler(pid int) *hwmSampler {
	h := &hwmSampler{quit: make(chan struct{}), finished: make(chan struct{})}
	id := strconv.Itoa(pid)
	go func() {
		defer close(h.finished)
		tick := time.NewTicker(rssSampleEvery)
		defer tick.Stop()
		for {
			if st, err := procStatus(id); err == nil {
				h.kb = max(h.kb, st["VmHWM"])
			}
			select {
			case <-h.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *hwmSampler) stop() int64 {
	close(h.quit)
	<-h.finished
	return h.kb
}

// requireStored checks that the jobs stream holds exactly n jobs.
func requireStored(tb testing.TB, s *server, n int) {
	tb.Helper()
	stream, err := s.js.Stream(context.Background(), s.names.JobsStream())
	if err != nil {
		tb.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if info.State.Msgs != uint64(n) {
		tb.Fatalf("the jobs stream holds %d jobs for %d rows", info.State.Msgs, n)
	}
}

// purgeJobs empties the jobs stream between measurements.
func purgeJobs(tb testing.TB, s *server) {
	tb.Helper()
	stream, err := s.js.Stream(context.Background(), s.names.JobsStream())
	if err != nil {
		tb.Fatal(err)
	}
	if err := stream.Purge(context.Background()); err != nil {
		tb.Fatal(err)
	}
}
