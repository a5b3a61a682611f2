package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/gwsim"
)

// The benchmarks that report CPU per job run the NATS server and the gateway
// simulator as child processes: the test binary started again with childEnv set
// (TestMain runs the child instead of the benchmarks). Each process then has its
// own CPU accounting — the server's and the gateway's from /proc/<pid>/stat, the
// worker's (the benchmark process) from getrusage(RUSAGE_SELF) — so the worker's
// figure holds neither the server's work nor the gateway's.
const (
	childEnv        = "JETSMS_BENCH_CHILD" // "nats" or "gateway"
	childDirEnv     = "JETSMS_BENCH_CHILD_DIR"
	childLatencyEnv = "JETSMS_BENCH_CHILD_LATENCY"
)

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "nats":
		os.Exit(natsChild())
	case "gateway":
		os.Exit(gatewayChild())
	}
	os.Exit(m.Run())
}

// natsChild runs an embedded server (the settings of startServer) until its
// stdin closes, printing its URL first. It answers the commands of serveChild.
func natsChild() int {
	emb, err := broker.StartEmbedded(broker.EmbeddedConfig{
		StoreDir: os.Getenv(childDirEnv), Listen: "127.0.0.1:0", SyncInterval: syncInterval, SyncAlways: syncAlways(),
		NoAuth: true,
	}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer emb.Stop()
	serveChild(emb.ClientURL(), nil)
	return 0
}

// gatewayChild runs a simulator that keeps no messages, with the latency of
// childLatencyEnv, until its stdin closes.
func gatewayChild() int {
	latency, _ := time.ParseDuration(os.Getenv(childLatencyEnv))
	sim, err := gwsim.New(gwsim.Config{Latency: latency, Keep: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sim.Close()
	srv := httptest.NewServer(sim)
	defer srv.Close()
	serveChild(srv.URL+gwsim.BasePath, func() int64 { return sim.Stats().Accepted })
	return 0
}

// serveChild prints url, then answers commands on stdin, one a line, until it closes:
// "profile <file>" starts a CPU profile, "stop" ends it, "accepted" prints the
// gateway's accepted count. Each is answered with one line.
func serveChild(url string, accepted func() int64) {
	signal.Ignore(syscall.SIGINT) // the parent ends it by closing stdin
	fmt.Println(url)
	in := bufio.NewScanner(os.Stdin)
	var prof *os.File
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "profile":
			f, err := os.Create(arg)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			prof = f
			fmt.Println(errText(err))
		case "stop":
			if prof != nil {
				pprof.StopCPUProfile()
				prof.Close()
				prof = nil
			}
			fmt.Println("ok")
		case "accepted":
			if accepted == nil {
				fmt.Println(-1)
				continue
			}
			fmt.Println(accepted())
		default:
			fmt.Println("unknown command")
		}
	}
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
}

func errText(err error) string {
	if err != nil {
		return err.Error()
	}
	return "ok"
}

// child is a running child process of the benchmark.
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	url string
}

// startChild starts the test binary again as a child of kind with extra
// environment; it ends with the test.
func startChild(tb testing.TB, kind string, env ...string) *child {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + kind}, env...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	tb.Cleanup(func() {
		_ = in.Close() // the child stops when its stdin closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if !c.out.Scan() {
		tb.Fatalf("%s child printed no URL", kind)
	}
	c.url = c.out.Text()
	return c
}

// call sends one command and returns its one-line answer.
func (c *child) call(tb testing.TB, command string) string {
	tb.Helper()
	if _, err := fmt.Fprintln(c.in, command); err != nil {
		tb.Fatal(err)
	}
	if !c.out.Scan() {
		tb.Fatalf("child gave no answer to %q", command)
	}
	return c.out.Text()
}

// cpu is the child's CPU time so far (user + system), from /proc/<pid>/stat.
func (c *child) cpu(tb testing.TB) time.Duration {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name (field 2) may hold spaces: count fields after its ')'.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	// utime and stime are fields 14 and 15 of the line, 12 and 13 after ')',
	// in clock ticks: USER_HZ, 100 on Linux.
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// selfCPU is this process's CPU time so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startServerProcess starts a NATS server as a child process, with the
// contract's streams.
func startServerProcess(tb testing.TB) *server {
	tb.Helper()
	c := startChild(tb, "nats", childDirEnv+"="+tb.TempDir())
	s := connectServer(tb, c.url)
	s.proc = c
	return s
}

// startGatewayProcess starts a simulator with latency as a child process.
func startGatewayProcess(tb testing.TB, latency time.Duration) *gateway {
	tb.Helper()
	c := startChild(tb, "gateway", childLatencyEnv+"="+latency.String())
	// Wait until it answers.
	resp, err := http.Get(strings.TrimSuffix(c.url, gwsim.BasePath) + "/healthz")
	if err == nil {
		resp.Body.Close()
	}
	return &gateway{url: c.url, proc: c}
}

// accepted is how many messages the gateway accepted so far.
func (gw *gateway) accepted(tb testing.TB) int64 {
	tb.Helper()
	if gw.proc == nil {
		return gw.sim.Stats().Accepted
	}
	n, err := strconv.ParseInt(gw.proc.call(tb, "accepted"), 10, 64)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// profileDir, when BENCH_PROFILE names a directory, is where the benchmarks
// that run the server as a process write CPU profiles of the worker process
// and of the server: <name>-worker.pprof, <name>-server.pprof.
func profileDir() string { return os.Getenv("BENCH_PROFILE") }

// profile starts CPU profiles of this process and of the server for one
// measurement named name; the returned func stops them.
func profile(tb testing.TB, s *server, name string) func() {
	tb.Helper()
	dir := profileDir()
	if dir == "" || s.proc == nil {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, name+"-worker.pprof"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		// -cpuprofile holds the profiler already.
		f.Close()
		f = nil
	}
	if got := s.proc.call(tb, "profile "+filepath.Join(dir, name+"-server.pprof")); got != "ok" {
		tb.Fatalf("server profile: %s", got)
	}
	return func() {
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
		s.proc.call(tb, "stop")
	}
}
