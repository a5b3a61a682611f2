package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var jetsmsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jetsms-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	jetsmsBin = filepath.Join(dir, "jetsms")
	cmd := exec.Command("go", "build", "-o", jetsmsBin, "./cmd/jetsms")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/jetsms: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running jetsms process whose JSON log lines are kept.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu    sync.Mutex
	lines []map[string]any
	raw   []string
	added chan struct{} // closed and replaced at each new line
	done  chan struct{}
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(jetsmsBin, append(args, "--log.format", "json", "--log.level", "info")...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	p := &proc{name: name, cmd: cmd, added: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.read(stderr)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("log of %s:\n%s", name, strings.Join(p.raw, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

func (p *proc) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := map[string]any{}
		_ = json.Unmarshal(sc.Bytes(), &line)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.raw = append(p.raw, sc.Text())
		close(p.added)
		p.added = make(chan struct{})
		p.mu.Unlock()
	}
	_ = p.cmd.Wait()
	close(p.done)
}

// waitLog waits for a log line with message msg and returns it.
func (p *proc) waitLog(t *testing.T, timeout time.Duration, msg string) map[string]any {
	t.Helper()
	return p.waitLogWhere(t, timeout, fmt.Sprintf("%q", msg), func(l map[string]any) bool { return l["msg"] == msg })
}

// kill ends the process with SIGKILL and waits for it.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// waitLogWhere waits for a log line that match accepts.
func (p *proc) waitLogWhere(t *testing.T, timeout time.Duration, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		p.mu.Lock()
		for ; seen < len(p.lines); seen++ {
			if match(p.lines[seen]) {
				line := p.lines[seen]
				p.mu.Unlock()
				return line
			}
		}
		added := p.added
		p.mu.Unlock()
		select {
		case <-added:
		case <-p.done:
			t.Fatalf("%s exited before logging %s", p.name, what)
		case <-deadline:
			t.Fatalf("%s did not log %s within %s", p.name, what, timeout)
		}
	}
}
