package broker

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// MaxDeliveries is the part of the server's max-deliveries advisory jetsms reads:
// the message of Stream at StreamSeq was delivered Deliveries times without an
// ack, and its consumer will not deliver it again.
type MaxDeliveries struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// MaxDeliveriesConfig says which advisories a watcher takes from the advisories
// stream.
type MaxDeliveriesConfig struct {
	// Stream is the advisories stream (subjects.Names.AdvisoriesStream).
	Stream string
	// Durable names the watcher's consumer; Description says whose it is.
	Durable, Description string
	// Filter is the advisories it takes (e.g. Names.MaxDeliveriesAdvisories).
	// Watchers of one advisories stream must have filters that do not overlap.
	Filter string
	// Retry is how long an advisory whose handling failed waits to be handled
	// again, and how long the watcher waits after a failed fetch.
	Retry time.Duration
}

// fetchWait is how long one fetch of advisories waits; a stop waits for it.
const fetchWait = 2 * time.Second

// WatchMaxDeliveries hands every max-deliveries advisory of cfg.Filter to handle
// until ctx ends: the one mechanism that ends a message JetStream stopped
// delivering (a job or a callback whose handling fails every time). The
// advisories are kept in a stream, so none is missed while nothing watches. An
// advisory is acked once handle returns nil and handed back after cfg.Retry when
// it returns an error; one that does not parse is acked and dropped.
func WatchMaxDeliveries(ctx context.Context, js jetstream.JetStream, cfg MaxDeliveriesConfig, log *zap.Logger,
	handle func(ctx context.Context, a MaxDeliveries) error,
) {
	var cons jetstream.Consumer
	for ctx.Err() == nil {
		var err error
		cons, err = js.CreateOrUpdateConsumer(ctx, cfg.Stream, jetstream.ConsumerConfig{
			Durable:       cfg.Durable,
			Description:   cfg.Description,
			FilterSubject: cfg.Filter,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       time.Minute,
		})
		if err == nil {
			break
		}
		log.Warn("max-deliveries consumer", zap.String("consumer", cfg.Durable), zap.Error(err))
		sleep(ctx, cfg.Retry)
	}
	for ctx.Err() == nil {
		batch, err := cons.Fetch(16, jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("fetch max-deliveries advisories", zap.String("consumer", cfg.Durable), zap.Error(err))
				sleep(ctx, cfg.Retry)
			}
			continue
		}
		for m := range batch.Messages() {
			var a MaxDeliveries
			if err := json.Unmarshal(m.Data(), &a); err != nil || a.StreamSeq == 0 {
				_ = m.Ack() // not an advisory a watcher can act on
				continue
			}
			if err := handle(ctx, a); err != nil {
				log.Warn("message past max deliveries not ended yet", zap.String("stream", a.Stream),
					zap.Uint64("stream_seq", a.StreamSeq), zap.Error(err))
				_ = m.NakWithDelay(cfg.Retry)
				continue
			}
			_ = m.Ack()
		}
	}
}

// LoadUndelivered reads the message an advisory names. It returns nil and no
// error when the message is gone (acked or ended meanwhile).
func LoadUndelivered(ctx context.Context, js jetstream.JetStream, a MaxDeliveries) (*jetstream.RawStreamMsg, jetstream.Stream, error) {
	s, err := js.Stream(ctx, a.Stream)
	if err != nil {
		return nil, nil, err
	}
	raw, err := s.GetMsg(ctx, a.StreamSeq)
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrMsgNotFound) || errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeMessageNotFound {
		return nil, s, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return raw, s, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
