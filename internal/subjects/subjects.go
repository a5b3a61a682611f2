// Package subjects names jetsms's streams, subjects, consumers and buckets from one
// prefix, so that several deployments can share a NATS account.
//
// It is also the one place where a value becomes part of a NATS name: every
// subject token and every KV key built from a value that came from outside (a
// callback, a job, a subject) is built here, and a value that could break the
// server's limits is refused with an error wrapping ErrInvalidName — never cut
// short. The server closes a client's connection when one protocol line exceeds
// its max_control_line (4 KiB by default): a publish or KV request names its
// subject, an API prefix and a reply subject on that line, so subjects and keys
// built here stay within MaxSubjectBytes and MaxKeyBytes, far below it.
package subjects

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jetsms/jetsms/internal/redact"
)

// PrefixDefault is the subject prefix of docs/contract.md.
const PrefixDefault = "sms"

// Limits of the names built here (docs/contract.md, "Names and limits").
const (
	// MaxTokenBytes is the longest subject token: a prefix part, a lane, a
	// campaign, a status, the digits of an inbound destination.
	MaxTokenBytes = 128
	// MaxPrefixBytes is the longest subject prefix, dots included.
	MaxPrefixBytes = 256
	// MaxKeyBytes is the longest KV key (dots included). A job id of 128
	// characters, escaped as the ledger escapes it, fits.
	MaxKeyBytes = 2048
	// MaxSubjectBytes bounds every subject built here; it follows from the
	// limits above (a prefix and at most two tokens after a fixed word). With
	// the JetStream API prefix and a reply subject a request's control line
	// stays below 3 KiB, well inside the server's 4 KiB.
	MaxSubjectBytes = MaxPrefixBytes + 16 + 2*MaxTokenBytes
)

// ErrInvalidName is wrapped by every error that refuses a value as (part of) a
// subject or a KV key.
var ErrInvalidName = errors.New("invalid NATS name")

// Names are the NATS names of one deployment. Build them with New.
type Names struct {
	prefix string // e.g. "sms" or "acme.sms"
	upper  string // e.g. "SMS" or "ACME_SMS"
	lower  string // e.g. "sms" or "acme_sms"
}

// New returns the names for prefix, which must be one or more NATS tokens of
// letters, digits, '-' and '_' separated by dots.
func New(prefix string) (Names, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return Names{}, err
	}
	lower := strings.ReplaceAll(prefix, ".", "_")
	return Names{prefix: prefix, upper: strings.ToUpper(lower), lower: lower}, nil
}

// ValidatePrefix says what is wrong with prefix, or returns nil.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return errors.New("must not be empty")
	}
	if len(prefix) > MaxPrefixBytes {
		return fmt.Errorf("is %d bytes; at most %d are allowed", len(prefix), MaxPrefixBytes)
	}
	for _, tok := range strings.Split(prefix, ".") {
		if err := validToken(tok); err != nil {
			return fmt.Errorf("%q: %w", prefix, err)
		}
	}
	return nil
}

// ValidateToken says what is wrong with one subject token used as a name (a lane),
// or returns nil.
func ValidateToken(tok string) error { return validToken(tok) }

