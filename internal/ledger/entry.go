package ledger

import (
	"time"

	"github.com/jetsms/jetsms/job"
)

// States an entry can be in besides the public statuses of package job.
const (
	// StateSubmitting: a submission may be on the wire now. Owner and Since say
	// who started it and when; a submitting entry older than the submit lease
	// belongs to a worker that stopped before it learnt the outcome.
	StateSubmitting job.Status = "submitting"
	// StateUnknown: the last submission's outcome is not known (a timeout or reset
	// after the request was written). The gateway may have accepted it.
	StateUnknown job.Status = "unknown"
	// StateQueued: recorded, nothing submitted yet or the last submission was
	// refused with a transient error.
	StateQueued job.Status = "queued"
)

// HistoryMax bounds Entry.History; the oldest changes beyond it are dropped, the
// first one (creation) is kept.
const HistoryMax = 32

// Entry is one job's ledger record.
type Entry struct {
	JobID       string            `json:"job_id"`
	Lane        string            `json:"lane"`
	Campaign    string            `json:"campaign,omitempty"`
	Destination string            `json:"destination"`
	Reference   string            `json:"reference,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Segments    int               `json:"segments"`
	// MessageID is the gateway's id of the last accepted submission; MessageIDs
	// lists every one when a job was accepted more than once.
	MessageID  string   `json:"message_id,omitempty"`
	MessageIDs []string `json:"message_ids,omitempty"`
	// Attempts counts submissions, across deliveries and replicas.
	Attempts int `json:"attempts"`
	// Status is the job's current status: a public status, or StateSubmitting,
	// StateUnknown or StateQueued.
	Status job.Status `json:"status"`
	// Detail and Error are those of the last change.
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
	// DuplicateRisk is set once a submission followed one of unknown outcome.
	DuplicateRisk bool `json:"duplicate_risk,omitempty"`
	// Owner is the worker that set StateSubmitting, Since when.
	Owner string    `json:"owner,omitempty"`
	Since time.Time `json:"since,omitzero"`
	// Replay is the dead-letter replay this life of the job came from ("" for
	// the first).
	Replay string `json:"replay,omitempty"`
	// Scheduled is the job's scheduled time as it was first sent (zero: sent
	// now). The reconciler waits from it rather than from the acceptance, and
	// the entry is kept until it plus the reconciler's wait plus the retention.
	Scheduled time.Time `json:"scheduled,omitzero"`
	// Digest is job.Job.Digest of the job that made the entry: a later job with
	// the same id and another digest is not the same job (duplicate_id).
	Digest string `json:"digest,omitempty"`
	// Seq is the jobs-stream sequence of the message that made the entry: a
	// message of the same job under another sequence was published again.
	Seq uint64 `json:"seq,omitempty"`
	// TraceParent is the job's trace context, carried onto receipt events.
	TraceParent string    `json:"traceparent,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	History     []Change  `json:"history"`
}

// Change is one status change in an entry's history.
type Change struct {
	Status    job.Status `json:"status"`
	At        time.Time  `json:"at"`
	Detail    string     `json:"detail,omitempty"`
	Error     string     `json:"error,omitempty"`
	MessageID string     `json:"message_id,omitempty"`
}

// FromJob returns a new entry for j in state StateQueued at now.
func FromJob(j *job.Job, now time.Time) *Entry {
	return FromJobDigest(j, j.Digest(), now)
}

// FromJobDigest is FromJob for a job whose digest (job.Job.Digest) the caller
// has already computed.
func FromJobDigest(j *job.Job, digest string, now time.Time) *Entry {
	now = now.UTC()
	e := &Entry{
		JobID:       j.ID,
		Lane:        j.Lane,
		Campaign:    j.Campaign,
		Destination: j.Destination,
		Reference:   j.Reference,
		Metadata:    j.Metadata,
		Segments:    j.Segments,
		TraceParent: j.TraceParent,
		Digest:      digest,
		Status:      StateQueued,
		Scheduled:   scheduledAt(j.Scheduled),
		Created:     now,
		Updated:     now,
	}
	return e
}

func scheduledAt(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// Waiting reports whether the job is accepted and waits for its scheduled time
// at the gateway.
func (e *Entry) Waiting(now time.Time) bool {
	return e.Status == job.StatusAccepted && e.Scheduled.After(now)
}

// Set records a change to st at at, whatever the current status; Advance is the
// checked form for statuses that come from receipts.
func (e *Entry) Set(st job.Status, at time.Time, detail, errText string) {
	at = at.UTC()
	e.Status, e.Detail, e.Error, e.Updated = st, detail, errText, at
	if st != StateSubmitting {
		e.Owner, e.Since = "", time.Time{}
	}
	e.History = append(e.History, Change{Status: st, At: at, Detail: detail, Error: errText})
	if n := len(e.History); n > HistoryMax {
		e.History = append(e.History[:1], e.History[n-HistoryMax+1:]...)
	}
}

// AddMessageID records a gateway message id of an accepted submission.
func (e *Entry) AddMessageID(id string) {
	if id == "" {
		return
	}
	e.MessageID = id
	for _, have := range e.MessageIDs {
		if have == id {
			return
		}
	}
	e.MessageIDs = append(e.MessageIDs, id)
}

// rank orders statuses for Advance: worker states, accepted, the gateway's
// non-final statuses (including ones jetsms does not know), final statuses.
func rank(st job.Status) int {
	switch {
	case st.Final():
		return 3
	case st == StateSubmitting || st == StateUnknown || st == StateQueued || st == job.StatusRetrying:
		return 0
	case st == job.StatusAccepted:
		return 1
	default:
		return 2
	}
}

// Advance moves the entry to st if that is a move forward: to a higher rank, or
// between two different non-final gateway statuses (in the order they arrive). It
// reports whether the entry changed. A final status is never left.
func (e *Entry) Advance(st job.Status, at time.Time, detail string) bool {
	have, want := rank(e.Status), rank(st)
	switch {
	case want > have:
	case want == have && want == 2 && st != e.Status:
	default:
		return false
	}
	e.Set(st, at, detail, "")
	return true
}

// Accepted reports whether the gateway is known to have accepted the job: an
// accepted submission or a matched receipt gave it a message id.
func (e *Entry) Accepted() bool { return e.MessageID != "" }

// Event returns a status event of the job in status st, carrying what the entry
// knows: identity, message id, destination, reference, lane, campaign, metadata,
// attempts, segments and duplicate risk.
func (e *Entry) Event(st job.Status, at time.Time) job.Event {
	return job.Event{
		JobID:         e.JobID,
		MessageID:     e.MessageID,
		Status:        st,
		Final:         st.Final(),
		Destination:   e.Destination,
		Reference:     e.Reference,
		Lane:          e.Lane,
		Campaign:      e.Campaign,
		Metadata:      e.Metadata,
		Attempts:      e.Attempts,
		Segments:      e.Segments,
		DuplicateRisk: e.DuplicateRisk,
		At:            at.UTC(),
		TraceParent:   e.TraceParent,
	}
}
