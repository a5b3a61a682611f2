// Package worker pulls send jobs from JetStream, paces them under the account's rate,
// submits them through a Sender and turns every outcome into an ack, a delayed retry
// or a final status.
//
// Each lane has a durable pull consumer on the jobs stream. Messages fetched from all
// lanes wait in small per-lane queues; one scheduler hands them to at most
// Concurrency submissions at a time, taking a rate token first and then the job of
// the highest-priority lane that has one, so a token is never spent on a bulk job
// while a priority job waits.
//
// # Guarantees
//
//   - A job is acked only after its accepted event is stored in the status stream.
//   - A job that breaks a rule of the contract is never sent: it gets a final failed
//     event naming the rule, a copy in the dead-letter stream, and is terminated.
//     Likewise a job the gateway rejects, a job whose attempts are exhausted, a job
//     past its expires time (final expired) and a job on a lane that is not
//     configured. The dead-letter copy is stored before the message is terminated.
//   - Every message held by the worker, whether queued, waiting for a rate token or
//     waiting for the gateway, has its ack deadline extended, so JetStream does not
//     hand it to another worker while this one still holds it.
//   - Memory is bounded by the queue sizes and Concurrency, whatever the backlog.
//
// What is not guaranteed here: an ack can be lost on its way to the server, and a
// job whose submission timed out after the request was written is sent again (its
// later events carry duplicate_risk). Both can make the gateway receive a job twice.
//
// # Failure handling
//
// A transient failure (gateway 5xx, 429, send_failed, a refused connection) is
// retried in process with jittered exponential backoff while the waits are short;
// a longer wait (a long Retry-After, or the short budget used up) releases the job
// with a delayed nak, so it holds no slot while it waits. Each retry publishes a
// retrying event. A 401 or 403 releases the job with a delay without counting an
// attempt: bad credentials are not the job's fault.
//
// Stop is graceful: it stops fetching, releases queued jobs at once (nak) for other
// workers, and waits for submissions in flight until the context ends; then it
// cancels them and still waits for each to be released or recorded.
package worker
