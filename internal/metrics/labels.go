package metrics

// JobOutcome is how a job's handling by this worker ended: the outcome label of
// jetsms_jobs_total.
type JobOutcome string

// The outcomes of jetsms_jobs_total. Accepted, failed, expired, suppressed and
// cancelled are final; retrying, released and duplicate_skipped are not.
const (
	// JobAccepted: the gateway accepted the job and its event is stored.
	JobAccepted JobOutcome = "accepted"
	// JobFailed: the job ended failed (invalid, rejected or retries exhausted).
	JobFailed JobOutcome = "failed"
	// JobExpired: its expires time or its lane's max age passed before it was sent.
	JobExpired JobOutcome = "expired"
	// JobSuppressed: the destination opted out of a marketing lane.
	JobSuppressed JobOutcome = "suppressed"
	// JobCancelled: its campaign was cancelled.
	JobCancelled JobOutcome = "cancelled"
	// JobRetrying: an attempt failed and the job will be tried again.
	JobRetrying JobOutcome = "retrying"
	// JobReleased: the job was handed back to JetStream unsent (stop, circuit open,
	// delayed retry).
	JobReleased JobOutcome = "released"
	// JobDuplicateSkipped: the ledger showed the job already sent, so it was not
	// submitted again.
	JobDuplicateSkipped JobOutcome = "duplicate_skipped"
)

// jobOutcomes are every JobOutcome, in the order above.
var jobOutcomes = []JobOutcome{
	JobAccepted, JobFailed, JobExpired, JobSuppressed, JobCancelled,
	JobRetrying, JobReleased, JobDuplicateSkipped,
}

// GatewayOutcome classifies one gateway request: the outcome label of
// jetsms_gateway_request_duration_seconds. The names are those of the
// dispatcher's outcome kinds.
type GatewayOutcome string

// The outcomes of jetsms_gateway_request_duration_seconds.
const (
	GatewayAccepted     GatewayOutcome = "accepted"
	GatewayRejected     GatewayOutcome = "rejected"
	GatewayRetryable    GatewayOutcome = "retryable"
	GatewayUnknown      GatewayOutcome = "unknown"
	GatewayUnauthorized GatewayOutcome = "unauthorized"
	// GatewayMisconfigured: an answer that shows the URL, base path or API
	// version is wrong (3xx, 404, 405, 406, 415).
	GatewayMisconfigured GatewayOutcome = "misconfigured"
)

// gatewayOutcomes are every GatewayOutcome.
var gatewayOutcomes = []GatewayOutcome{
	GatewayAccepted, GatewayRejected, GatewayRetryable, GatewayUnknown, GatewayUnauthorized, GatewayMisconfigured,
}

// CallbackKind is the kind label of jetsms_callbacks_total.
type CallbackKind string

// The kinds of gateway callback.
const (
	CallbackDLR CallbackKind = "dlr"
	CallbackMO  CallbackKind = "mo"
)

// callbackKinds are every CallbackKind.
var callbackKinds = []CallbackKind{CallbackDLR, CallbackMO}

// CallbackResult is how the receiver answered a callback: the result label of
// jetsms_callbacks_total.
type CallbackResult string

// The results of jetsms_callbacks_total, one per answer of docs/contract.md.
const (
	// CallbackStored: 200, the callback is stored in JetStream.
	CallbackStored CallbackResult = "stored"
	// CallbackDuplicate: 200, JetStream already had it.
	CallbackDuplicate CallbackResult = "duplicate"
	// CallbackInvalid: 400, the body is not a DLR or MO.
	CallbackInvalid CallbackResult = "invalid"
	// CallbackUnauthorized: 401, missing or wrong credentials.
	CallbackUnauthorized CallbackResult = "unauthorized"
	// CallbackTooLarge: 413, the body is over the limit.
	CallbackTooLarge CallbackResult = "too_large"
	// CallbackUnavailable: 503, NATS could not store it; the gateway retries.
	CallbackUnavailable CallbackResult = "unavailable"
	// CallbackForbidden: 403, the source address is outside callbacks.allow_from.
	CallbackForbidden CallbackResult = "forbidden"
)

// callbackResults are every CallbackResult.
var callbackResults = []CallbackResult{
	CallbackStored, CallbackDuplicate, CallbackInvalid, CallbackUnauthorized, CallbackTooLarge, CallbackUnavailable,
	CallbackForbidden,
}

// ReceiptResult is what the resolver did with a delivery receipt: the result label
// of jetsms_receipts_total.
type ReceiptResult string

// The results of jetsms_receipts_total.
const (
	// ReceiptPublished: the receipt became a status event.
	ReceiptPublished ReceiptResult = "published"
	// ReceiptUnchanged: the job already had this or a later status.
	ReceiptUnchanged ReceiptResult = "unchanged"
	// ReceiptRetried: its message id was not in the ledger yet; tried again later.
	ReceiptRetried ReceiptResult = "retried"
	// ReceiptUnmatched: no job was found within callbacks.resolve_within; published
	// with what is known.
	ReceiptUnmatched ReceiptResult = "unmatched"
)

// receiptResults are every ReceiptResult.
var receiptResults = []ReceiptResult{ReceiptPublished, ReceiptUnchanged, ReceiptRetried, ReceiptUnmatched}

// PublishKind is what could not be published: the kind label of
// jetsms_event_publish_failures_total.
type PublishKind string

// The kinds of jetsms_event_publish_failures_total.
const (
	PublishStatus     PublishKind = "status"
	PublishDeadLetter PublishKind = "dead_letter"
	PublishInbound    PublishKind = "inbound"
)

// publishKinds are every PublishKind.
var publishKinds = []PublishKind{PublishStatus, PublishDeadLetter, PublishInbound}

// ReconcileResult is what reconciling a job with no final receipt ended in: the
// result label of jetsms_reconciled_total.
type ReconcileResult string

// The results of jetsms_reconciled_total.
const (
	// ReconciledFinal: the gateway reported a final status, now published.
	ReconciledFinal ReconcileResult = "final"
	// ReconciledReported: the gateway reported a status that is not final yet.
	ReconciledReported ReconcileResult = "reported"
	// ReconciledExpired: the gateway had no answer; the job ended expired
	// (no_receipt).
	ReconciledExpired ReconcileResult = "expired"
)

// reconcileResults are every ReconcileResult.
var reconcileResults = []ReconcileResult{ReconciledFinal, ReconciledReported, ReconciledExpired}

// rateChangeReasons are the reasons of jetsms_rate_changes_total that exist before
// any change: those of ratelimit.ChangeReason. RateChanged takes any other too.
var rateChangeReasons = []string{"slowed", "recovered", "ceiling", "suspended", "resumed"}
