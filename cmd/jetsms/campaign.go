package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/app"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// Refresh periods of the campaign commands' progress output.
const (
	// barEvery is how often a progress bar on a terminal is redrawn.
	barEvery = 200 * time.Millisecond
	// lineEvery is how often a plain progress line is printed when the output is
	// not a terminal.
	lineEvery = 5 * time.Second
)

func campaignUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: jetsms campaign send --name NAME --file FILE.csv --template 'Hi {{.name}}' [--lane bulk] [--schedule TIME] [--dry-run]")
	fmt.Fprintln(w, "       jetsms campaign status NAME [--watch] [--json]")
	fmt.Fprintln(w, "       jetsms campaign list [--json]")
	fmt.Fprintln(w, "       jetsms campaign pause|resume|cancel NAME")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "send publishes one job per row of the CSV file (a header row with a destination")
	fmt.Fprintln(w, "column and the columns the template uses); bad rows are reported with their line")
	fmt.Fprintln(w, "numbers and skipped. Running the same command again publishes only the rows not yet")
	fmt.Fprintln(w, "published. --dry-run counts rows, segments, bad rows, opted-out numbers and the cost")
	fmt.Fprintln(w, "(campaign.price_per_segment), and sends nothing.")
}

// runCampaign is `jetsms campaign <verb>`.
func runCampaign(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		campaignUsage(stderr)
		return errUsage
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "send":
		return campaignSend(ctx, rest, stdout, stderr)
	case "status":
		return campaignStatus(ctx, rest, stdout, stderr)
	case "list":
		return campaignList(ctx, rest, stdout, stderr)
	case "pause", "resume", "cancel":
		return campaignControl(ctx, verb, rest, stdout, stderr)
	case "-h", "--help", "help":
		campaignUsage(stderr)
		return flag.ErrHelp
	}
	fmt.Fprintf(stderr, "jetsms campaign: unknown verb %q\n\n", verb)
	campaignUsage(stderr)
	return errUsage
}

// campaignClient is what every campaign command but a dry run needs.
type campaignClient struct {
	cfg   config.Config
	names subjects.Names
	js    jetstream.JetStream
	store *campaign.Store
	close func()
}

func openCampaignClient(ctx context.Context, cfg config.Config, opts ...jetstream.JetStreamOpt) (*campaignClient, error) {
	names, err := subjects.New(cfg.Streams.Prefix)
	if err != nil {
		return nil, fmt.Errorf("streams.prefix: %w", err)
	}
	nc, err := connectClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	store, err := campaign.Open(ctx, js, campaign.StoreConfig{Bucket: names.CampaignBucket(), Replicas: cfg.Streams.Replicas})
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &campaignClient{cfg: cfg, names: names, js: js, store: store, close: nc.Close}, nil
}

// nameArg takes the campaign name that follows the verb.
func nameArg(verb string, args []string, stderr io.Writer) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "jetsms campaign %s: a campaign name is required: jetsms campaign %s NAME\n", verb, verb)
		return "", nil, errUsage
	}
	if err := campaign.ValidateName(args[0]); err != nil {
		return "", nil, fmt.Errorf("NAME: %w", err)
	}
	return args[0], args[1:], nil
}

// sendFlags are the flags of `jetsms campaign send`.
type campaignSendFlags struct {
	name, file, template, lane, schedule string
	dryRun                               bool
}

func campaignSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f campaignSendFlags
	cfg, err := loadConfig("campaign send", args, stderr, func(fs *flag.FlagSet, cf *config.Flags) {
		cf.Client()
		fs.StringVar(&f.name, "name", "", "campaign name: letters, digits, '-' and '_' (required)")
		fs.StringVar(&f.file, "file", "", "recipients CSV `file`: a header row naming a destination column and the columns the template uses (required)")
		fs.StringVar(&f.template, "template", "", "message: a Go template of the row's columns, e.g. 'Hi {{.name}}' (required)")
		fs.StringVar(&f.lane, "lane", "bulk", "lane to publish to")
		fs.StringVar(&f.schedule, "schedule", "", "send at this `time`, RFC 3339 with a zone, e.g. 2026-12-01T09:00:00+13:00")
		fs.BoolVar(&f.dryRun, "dry-run", false, "count rows, segments, bad rows, opted-out numbers and the cost; send nothing")
	})
	if err != nil {
		return err
	}
	if f.name == "" || f.file == "" || f.template == "" {
		fmt.Fprintln(stderr, "jetsms campaign send: --name, --file and --template are required, e.g.")
		fmt.Fprintln(stderr, "  jetsms campaign send --name spring --file recipients.csv --template 'Hi {{.name}}'")
		return errUsage
	}
	if err := campaign.ValidateName(f.name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	if !slices.Contains(cfg.Lanes, f.lane) {
		return fmt.Errorf("--lane: %q is not a configured lane (lanes: %s)", f.lane, strings.Join(cfg.Lanes, ", "))
	}
	spec := campaign.Spec{Name: f.name, Lane: f.lane, Template: f.template, File: filepath.Base(f.file)}
	if f.schedule != "" {
		at, err := time.Parse(time.RFC3339, f.schedule)
		if err != nil {
			return fmt.Errorf("--schedule: %q is not an RFC 3339 time with a zone, e.g. 2026-12-01T09:00:00+13:00", f.schedule)
		}
		spec.Schedule = &at
	}
	if _, err := campaign.ParseTemplate(f.template); err != nil {
		return fmt.Errorf("--template: %w", err)
	}
	file, err := os.Open(f.file)
	if err != nil {
		return fmt.Errorf("--file: %w", err)
	}
	defer file.Close()
	// SIGINT or SIGTERM cancels ctx: closing the file ends a read that waits on a
	// pipe or FIFO, so the send stops at once and checkpoints what it stored.
	stopRead := context.AfterFunc(ctx, func() { _ = file.Close() })
	defer stopRead()
	var size int64
	if st, err := file.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	bar := newSendProgress(stderr, size)
	badRows := campaign.WithBadRows(func(e *campaign.RowError) { bar.println(escapeControls(e.Error())) })
	progress := campaign.WithProgress(bar.update, bar.every())

	if f.dryRun {
		return campaignDryRun(ctx, cfg, spec, file, stdout, stderr, badRows, progress, bar)
	}

	cl, err := openCampaignClient(ctx, cfg, jetstream.WithPublishAsyncMaxPending(2*campaign.WindowDefault))
	if err != nil {
		return err
	}
	defer cl.close()
	led, err := app.OpenLedger(ctx, cl.js, cfg, cl.names)
	if err != nil {
		return err
	}
	pub, err := campaign.NewPublisher(campaign.PublisherConfig{
		Names: cl.names, Store: cl.store, Ledger: led, MaxSegments: cfg.Jobs.MaxSegments,
		PricePerSegment: cfg.Campaign.PricePerSegment,
	}, cl.js, nil)
	if err != nil {
		return err
	}
	res, err := pub.Send(ctx, spec, file, badRows, progress)
	bar.done()
	switch {
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("interrupted after %s jobs published; run the same command again to publish the rest", thousands(res.Published))
	case err != nil:
		return err
	}
	rec := res.Record
	subject, _ := cl.names.SendCampaign(f.lane, f.name) // checked by the publisher
	switch {
	case res.AlreadyComplete:
		fmt.Fprintf(stdout, "campaign %s was published in full before (%s jobs); nothing published\n", f.name, thousands(rec.Totals.Jobs))
	case res.Stopped:
		fmt.Fprintf(stdout, "campaign %s was cancelled while publishing: stopped after %s jobs (%s published now)\n",
			f.name, thousands(rec.Totals.Jobs), thousands(res.Published))
	case res.Resumed:
		fmt.Fprintf(stdout, "campaign %s: %s jobs published to %s, %s were published before (%s rows, %s)\n",
			f.name, thousands(res.Published), subject, thousands(res.AlreadyPublished), thousands(res.Rows), plural(res.BadRows, "bad row"))
	default:
		fmt.Fprintf(stdout, "campaign %s: %s jobs published to %s (%s rows, %s)\n",
			f.name, thousands(res.Published), subject, thousands(res.Rows), plural(res.BadRows, "bad row"))
	}
	if res.BadRows > 0 {
		fmt.Fprintf(stdout, "%s not sent: listed above with their line numbers\n", plural(res.BadRows, "bad row"))
	}
	if rec.PricePerSegment > 0 {
		fmt.Fprintf(stdout, "estimated cost %s (%s × %s; opted-out numbers not looked up)\n", strconv.FormatFloat(rec.EstimatedCost, 'f', 2, 64),
			plural(rec.Totals.Segments, "segment"), strconv.FormatFloat(rec.PricePerSegment, 'f', -1, 64))
	}
	fmt.Fprintf(stdout, "state %s; follow it with: jetsms campaign status %s --watch\n", rec.State, f.name)
	return nil
}

