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
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
)

// errCodeWQNotUnique is the server's refusal of a second consumer whose filter
// overlaps another on a work-queue stream: another worker is sweeping that subject.
const errCodeWQNotUnique jetstream.ErrorCode = 10100

// sweepStrays ends jobs published to lanes that are not configured. The jobs stream
// takes every sms.send.> subject so that no such job is dropped at publish time; the
// lane consumers cannot cover "everything else" (work-queue consumers must not
// overlap), so this loop looks for subjects outside the lanes and drains each with a
// short-lived consumer of its own.
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
	for subject := range info.State.Subjects {
		lane, _, ok := w.cfg.Names.ParseSend(subject)
		if ok && w.laneSet[lane] {
			continue
		}
		if err := w.drainStray(ctx, s, subject); err != nil {
			return fmt.Errorf("subject %s: %w", redact.Cut(subject), err)
		}
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
	for ctx.Err() == nil {
		batch, err := cons.Fetch(100, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			w.endStray(ctx, m, lanes)
		}
		if err := batch.Error(); err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
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
	_ = w.decode(r) // for the id, destination and metadata of the event, as far as they read
	given := r.job.Lane
	if subjects.ValidateToken(given) != nil {
		// Not a name jetsms may use (a metrics label, a dead-letter subject).
		r.job.Lane = subjects.DeadOther
	}
	w.end(ctx, r, job.StatusFailed, events.ReasonUnknownLane,
		fmt.Sprintf("lane: %s is not configured (lanes: %s)", redact.Quote(given), lanes), "")
}
