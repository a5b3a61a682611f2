//go:build linux

package chaos

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// scaleEnv multiplies every case's jobs when -chaos.scale is not given.
const scaleEnv = "CHAOS_SCALE"

// longScale is the scale from which a case runs its long form (the 30 s
// credentials window); make chaos runs it.
const longScale = 5

// ciScale is the scale when none is given: the CI size, which `make test` runs.
// Each case still breaks what it breaks (three SIGKILLs, two NATS restarts, the
// faulty gateway's mix, the refused credentials, the doubled and reordered
// receipts) with jobs in flight; the sizes that measure how often an outcome is
// unknown are make chaos's.
const ciScale = 0.1

var (
	scaleFlag   = flag.Float64("chaos.scale", 0, "multiplies each case's jobs; 0 takes $"+scaleEnv+", else 0.1 (the CI size, also under -short); 5 is make chaos's long form")
	summaryFlag = flag.String("chaos.summary", "", "file the summary table is written to as Markdown, relative to the chaos directory; empty: the test log only")
)

// jetsmsBin and natsServerBin are the binaries TestMain built: jetsms of this
// module, and nats-server at the version go.mod requires (the one jetsms embeds).
var jetsmsBin, natsServerBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

// runTests builds the binary, runs the tests, removes the binary and then fails
// the run if a goroutine outlived the tests.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "jetsms-chaos-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if jetsmsBin, err = build(dir, "jetsms", "./cmd/jetsms"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if natsServerBin, err = build(dir, "nats-server", "github.com/nats-io/nats-server/v2"); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	if code := m.Run(); code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: goroutines outlived the tests:", err)
		return 1
	}
	return 0
}

// build builds the command pkg of this module's build list into dir/name and
// returns the binary's path. Both binaries are built without the race
// detector: the test process, which runs the simulator and the checks, is the one
// under -race, and the processes it starts run at the speed they run in
// production.
func build(dir, name, pkg string) (string, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root beside the chaos package: %w", err)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// scale is the multiplier of every case's jobs: -chaos.scale, else $CHAOS_SCALE,
// else ciScale (under -short too).
func scale(t *testing.T) float64 {
	t.Helper()
	if *scaleFlag < 0 {
		t.Fatalf("-chaos.scale %v: must be > 0", *scaleFlag)
	}
	if *scaleFlag > 0 {
		return *scaleFlag
	}
	v, ok := os.LookupEnv(scaleEnv)
	if !ok || strings.TrimSpace(v) == "" {
		return ciScale
	}
	s, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || !(s > 0) {
		t.Fatalf("%s=%q: must be a number > 0", scaleEnv, v)
	}
	return s
}

// scaled is n jobs at scale s, at least minJobs.
func scaled(n int, s float64) int {
	const minJobs = 100
	return max(minJobs, int(float64(n)*s))
}

// errNoSummary says the summary file is not wanted.
var errNoSummary = errors.New("no summary file asked for")

// summaryPath is the file the summary goes to, or errNoSummary.
func summaryPath() (string, error) {
	if *summaryFlag == "" {
		return "", errNoSummary
	}
	return filepath.Abs(*summaryFlag)
}
