// Package campaignstate names the states of a campaign and the rule of its name:
// what the campaign gate tells a worker, and what the worker checks of a job's
// subject, without the worker depending on the campaign package (CSV, templates,
// publisher, records, tracker).
package campaignstate

// State is where a campaign is in its life.
type State string

// The states of a campaign. A campaign starts publishing; running once every row
// is stored; done once every job has a final status. Pause and Resume move it
// between paused and publishing or running; Cancel moves it to cancelled, which
// it never leaves.
const (
	// Unknown is the state of a campaign without a record: its jobs are sent as
	// any other.
	Unknown    State = ""
	Publishing State = "publishing"
	Running    State = "running"
	Paused     State = "paused"
	Cancelled  State = "cancelled"
	Done       State = "done"
)
