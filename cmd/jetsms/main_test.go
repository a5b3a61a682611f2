package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// runMainEnv, set to 1, makes the test binary run as the jetsms program: the tests
// re-execute it to test what is about a process (exit codes, signals, logs on a
// pipe, the environment).
const runMainEnv = "JETSMS_TEST_RUN_MAIN"

// Timeouts of the waits on a subprocess. They are generous because the binary is
// built with -race and the machine may be busy; a passing run takes a fraction.
const (
	startTimeout = 30 * time.Second // until `jetsms run` logs that it runs
	exitTimeout  = 15 * time.Second // until a process told to stop has exited
)

// orphanExitCode is the exit code of a subprocess whose test process went away.
const orphanExitCode = 86

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		// The test holds this process's stdin open; it closes when the test
		// process ends, even when it is killed before its cleanup has run (go
		// test -timeout), and this process then ends too instead of leaking.
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(orphanExitCode)
		}()
		main() // exits
		return
	}
	// The tests choose every setting themselves: JETSMS_* variables of the shell
	// that runs them must not reach the in-process commands or the subprocesses.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "JETSMS_") {
			_ = os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}

// result is what one in-process run of the program gave.
type result struct {
	code           int
	stdout, stderr string
}

// runJetsms runs the program in this process with args, as `jetsms args...`.
func runJetsms(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// proc is the test binary running as `jetsms`. Its stderr is read line by line as
// it comes; its stdout is kept whole.
type proc struct {
	cmd    *exec.Cmd
	stdout lockedBuffer
	exited chan struct{} // closed once the process has exited and stderr is read

	mu    sync.Mutex
	lines []string      // stderr so far, one entry per line
	grew  chan struct{} // closed and replaced on each new line and at exit
	code  int           // exit code, once exited; -1 when killed by a signal
	done  bool
}

// startJetsms starts `jetsms args...` in a temporary working directory with env
// added to this process's environment. The process is killed, if still running, at
// cleanup; its stderr is logged when the test failed, and a data race it reported
// fails the test.
func startJetsms(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	p := &proc{cmd: exec.Command(exe, args...), exited: make(chan struct{}), grew: make(chan struct{})}
	// The admin listener on a free port unless the test names one: processes of
	// parallel tests would otherwise all ask for 127.0.0.1:9090.
	p.cmd.Env = append(append(os.Environ(), runMainEnv+"=1", "JETSMS_ADMIN_LISTEN=127.0.0.1:0"), env...)
	p.cmd.Dir = t.TempDir() // a relative default such as ./data lands here
	p.cmd.Stdout = &p.stdout
	// Kept open, and never written to, for as long as this process lives; see
	// TestMain. exec closes it after Wait.
	_, err = p.cmd.StdinPipe()
	require.NoError(t, err)
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go p.read(stderr)

	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			select {
			case <-p.exited:
			case <-time.After(exitTimeout):
				t.Errorf("jetsms %v (pid %d) did not exit after SIGKILL", args, p.cmd.Process.Pid)
			}
		}
		lines := p.output()
		if t.Failed() {
			t.Logf("stderr of jetsms %s:\n%s", strings.Join(args, " "), strings.Join(lines, "\n"))
		}
		require.False(t, slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "WARNING: DATA RACE") }),
			"jetsms %v reported a data race", args)
	})
	return p
}

// read collects stderr until EOF, then reaps the process. exec requires every read
// from the pipe to be done before Wait.
func (p *proc) read(stderr io.Reader) {
	r := bufio.NewReader(stderr)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			p.mu.Lock()
			p.lines = append(p.lines, strings.TrimSuffix(line, "\n"))
			close(p.grew)
			p.grew = make(chan struct{})
			p.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	err := p.cmd.Wait()
	code := 0
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			code = exitErr.ExitCode()
		} else {
			code = -1
		}
	}
	p.mu.Lock()
	p.code, p.done = code, true
	close(p.grew)
	p.grew = make(chan struct{})
	p.mu.Unlock()
	close(p.exited)
}

// output returns the stderr lines read so far.
func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// logLine is one JSON log line.
type logLine map[string]any

// str returns a string field, or "" when it is missing or not a string.
func (l logLine) str(key string) string {
	s, _ := l[key].(string)
	return s
}

// waitLog waits for the first JSON log line whose message is msg and returns it.
// The test fails when the process exits without logging it, or after timeout.
func (p *proc) waitLog(t *testing.T, timeout time.Duration, msg string) logLine {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for seen := 0; ; {
		p.mu.Lock()
		fresh, grew, done, code := slices.Clone(p.lines[seen:]), p.grew, p.done, p.code
		p.mu.Unlock()
		for _, raw := range fresh {
			var l logLine
			if json.Unmarshal([]byte(raw), &l) == nil && l.str("msg") == msg {
				return l
			}
		}
		seen += len(fresh)
		if done {
			require.FailNowf(t, "no log line", "jetsms exited with code %d without logging %q", code, msg)
		}
		select {
		case <-grew:
		case <-deadline.C:
			require.FailNowf(t, "no log line", "jetsms did not log %q within %s", msg, timeout)
		}
	}
}

// wait waits for the process to exit and returns its exit code; the test fails
// after timeout.
func (p *proc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		require.FailNowf(t, "still running", "jetsms did not exit within %s", timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// waitStdout waits until the process's standard output contains s. The test fails
// when the process exits without printing it, or after timeout.
func (p *proc) waitStdout(t *testing.T, timeout time.Duration, s string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		out, grew := p.stdout.snapshot()
		if strings.Contains(out, s) {
			return
		}
		select {
		case <-grew:
		case <-p.exited:
			if out, _ := p.stdout.snapshot(); !strings.Contains(out, s) {
				require.FailNowf(t, "not printed", "jetsms exited without printing %q; it printed:\n%s", s, out)
			}
			return
		case <-deadline.C:
			require.FailNowf(t, "not printed", "jetsms did not print %q within %s; it printed:\n%s", s, timeout, out)
		}
	}
}

// lockedBuffer is a bytes.Buffer that exec's copying goroutine and a test may use
// at once.
type lockedBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	grew chan struct{} // closed and replaced on each write
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grew != nil {
		close(b.grew)
		b.grew = nil
	}
	return b.buf.Write(p)
}

// snapshot returns what was written so far and a channel closed at the next write.
func (b *lockedBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.grew == nil {
		b.grew = make(chan struct{})
	}
	return b.buf.String(), b.grew
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
