package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/deadletter"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/subjects"
)

// runDead is `jetsms dead list|replay`.
func runDead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		fmt.Fprintln(stderr, "Usage: jetsms dead list [--reason R] [--lane L] [--job ID] [--limit N]")
		fmt.Fprintln(stderr, "       jetsms dead replay [--reason R] [--lane L] [--job ID] [--limit N] [--dry-run]")
		fmt.Fprintln(stderr, "replay publishes each dead letter back to the subject it came from, with its job id;")
		fmt.Fprintln(stderr, "a job the gateway accepted before is not sent again, and a replayed letter is removed.")
		return errUsage
	}
	verb := args[0]
	var f deadletter.Filter
	var lane string
	var dryRun bool
	cfg, err := loadConfig("dead "+verb, args[1:], stderr, func(fs *flag.FlagSet, cf *config.Flags) {
		cf.Client()
		fs.StringVar(&f.Reason, "reason", "", "only this reason: invalid_job, gateway_rejected, retries_exhausted, unknown_lane, expired, outcome_unknown, callback_failed")
		fs.StringVar(&lane, "lane", "", "only this lane's dead letters")
		fs.StringVar(&f.Job, "job", "", "only this job's")
		fs.IntVar(&f.Limit, "limit", 0, "at most this many (0: all)")
		if verb == "replay" {
			fs.BoolVar(&dryRun, "dry-run", false, "list what would be replayed, replay nothing")
		}
	})
	if err != nil {
		return err
	}
	names, err := subjects.New(cfg.Streams.Prefix)
	if err != nil {
		return fmt.Errorf("streams.prefix: %w", err)
	}
	filter := names.DeadAll()
	if lane != "" {
		if err := subjects.ValidateToken(lane); err != nil {
			return fmt.Errorf("--lane: %w", err)
		}
		filter = names.Dead(lane)
	}
	nc, js, err := connectJetStream(ctx, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	stream, err := js.Stream(ctx, names.DeadStream())
	if err != nil {
		return fmt.Errorf("dead-letter stream: %w", err)
	}
	letters, _, err := deadletter.Read(ctx, stream, filter, f)
	if err != nil {
		return err
	}
	if verb == "list" || dryRun {
		printDead(stdout, letters)
		if dryRun {
			fmt.Fprintf(stdout, "%d dead letters would be replayed\n", len(letters))
		}
		return nil
	}
	replayed := 0
	for _, m := range letters {
		if err := deadletter.Replay(ctx, js, stream, m); err != nil {
			return fmt.Errorf("replayed %d of %d; %w", replayed, len(letters), err)
		}
		replayed++
		fmt.Fprintf(stdout, "replayed job %s to %s\n", m.Header.Get(events.HeaderJobID), m.Header.Get(events.HeaderSubject))
	}
	fmt.Fprintf(stdout, "%d dead letters replayed\n", replayed)
	return nil
}

func printDead(w io.Writer, letters []*jetstream.RawStreamMsg) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSUBJECT\tJOB\tREASON\tERROR")
	for _, m := range letters {
		// Every header came from outside (the job's publisher, a gateway's error).
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", m.Sequence, m.Time.UTC().Format(time.RFC3339),
			escapeControls(m.Header.Get(events.HeaderSubject)), escapeControls(m.Header.Get(events.HeaderJobID)),
			escapeControls(m.Header.Get(events.HeaderReason)), escapeControls(m.Header.Get(events.HeaderError)))
	}
	_ = tw.Flush()
}
