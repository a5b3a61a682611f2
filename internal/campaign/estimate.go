package campaign

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// LookupsDefault is how many opt-out lookups an Estimate runs at once.
const LookupsDefault = 32

// OptOuts says whether a number opted out; *optout.List is one.
type OptOuts interface {
	Has(ctx context.Context, number string) (bool, error)
}

// EstimateConfig configures Estimate.
type EstimateConfig struct {
	// MaxSegments caps a job's content as the workers' jobs.max_segments does;
	// zero means job.MaxSegmentsDefault.
	MaxSegments int
	// OptOuts, when set, is checked for every job's destination: the campaign's
	// lane is a marketing lane, whose jobs to opted-out numbers end suppressed.
	OptOuts OptOuts
	// PricePerSegment is the cost of one SMS segment (campaign.price_per_segment).
	PricePerSegment float64
	// Lookups is how many opt-out lookups run at once; default LookupsDefault.
	Lookups int
	// Now is the clock a schedule is checked against; default time.Now.
	Now func() time.Time
}

// Estimate is what a campaign would send, from a dry run.
type Estimate struct {
	// Totals count the file's rows, jobs, bad rows and segments.
	Totals Totals
	// Suppressed counts the jobs to opted-out numbers, SuppressedSegments their
	// segments (-1 each when no opt-out list was given).
	Suppressed, SuppressedSegments int
	// ChargedSegments are the segments that would be sent: all, less the
	// suppressed.
	ChargedSegments int
	// PricePerSegment is the price used; Cost is ChargedSegments × it.
	PricePerSegment float64
	Cost            float64
}

// EstimateFile reads src as Send would, sending nothing: it counts the rows, the
// jobs, the bad rows (reported with WithBadRows), the segments by encoding, the
// jobs to opted-out numbers, and the cost. It does not look at the campaign
// record, so it says nothing about what an earlier run has sent.
func EstimateFile(ctx context.Context, spec Spec, src io.Reader, cfg EstimateConfig, opts ...Option) (Estimate, error) {
	o, err := applyOptions(opts)
	if err != nil {
		return Estimate{}, err
	}
	if cfg.PricePerSegment < 0 {
		return Estimate{}, fmt.Errorf("%w: price per segment must not be negative", ErrInvalidOption)
	}
	if cfg.Lookups < 0 {
		return Estimate{}, fmt.Errorf("%w: lookups must not be negative", ErrInvalidOption)
	}
	if cfg.Lookups == 0 {
		cfg.Lookups = LookupsDefault
	}
	tmpl, err := spec.check()
	if err != nil {
		return Estimate{}, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := checkSchedule(spec.Schedule, cfg.Now()); err != nil {
		return Estimate{}, err
	}
	rd, err := NewReader(src, ReaderConfig{
		Campaign: spec.Name, Template: tmpl, Schedule: spec.Schedule, MaxSegments: cfg.MaxSegments, Now: cfg.Now,
	})
	if err != nil {
		return Estimate{}, err
	}
	est := Estimate{PricePerSegment: cfg.PricePerSegment, Suppressed: -1, SuppressedSegments: -1}
	lk := newLookups(ctx, cfg)
	start := time.Now()
	nextReport := start.Add(o.progressEvery)
	report := func() {
		o.report(Report{Rows: est.Totals.Rows, Jobs: est.Totals.Jobs, BadRows: est.Totals.BadRows,
			Offset: rd.Offset(), Elapsed: time.Since(start)})
	}
	var readErr error
	for {
		if err := ctx.Err(); err != nil {
			readErr = err
			break
		}
		row, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		est.Totals.Rows = row.Number
		if row.Err != nil {
			est.Totals.BadRows++
			if o.onBadRow != nil {
				o.onBadRow(row.Err)
			}
		} else {
			est.Totals.addJob(row.Job.Segments, row.Job.Encoding)
			if lk != nil {
				lk.check(row.Job.Destination, row.Job.Segments)
			}
		}
		if o.report != nil && row.Number%256 == 0 && time.Now().After(nextReport) {
			report()
			nextReport = time.Now().Add(o.progressEvery)
		}
	}
	if lk != nil {
		n, segs, err := lk.wait()
		if err != nil && readErr == nil {
			readErr = err
		}
		est.Suppressed, est.SuppressedSegments = n, segs
	}
	if o.report != nil {
		report()
	}
	if readErr != nil {
		return est, fmt.Errorf("estimate campaign %s: stopped after row %d: %w", spec.Name, est.Totals.Rows, readErr)
	}
	est.ChargedSegments = est.Totals.Segments - max(est.SuppressedSegments, 0)
	est.Cost = float64(est.ChargedSegments) * cfg.PricePerSegment
	return est, nil
}

// lookups checks destinations against the opt-out list, a few at a time.
type lookups struct {
	ctx  context.Context
	list OptOuts
	work chan lookup
	wg   sync.WaitGroup

	mu   sync.Mutex
	n    int
	segs int
	err  error
}

type lookup struct {
	number string
	segs   int
}

func newLookups(ctx context.Context, cfg EstimateConfig) *lookups {
	if cfg.OptOuts == nil {
		return nil
	}
	l := &lookups{ctx: ctx, list: cfg.OptOuts, work: make(chan lookup, cfg.Lookups)}
	for range cfg.Lookups {
		l.wg.Go(l.worker)
	}
	return l
}

func (l *lookups) worker() {
	for w := range l.work {
		out, err := l.list.Has(l.ctx, w.number)
		l.mu.Lock()
		switch {
		case err != nil && l.err == nil:
			l.err = fmt.Errorf("look up opt-out of %s: %w", w.number, err)
		case out:
			l.n++
			l.segs += w.segs
		}
		l.mu.Unlock()
	}
}

func (l *lookups) check(number string, segs int) {
	select {
	case l.work <- lookup{number: number, segs: segs}:
	case <-l.ctx.Done():
	}
}

func (l *lookups) wait() (n, segs int, err error) {
	close(l.work)
	l.wg.Wait()
	return l.n, l.segs, l.err
}