func campaignDryRun(ctx context.Context, cfg config.Config, spec campaign.Spec, file io.Reader, stdout, stderr io.Writer,
	badRows, progress campaign.Option, bar *sendProgress,
) error {
	ecfg := campaign.EstimateConfig{MaxSegments: cfg.Jobs.MaxSegments, PricePerSegment: cfg.Campaign.PricePerSegment}
	marketing := slices.Contains(cfg.Lane.Marketing, spec.Lane)
	optOutNote := ""
	if marketing {
		list, closeList, err := openOptOuts(ctx, cfg)
		if err != nil {
			optOutNote = fmt.Sprintf("not counted: the opt-out list cannot be read (%v)", err)
		} else {
			defer closeList()
			ecfg.OptOuts = list
		}
	} else {
		optOutNote = fmt.Sprintf("not counted: lane %s is not a marketing lane (lane.marketing), so opted-out numbers are sent", spec.Lane)
	}
	est, err := campaign.EstimateFile(ctx, spec, file, ecfg, badRows, progress)
	bar.done()
	if err != nil {
		return err
	}
	t := est.Totals
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign %s (dry run: nothing published)\n", spec.Name)
	fmt.Fprintf(tw, "rows\t%s\n", thousands(t.Rows))
	fmt.Fprintf(tw, "jobs\t%s\n", thousands(t.Jobs))
	fmt.Fprintf(tw, "bad rows\t%s\n", thousands(t.BadRows))
	fmt.Fprintf(tw, "segments\t%s (GSM-7: %s, %s; UCS-2: %s, %s)\n", thousands(t.Segments),
		plural(t.GSM7.Jobs, "job"), plural(t.GSM7.Segments, "segment"), plural(t.UCS2.Jobs, "job"), plural(t.UCS2.Segments, "segment"))
	if optOutNote != "" {
		fmt.Fprintf(tw, "suppressed\t%s\n", optOutNote)
	} else {
		fmt.Fprintf(tw, "suppressed\t%s, %s (opted out: they end suppressed, unsent)\n",
			plural(est.Suppressed, "job"), plural(est.SuppressedSegments, "segment"))
	}
	if est.PricePerSegment > 0 {
		fmt.Fprintf(tw, "estimated cost\t%s × %s = %s\n", plural(est.ChargedSegments, "segment"),
			strconv.FormatFloat(est.PricePerSegment, 'f', -1, 64), strconv.FormatFloat(est.Cost, 'f', 2, 64))
	} else {
		fmt.Fprintf(tw, "estimated cost\t%s; set campaign.price_per_segment (or --campaign.price_per_segment) for a price\n",
			plural(est.ChargedSegments, "segment"))
	}
	return tw.Flush()
}

