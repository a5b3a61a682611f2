package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/subjects"
)

// DestinationLimit bounds the messages sent to one number: at most Max in each
// Window (fixed windows, counted across all replicas in a KV bucket). Excess jobs
// are delayed to the next window, not dropped.
type DestinationLimit struct {
	Max    int
	Window time.Duration
}

// destGuard counts messages per number and window in the <prefix>_destinations
// bucket, by compare-and-set, so replicas share one count.
type destGuard struct {
	js    jetstream.JetStream
	names subjects.Names
	cfg   DestinationLimit

	mu sync.Mutex
	kv jetstream.KeyValue
}

func newDestGuard(js jetstream.JetStream, names subjects.Names, cfg DestinationLimit) *destGuard {
	return &destGuard{js: js, names: names, cfg: cfg}
}

func (g *destGuard) bucket(ctx context.Context) (jetstream.KeyValue, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.kv != nil {
		return g.kv, nil
	}
	kv, err := g.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      g.names.DestinationBucket(),
		Description: "jetsms messages per destination and window",
		History:     1,
		TTL:         2 * g.cfg.Window,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("destination limit bucket: %w", err)
	}
	g.kv = kv
	return kv, nil
}

// take counts one message to number in the current window. It returns 0 when the
// message may go, or how long until the next window when this one is full.
func (g *destGuard) take(ctx context.Context, number string, now time.Time) (time.Duration, error) {
	kv, err := g.bucket(ctx)
	if err != nil {
		return 0, err
	}
	digits := optout.Digits(number)
	if digits == "" {
		return 0, nil
	}
	window := now.UnixNano() / int64(g.cfg.Window)
	key, err := subjects.Key("d", digits, strconv.FormatInt(window, 10))
	if err != nil {
		// The job's destination is checked as it is decoded (at most 15 digits),
		// so this is a number no job has.
		return 0, fmt.Errorf("count messages to a number of %d digits: %w", len(digits), err)
	}
	for range 16 {
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := kv.Create(ctx, key, []byte("1")); err == nil {
				return 0, nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return 0, fmt.Errorf("count messages to the destination: %w", err)
			}
			continue
		case err != nil:
			return 0, fmt.Errorf("count messages to the destination: %w", err)
		}
		n, _ := strconv.Atoi(string(e.Value()))
		if n >= g.cfg.Max {
			next := time.Unix(0, (window+1)*int64(g.cfg.Window))
			return max(next.Sub(now), time.Millisecond), nil
		}
		_, err = kv.Update(ctx, key, []byte(strconv.Itoa(n+1)), e.Revision())
		if err == nil {
			return 0, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, fmt.Errorf("count messages to the destination: %w", err)
		}
	}
	return 0, errors.New("count messages to the destination: too many writers at once")
}