func validToken(tok string) error {
	if tok == "" {
		return fmt.Errorf("%w: has an empty token (two dots, or a dot at an end)", ErrInvalidName)
	}
	if len(tok) > MaxTokenBytes {
		return fmt.Errorf("%w: a token is %d bytes; at most %d are allowed", ErrInvalidName, len(tok), MaxTokenBytes)
	}
	for i := 0; i < len(tok); i++ {
		if !tokenByte(tok[i]) {
			return fmt.Errorf("%w: token %s may hold only letters, digits, '-' and '_'", ErrInvalidName, redact.Quote(tok))
		}
	}
	return nil
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// keyByte reports whether c may appear in a KV key: the server's key rule
// (letters, digits, '-', '_', '=', '/' and '.' between tokens).
func keyByte(c byte) bool { return tokenByte(c) || c == '=' || c == '/' }

// Key joins tokens with dots into a KV key, or refuses them: each token must be
// non-empty and hold only letters, digits, '-', '_', '=' and '/', and the key
// must be at most MaxKeyBytes. Every KV key built from a value that came from
// outside is built here.
func Key(tokens ...string) (string, error) {
	n := len(tokens) - 1
	for _, t := range tokens {
		n += len(t)
	}
	if len(tokens) == 0 || n > MaxKeyBytes {
		return "", fmt.Errorf("%w: a KV key of %d bytes; 1 to %d are allowed", ErrInvalidName, max(n, 0), MaxKeyBytes)
	}
	var b strings.Builder
	b.Grow(n)
	for i, t := range tokens {
		if t == "" {
			return "", fmt.Errorf("%w: a KV key has an empty token", ErrInvalidName)
		}
		for j := 0; j < len(t); j++ {
			if !keyByte(t[j]) {
				return "", fmt.Errorf("%w: KV key token %s may hold only letters, digits, '-', '_', '=' and '/'", ErrInvalidName, redact.Quote(t))
			}
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(t)
	}
	return b.String(), nil
}

// Prefix returns the subject prefix.
func (n Names) Prefix() string { return n.prefix }

// JobsStream is the work-queue stream that holds send jobs (SMS_JOBS).
func (n Names) JobsStream() string { return n.upper + "_JOBS" }

// StatusStream holds status events (SMS_STATUS).
func (n Names) StatusStream() string { return n.upper + "_STATUS" }

// InboundStream holds inbound (MO) messages (SMS_INBOUND).
func (n Names) InboundStream() string { return n.upper + "_INBOUND" }

// DeadStream holds dead-lettered jobs (SMS_DEAD).
func (n Names) DeadStream() string { return n.upper + "_DEAD" }

// LedgerBucket is the default name of the job ledger KV bucket (sms_ledger).
func (n Names) LedgerBucket() string { return n.lower + "_ledger" }

// OptOutBucket is the KV bucket of destinations that opted out (sms_optout).
func (n Names) OptOutBucket() string { return n.lower + "_optout" }

// DestinationBucket counts messages per destination and window for the
// per-destination limit (sms_destinations).
func (n Names) DestinationBucket() string { return n.lower + "_destinations" }

// ReplicasBucket is where worker replicas announce themselves to share the
// account's rate (sms_replicas).
func (n Names) ReplicasBucket() string { return n.lower + "_replicas" }

// CampaignBucket is the KV bucket of campaign records (sms_campaigns).
func (n Names) CampaignBucket() string { return n.lower + "_campaigns" }

// CallbacksStream is the work-queue stream where the callback receiver stores
// gateway callbacks as they arrive, before they are resolved (SMS_CALLBACKS).
func (n Names) CallbacksStream() string { return n.upper + "_CALLBACKS" }

// AdvisoriesStream keeps the server's max-deliveries advisories of the jobs
// stream, so that a job JetStream stopped delivering is ended even if no worker
// was listening at that moment (SMS_ADVISORIES).
func (n Names) AdvisoriesStream() string { return n.upper + "_ADVISORIES" }

// MaxDeliveriesAdvisories is the subject filter of the jobs stream's
// max-deliveries advisories.
func (n Names) MaxDeliveriesAdvisories() string { return n.MaxDeliveriesOf(n.JobsStream()) }

// CallbackMaxDeliveriesAdvisories is the subject filter of the callbacks
// stream's max-deliveries advisories.
func (n Names) CallbackMaxDeliveriesAdvisories() string {
	return n.MaxDeliveriesOf(n.CallbacksStream())
}

// MaxDeliveriesOf is the subject filter of one stream's max-deliveries
// advisories.
func (n Names) MaxDeliveriesOf(stream string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + stream + ".>"
}

// CallbacksAll is the subject filter of every stored callback: sms.callbacks.>.
func (n Names) CallbacksAll() string { return n.prefix + ".callbacks.>" }

// CallbackDLR is the subject of stored delivery receipts: sms.callbacks.dlr.
func (n Names) CallbackDLR() string { return n.prefix + ".callbacks.dlr" }

// CallbackMO is the subject of stored inbound (MO) messages: sms.callbacks.mo.
func (n Names) CallbackMO() string { return n.prefix + ".callbacks.mo" }

// Inbound is the subject of an inbound message sent to the short code or number
// whose digits (or another token) are given: sms.inbound.<digits>. A token that is
// not a valid subject token of at most MaxTokenBytes is refused.
func (n Names) Inbound(token string) (string, error) {
	if err := validToken(token); err != nil {
		return "", fmt.Errorf("inbound subject: %w", err)
	}
	return n.prefix + ".inbound." + token, nil
}

// SendAll is the subject filter of every job: sms.send.>.
func (n Names) SendAll() string { return n.prefix + ".send.>" }

// Send is the subject a producer publishes a job for lane to: sms.send.<lane>.
func (n Names) Send(lane string) string { return n.prefix + ".send." + lane }

// SendCampaign is the subject of a campaign's job: sms.send.<lane>.<campaign>.
// Lane and campaign must each be a valid token of at most MaxTokenBytes.
func (n Names) SendCampaign(lane, campaign string) (string, error) {
	if err := validToken(lane); err != nil {
		return "", fmt.Errorf("lane: %w", err)
	}
	if err := validToken(campaign); err != nil {
		return "", fmt.Errorf("campaign: %w", err)
	}
	return n.prefix + ".send." + lane + "." + campaign, nil
}

// LaneFilters are the subject filters of one lane's consumer: the lane itself and
// its campaigns.
func (n Names) LaneFilters(lane string) []string {
	return []string{n.Send(lane), n.Send(lane) + ".>"}
}

// ParseSend splits a job subject into its lane and campaign. The campaign may hold
// further dots. ok is false for a subject outside sms.send.>.
func (n Names) ParseSend(subject string) (lane, campaign string, ok bool) {
	rest, found := strings.CutPrefix(subject, n.prefix+".send.")
	if !found || rest == "" {
		return "", "", false
	}
	lane, campaign, _ = strings.Cut(rest, ".")
	return lane, campaign, lane != ""
}

// StatusAll is the subject filter of every status event: sms.status.>.
func (n Names) StatusAll() string { return n.prefix + ".status.>" }

// Status is the subject of events in one status: sms.status.<status>.
func (n Names) Status(status string) string { return n.prefix + ".status." + status }

// InboundAll is the subject filter of every inbound message: sms.inbound.>.
func (n Names) InboundAll() string { return n.prefix + ".inbound.>" }

// DeadAll is the subject filter of every dead letter: sms.dead.>.
func (n Names) DeadAll() string { return n.prefix + ".dead.>" }

// DeadOther is the dead-letter token of a job whose lane cannot be a subject
// token (it is not one, or it is longer than MaxTokenBytes): sms.dead._.
const DeadOther = "_"

// Dead is the dead-letter subject of a lane: sms.dead.<lane>, or sms.dead._ when
// lane is not a valid token (a dead letter is stored whatever its lane).
func (n Names) Dead(lane string) string {
	if validToken(lane) != nil {
		lane = DeadOther
	}
	return n.prefix + ".dead." + lane
}

// The durable consumers, named here so that every name NATS sees is built in one
// place.

// Consumer is the durable consumer name of a lane's workers on the jobs stream:
// jetsms_sms_<lane>.
func (n Names) Consumer(lane string) string { return n.consumer(lane) }

// MaxDeliverConsumer is the workers' consumer of the max-deliveries advisories:
// jetsms_sms_maxdeliver.
func (n Names) MaxDeliverConsumer() string { return n.consumer("maxdeliver") }

// ResolverConsumer is the resolver's consumer of the callbacks stream:
// jetsms_sms_callbacks.
func (n Names) ResolverConsumer() string { return n.consumer("callbacks") }

// ReconcilerConsumer is the reconciler's consumer of the accepted events:
// jetsms_sms_reconcile.
func (n Names) ReconcilerConsumer() string { return n.consumer("reconcile") }

// TrackerConsumer is the campaign tracker's consumer of the status stream:
// jetsms_campaign_tracker (without the prefix: the stream is the prefix's own).
func (n Names) TrackerConsumer() string { return "jetsms_campaign_tracker" }

func (n Names) consumer(name string) string { return "jetsms_" + n.lower + "_" + name }
