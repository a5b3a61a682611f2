package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
)

// maxRSSLimit is the peak resident memory a bounded campaign send may reach,
// even as a binary built with -race.
const maxRSSLimit = 300 << 20

// child is the test binary run as `jetsms`, with its peak memory once it exited.
type child struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	exited         chan struct{}
	err            error
}

func startChild(t *testing.T, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	c := &child{cmd: exec.Command(exe, args...), exited: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), runMainEnv+"=1")
	c.cmd.Dir = t.TempDir()
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	_, err = c.cmd.StdinPipe() // held open; see TestMain
	require.NoError(t, err)
	require.NoError(t, c.cmd.Start())
	go func() { c.err = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("jetsms %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), c.stdout.String(), c.stderr.String())
		}
	})
	return c
}

// wait waits for the child to exit and returns its exit code and peak RSS.
func (c *child) wait(t *testing.T, timeout time.Duration) (code int, maxRSS int64) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(timeout):
		t.Fatalf("jetsms did not exit within %s", timeout)
	}
	ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	require.True(t, ok)
	return c.cmd.ProcessState.ExitCode(), ru.Maxrss << 10 // KiB on Linux
}

// streamFIFO makes a FIFO in dir and writes to it, from a goroutine, what src
// yields: a file of any size that never exists on disk. The write ends when the
// reader closes its end.
func streamFIFO(t *testing.T, src io.Reader) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "recipients.csv")
	require.NoError(t, syscall.Mkfifo(path, 0o600))
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		_, _ = io.Copy(f, src)
	}()
	t.Cleanup(func() {
		// Unblock an open that no reader ever matched, then wait for the writer.
		if r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			_ = r.Close()
		}
		<-done
	})
	return path
}

// fieldReader yields a recipients file whose third line holds one field of n
// bytes, generated as it is read.
type fieldReader struct {
	head string
	n    int64
}

func (r *fieldReader) Read(p []byte) (int, error) {
	if r.head != "" {
		k := copy(p, r.head)
		r.head = r.head[k:]
		return k, nil
	}
	if r.n == 0 {
		return 0, io.EOF
	}
	k := int(min(int64(len(p)), r.n))
	for i := range k {
		p[i] = 'y'
	}
	r.n -= int64(k)
	return k, nil
}

func TestCampaignSendIsBounded(t *testing.T) {
	t.Parallel()
	small := filepath.Join(t.TempDir(), "small.csv")
	require.NoError(t, os.WriteFile(small, []byte("destination,name\n+64211234567,Ann\n"), 0o600))

	for name, tc := range map[string]struct {
		file     func(t *testing.T) string
		template string
		want     string
	}{
		"RangeBomb": {func(*testing.T) string { return small }, "{{range 100000000}}xxxxxxxxxx{{end}}",
			"{{range}} may only range over a row's field"},
		"EndlessRange": {func(*testing.T) string { return small }, "{{range 1000000000000}}{{end}}",
			"{{range}} may only range over a row's field"},
		// 300 MB in one field, streamed through a FIFO.
		"HugeField": {func(t *testing.T) string {
			return streamFIFO(t, &fieldReader{head: "destination,name\n+64211234567,Ann\n+64211234568,", n: 300 << 20})
		}, "Hi {{.name}}", "line 3: the row is longer than 65536 bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := startChild(t, "campaign", "send", "--dry-run", "--lane", "default", "--name", "spring",
				"--file", tc.file(t), "--template", tc.template, "--nats.url", "nats://127.0.0.1:1")
			code, rss := c.wait(t, time.Minute)
			require.NotZero(t, code)
			require.Contains(t, c.stderr.String(), tc.want)
			require.Less(t, rss, int64(maxRSSLimit), "peak RSS %d MiB", rss>>20)
			t.Logf("peak RSS %d MiB", rss>>20)
		})
	}
}

// TestCampaignSendStopsOnSIGTERM starts a send whose file stalls half way (a
// FIFO the test stops writing), stops it with SIGTERM, and runs the same send
// again with the whole file: it publishes the rest.
func TestCampaignSendStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	env := brokertest.Run(t)
	var all bytes.Buffer
	all.WriteString("destination,name\n")
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&all, "+6421%07d,Person %d\n", i, i)
	}
	head := all.Bytes()[:bytes.Index(all.Bytes(), []byte("+64210000051"))] // rows 1-50

	stall := make(chan struct{})
	fifo := streamFIFO(t, io.MultiReader(bytes.NewReader(head), &blockingReader{until: stall}))
	t.Cleanup(func() { close(stall) }) // before streamFIFO's cleanup waits for its writer
	args := []string{"campaign", "send", "--name", "spring", "--template", "Hi {{.name}}", "--nats.url", env.URL}
	c := startChild(t, append(args, "--file", fifo)...)
	require.Eventually(t, func() bool { return jobsStored(t, env) == 50 }, 30*time.Second, 20*time.Millisecond,
		"the first 50 rows published")

	sent := time.Now()
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	code, _ := c.wait(t, exitTimeout)
	t.Logf("exited %s after SIGTERM", time.Since(sent).Round(time.Millisecond))
	require.NotZero(t, code)
	require.Contains(t, c.stderr.String(), "run the same command again to publish the rest")

	full := filepath.Join(t.TempDir(), "recipients.csv")
	require.NoError(t, os.WriteFile(full, all.Bytes(), 0o600))
	res := runJetsms(t, append(args, "--file", full)...)
	require.Equal(t, 0, res.code, res.stderr)
	require.Contains(t, res.stdout, "50 jobs published to sms.send.bulk.spring, 50 were published before")
	require.Equal(t, uint64(100), jobsStored(t, env))
}

// blockingReader yields nothing until until is closed, then EOF.
type blockingReader struct{ until chan struct{} }

func (r *blockingReader) Read([]byte) (int, error) {
	<-r.until
	return 0, io.EOF
}
