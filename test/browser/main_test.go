package browser

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// jetsmsBin is the binary under test; chromium the browser, "" when none.
var jetsmsBin, chromium string

func TestMain(m *testing.M) {
	chromium = findChromium()
	if chromium == "" {
		fmt.Println("SKIPPED: console browser tests: no Chromium found (install the Debian package chromium, or set CHROMIUM=/path/to/chrome)")
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "jetsms-browser-")
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
	code := 0
	func() {
		defer func() { _ = os.RemoveAll(dir) }()
		code = m.Run()
		if code == 0 {
			if err := goleak.Find(); err != nil {
				fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
				code = 1
			}
		}
	}()
	os.Exit(code)
}

func findChromium() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}
