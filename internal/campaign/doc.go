// Package campaign sends one message to each row of a recipients file, keeps a
// record of the campaign in a KV bucket, and lets it be paused, resumed and
// cancelled.
//
// A campaign is a CSV file with a header row — a "destination" column and any
// columns the template uses — and a Go text/template ("Hi {{.name}}"). The
// Publisher streams the file row by row (memory does not grow with it), makes one
// job per good row, checks it with the worker's own rules (job.Decoder), and
// publishes it to sms.send.<lane>.<campaign> with asynchronous publishes, a bounded
// window of PubAcks outstanding. A bad row (a local number, content empty after
// templating, bytes that are not UTF-8, a missing column) is reported with its
// line number and reason, and the good rows go on.
//
// The campaign's record (Record, in the bucket subjects.Names.CampaignBucket()
// under the campaign's name) holds its state, lane, template hash, times, totals
// (rows, jobs, bad rows, segments by encoding) and its jobs' counts by status. The
// Tracker keeps the counts from status events; the Gate gives workers each
// campaign's state from memory; Store.Pause, Store.Resume and Store.Cancel change
// it.
//
// # Job ids
//
// A job's id is "<campaign>:<row>" (JobID), row counting the file's records from 1
// after the header. The same file under the same name gives the same ids on every
// run; the campaign name cannot be reused for another file.
//
// # Guarantees
//
//   - Re-running Send with the same name, file, template, lane and schedule — after
//     a crash, an interrupt, a kill, or by mistake — publishes exactly the rows no
//     earlier run stored, however long after: every job is published with
//     Nats-Msg-Id = its id (the stream's duplicate window, 2 minutes, catches an
//     overlap), and beyond that window the record decides. The publisher checkpoints
//     into the record, by compare-and-set, the row up to which every row is settled
//     (stored, or bad), a digest of those rows, and a bound Ahead: it never publishes
//     a row beyond checkpoint+Ahead before it has checkpointed further. A re-run
//     skips the rows up to the checkpoint (after checking that the digest of the
//     file's rows matches: ErrFileChanged otherwise), and for the at most Ahead rows
//     after it asks whether the last run stored them: still in the jobs stream (read
//     from the checkpoint's stream sequence on, on the campaign's subject), or taken
//     by a worker (the job ledger has an entry: a worker writes it before it acks or
//     ends a job's message). Only rows found in neither are published.
//   - One run publishes a campaign at a time: the record names the run publishing
//     it, and another run waits until that run's last checkpoint is StaleAfter old
//     (ErrBusy). A run that loses its claim stops at its next checkpoint.
//   - Each job counts once in its campaign's counts, however often its events are
//     delivered or published: the Tracker marks a job's row in a tally (a bit per
//     row, per block of ChunkRows rows) and changes the tally's counts in the same
//     compare-and-set. A record takes a block's counts only from a newer tally
//     revision, so counts never go back. Any number of Trackers may run.
//   - A campaign is done only when its publishing is over and every job it
//     published has a final status (Counts.Final = Totals.Jobs). A cancelled
//     campaign stays cancelled; its Ended is set at the same point.
//   - Pause, Resume and Cancel are compare-and-set changes of the record's state;
//     a Gate sees them through its watch within milliseconds.
//
// What is not guaranteed here: that a paused campaign sends nothing and a
// cancelled one ends every job cancelled — that is the worker's part, with the
// Gate (see Gate for what it does); and a re-run after the ledger's retention (7
// days by default) may republish a job a worker took from the stream before the
// kill.
//
// # Failure handling
//
// Send stops at the first job the jobs stream refuses (for example the stream is
// full) and at a failed checkpoint, after settling the PubAcks in flight; the
// record then says how far it got, and a re-run continues. When its context ends
// it does the same and returns the context's error. The Tracker naks events it
// could not count, to count them again after a second; a process that dies between
// a tally and the record leaves the record behind by those counts until the next
// event of that block, or the Tracker's reconciliation (every
// ReconcileIntervalDefault, for campaigns whose publishing is over). Nothing here
// retries a write beyond compare-and-set conflicts, and nothing logs but the
// Tracker's loop and the Gate.
package campaign
