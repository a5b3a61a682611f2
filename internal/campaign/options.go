package campaign

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidOption is the family of errors about an option's value.
var ErrInvalidOption = errors.New("invalid option")

// Option is an optional knob of one Send or Estimate call.
type Option func(*callOptions) error

type callOptions struct {
	onBadRow      func(*RowError)
	report        func(Report)
	progressEvery time.Duration
}

func applyOptions(opts []Option) (callOptions, error) {
	var o callOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// ProgressEveryDefault is how often WithProgress reports unless told otherwise.
const ProgressEveryDefault = 200 * time.Millisecond

// Report is how far a Send or Estimate has come, as WithProgress reports it.
type Report struct {
	// Rows read, jobs among them, and bad rows.
	Rows, Jobs, BadRows int
	// Published counts the jobs this call stored; AlreadyPublished the jobs an
	// earlier run had stored, which it skipped.
	Published, AlreadyPublished int
	// Offset is how many bytes of the file have been read.
	Offset int64
	// Elapsed is the time since the call started.
	Elapsed time.Duration
}

// WithBadRows calls fn with each bad row, in file order, as it is found. fn runs
// on the caller's goroutine and should be quick.
func WithBadRows(fn func(*RowError)) Option {
	return func(o *callOptions) error {
		if fn == nil {
			return fmt.Errorf("%w: bad-row function must not be nil", ErrInvalidOption)
		}
		o.onBadRow = fn
		return nil
	}
}

// WithProgress calls fn about every interval (ProgressEveryDefault when zero), and
// once at the end, with how far the call has come.
func WithProgress(fn func(Report), every time.Duration) Option {
	return func(o *callOptions) error {
		if fn == nil {
			return fmt.Errorf("%w: progress function must not be nil", ErrInvalidOption)
		}
		if every < 0 {
			return fmt.Errorf("%w: progress interval must not be negative", ErrInvalidOption)
		}
		if every == 0 {
			every = ProgressEveryDefault
		}
		o.report = fn
		o.progressEvery = every
		return nil
	}
}
