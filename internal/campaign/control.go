package campaign

import (
	"context"
	"fmt"
)

// Pause stops the sending of the campaign's jobs: workers hold them, stored, until
// Resume (see Gate). Publishing goes on. Pausing a paused campaign changes
// nothing; a cancelled or done campaign cannot be paused (ErrState). It returns
// the record as stored.
func (s *Store) Pause(ctx context.Context, name string) (*Record, error) {
	rec, _, err := s.update(ctx, name, func(r *Record) (bool, error) {
		switch r.State {
		case StatePaused:
			return false, nil
		case StatePublishing, StateRunning:
			now := s.now().UTC()
			r.State, r.PausedAt = StatePaused, &now
			return true, nil
		}
		return false, fmt.Errorf("pause campaign %s: it is %s: %w", name, r.State, ErrState)
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// Resume lets a paused campaign's jobs be sent again, from where they stopped:
// the jobs not sent are still stored, and none that was sent is sent again. The
// campaign goes back to publishing while its file is not fully published, else to
// running (or straight to done when every job has ended meanwhile). Resuming a
// campaign that is not paused changes nothing, except that a cancelled campaign
// cannot be resumed (ErrState).
func (s *Store) Resume(ctx context.Context, name string) (*Record, error) {
	rec, _, err := s.update(ctx, name, func(r *Record) (bool, error) {
		switch r.State {
		case StatePaused:
			now := s.now().UTC()
			r.State, r.ResumedAt = StateRunning, &now
			if !r.PublishingOver() {
				r.State = StatePublishing
			}
			r.settle(now)
			return true, nil
		case StateCancelled:
			return false, fmt.Errorf("resume campaign %s: it is cancelled: %w", name, ErrState)
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// Cancel ends the campaign: publishing stops at its next checkpoint, and every job
// not yet sent ends with a final cancelled event when a worker takes it (see
// Gate). Jobs already with the gateway are not recalled. Cancelling a cancelled
// campaign changes nothing; a done campaign cannot be cancelled (ErrState).
func (s *Store) Cancel(ctx context.Context, name string) (*Record, error) {
	rec, _, err := s.update(ctx, name, func(r *Record) (bool, error) {
		switch r.State {
		case StateCancelled:
			return false, nil
		case StateDone:
			return false, fmt.Errorf("cancel campaign %s: it is done (every job has a final status): %w", name, ErrState)
		}
		now := s.now().UTC()
		r.State, r.CancelledAt = StateCancelled, &now
		// Every job may have ended before the cancel: then it has ended.
		r.settle(now)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return rec, nil
}
