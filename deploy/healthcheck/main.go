// Command healthcheck GETs a URL and exits 0 on a 2xx answer: the container health check of images without a shell or wget.
//
//	healthcheck [URL]     default http://127.0.0.1:9090/readyz
//
// It exits 1 on any other answer or error, after one line on stderr saying why,
// within TimeoutDefault.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// URLDefault is jetsms's readiness endpoint on the admin listener's port (admin.listen,
// 127.0.0.1:9090 by default); /readyz needs no credentials.
const URLDefault = "http://127.0.0.1:9090/readyz"

// TimeoutDefault bounds the whole check.
const TimeoutDefault = 3 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run checks the URL in args (or URLDefault) and returns the exit code.
func run(args []string, stderr io.Writer) int {
	url := URLDefault
	switch len(args) {
	case 0:
	case 1:
		url = args[0]
	default:
		fmt.Fprintln(stderr, "usage: healthcheck [URL]")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), TimeoutDefault)
	defer cancel()
	if err := check(ctx, url); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	return 0
}

// check GETs url and returns an error unless the answer is 2xx.
func check(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("url %q: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("get %s: %s: %s", url, resp.Status, body)
	}
	return nil
}
