// Package console is the operators' web console, served on the admin listener:
// the lanes at a glance, campaigns with pause, resume and cancel, dead letters
// with replay, a job's record, live events and the opt-out list. Pages are
// rendered by the server from NATS (streams, KV buckets, consumer info) and the
// process's own state; there is no second database and no build step.
//
// # Guarantees
//
//   - Every page and action needs the console's HTTP Basic credentials: admin
//     username and password when configured, else ones generated on first start
//     in the data directory (see GeneratedUser, PasswordFile).
//   - Every action is a POST that must pass two checks against cross-site request
//     forgery: net/http's CrossOriginProtection (Sec-Fetch-Site / Origin must be
//     this origin), and a per-session token kept in a SameSite=Strict, HttpOnly
//     cookie that the form must repeat in a hidden field (compared in constant
//     time). A request failing either is refused with 403 and changes nothing.
//   - Actions do what the CLI does, with the same code: campaign.Store's Pause,
//     Resume and Cancel; deadletter.Read and Replay; optout.List's Add and Remove.
//   - No phone number or message text is shown except on a job's own page and in
//     an opt-out lookup the operator typed, and never while Config.Redact is set
//     (log.redact). Number-like runs of digits in error texts are masked on list
//     pages (dead letters, bad rows, live events) always, on a job's page under
//     redaction.
//   - Text from NATS has its control characters escaped (\x1b, \n …) before
//     html/template escapes it.
//   - Pages are bounded whatever the backlog: lists are paged (PageSize rows),
//     the backlog comes from consumer info, dead letters are read a page at a
//     time from a sequence.
//
// # Failure handling
//
// A page whose NATS reads fail shows the error in place of the section that
// failed; actions report their error on the page they return to. The live event
// stream drops events for a browser that does not keep up rather than block the
// subscription.
package console
