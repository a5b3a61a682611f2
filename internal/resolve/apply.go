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
// forward, publishing the status event first. It reports whether the status
// moved. A change that does not move the status may still add its message id to
// the entry (a receipt of a resent copy).
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
		return false, nil
	}
	if moved {
		e.History[len(e.History)-1].MessageID = c.MessageID
		ev := e.Event(c.Status, c.At)
		ev.MessageID = c.MessageID
		ev.Detail = c.Detail
		if err := pub.Status(ctx, ev); err != nil {
			return false, err
		}
	}
	if _, err := led.Update(ctx, e, rev); err != nil {
		return false, err
	}
	return moved, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