// openOptOuts opens the opt-out list for a dry run.
func openOptOuts(ctx context.Context, cfg config.Config) (*optout.List, func(), error) {
	names, err := subjects.New(cfg.Streams.Prefix)
	if err != nil {
		return nil, nil, fmt.Errorf("streams.prefix: %w", err)
	}
	nc, err := connectClient(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	list, err := optout.Open(ctx, js, optout.Config{Bucket: names.OptOutBucket(), Replicas: cfg.Streams.Replicas})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return list, nc.Close, nil
}

func campaignStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	name, args, err := nameArg("status", args, stderr)
	if err != nil {
		return err
	}
	var watch, jsonOut bool
	cfg, err := loadConfig("campaign status", args, stderr, func(fs *flag.FlagSet, cf *config.Flags) {
		cf.Client()
		fs.BoolVar(&watch, "watch", false, "follow the campaign with a progress bar until every job has ended")
		fs.BoolVar(&jsonOut, "json", false, "print the record as JSON")
	})
	if err != nil {
		return err
	}
	cl, err := openCampaignClient(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.close()
	rec, _, err := cl.store.Get(ctx, name)
	if err != nil {
		return err
	}
	if jsonOut {
		return printJSON(safeWriter{stdout}, rec)
	}
	printRecord(stdout, rec)
	if !watch || rec.Ended != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	recs, err := cl.store.Watch(ctx, name)
	if err != nil {
		return err
	}
	w := newWatchProgress(stdout, rec)
	for {
		select {
		case r, ok := <-recs:
			if !ok {
				w.done()
				return nil
			}
			w.update(r)
			if r.Ended != nil {
				w.done()
				fmt.Fprintln(stdout)
				printRecord(stdout, r)
				return nil
			}
		case <-ctx.Done():
			w.done()
			return nil
		}
	}
}

func campaignList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var jsonOut bool
	cfg, err := loadConfig("campaign list", args, stderr, func(fs *flag.FlagSet, cf *config.Flags) {
		cf.Client()
		fs.BoolVar(&jsonOut, "json", false, "print the records as JSON lines")
	})
	if err != nil {
		return err
	}
	cl, err := openCampaignClient(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.close()
	recs, err := cl.store.List(ctx)
	if err != nil {
		return err
	}
	if jsonOut {
		for _, r := range recs {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		}
		return nil
	}
	if len(recs) == 0 {
		fmt.Fprintln(stdout, "no campaigns")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tLANE\tJOBS\tSENT\tFINAL\tBAD ROWS\tCREATED")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, stateText(r), r.Lane, thousands(r.Totals.Jobs),
			thousands(r.Counts.Sent), thousands(r.Counts.Final), thousands(r.Totals.BadRows), r.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func campaignControl(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) error {
	name, args, err := nameArg(verb, args, stderr)
	if err != nil {
		return err
	}
	cfg, err := loadConfig("campaign "+verb, args, stderr, func(_ *flag.FlagSet, cf *config.Flags) { cf.Client() })
	if err != nil {
		return err
	}
	cl, err := openCampaignClient(ctx, cfg)
	if err != nil {
		return err
	}
	defer cl.close()
	var rec *campaign.Record
	switch verb {
	case "pause":
		rec, err = cl.store.Pause(ctx, name)
	case "resume":
		rec, err = cl.store.Resume(ctx, name)
	default:
		rec, err = cl.store.Cancel(ctx, name)
	}
	if err != nil {
		return err
	}
	switch verb {
	case "pause":
		fmt.Fprintf(stdout, "campaign %s paused: its %s unsent jobs stay stored, and workers hold them until resume\n", name, thousands(rec.Pending()))
	case "resume":
		fmt.Fprintf(stdout, "campaign %s is %s\n", name, stateText(rec))
	default:
		fmt.Fprintf(stdout, "campaign %s cancelled: its %s unsent jobs end cancelled as workers take them\n", name, thousands(rec.Pending()))
	}
	return nil
}

// printRecord prints a campaign record for people.
func printRecord(w io.Writer, r *campaign.Record) {
	// A record holds text from outside: the file's name, bad rows' reasons
	// quoting the file, the gateway's statuses.
	w = safeWriter{w}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, escapeControls(v))
		}
	}
	at := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.Local().Format(time.RFC3339)
	}
	row("campaign", r.Name)
	row("state", stateText(r))
	row("lane", r.Lane)
	row("file", r.File)
	row("template", r.TemplateHash)
	row("schedule", at(r.Schedule))
	row("created", at(&r.Created))
	switch {
	case r.Progress.Complete:
		row("published", at(r.Published)+" (every row)")
	case r.Progress.Stopped:
		row("published", at(r.Published)+" (stopped by the cancel)")
	case r.Progress.Publisher != "":
		row("published", fmt.Sprintf("%s rows so far, by %s", thousands(r.Totals.Rows), r.Progress.Publisher))
	default:
		row("published", fmt.Sprintf("%s rows so far; run the same send command again to publish the rest", thousands(r.Totals.Rows)))
	}
	row("ended", at(r.Ended))
	t := r.Totals
	row("rows", fmt.Sprintf("%s (%s, %s)", thousands(t.Rows), plural(t.Jobs, "job"), plural(t.BadRows, "bad row")))
	row("segments", fmt.Sprintf("%s (GSM-7: %s, %s; UCS-2: %s, %s)", thousands(t.Segments),
		plural(t.GSM7.Jobs, "job"), plural(t.GSM7.Segments, "segment"), plural(t.UCS2.Jobs, "job"), plural(t.UCS2.Segments, "segment")))
	if r.PricePerSegment > 0 {
		row("estimated cost", fmt.Sprintf("%s × %s = %s (opted-out numbers not looked up)", plural(t.Segments, "segment"),
			strconv.FormatFloat(r.PricePerSegment, 'f', -1, 64), strconv.FormatFloat(r.EstimatedCost, 'f', 2, 64)))
	}
	row("sent", thousands(r.Counts.Sent)+" (taken by the gateway)")
	row("final", fmt.Sprintf("%s of %s%s", thousands(r.Counts.Final), thousands(t.Jobs), byStatus(r.Counts.ByStatus)))
	row("pending", thousands(r.Pending()))
	_ = tw.Flush()
	if len(r.BadRows) > 0 {
		head := "bad rows:"
		if t.BadRows > len(r.BadRows) {
			head = fmt.Sprintf("bad rows (the first %d of %s):", len(r.BadRows), thousands(t.BadRows))
		}
		fmt.Fprintln(w, head)
		for _, b := range r.BadRows {
			fmt.Fprintln(w, "  "+escapeControls(b.Error()))
		}
	}
}

