package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/app"
	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// sendFlags are the flags of `jetsms send` beyond the settings.
type sendFlags struct {
	to, text, lane, campaign, id, reference, source string
	wait                                            bool
	until                                           string
	timeout                                         time.Duration
	jsonOut                                         bool
}

// statusError is a job that ended in a status other than accepted or received.
type statusError struct{ ev job.Event }

func (e statusError) Error() string {
	msg := fmt.Sprintf("job %s ended %s", e.ev.JobID, e.ev.Status)
	if e.ev.Error != "" {
		msg += ": " + e.ev.Error
	}
	return msg
}

func (e statusError) ExitCode() int { return 3 }

// runSend is `jetsms send`: publish one job, and with --wait print its status events.
func runSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// The status follower's goroutine and its consumer end when the command
	// returns, not only when the caller's context ends (run is called in-process
	// by the tests).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var f sendFlags
	cfg, err := loadConfig("send", args, stderr, func(fs *flag.FlagSet, cf *config.Flags) {
		cf.Client()
		fs.StringVar(&f.to, "to", "", "destination in international format, e.g. +64211234567 (required)")
		fs.StringVar(&f.text, "text", "", "message content (required)")
		fs.StringVar(&f.lane, "lane", "default", "lane to publish to")
		fs.StringVar(&f.campaign, "campaign", "", "campaign name (subject sms.send.<lane>.<campaign>)")
		fs.StringVar(&f.id, "id", "", "job id (default: a new UUID)")
		fs.StringVar(&f.reference, "reference", "", "reference the gateway echoes in receipts")
		fs.StringVar(&f.source, "source", "", "source number or short code")
		fs.BoolVar(&f.wait, "wait", false, "print the job's status events until it is done")
		fs.StringVar(&f.until, "until", "final", "with --wait: stop at a 'final' status, or already at 'accepted'")
		fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "with --wait: how long to wait")
		fs.BoolVar(&f.jsonOut, "json", false, "print events as JSON lines")
	})
	if err != nil {
		return err
	}
	if f.to == "" || f.text == "" {
		fmt.Fprintln(stderr, "jetsms send: --to and --text are required, e.g. jetsms send --to +64211234567 --text 'Hello'")
		return errUsage
	}
	if f.until != "accepted" && f.until != "final" {
		fmt.Fprintf(stderr, "jetsms send: --until must be accepted or final (got %q)\n", f.until)
		return errUsage
	}
	names, err := subjects.New(cfg.Streams.Prefix)
	if err != nil {
		return fmt.Errorf("streams.prefix: %w", err)
	}
	if err := subjects.ValidateToken(f.lane); err != nil {
		return fmt.Errorf("--lane: %w", err)
	}
	if f.id == "" {
		f.id = uuid.NewString()
	}
	j := job.Job{ID: f.id, Destination: f.to, Content: f.text, Reference: f.reference, Source: f.source}
	// Check here what the worker would refuse, so the user hears it at once.
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if _, err := (job.Decoder{MaxSegments: cfg.Jobs.MaxSegments}).Decode(data); err != nil {
		return fmt.Errorf("job refused: %w", err)
	}

	nc, js, err := connectJetStream(ctx, cfg)
	if err != nil {
		return err
	}
	defer nc.Close()
	subject := names.Send(f.lane)
	if f.campaign != "" {
		if subject, err = names.SendCampaign(f.lane, f.campaign); err != nil {
			return fmt.Errorf("--campaign: %w", err)
		}
	}

	// Follow before publishing, so no event can be missed.
	var events <-chan job.Event
	if f.wait {
		events, err = follow(ctx, js, names, f.id)
		if err != nil {
			return err
		}
	}
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: natsHeader(jetstream.MsgIDHeader, f.id)})
	if err != nil {
		return fmt.Errorf("publish job: %w", err)
	}
	if ack.Duplicate {
		fmt.Fprintf(stdout, "job %s was already published (duplicate id within the stream's window)\n", f.id)
	} else {
		fmt.Fprintf(stdout, "job %s published to %s (stream %s, seq %d)\n", f.id, subject, ack.Stream, ack.Sequence)
	}
	if !f.wait {
		return nil
	}
	return waitForEvents(ctx, events, f, stdout)
}

// connectClient connects to nats.url, or to a running `jetsms run`'s embedded server.
func connectClient(ctx context.Context, cfg config.Config) (*nats.Conn, error) {
	url := cfg.NATS.URL
	if url == "" {
		url = "nats://" + cfg.NATS.Embedded.Listen
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nc, err := broker.Connect(cctx, app.ConnectConfig(cfg, url, "jetsms send"), nil)
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, fmt.Errorf("%w (the embedded server's password is read from %s: run where `jetsms run` runs, set nats.embedded.store_dir to its directory, or set nats.user and nats.password)",
			err, broker.PasswordPath(cfg.NATS.Embedded.StoreDir))
	}
	if err != nil {
		return nil, fmt.Errorf("%w (is `jetsms run` running, or nats.url set?)", err)
	}
	return nc, nil
}

// connectJetStream is connectClient with a JetStream context on the connection.
func connectJetStream(ctx context.Context, cfg config.Config) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := connectClient(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// follow streams the status events of one job, from now on.
func follow(ctx context.Context, js jetstream.JetStream, names subjects.Names, jobID string) (<-chan job.Event, error) {
	cons, err := js.OrderedConsumer(ctx, names.StatusStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.StatusAll()},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("follow status events: %w", err)
	}
	out := make(chan job.Event, 16)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var ev job.Event
		if json.Unmarshal(m.Data(), &ev) == nil && ev.JobID == jobID {
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("follow status events: %w", err)
	}
	go func() { <-ctx.Done(); cc.Stop() }()
	return out, nil
}

func waitForEvents(ctx context.Context, events <-chan job.Event, f sendFlags, stdout io.Writer) error {
	timer := time.NewTimer(f.timeout)
	defer timer.Stop()
	var last *job.Event
	for {
		select {
		case ev := <-events:
			last = &ev
			printEvent(stdout, ev, f.jsonOut)
			done := ev.Final || (f.until == "accepted" && ev.Status == job.StatusAccepted)
			if !done {
				continue
			}
			if ev.Status == job.StatusAccepted || ev.Status == job.StatusReceived {
				return nil
			}
			return statusError{ev}
		case <-timer.C:
			if last == nil {
				return fmt.Errorf("no status event within %s (is a worker running?)", f.timeout)
			}
			return fmt.Errorf("no final status within %s; last status %s", f.timeout, last.Status)
		case <-ctx.Done():
			return errors.New("interrupted")
		}
	}
}

func printEvent(w io.Writer, ev job.Event, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(ev)
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprintln(w, eventLine(ev))
}
