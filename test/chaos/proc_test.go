//go:build linux

package chaos

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Waits on a process.
const (
	// startTimeout bounds the wait for "jetsms running" or the NATS server's
	// "Server is ready".
	startTimeout = 60 * time.Second
	// killTimeout bounds the wait for a killed process to be reaped.
	killTimeout = 10 * time.Second
	// stopTimeout bounds a graceful stop: the grace period the rig gives the
	// worker and some.
	stopTimeout = workerGrace + 20*time.Second
	// tailLines is how many of a process's last log lines a failure shows.
	tailLines = 60
	// stderrReadBufSize is the read buffer of a process's stderr.
	stderrReadBufSize = 64 << 10
)

// Log messages of jetsms the cases wait for.
const (
	msgRunning       = "jetsms running"
	msgDisconnected  = "disconnected from NATS"
	msgReconnected   = "reconnected to NATS"
	msgCircuitOpen   = "gateway circuit open: no jobs are taken; they stay queued"
	msgCircuitClosed = "gateway circuit closed: the gateway takes submissions again"
)

// The levels of jetsms log lines that are counted for the summary.
const (
	levelError = "error"
	levelWarn  = "warn"
)

// proc is a process the rig runs: a `jetsms worker` or the NATS server. Its
// stderr is read as it comes: kept whole in a file, the message of every line in
// memory (to wait for one), and the last lines for failure reports. jetsms logs
// JSON lines, whose "msg" is the message; any other line is its own message.
type proc struct {
	name   string // "worker 2", "nats-server 1"
	cmd    *exec.Cmd
	exited chan struct{} // closed once stderr is read to the end and the process reaped

	mu      sync.Mutex
	msgs    []string       // the message of every line, in order
	tail    []string       // the last tailLines raw lines
	grew    chan struct{}  // closed and replaced on each new line and at exit
	issues  map[string]int // warn and error messages of JSON lines, counted
	waitErr error
	cpu     time.Duration // user and system time, once exited
}

// startProc starts bin with args and env added to a clean environment, in its
// own temporary working directory, and writes its stderr (and stdout) to
// logPath. The process dies with the test process (SIGKILL from the kernel) and
// is killed at cleanup if still running.
func startProc(t *testing.T, name, logPath, bin string, env, args []string) *proc {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s log: %v", name, err)
	}
	p := &proc{
		name:   name,
		cmd:    exec.Command(bin, args...),
		exited: make(chan struct{}),
		grew:   make(chan struct{}),
		issues: map[string]int{},
	}
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Dir = t.TempDir()
	// A test binary killed before its cleanup (go test -timeout) takes its
	// processes with it.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		_ = logFile.Close()
		t.Fatalf("%s stderr: %v", name, err)
	}
	p.cmd.Stdout = p.cmd.Stderr // one pipe for both
	if err := p.cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go p.read(stderr, logFile)
	t.Cleanup(func() {
		if err := p.kill(); err != nil {
			t.Errorf("%s: %v", p.name, err)
		}
	})
	return p
}

// startWorker starts `jetsms worker args...` and waits until it logs that it
// runs.
func startWorker(t *testing.T, name, logPath string, env, args []string) *proc {
	t.Helper()
	p := startProc(t, name, logPath, jetsmsBin, env, append([]string{"worker"}, args...))
	if _, err := p.waitLog(0, msgRunning, startTimeout); err != nil {
		t.Fatalf("%s: %v\n%s", p.name, err, p.tailText())
	}
	return p
}

// cleanEnv is this process's environment without JETSMS_* variables: the cases
// choose every setting.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JETSMS_") {
			env = append(env, kv)
		}
	}
	return env
}

// read takes stderr line by line until EOF, then reaps the process. exec wants
// every read from the pipe done before Wait.
func (p *proc) read(stderr io.Reader, logFile *os.File) {
	defer close(p.exited)
	r := bufio.NewReaderSize(stderr, stderrReadBufSize)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			_, _ = logFile.WriteString(line)
			p.add(strings.TrimSuffix(line, "\n"))
		}
		if err != nil {
			break
		}
	}
	_ = logFile.Close()
	err := p.cmd.Wait()
	p.mu.Lock()
	p.waitErr = err
	if ps := p.cmd.ProcessState; ps != nil {
		p.cpu = ps.UserTime() + ps.SystemTime()
	}
	close(p.grew)
	p.grew = make(chan struct{})
	p.mu.Unlock()
}

func (p *proc) add(line string) {
	msg := line
	var l struct {
		Level string `json:"level"`
		Msg   string `json:"msg"`
	}
	isJSON := json.Unmarshal([]byte(line), &l) == nil
	if isJSON {
		msg = l.Msg
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msg)
	if len(p.tail) == tailLines {
		copy(p.tail, p.tail[1:])
		p.tail = p.tail[:tailLines-1]
	}
	p.tail = append(p.tail, line)
	if isJSON && (l.Level == levelError || l.Level == levelWarn) {
		p.issues[l.Level+": "+l.Msg]++
	}
	close(p.grew)
	p.grew = make(chan struct{})
}

// lines is how many lines the worker has logged so far: a mark for waitLog.
func (p *proc) lines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

// waitLog waits for a line whose message is msg from line from on, and returns
// the index of the line after it. It fails when the process exits first or after
// timeout.
func (p *proc) waitLog(from int, msg string, timeout time.Duration) (int, error) {
	return p.waitFor(from, fmt.Sprintf("%q", msg), func(m string) bool { return m == msg }, timeout)
}

// waitText is waitLog for a line that contains text (the NATS server's lines are
// not JSON).
func (p *proc) waitText(from int, text string, timeout time.Duration) (int, error) {
	return p.waitFor(from, fmt.Sprintf("a line with %q", text), func(m string) bool { return strings.Contains(m, text) }, timeout)
}

func (p *proc) waitFor(from int, what string, match func(string) bool, timeout time.Duration) (int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		msgs, grew := p.msgs, p.grew
		p.mu.Unlock()
		for i := from; i < len(msgs); i++ {
			if match(msgs[i]) {
				return i + 1, nil
			}
		}
		from = len(msgs)
		select {
		case <-p.exited:
			return 0, fmt.Errorf("exited without logging %s: %w", what, exitStatus(p.exitErr()))
		default:
		}
		select {
		case <-grew:
		case <-deadline.C:
			return 0, fmt.Errorf("did not log %s within %s", what, timeout)
		}
	}
}

// kill sends SIGKILL, unless the process has exited, and waits until it is
// reaped. It is safe to call from any goroutine, and more than once.
func (p *proc) kill() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(killTimeout):
		return fmt.Errorf("pid %d not reaped %s after SIGKILL", p.cmd.Process.Pid, killTimeout)
	}
}

// stop sends SIGTERM and waits for the process to exit within stopTimeout; it
// returns the exit's error (nil for code 0).
func (p *proc) stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		return fmt.Errorf("still running %s after SIGTERM", stopTimeout)
	}
	if err := p.exitErr(); err != nil {
		return fmt.Errorf("exit after SIGTERM: %w", err)
	}
	return nil
}

// cpuTime is the CPU time the process used, once it has exited.
func (p *proc) cpuTime() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cpu
}

// exitStatus is a process's exit as an error: err itself, or "exit status 0".
func exitStatus(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// tailText is the worker's last lines, for a failure message.
func (p *proc) tailText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("last %d log lines of %s:\n%s", len(p.tail), p.name, strings.Join(p.tail, "\n"))
}

// issueCounts returns the worker's warn and error messages with their counts.
func (p *proc) issueCounts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.issues))
	for k, v := range p.issues {
		out[k] = v
	}
	return out
}
