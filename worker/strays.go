package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/redact"
)

// errCodeWQNotUnique is the server's refusal of a second consumer whose filter
// overlaps another on a work-queue stream: another worker is sweeping that subject.
const errCodeWQNotUnique jetstream.ErrorCode = 10100

// sweepStrays ends jobs published to lanes that are not configured, and jobs on
// subjects that are not sms.send.<lane>[.<campaign>] with valid tokens. The jobs
// stream takes every sms.send.> subject so that no such job is dropped at publish
// time; the lane consumers cannot cover "everything else" (work-queue consumers
// must not overlap), so this loop looks for subjects outside the lanes and drains
// each with a short-lived consumer of its own, or, for a subject that holds a
// wildcard as text (sms.send.*, sms.send.>, sms.send.*.x), which no consumer filter
// can name alone, by reading the stream by sequence.
func (w *Worker) sweepStrays(ctx context.Context) {
	for {
		if err := w.sweepOnce(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("sweep jobs on unknown lanes", zap.Error(err))
		}
		wait(ctx, w.cfg.StraySweepInterval)
		if ctx.Err() != nil {
			return
		}
	}
}

func (w *Worker) sweepOnce(ctx context.Context) error {
	s, err := w.js.Stream(ctx, w.cfg.Names.JobsStream())
	if err != nil {
		return err
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(w.cfg.Names.SendAll()))
	if err != nil {
		return err
	}
	for subject, n := range info.State.Subjects {
		lane, _, ok := w.cfg.Names.ParseSend(subject)
		if ok && w.laneSet[lane] {
			// The lane's consumer takes it (sms.send.<lane>.> covers every
			// subject below the lane); the worker ends those that are invalid.
			continue
		}
		if hasWildcard(subject) {
			err = w.scanStray(ctx, s, subject, n, info.State.FirstSeq)
		} else {
			err = w.drainStray(ctx, s, subject)
		}
		if err != nil {
			return fmt.Errorf("subject %s: %w", redact.Cut(subject), err)
		}
	}
	return nil
}

// hasWildcard reports whether subject has a token that a filter reads as a
// wildcard: * or >.
func hasWildcard(subject string) bool {
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "*" || tok == ">" {
			return true
		}
	}
	return false
}

// strayScanMax bounds the messages one sweep reads for one wildcard subject; a
// later sweep goes on from where it stopped.
const strayScanMax = 10_000

// scanStray ends the n jobs stored under subject, a subject with a wildcard as
// text: the stream is read by sequence from first, asking for the next message
// whose subject the wildcard matches, and only those whose subject is the text
// itself are ended (each deleted from the stream once its end is stored).
func (w *Worker) scanStray(ctx context.Context, s jetstream.Stream, subject string, n uint64, first uint64) error {
	seq := max(first, w.strayCursor[subject])
	found := uint64(0)
	for range strayScanMax {
		if ctx.Err() != nil || found >= n {
			break
		}
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			seq = first // none left after seq: start again from the first next time
			break
		}
		if err != nil {
			return err
		}
		seq = raw.Sequence + 1
		if raw.Subject != subject {
			continue
		}
		found++
		w.endStray(ctx, &storedMsg{raw: raw, stream: s, deliveries: 1}, strings.Join(w.cfg.Lanes, ", "))
	}
	if found >= n {
		delete(w.strayCursor, subject)
	} else {
		w.strayCursor[subject] = seq
	}
	return nil
}

func (w *Worker) drainStray(ctx context.Context, s jetstream.Stream, subject string) error {
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     subject,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           w.cfg.AckWait,
		InactiveThreshold: time.Minute,
	})
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeWQNotUnique {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		defer cancel()
		_ = s.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	lanes := strings.Join(w.cfg.Lanes, ", ")
	// Only the jobs there when the consumer was made: waiting for more would
	// cost every stray subject a fetch's wait (later ones wait for the next
	// sweep).
	for left := cons.CachedInfo().NumPending; left > 0 && ctx.Err() == nil; {
		batch, err := cons.Fetch(int(min(left, 100)), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		n := uint64(0)
		for m := range batch.Messages() {
			n++
			w.endStray(ctx, syncTerm{m}, lanes)
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		left -= min(n, left)
	}
	return nil
}

func (w *Worker) endStray(ctx context.Context, m jetstream.Msg, lanes string) {
	meta, err := m.Metadata()
	if err != nil {
		_ = m.Term()
		return
	}
	r := &jobRun{msg: m, meta: meta}
	// The id, destination and metadata of the event, as far as they read.
	if reason, err := w.decode(r); reason == events.ReasonInvalidSubject {
		w.refuse(ctx, r, reason, err.Error())
		return
	}
	given, _, _ := w.cfg.Names.ParseSend(r.msg.Subject())
	w.refuse(ctx, r, events.ReasonUnknownLane,
		fmt.Sprintf("lane: %s is not configured (lanes: %s)", redact.Quote(given), lanes))
}

// syncTerm is a stray job whose Term waits until the server has removed it (an
// acknowledged ack: the work-queue stream drops it either way), so that the next
// sweep, which may come before a plain Term is applied, does not end it again.
type syncTerm struct{ jetstream.Msg }

func (m syncTerm) Term() error {
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	return m.DoubleAck(ctx)
}
