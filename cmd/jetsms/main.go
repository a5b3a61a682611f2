// Command jetsms sends SMS jobs from NATS JetStream through the Modica gateway.
//
//	jetsms run      embedded NATS, the worker and (unless a gateway is configured)
//	                the built-in gateway simulator: everything in one process
//	jetsms worker   the worker alone, for a deployment with its own NATS
//	jetsms sandbox  the gateway simulator alone
//	jetsms send     publish one job and, with --wait, follow its status
//	jetsms config   print the effective configuration (secrets as ***)
//	jetsms version  print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// errUsage marks an error already explained by a usage message.
var errUsage = errors.New("usage")

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "run embedded NATS, the worker and the gateway simulator (the quick start)", runAll},
		{"worker", "run the worker (and the callback receiver) against the configured NATS and gateway", runWorker},
		{"receiver", "run the callback receiver and resolver only, without sending", runReceiver},
		{"sandbox", "run the built-in gateway simulator", runSandbox},
		{"send", "publish one job; --wait follows its status events", runSend},
		{"tail", "follow status events and inbound messages as they arrive", runTail},
		{"get", "print a job's ledger entry and history (--gateway: and the gateway's record)", runGet},
		{"dead", "list dead-lettered jobs, or replay them to their lanes", runDead},
		{"campaign", "send a campaign from a CSV file; status, list, pause, resume, cancel", runCampaign},
		{"config", "print the effective configuration, secrets redacted", runConfig},
		{"version", "print the version", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(stderr, "jetsms %s: %v\n", c.name, err)
			var ec exitCoder
			if errors.As(err, &ec) {
				return ec.ExitCode()
			}
			return 1
		}
	}
	fmt.Fprintf(stderr, "jetsms: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// exitCoder is an error that chooses the exit code.
type exitCoder interface{ ExitCode() int }

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: jetsms <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each command takes --config FILE and one flag per setting (jetsms <command> -h lists them).")
}
