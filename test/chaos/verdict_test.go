//go:build linux

package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/worker"
)

// readTimeout bounds reading the status stream or the ledger in full.
const readTimeout = 5 * time.Minute

// showJobs is how many jobs a failure names with their story.
const showJobs = 10

// isFinal reports whether a status is final, as the contract's table says.
func isFinal(status string) bool { return job.Status(status).Final() }

// event is a status event as stored, with what the verdict looks at.
type event struct {
	seq           uint64
	JobID         string `json:"job_id"`
	MessageID     string `json:"message_id"`
	Status        string `json:"status"`
	Final         bool   `json:"final"`
	Error         string `json:"error"`
	DuplicateRisk bool   `json:"duplicate_risk"`
	Attempts      int    `json:"attempts"`
}

func (e event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s(#%d att=%d", e.Status, e.seq, e.Attempts)
	if e.DuplicateRisk {
		b.WriteString(" dup")
	}
	if e.Error != "" {
		b.WriteString(" err=" + e.Error)
	}
	if e.MessageID != "" {
		b.WriteString(" msg=" + e.MessageID[:min(8, len(e.MessageID))])
	}
	b.WriteByte(')')
	return b.String()
}

// verdict is what a case's run did to its jobs: the summary row and the jobs that
// break a rule.
type verdict struct {
	Case        string
	Jobs        int
	Once        int // accepted by the simulator exactly once
	Twice       int // accepted twice or more
	Never       int // never accepted
	Unknown     int // had a submission whose outcome jetsms did not learn from the answer (see unknownOutcome)
	Flagged     int // an accepted or final event carries duplicate_risk
	FinalEvents int // final events on the status stream, all jobs together
	FinalStatus map[string]int
	Sync        string
	Took        time.Duration
	Note        string

	// Jobs that break a rule, by id.
	Lost         []string // no final event
	Multi        []string // more than one final event
	Unflagged    []string // sent twice or more, and no accepted or final event says duplicate_risk
	Backward     []string // a non-final event other than accepted after the final one
	LateAccepted []string // an accepted event after the final one (docs/contract.md allows it)
	BadFinalFlag []string // the "final" field disagrees with the status
	// Events and submissions that are no job of the case.
	Unmatched int   // status events without a job id (receipts never matched)
	Foreign   int   // status events of job ids not in the case
	Strays    int64 // accepted submissions whose reference is no job of the case

	// FailedErrors counts the error of each final failed event.
	FailedErrors map[string]int

	stories map[string]string // per job id, for failure messages; only for jobs named above
	jobs    []jobFacts
}

// jobFacts is everything known of one job at the end.
type jobFacts struct {
	id       string
	arrivals int
	events   []event
	entry    *ledger.Entry
}

func (j *jobFacts) finals() []event {
	var out []event
	for _, e := range j.events {
		if isFinal(e.Status) {
			out = append(out, e)
		}
	}
	return out
}

// flaggedWhereItCounts: an accepted or final event carries duplicate_risk.
func (j *jobFacts) flaggedWhereItCounts() bool {
	return slices.ContainsFunc(j.events, func(e event) bool {
		return e.DuplicateRisk && (e.Status == string(job.StatusAccepted) || isFinal(e.Status))
	})
}

// unknownOutcome reports whether the job had a submission whose outcome jetsms did
// not learn from the gateway's answer, by its ledger entry: flagged
// duplicate_risk; ended failed with outcome_unknown; a change to unknown (a
// timeout or reset after the request was written) in its history; a submitting
// mark followed by another (its worker died before recording the outcome, and a
// later one took the job); or still submitting at the end.
func (j *jobFacts) unknownOutcome() bool {
	e := j.entry
	if e == nil {
		return false
	}
	if e.DuplicateRisk || e.Error == worker.ErrorOutcomeUnknown || e.Status == ledger.StateSubmitting {
		return true
	}
	for i, c := range e.History {
		if c.Status == ledger.StateUnknown {
			return true
		}
		if c.Status == ledger.StateSubmitting && i+1 < len(e.History) && e.History[i+1].Status == ledger.StateSubmitting {
			return true
		}
	}
	return false
}

// story is one job's account for a failure message: submissions, events in the
// order stored, and the ledger's history.
func (j *jobFacts) story() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: accepted by the simulator %d×; events:", j.id, j.arrivals)
	for _, e := range j.events {
		b.WriteString(" " + e.String())
	}
	if j.entry == nil {
		b.WriteString("; no ledger entry")
		return b.String()
	}
	fmt.Fprintf(&b, "; ledger: attempts=%d dup=%t ids=%d history:", j.entry.Attempts, j.entry.DuplicateRisk, len(j.entry.MessageIDs))
	for _, c := range j.entry.History {
		b.WriteString(" " + string(c.Status))
		if c.Error != "" {
			b.WriteString("[" + c.Error + "]")
		}
	}
	return b.String()
}

