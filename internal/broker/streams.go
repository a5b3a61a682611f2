package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/subjects"
)

// Stream defaults. The duplicate window is how long JetStream remembers a
// Nats-Msg-Id, so a producer may retry a publish within it without a second job.
const (
	DuplicateWindowDefault = 2 * time.Minute
	JobsMaxBytesDefault    = int64(1 << 30)
	MaxAgeDefault          = 7 * 24 * time.Hour
	// MaxJobBytes is the largest job message the jobs stream stores: content of ten
	// segments and 4 KiB of metadata fit many times over.
	MaxJobBytes = 64 << 10
)

// StreamsConfig says which streams to declare and with which limits.
type StreamsConfig struct {
	Names subjects.Names
	// JobsMaxBytes caps the jobs stream; when full, publishes are refused (discard
	// new) so producers are pushed back rather than the server filling up.
	JobsMaxBytes int64
	// MaxAge is how long status events, inbound messages and dead letters are kept.
	MaxAge time.Duration
	// Replicas is each stream's replica count (1, or 3 on a cluster).
	Replicas int
}

// StreamConfigs returns the stream configurations of the wire contract.
func StreamConfigs(cfg StreamsConfig) []jetstream.StreamConfig {
	n := cfg.Names
	replicas := max(cfg.Replicas, 1)
	maxBytes := cfg.JobsMaxBytes
	if maxBytes == 0 {
		maxBytes = JobsMaxBytesDefault
	}
	maxAge := cfg.MaxAge
	if maxAge == 0 {
		maxAge = MaxAgeDefault
	}
	limits := func(name, desc, filter string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{filter},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      maxAge,
			Duplicates:  DuplicateWindowDefault,
			Replicas:    replicas,
		}
	}
	return []jetstream.StreamConfig{
		{
			Name:        n.JobsStream(),
			Description: "jetsms send jobs, one consumer per lane",
			Subjects:    []string{n.SendAll()},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    maxBytes,
			MaxMsgSize:  MaxJobBytes,
			Duplicates:  DuplicateWindowDefault,
			Replicas:    replicas,
		},
		limits(n.StatusStream(), "jetsms job status events", n.StatusAll()),
		limits(n.InboundStream(), "jetsms inbound (MO) messages", n.InboundAll()),
		limits(n.DeadStream(), "jetsms dead-lettered jobs", n.DeadAll()),
		{
			Name:        n.CallbacksStream(),
			Description: "jetsms gateway callbacks (DLR and MO) as received, until resolved",
			Subjects:    []string{n.CallbacksAll()},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      maxAge,
			MaxMsgSize:  MaxJobBytes,
			Duplicates:  DuplicateWindowDefault,
			Replicas:    replicas,
		},
		{
			Name:        n.AdvisoriesStream(),
			Description: "jetsms: jobs and callbacks JetStream stopped delivering (max deliveries reached), until a worker or resolver ends them",
			Subjects:    []string{n.MaxDeliveriesAdvisories(), n.CallbackMaxDeliveriesAdvisories()},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      maxAge,
			Duplicates:  DuplicateWindowDefault,
			Replicas:    replicas,
		},
	}
}

// ErrStreamMismatch is returned when an existing stream has a setting jetsms needs
// different and that cannot be changed in place.
var ErrStreamMismatch = errors.New("stream setting cannot be changed in place")

// EnsureStreams creates the streams of the contract, or updates existing ones to the
// configured limits. A fixed setting that differs (storage, retention) is an error
// wrapping ErrStreamMismatch that names the stream, the setting, both values and what
// to do; any other refusal by the server is returned naming the stream.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	for _, want := range StreamConfigs(cfg) {
		if err := ensureStream(ctx, js, want); err != nil {
			return err
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateStream(ctx, want); err != nil {
			return fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Storage != want.Storage {
		return mismatch(want.Name, "storage", have.Storage.String(), want.Storage.String())
	}
	if have.Retention != want.Retention {
		return mismatch(want.Name, "retention", have.Retention.String(), want.Retention.String())
	}
	// Keep what an operator may have added that jetsms does not manage (placement,
	// sources, metadata...), and set what jetsms does.
	merged := have
	merged.Description = want.Description
	merged.Subjects = want.Subjects
	merged.Discard = want.Discard
	merged.MaxBytes = want.MaxBytes
	merged.MaxMsgSize = want.MaxMsgSize
	merged.MaxAge = want.MaxAge
	merged.Duplicates = want.Duplicates
	merged.Replicas = want.Replicas
	if _, err := js.UpdateStream(ctx, merged); err != nil {
		return fmt.Errorf("update stream %s to the configured limits (subjects %v, max_bytes %d, max_age %s, replicas %d): %w",
			want.Name, want.Subjects, want.MaxBytes, want.MaxAge, want.Replicas, err)
	}
	return nil
}

func mismatch(stream, setting, have, want string) error {
	return fmt.Errorf("stream %s: %s is %s but jetsms needs %s: %w; back up and delete the stream, or use another streams.prefix",
		stream, setting, have, want, ErrStreamMismatch)
}
