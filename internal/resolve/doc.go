// Package resolve turns stored gateway callbacks into public status and inbound
// events by way of the job ledger, keeps the opt-out list, and reconciles jobs
// whose final receipt never came.
//
// The callback receiver (package dlr) stores each callback on the callbacks
// stream before it answers the gateway. A Resolver consumes that stream: for a
// delivery receipt it finds the job (by the gateway's message id, else by the
// reference, which is the job id when the producer gave none), moves the job's
// ledger entry forward and publishes the status event with the job's id, lane,
// campaign and metadata; for an inbound message it updates the opt-out list and
// publishes the inbound event with the job it replies to. A Reconciler follows
// the accepted events and, once a job has gone ReconcileAfter without a final
// status, asks the gateway for it.
//
// # Guarantees
//
//   - A stored callback is acknowledged only after its event is stored (or it was
//     found to change nothing), so none is lost between receiver and consumer.
//   - A job's public status only moves forward: a receipt that would move a final
//     status back, or repeats the current one, publishes nothing.
//   - A receipt that arrives before the worker recorded the job's message id is
//     retried for ResolveWithin; after that it is published with what it carries
//     (no job id) and counted as unmatched, never dropped.
//   - The ledger entry moves before the event is published, and an event is
//     published only for a status the entry holds: a failure or crash between
//     the two cannot leave an event out while the entry stays behind (a later
//     receipt then published a non-final status after the final one). The
//     callback handed back finds its change recorded as the entry's last and
//     publishes the event again; events carry deterministic Nats-Msg-Ids, so the
//     stream drops a copy.
//   - A receipt found by reference (the job id jetsms sent) moves a job accepted
//     under another message id only when the job was sent again after an unknown
//     outcome (duplicate_risk); a reference a producer gave any job moves none.
//
// # Failure handling
//
// A callback whose handling fails on NATS (ledger or publish) is released with a
// delay that grows with its deliveries and handled again; handling is idempotent.
// It is not retried for ever: after Config.MaxDeliver deliveries JetStream stops
// delivering it, and the max-deliveries watcher the workers use for jobs
// (broker.WatchMaxDeliveries) dead-letters it with reason callback_failed. One
// holding a value that can never be a NATS name (stored before the receiver's
// field limits) is dead-lettered at once. A stored callback that cannot be
// decoded (written by another program) is logged and terminated. The
// Reconciler retries a gateway that cannot be reached a minute later.
package resolve