// judge reads the status stream and the ledger in full and classifies every job.
func (r *rig) judge(t *testing.T) *verdict {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	v := &verdict{
		Case: r.cfg.name, Jobs: r.cfg.jobs, Sync: r.syncLabel(), Took: time.Since(r.began),
		FinalStatus: map[string]int{}, FailedErrors: map[string]int{}, stories: map[string]string{},
		Strays: r.strays.Load(),
	}
	jobs := make([]jobFacts, r.cfg.jobs)
	for i := range jobs {
		jobs[i].id = r.jobID(i)
		jobs[i].arrivals = int(r.arrivals[i].Load())
	}
	evs, err := r.readStatus(ctx)
	if err != nil {
		t.Fatalf("read the status stream: %v", err)
	}
	for _, e := range evs {
		switch i := r.jobIndex(e.JobID); {
		case e.JobID == "":
			v.Unmatched++
		case i < 0:
			v.Foreign++
		default:
			jobs[i].events = append(jobs[i].events, e)
		}
	}
	if err := r.readLedger(ctx, func(e *ledger.Entry) {
		if i := r.jobIndex(e.JobID); i >= 0 {
			jobs[i].entry = e
		}
	}); err != nil {
		t.Fatalf("read the ledger: %v", err)
	}
	for i := range jobs {
		v.add(&jobs[i])
	}
	v.jobs = jobs
	return v
}

func (v *verdict) add(j *jobFacts) {
	switch j.arrivals {
	case 0:
		v.Never++
	case 1:
		v.Once++
	default:
		v.Twice++
	}
	if j.unknownOutcome() {
		v.Unknown++
	}
	if j.flaggedWhereItCounts() {
		v.Flagged++
	}
	finals := j.finals()
	v.FinalEvents += len(finals)
	for _, f := range finals {
		v.FinalStatus[f.Status]++
		if f.Status == string(job.StatusFailed) {
			v.FailedErrors[errorCode(f.Error)]++
		}
	}
	name := func(list *[]string) {
		*list = append(*list, j.id)
		if len(*list) <= showJobs {
			v.stories[j.id] = j.story()
		}
	}
	switch len(finals) {
	case 0:
		name(&v.Lost)
	case 1:
	default:
		name(&v.Multi)
	}
	if j.arrivals > 1 && !j.flaggedWhereItCounts() {
		name(&v.Unflagged)
	}
	ended, backward, late := false, false, false
	for _, e := range j.events {
		if e.Final != isFinal(e.Status) && !slices.Contains(v.BadFinalFlag, j.id) {
			name(&v.BadFinalFlag)
		}
		switch {
		case isFinal(e.Status):
			ended = true
		case ended && e.Status == string(job.StatusAccepted):
			late = true
		case ended:
			backward = true
		}
	}
	if backward {
		name(&v.Backward)
	}
	if late {
		name(&v.LateAccepted)
	}
}

