package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/config"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/subjects"
)

// deadFilter selects dead letters.
type deadFilter struct {
	reason, lane, job string
	limit             int
}

func (f deadFilter) match(m *jetstream.RawStreamMsg) bool {
	return (f.reason == "" || m.Header.Get(events.HeaderReason) == f.reason) &&
		(f.job == "" || m.Header.Get(events.HeaderJobID) == f.job)
}

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
	var f deadFilter
	var dryRun bool
	cfg, err := loadConfig("dead "+verb, args[1:], stderr, func(fs *flag.FlagSet, cf *config.Flags) {
		cf.Client()
		fs.StringVar(&f.reason, "reason", "", "only this reason: invalid_job, gateway_rejected, retries_exhausted, unknown_lane, expired, outcome_unknown, callback_failed")
		fs.StringVar(&f.lane, "lane", "", "only this lane's dead letters")
		fs.StringVar(&f.job, "job", "", "only this job's")
		fs.IntVar(&f.limit, "limit", 0, "at most this many (0: all)")
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
	if f.lane != "" {
		if err := subjects.ValidateToken(f.lane); err != nil {
			return fmt.Errorf("--lane: %w", err)
		}
		filter = names.Dead(f.lane)
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
	letters, err := readDead(ctx, stream, filter, f)
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
		if err := replay(ctx, js, stream, m); err != nil {
			return fmt.Errorf("replayed %d of %d; %w", replayed, len(letters), err)
		}
		replayed++
		fmt.Fprintf(stdout, "replayed job %s to %s\n", m.Header.Get(events.HeaderJobID), m.Header.Get(events.HeaderSubject))
	}
	fmt.Fprintf(stdout, "%d dead letters replayed\n", replayed)
	return nil
}

// readDead returns the stored dead letters on filter that f selects, oldest
// first, reading the stream once up to its current end.
func readDead(ctx context.Context, stream jetstream.Stream, filter string, f deadFilter) ([]*jetstream.RawStreamMsg, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	var out []*jetstream.RawStreamMsg
	last := info.State.LastSeq
	for seq := info.State.FirstSeq; seq <= last && seq > 0; {
		m, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if err != nil {
			if isNoMessage(err) {
				break
			}
			return nil, fmt.Errorf("read dead letters: %w", err)
		}
		if m.Sequence > last {
			break
		}
		if f.match(m) {
			out = append(out, m)
			if f.limit > 0 && len(out) >= f.limit {
				break
			}
		}
		seq = m.Sequence + 1
	}
	return out, nil
}

func isNoMessage(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrMsgNotFound) ||
		errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound
}

// replay publishes a dead letter to the subject it came from, marked as a replay
// (Jetsms-Replay: its dead-letter sequence, so replaying it twice is one replay),
// and then removes it from the dead-letter stream.
func replay(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, m *jetstream.RawStreamMsg) error {
	subject := m.Header.Get(events.HeaderSubject)
	jobID := m.Header.Get(events.HeaderJobID)
	if subject == "" || jobID == "" {
		return fmt.Errorf("dead letter %d has no %s or %s header", m.Sequence, events.HeaderSubject, events.HeaderJobID)
	}
	seq := strconv.FormatUint(m.Sequence, 10)
	hdr := nats.Header{}
	for k, v := range m.Header {
		switch k {
		case events.HeaderReason, events.HeaderError, events.HeaderSubject, events.HeaderJobID, events.HeaderOriginalMsgID,
			jetstream.MsgIDHeader, events.HeaderReplay:
			continue
		}
		hdr[k] = v
	}
	hdr.Set(jetstream.MsgIDHeader, jobID+":replay:"+seq)
	hdr.Set(events.HeaderReplay, seq)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(pctx, &nats.Msg{Subject: subject, Data: m.Data, Header: hdr}); err != nil {
		return fmt.Errorf("replay job %s: %w", jobID, err)
	}
	if err := stream.DeleteMsg(pctx, m.Sequence); err != nil {
		return fmt.Errorf("job %s replayed, but its dead letter %d not removed: %w", jobID, m.Sequence, err)
	}
	return nil
}

func printDead(w io.Writer, letters []*jetstream.RawStreamMsg) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tSUBJECT\tJOB\tREASON\tERROR")
	for _, m := range letters {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", m.Sequence, m.Time.UTC().Format(time.RFC3339),
			m.Header.Get(events.HeaderSubject), m.Header.Get(events.HeaderJobID),
			m.Header.Get(events.HeaderReason), m.Header.Get(events.HeaderError))
	}
	_ = tw.Flush()
}
