// Package job owns the send job and status event types of the wire contract, the
// rules a job must meet before it may be sent, and SMS segment counting.
package job

import (
	"time"
)

// Job is one SMS to send, as a producer publishes it (see docs/contract.md, "Jobs").
// Lane, Campaign, Segments and Encoding are not read from the JSON: the worker sets
// Lane and Campaign from the subject, and Decode sets Segments and Encoding from
// Content.
type Job struct {
	ID          string            `json:"id,omitempty"`
	Destination string            `json:"destination"`
	Content     string            `json:"content"`
	Source      string            `json:"source,omitempty"`
	Reference   string            `json:"reference,omitempty"`
	Class       string            `json:"class,omitempty"`
	Mask        string            `json:"mask,omitempty"`
	SMSClass    *int              `json:"sms_class,omitempty"`
	Scheduled   *time.Time        `json:"scheduled,omitempty"`
	Expires     *time.Time        `json:"expires,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`

	Lane     string   `json:"-"`
	Campaign string   `json:"-"`
	Segments int      `json:"-"`
	Encoding Encoding `json:"-"`
	// TraceParent is the W3C trace context the producer sent in the job's
	// traceparent header; it goes on to the gateway request and every event.
	TraceParent string `json:"-"`
}

// Encoding is the character set an SMS is sent in, which decides how many
// characters fit in one segment.
type Encoding string

// The two SMS encodings.
const (
	GSM7 Encoding = "gsm7"
	UCS2 Encoding = "ucs2"
)

// Status is a job's state as published in status events.
type Status string

// The statuses of docs/contract.md. Statuses the gateway reports that are not listed here
// are kept as they came (Status is an open set).
const (
	StatusAccepted   Status = "accepted"
	StatusRetrying   Status = "retrying"
	StatusSubmitted  Status = "submitted"
	StatusSent       Status = "sent"
	StatusFrozen     Status = "frozen"
	StatusReceived   Status = "received"
	StatusRejected   Status = "rejected"
	StatusFailed     Status = "failed"
	StatusDead       Status = "dead"
	StatusExpired    Status = "expired"
	StatusCancelled  Status = "cancelled"
	StatusSuppressed Status = "suppressed"
)

// Final reports whether a job in this status will have no further events.
func (s Status) Final() bool {
	switch s {
	case StatusReceived, StatusRejected, StatusFailed, StatusDead, StatusExpired,
		StatusCancelled, StatusSuppressed:
		return true
	}
	return false
}

// Event is one status change of a job, published to <prefix>.status.<status>.
type Event struct {
	JobID         string            `json:"job_id"`
	MessageID     string            `json:"message_id"`
	Status        Status            `json:"status"`
	Final         bool              `json:"final"`
	Detail        string            `json:"detail"`
	Error         string            `json:"error"`
	Destination   string            `json:"destination"`
	Reference     string            `json:"reference"`
	Lane          string            `json:"lane"`
	Campaign      string            `json:"campaign"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	Attempts      int               `json:"attempts"`
	Segments      int               `json:"segments"`
	DuplicateRisk bool              `json:"duplicate_risk"`
	At            time.Time         `json:"at"`
	// TraceParent travels as the event message's traceparent header.
	TraceParent string `json:"-"`
}

// Event returns an event in status st carrying j's identity, destination,
// reference, lane, campaign, metadata and segments. The caller fills in the rest.
func (j *Job) Event(st Status, at time.Time) Event {
	return Event{
		JobID:       j.ID,
		Status:      st,
		Final:       st.Final(),
		Destination: j.Destination,
		Reference:   j.Reference,
		Lane:        j.Lane,
		Campaign:    j.Campaign,
		Metadata:    j.Metadata,
		Segments:    j.Segments,
		At:          at.UTC(),
		TraceParent: j.TraceParent,
	}
}

// TraceParentHeader is the W3C trace-context header a job may carry.
const TraceParentHeader = "traceparent"

// ValidTraceParent reports whether s has the shape of a W3C traceparent:
// version-traceid-parentid-flags, 2-32-16-2 lowercase hex digits (55 bytes).
// A header of another shape is ignored, as the W3C recommendation says, so that
// no value of any length from a producer travels on.
func ValidTraceParent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 2 || i == 35 || i == 52 {
			continue
		}
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