// errorCode is the first word of a failed event's error: "retries_exhausted: 10
// attempts" counts as retries_exhausted.
func errorCode(s string) string {
	if i := strings.IndexAny(s, ": "); i > 0 {
		return s[:i]
	}
	if s == "" {
		return "(none)"
	}
	return s
}

// readStatus reads the status stream from its first message to its last.
func (r *rig) readStatus(ctx context.Context) ([]event, error) {
	stream, err := r.js.Stream(ctx, r.names.StatusStream())
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	out := make([]event, 0, info.State.Msgs)
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("status stream read to %d of %d: %w", len(out), info.State.Msgs, err)
		}
		m, err := it.Next(jetstream.NextMaxWait(stepTimeout))
		if err != nil {
			return nil, fmt.Errorf("status stream read to %d of %d: %w", len(out), info.State.Msgs, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		var e event
		if err := json.Unmarshal(m.Data(), &e); err != nil {
			return nil, fmt.Errorf("status event %d: %w", meta.Sequence.Stream, err)
		}
		e.seq = meta.Sequence.Stream
		out = append(out, e)
		if e.seq >= last {
			return out, nil
		}
	}
}

// readLedger calls fn with every job entry of the ledger.
func (r *rig) readLedger(ctx context.Context, fn func(*ledger.Entry)) error {
	kv, err := r.js.KeyValue(ctx, r.names.LedgerBucket())
	if err != nil {
		return err
	}
	w, err := kv.Watch(ctx, "j.>", jetstream.IgnoreDeletes())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("ledger: %w", ctx.Err())
		case kve, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("ledger: watch ended early")
			}
			if kve == nil {
				return nil // every entry there was has been seen
			}
			var e ledger.Entry
			if err := json.Unmarshal(kve.Value(), &e); err != nil {
				return fmt.Errorf("ledger entry %s: %w", kve.Key(), err)
			}
			fn(&e)
		}
	}
}

// Rules every case keeps.

// requireEveryJobEndsOnce: every job has exactly one final event, nothing
// foreign or unmatched is on the status stream, and the simulator saw no
// submission of an unknown job.
func (v *verdict) requireEveryJobEndsOnce(t *testing.T) {
	t.Helper()
	v.requireNone(t, "jobs without a final event (lost)", v.Lost)
	v.requireNone(t, "jobs with more than one final event", v.Multi)
	v.requireNone(t, "events whose final field disagrees with their status", v.BadFinalFlag)
	if v.FinalEvents != v.Jobs {
		t.Errorf("%s: %d final events for %d jobs", v.Case, v.FinalEvents, v.Jobs)
	}
	if v.Unmatched > 0 || v.Foreign > 0 || v.Strays > 0 {
		t.Errorf("%s: %d status events without a job id (unmatched receipts), %d of jobs not in the case, %d submissions of jobs not in the case",
			v.Case, v.Unmatched, v.Foreign, v.Strays)
	}
}

// requireDuplicatesFlagged: every job the simulator accepted twice or more says
// duplicate_risk in its accepted or final events.
func (v *verdict) requireDuplicatesFlagged(t *testing.T) {
	t.Helper()
	v.requireNone(t, "jobs sent twice without duplicate_risk", v.Unflagged)
}

// requireForward: no job has a non-final event after its final one (other than a
// late accepted event, which docs/contract.md allows and the summary counts).
func (v *verdict) requireForward(t *testing.T) {
	t.Helper()
	v.requireNone(t, "jobs with a non-final event after their final one", v.Backward)
}

func (v *verdict) requireNone(t *testing.T, what string, ids []string) {
	t.Helper()
	if len(ids) == 0 {
		return
	}
	t.Errorf("%s: %d %s:\n%s", v.Case, len(ids), what, v.storiesOf(ids))
}