// stateText is the state, with what a paused or publishing campaign waits for.
func stateText(r *campaign.Record) string {
	if r.State == campaign.StateCancelled && r.Ended != nil {
		return "cancelled (every job ended)"
	}
	return string(r.State)
}

func byStatus(m map[job.Status]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]job.Status, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %s", k, thousands(m[k]))
	}
	return ": " + strings.Join(parts, ", ")
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// sendProgress shows a send's or dry run's progress on stderr: a bar redrawn in
// place on a terminal, a plain line now and then otherwise.
type sendProgress struct {
	w    io.Writer
	tty  bool
	size int64 // bytes of the file, 0 when unknown
	drew bool
}

func newSendProgress(w io.Writer, size int64) *sendProgress {
	return &sendProgress{w: w, tty: isTerminal(w), size: size}
}

func (p *sendProgress) every() time.Duration {
	if p.tty {
		return barEvery
	}
	return lineEvery
}

func (p *sendProgress) update(r campaign.Report) {
	secs := r.Elapsed.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(r.Rows) / secs
	}
	frac, eta := -1.0, ""
	if p.size > 0 {
		frac = min(float64(r.Offset)/float64(p.size), 1)
		if r.Offset > 0 && frac < 1 {
			left := time.Duration(secs * float64(p.size-r.Offset) / float64(r.Offset) * float64(time.Second))
			eta = "ETA " + left.Round(time.Second).String()
		} else if frac >= 1 {
			eta = "ETA 0s"
		}
	}
	counts := fmt.Sprintf("%s rows, %s jobs, %s, %s rows/s", thousands(r.Rows), thousands(r.Jobs),
		plural(r.BadRows, "bad row"), thousands(int(rate)))
	if r.AlreadyPublished > 0 {
		counts += fmt.Sprintf(", %s published before", thousands(r.AlreadyPublished))
	}
	if p.tty {
		line := counts
		if frac >= 0 {
			line = bar(frac) + fmt.Sprintf(" %3.0f%% ", frac*100) + counts + " " + eta
		}
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drew = true
		return
	}
	if frac >= 0 {
		counts = fmt.Sprintf("%.0f%% of the file: %s %s", frac*100, counts, eta)
	}
	fmt.Fprintln(p.w, counts)
}

// println prints a line (a bad row) above the bar.
func (p *sendProgress) println(line string) {
	if p.tty && p.drew {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintln(p.w, line)
}

// done ends the bar's line.
func (p *sendProgress) done() {
	if p.tty && p.drew {
		fmt.Fprintln(p.w)
		p.drew = false
	}
}

// watchProgress shows `campaign status --watch`: a bar of the jobs ended on a
// terminal, a plain line at most every lineEvery otherwise.
type watchProgress struct {
	w      io.Writer
	tty    bool
	start  time.Time
	final0 int
	last   time.Time
	drew   bool
}

func newWatchProgress(w io.Writer, r *campaign.Record) *watchProgress {
	p := &watchProgress{w: w, tty: isTerminal(w), start: time.Now(), final0: r.Counts.Final}
	p.update(r)
	return p
}

func (p *watchProgress) update(r *campaign.Record) {
	now := time.Now()
	if !p.tty && now.Sub(p.last) < lineEvery && r.Ended == nil && !p.last.IsZero() {
		return
	}
	p.last = now
	jobs, final := r.Totals.Jobs, r.Counts.Final
	frac := 0.0
	if jobs > 0 {
		frac = float64(final) / float64(jobs)
	}
	rate := float64(final-p.final0) / now.Sub(p.start).Seconds()
	eta := ""
	if rate > 0 && final < jobs {
		eta = " ETA " + time.Duration(float64(jobs-final)/rate*float64(time.Second)).Round(time.Second).String()
	}
	line := fmt.Sprintf("%s of %s ended, %s sent, %.1f jobs/s%s, %s", thousands(final), thousands(jobs),
		thousands(r.Counts.Sent), rate, eta, stateText(r))
	if !r.PublishingOver() {
		line += " (publishing)"
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s %3.0f%% %s", bar(frac), frac*100, line)
		p.drew = true
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *watchProgress) done() {
	if p.tty && p.drew {
		fmt.Fprintln(p.w)
		p.drew = false
	}
}

// bar draws frac (0 to 1) as a bar of 30 characters.
func bar(frac float64) string {
	const width = 30
	n := int(frac * width)
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

// thousands formats n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := ""
	if n < 0 {
		neg, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return neg + s
}

// plural writes n and the noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return thousands(n) + " " + noun + "s"
}
