package resolve

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/job"
)

// Change is a status a job has reached according to the gateway.
type Change struct {
	MessageID string
	Status    job.Status
	Detail    string
	// At is when jetsms learnt it.
	At time.Time
	// byReference: the job was found by the receipt's reference, not its
	// message id; the change applies only while that still holds (see
	// referenceMatches), else Apply returns errNotThisJob.
	byReference bool
}

// errNotThisJob: a change found by reference no longer belongs to the job.
var errNotThisJob = errors.New("the receipt's reference no longer identifies the job")

// applyTries bounds the compare-and-set loop of Apply.
const applyTries = 16

// Apply moves the job's ledger entry to the change's status if that is a move
// forward, then publishes the status event. It reports whether the status moved.
// A change that does not move the status may still add its message id to the
// entry (a receipt of a resent copy).
//
// The ledger is written first: it decides what the job's status is, and an event
// is published only for a status the ledger holds. Published first, an event
// whose ledger write then failed (a timeout, a conflict on every try, a crash or
// a hard stop in between) was out while the entry stayed behind, and a later
// receipt (a sent after the received) moved the entry and published a non-final
// event after the final one. Should the publish fail after the write, the change
// is handed back (an error), and the same change applied again finds it recorded
// as the entry's last and publishes its event again (the status stream keeps one
// copy).
func Apply(ctx context.Context, led *ledger.Ledger, pub *events.Publisher, jobID string, c Change) (bool, error) {
	for range applyTries {
		sctx, cancel := context.WithTimeout(ctx, stepTimeout)
		moved, err := applyOnce(sctx, led, pub, jobID, c)
		cancel()
		if !errors.Is(err, ledger.ErrConflict) {
			return moved, err
		}
	}
	return false, fmt.Errorf("apply %s to job %s: %w", c.Status, jobID, ledger.ErrConflict)
}

func applyOnce(ctx context.Context, led *ledger.Ledger, pub *events.Publisher, jobID string, c Change) (bool, error) {
	e, rev, err := led.Get(ctx, jobID)
	if errors.Is(err, ledger.ErrNotFound) {
		// Indexed but the entry is gone (retention passed): nothing to move.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if c.byReference && !referenceMatches(e, jobID, c.MessageID) {
		return false, errNotThisJob
	}
	newID := c.MessageID != "" && !contains(e.MessageIDs, c.MessageID)
	if newID {
		e.AddMessageID(c.MessageID)
	}
	moved := e.Advance(c.Status, c.At, c.Detail)
	if !moved && !newID {
		if recordedLast(e, c) {
			// Recorded before, its event perhaps not: publish it again.
			return false, publish(ctx, pub, e, c)
		}
		return false, nil
	}
	if moved {
		e.History[len(e.History)-1].MessageID = c.MessageID
	}
	if _, err := led.Update(ctx, e, rev); err != nil {
		return false, err
	}
	if moved {
		if err := publish(ctx, pub, e, c); err != nil {
			return false, err
		}
	}
	return moved, nil
}

// publish stores the status event of change c of the job of entry e.
func publish(ctx context.Context, pub *events.Publisher, e *ledger.Entry, c Change) error {
	ev := e.Event(c.Status, c.At)
	ev.MessageID = c.MessageID
	ev.Detail = c.Detail
	return pub.Status(ctx, ev)
}

// recordedLast reports whether c is the last change recorded in e: the same
// status, message id and time (a receipt handed back after its ledger write, or
// the reconciler's change applied again). A repeat of a receipt stored anew
// carries another time and publishes nothing.
func recordedLast(e *ledger.Entry, c Change) bool {
	if len(e.History) == 0 || e.Status != c.Status {
		return false
	}
	last := e.History[len(e.History)-1]
	return last.Status == c.Status && last.MessageID == c.MessageID && last.At.Equal(c.At.UTC())
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