// storiesOf is the story of the first few of ids, and the rest by id.
func (v *verdict) storiesOf(ids []string) string {
	var b strings.Builder
	for k, id := range ids {
		if k == showJobs {
			fmt.Fprintf(&b, "  and %d more: %s\n", len(ids)-showJobs, strings.Join(ids[showJobs:min(len(ids), 200)], " "))
			break
		}
		story, ok := v.stories[id]
		if !ok {
			story = id
		}
		b.WriteString("  " + story + "\n")
	}
	return b.String()
}

// jobsWhere returns the ids of the jobs for which keep is true.
func (v *verdict) jobsWhere(keep func(*jobFacts) bool) []string {
	var out []string
	for i := range v.jobs {
		if keep(&v.jobs[i]) {
			out = append(out, v.jobs[i].id)
			if len(out) <= showJobs {
				v.stories[v.jobs[i].id] = v.jobs[i].story()
			}
		}
	}
	return out
}

// logExamples logs the story of a few jobs of each notable kind, so that a
// passing run still shows what happened to them.
func (v *verdict) logExamples(t *testing.T) {
	t.Helper()
	const each = 3
	kinds := []struct {
		what string
		keep func(*jobFacts) bool
	}{
		{"sent twice or more", func(j *jobFacts) bool { return j.arrivals > 1 }},
		{"never sent", func(j *jobFacts) bool { return j.arrivals == 0 }},
		{"sent, and ended failed", func(j *jobFacts) bool {
			f, ok := finalOf(j)
			return j.arrivals > 0 && ok && f.Status == string(job.StatusFailed)
		}},
		{"unknown outcome, sent once", func(j *jobFacts) bool { return j.arrivals == 1 && j.unknownOutcome() }},
		{"late accepted event", func(j *jobFacts) bool { return slices.Contains(v.LateAccepted, j.id) }},
	}
	for _, k := range kinds {
		var stories []string
		n := 0
		for i := range v.jobs {
			if k.keep(&v.jobs[i]) {
				n++
				if len(stories) < each {
					stories = append(stories, "  "+v.jobs[i].story())
				}
			}
		}
		if n > 0 {
			t.Logf("%s: %d jobs %s, e.g.:\n%s", v.Case, n, k.what, strings.Join(stories, "\n"))
		}
	}
}

// finalOf is the job's one final event; ok is false when it has none or several.
func finalOf(j *jobFacts) (event, bool) {
	f := j.finals()
	if len(f) != 1 {
		return event{}, false
	}
	return f[0], true
}

// The summary table.

var tableHeader = []string{
	"case", "jobs", "sent once", "sent twice+", "never sent", "unknown outcome", "flagged duplicate_risk",
	"final events", "final statuses", "late accepted", "NATS sync", "time",
}

func (v *verdict) cells() []string {
	statuses := slices.Sorted(maps.Keys(v.FinalStatus))
	var fs []string
	for _, s := range statuses {
		label := s
		if s == string(job.StatusFailed) {
			var errs []string
			for _, e := range slices.Sorted(maps.Keys(v.FailedErrors)) {
				errs = append(errs, fmt.Sprintf("%s %d", e, v.FailedErrors[e]))
			}
			label += " (" + strings.Join(errs, ", ") + ")"
		}
		fs = append(fs, fmt.Sprintf("%s %d", label, v.FinalStatus[s]))
	}
	return []string{
		v.Case, num(v.Jobs), num(v.Once), num(v.Twice), num(v.Never), num(v.Unknown), num(v.Flagged),
		num(v.FinalEvents), strings.Join(fs, ", "), num(len(v.LateAccepted)), v.Sync, v.Took.Round(time.Second).String(),
	}
}

// num writes n with thousands separators, as the README does.
func num(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// markdownTable renders rows under tableHeader.
func markdownTable(rows [][]string) string {
	var b strings.Builder
	line := func(cells []string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	line(tableHeader)
	sep := make([]string, len(tableHeader))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
	return b.String()
}
