// Package optout keeps the numbers that opted out of marketing messages (a NATS KV
// bucket) and recognises the opt-out and opt-in keywords of inbound replies.
package optout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/subjects"
)

// Action is what an inbound message asks of the list.
type Action int

// The actions of the keywords in docs/contract.md ("Inbound messages").
const (
	None  Action = iota
	Stop         // STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT
	Start        // START, UNSTOP
)

// KeywordAction returns the action of an inbound message's content: a keyword
// alone, in any case, with surrounding space ignored.
func KeywordAction(content string) Action {
	switch strings.ToUpper(strings.TrimSpace(content)) {
	case "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT":
		return Stop
	case "START", "UNSTOP":
		return Start
	}
	return None
}

// Config names the bucket.
type Config struct {
	// Bucket is the KV bucket's name, e.g. sms_optout. Required.
	Bucket string
	// Replicas is the bucket's replica count.
	Replicas int
}

// List is the opt-out list. It is safe for concurrent use.
type List struct {
	kv jetstream.KeyValue
}

// Record is what the list keeps per number.
type Record struct {
	Number string    `json:"number"`
	At     time.Time `json:"at"`
	// Inbound is the id of the inbound message that opted the number out.
	Inbound string `json:"inbound,omitempty"`
	Keyword string `json:"keyword,omitempty"`
}

// Open creates or updates the bucket and returns the list.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*List, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("optout: bucket name is required")
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "jetsms opt-out list: numbers that replied STOP, by digits",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open opt-out bucket %s: %w", cfg.Bucket, err)
	}
	return &List{kv: kv}, nil
}

// Add opts number out.
func (l *List) Add(ctx context.Context, rec Record) error {
	key, err := key(rec.Number)
	if err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode opt-out: %w", err)
	}
	if _, err := l.kv.Put(ctx, key, data); err != nil {
		return fmt.Errorf("opt out a number: %w", err)
	}
	return nil
}

// Remove opts number back in; removing a number not on the list is not an error.
func (l *List) Remove(ctx context.Context, number string) error {
	key, err := key(number)
	if err != nil {
		return err
	}
	if err := l.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("opt in a number: %w", err)
	}
	return nil
}

// Has reports whether number has opted out.
func (l *List) Has(ctx context.Context, number string) (bool, error) {
	key, err := key(number)
	if err != nil {
		return false, err
	}
	_, err = l.kv.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up the opt-out of a number: %w", err)
}

// ErrNoDigits is returned for a number without digits.
var ErrNoDigits = errors.New("optout: the number has no digits")

// key is the number's digits, so "+64211234567" and "64211234567" are one entry;
// subjects.Key refuses digits too many for a key. The error names no digit.
func key(number string) (string, error) {
	d := Digits(number)
	if d == "" {
		return "", ErrNoDigits
	}
	k, err := subjects.Key(d)
	if err != nil {
		return "", fmt.Errorf("optout: number of %d digits: %w", len(d), err)
	}
	return k, nil
}

// Digits returns the digits of a number or short code ("" when it has none).
func Digits(number string) string {
	var b strings.Builder
	for i := 0; i < len(number); i++ {
		if c := number[i]; c >= '0' && c <= '9' {
			b.WriteByte(c)
		}
	}
	return b.String()
}
