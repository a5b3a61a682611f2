package gwsim

import "errors"

// The DLR statuses of the REST v2 page ("DLR Message Status" and "Omni Message
// Status"). Receipts carry them; GET /messages shows the latest one sent.
const (
	StatusSubmitted = "submitted" // submitted to the carrier for delivery
	StatusSent      = "sent"      // sent by the carrier transport
	StatusReceived  = "received"  // received by the handset (final)
	StatusFrozen    = "frozen"    // a transient error has frozen the message
	StatusRejected  = "rejected"  // the carrier rejected the message (final)
	StatusFailed    = "failed"    // delivery failed: carrier connectivity (final)
	StatusDead      = "dead"      // killed by an administrator (final)
	StatusExpired   = "expired"   // the carrier could not deliver in time (final)
)

// dlrStatuses are the statuses a receipt may carry, final or not.
var dlrStatuses = []string{
	StatusSubmitted, StatusSent, StatusReceived, StatusFrozen,
	StatusRejected, StatusFailed, StatusDead, StatusExpired,
}

// finalStatus reports whether status ends a message's life: received, rejected,
// failed, dead or expired. The simulator never replaces a final status with a
// non-final one.
func finalStatus(status string) bool {
	switch status {
	case StatusReceived, StatusRejected, StatusFailed, StatusDead, StatusExpired:
		return true
	}
	return false
}

func knownStatus(status string) bool {
	for _, s := range dlrStatuses {
		if s == status {
			return true
		}
	}
	return false
}

// ErrInvalidDLRMix is wrapped by every error of ParseDLRMix and DLRMix.Validate.
var ErrInvalidDLRMix = errors.New("gwsim: invalid DLR mix")

// DLRMix is the chance, from 0 to 1, that a message's last receipt carries each
// status. The chances must add up to at most 1; the rest of the messages are
// received. The zero DLRMix makes every message received.
//
// Non-final statuses are allowed as the last receipt, to simulate a carrier that
// never reports an outcome; None sends no last receipt at all, so the message gets
// only the interim ones (Config.DLRInterim).
type DLRMix struct {
	Received  float64 // key "received"
	Rejected  float64 // key "rejected"
	Expired   float64 // key "expired"
	Failed    float64 // key "failed"
	Dead      float64 // key "dead"
	Sent      float64 // key "sent"
	Submitted float64 // key "submitted"
	Frozen    float64 // key "frozen"
	None      float64 // key "none": no last receipt
}

// dlrMixFields lists the DLRMix fields in the order String prints them and draws
// use. A draw yields the status, "" for None.
var dlrMixFields = []mixField[DLRMix, string]{
	{StatusReceived, StatusReceived, "Received", func(m *DLRMix) *float64 { return &m.Received }},
	{StatusRejected, StatusRejected, "Rejected", func(m *DLRMix) *float64 { return &m.Rejected }},
	{StatusExpired, StatusExpired, "Expired", func(m *DLRMix) *float64 { return &m.Expired }},
	{StatusFailed, StatusFailed, "Failed", func(m *DLRMix) *float64 { return &m.Failed }},
	{StatusDead, StatusDead, "Dead", func(m *DLRMix) *float64 { return &m.Dead }},
	{StatusSent, StatusSent, "Sent", func(m *DLRMix) *float64 { return &m.Sent }},
	{StatusSubmitted, StatusSubmitted, "Submitted", func(m *DLRMix) *float64 { return &m.Submitted }},
	{StatusFrozen, StatusFrozen, "Frozen", func(m *DLRMix) *float64 { return &m.Frozen }},
	{"", "none", "None", func(m *DLRMix) *float64 { return &m.None }},
}

// ParseDLRMix reads a DLR mix written as comma-separated status=chance pairs, for
// example "received=0.9,rejected=0.05,expired=0.05". The keys are those of the
// DLRMix field comments. It follows the rules of ParseMix; errors wrap
// ErrInvalidDLRMix and name the bad key or value.
func ParseDLRMix(s string) (DLRMix, error) {
	return parseMix(s, dlrMixFields, ErrInvalidDLRMix, "received=0.9")
}

// Validate reports whether every chance is a number from 0 to 1 and the chances
// add up to at most 1. The error wraps ErrInvalidDLRMix and names the field and its
// key.
func (m DLRMix) Validate() error { return validateMix(m, dlrMixFields, ErrInvalidDLRMix) }

// String writes m in the form ParseDLRMix reads, leaving out zero chances; the zero
// DLRMix prints as "".
func (m DLRMix) String() string { return formatMix(m, dlrMixFields) }
