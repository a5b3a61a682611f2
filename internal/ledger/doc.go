// Package ledger keeps one record per job in a NATS KV bucket — who it is for, its
// gateway message ids, its attempts and every status change — with an index from
// gateway message id to job, and a record of the references producers gave.
//
// The worker writes an entry before each submission (the send guard: state
// submitting, by compare-and-set on the entry's revision) and after the gateway's
// answer (accepted with the message id, retrying, unknown). The receipt resolver
// moves it on as delivery receipts arrive, and the CLI reads it.
//
// # Guarantees
//
//   - Every write is a compare-and-set on the revision the writer read, so two
//     writers never both believe they moved an entry from the same state: one of
//     them gets ErrConflict and must read again.
//   - Advance never moves a final status back to a non-final one, never replaces
//     one final status with another, and reports no change for a status the entry
//     is already in; a job's public status only moves forward.
//   - Entries and index keys expire after the configured retention, counted from
//     their last write; those of a scheduled job not before its schedule plus
//     Config.HoldAfterSchedule plus the retention. Each write carries its own
//     lifetime (a NATS 2.11 per-message TTL); the bucket's max age, ScheduleMax
//     plus HoldAfterSchedule plus the retention, bounds what was written without
//     one. The bucket stays bounded either way.
//   - A producer's reference is recorded ("r.<reference>") before its job's entry
//     is created, so ReferenceTaken knows it before the job can be sent.
//
// # Failure handling
//
// Every call takes a context and returns NATS's error wrapped with the job id; the
// ledger neither retries nor logs. ErrNotFound and ErrConflict are the two
// conditions callers act on.
package ledger
