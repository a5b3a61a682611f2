package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/app"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// runTail is `jetsms tail`: status events and inbound messages as they arrive.
func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var statusList, lane, jobID, since string
	var inbound, jsonOut bool
	var limit int
	cfg, err := loadConfig("tail", args, stderr, func(fs *flag.FlagSet, cf *config.Flags) {
		cf.Client()
		fs.StringVar(&statusList, "status", "", "only these statuses, comma-separated (e.g. received,failed)")
		fs.StringVar(&lane, "lane", "", "only this lane's jobs")
		fs.StringVar(&jobID, "job", "", "only this job")
		fs.BoolVar(&inbound, "inbound", true, "show inbound messages too (not with --status, --lane or --job)")
		fs.StringVar(&since, "since", "", "start this long ago (e.g. 10m), or 'all'; default: from now")
		fs.IntVar(&limit, "limit", 0, "stop after this many lines (0: until interrupted)")
		fs.BoolVar(&jsonOut, "json", false, "print events as JSON lines")
	})
	if err != nil {
		return err
	}
	names, err := subjects.New(cfg.Streams.Prefix)
	if err != nil {
		return fmt.Errorf("streams.prefix: %w", err)
	}
	deliver, start, err := startPolicy(since)
	if err != nil {
		return err
	}
	statusFilter := []string{names.StatusAll()}
	if statusList != "" {
		statusFilter = nil
		for _, st := range strings.Split(statusList, ",") {
			st = strings.TrimSpace(st)
			if err := subjects.ValidateToken(st); err != nil {
				return fmt.Errorf("--status: %w", err)
			}
			statusFilter = append(statusFilter, names.Status(st))
		}
	}
	showInbound := inbound && statusList == "" && lane == "" && jobID == ""

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	nc, js, err := connectJetStream(ctx, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	lines := make(chan string, 64)
	consume := func(stream string, filters []string, format func(jetstream.Msg) (string, bool)) error {
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: filters, DeliverPolicy: deliver, OptStartTime: start,
		})
		if err != nil {
			return fmt.Errorf("follow %s: %w", stream, err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			if line, ok := format(m); ok {
				select {
				case lines <- line:
				case <-ctx.Done():
				}
			}
		})
		if err != nil {
			return fmt.Errorf("follow %s: %w", stream, err)
		}
		go func() { <-ctx.Done(); cc.Stop() }()
		return nil
	}
	err = consume(names.StatusStream(), statusFilter, func(m jetstream.Msg) (string, bool) {
		var ev job.Event
		if json.Unmarshal(m.Data(), &ev) != nil {
			return "", false
		}
		if (lane != "" && ev.Lane != lane) || (jobID != "" && ev.JobID != jobID) {
			return "", false
		}
		if jsonOut {
			return string(m.Data()), true
		}
		return ev.At.Format(time.RFC3339) + " " + eventLine(ev), true
	})
	if err != nil {
		return err
	}
	if showInbound {
		err = consume(names.InboundStream(), []string{names.InboundAll()}, func(m jetstream.Msg) (string, bool) {
			var in events.Inbound
			if json.Unmarshal(m.Data(), &in) != nil {
				return "", false
			}
			if jsonOut {
				return string(m.Data()), true
			}
			line := fmt.Sprintf("%s %-10s from=%s to=%s id=%s", in.ReceivedAt.Format(time.RFC3339), "inbound", in.Source, in.Destination, in.ID)
			if in.ReplyToJob != "" {
				line += " reply_to_job=" + in.ReplyToJob
			}
			return line + " content=" + fmt.Sprintf("%q", in.Content), true
		})
		if err != nil {
			return err
		}
	}
	for n := 0; limit == 0 || n < limit; n++ {
		select {
		case line := <-lines:
			// Events and inbound messages carry text from outside (a receipt's
			// detail, an MO's source and content): never raw to the terminal.
			fmt.Fprintln(stdout, escapeControls(line))
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// startPolicy reads --since.
func startPolicy(since string) (jetstream.DeliverPolicy, *time.Time, error) {
	switch since {
	case "":
		return jetstream.DeliverNewPolicy, nil, nil
	case "all":
		return jetstream.DeliverAllPolicy, nil, nil
	}
	d, err := time.ParseDuration(since)
	if err != nil || d <= 0 {
		return 0, nil, fmt.Errorf("--since: must be a positive duration such as 10m, or all (got %q)", since)
	}
	t := time.Now().Add(-d)
	return jetstream.DeliverByStartTimePolicy, &t, nil
}

// runGet is `jetsms get <job-id>`: the job's ledger entry and its history, and
// with --gateway the gateway's own record of each of its messages.
func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	var gateway, jsonOut bool
	cfg, err := loadConfig("get", args, stderr, func(fs *flag.FlagSet, cf *config.Flags) {
		cf.Client()
		fs.BoolVar(&gateway, "gateway", false, "also ask the gateway for each of the job's messages")
		fs.BoolVar(&jsonOut, "json", false, "print the entry as JSON")
	})
	if err != nil {
		return err
	}
	if id == "" {
		fmt.Fprintln(stderr, "jetsms get: a job id is required: jetsms get <job-id> [--gateway] [--json]")
		return errUsage
	}
	names, err := subjects.New(cfg.Streams.Prefix)
	if err != nil {
		return fmt.Errorf("streams.prefix: %w", err)
	}
	nc, js, err := connectJetStream(ctx, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	led, err := app.OpenLedger(ctx, js, cfg, names)
	if err != nil {
		return err
	}
	e, _, err := led.Get(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("job %s is not in the ledger (never taken by a worker, or older than ledger.retention)", id)
	}
	if err != nil {
		return err
	}
	if jsonOut {
		b, _ := json.MarshalIndent(e, "", "  ")
		fmt.Fprintln(safeWriter{stdout}, string(b))
	} else {
		printEntry(stdout, e)
	}
	if !gateway {
		return nil
	}
	if len(e.MessageIDs) == 0 {
		fmt.Fprintln(stdout, "gateway: the job has no message id (never accepted)")
		return nil
	}
	gw, err := gatewayClient(cfg)
	if err != nil {
		return err
	}
	defer gw.Close()
	for _, mid := range e.MessageIDs {
		m, err := gw.Get(ctx, mid)
		switch {
		case errors.Is(err, dispatcher.ErrNotFound):
			fmt.Fprintf(stdout, "gateway %s: not found\n", mid)
		case err != nil:
			fmt.Fprintf(stdout, "gateway %s: %s\n", escapeControls(mid), escapeControls(err.Error()))
		default:
			fmt.Fprintf(stdout, "gateway %s: status=%s destination=%s reference=%s\n", escapeControls(mid),
				escapeControls(m.Status), escapeControls(m.Destination), escapeControls(m.Reference))
		}
	}
	return nil
}

// gatewayClient is the configured gateway's client; the sandbox is reached on
// sandbox.listen, where a running `jetsms run` serves it.
func gatewayClient(cfg config.Config) (app.Gateway, error) {
	url := cfg.Gateway.URL
	if cfg.IsSandbox() {
		// The simulator serves the API under the real gateway's base path.
		url = "http://" + cfg.Sandbox.Listen + gwsim.BasePathFor(cfg.Gateway.API)
	}
	return app.NewGateway(cfg, url, 1)
}

func printEntry(w io.Writer, e *ledger.Entry) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, escapeControls(v))
		}
	}
	row("job", e.JobID)
	status := string(e.Status)
	if e.Waiting(time.Now()) {
		// The gateway keeps a scheduled message "accepted" until it goes out.
		status += " (scheduled: waiting for its time at the gateway)"
	}
	row("status", status)
	if !e.Scheduled.IsZero() {
		row("scheduled", e.Scheduled.Format(time.RFC3339Nano))
	}
	row("lane", e.Lane)
	row("campaign", e.Campaign)
	row("destination", e.Destination)
	row("reference", e.Reference)
	row("message ids", strings.Join(e.MessageIDs, ", "))
	row("attempts", fmt.Sprint(e.Attempts))
	row("segments", fmt.Sprint(e.Segments))
	if e.DuplicateRisk {
		row("duplicate risk", "yes")
	}
	if len(e.Metadata) > 0 {
		keys := make([]string, 0, len(e.Metadata))
		for k := range e.Metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, k+"="+e.Metadata[k])
		}
		row("metadata", strings.Join(kv, " "))
	}
	row("created", e.Created.Format(time.RFC3339Nano))
	_ = tw.Flush()
	fmt.Fprintln(w, "history:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range e.History {
		line := "  " + c.At.Format(time.RFC3339Nano) + "\t" + escapeControls(string(c.Status))
		if c.MessageID != "" {
			line += "\tmessage_id=" + escapeControls(c.MessageID)
		}
		if c.Error != "" {
			line += "\terror=" + escapeControls(c.Error)
		}
		if c.Detail != "" {
			line += "\tdetail=" + escapeControls(c.Detail)
		}
		fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
}

// eventLine is one event as `send --wait` and `tail` print it.
func eventLine(ev job.Event) string {
	parts := []string{fmt.Sprintf("%-10s", ev.Status), "job=" + ev.JobID}
	if ev.MessageID != "" {
		parts = append(parts, "message_id="+ev.MessageID)
	}
	if ev.Lane != "" {
		parts = append(parts, "lane="+ev.Lane)
	}
	parts = append(parts, fmt.Sprintf("attempts=%d", ev.Attempts))
	if ev.Error != "" {
		parts = append(parts, "error="+ev.Error)
	}
	if ev.Detail != "" {
		parts = append(parts, "detail="+ev.Detail)
	}
	if ev.DuplicateRisk {
		parts = append(parts, "duplicate_risk=true")
	}
	if ev.Duplicate {
		parts = append(parts, "duplicate=true")
	}
	return escapeControls(strings.Join(parts, " "))
}
