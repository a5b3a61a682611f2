// Package dispatcher submits jobs to the gateway and classifies every outcome the
// worker must act on.
//
// [RESTv2] speaks the Modica Mobile Gateway REST v2 API (POST /messages,
// GET /messages?id=, GET /healthz); [RESTv1] speaks the older REST v1 API (POST
// /messages, POST /messages/broadcast, GET /messages/{id}) that existing
// integrations still use. Both have Send(ctx, *job.Job) (Result, error) for the
// worker and Get(ctx, id) (Message, error) for reconciliation. Each submits a job
// exactly once per call and never retries: the worker owns retries, and needs to
// know precisely what happened to decide whether a retry is safe. Every failed
// submission is an [*Error] whose [Kind] is one of five outcomes the worker maps
// to an action. Each answer is classified by what it proves about the message:
//
//   - [KindRejected]: the gateway refused the message and would refuse it again
//     (validation error, 422, a 4xx not listed below). Terminate the job.
//   - [KindRetryable]: the gateway did not take the message (429, 408,
//     send_failed, a 5xx with the gateway's own error body, or the request never
//     fully left this process). Retry after a delay, at least [Error.RetryAfter].
//   - [KindUnknown]: nothing shows the message was refused: the request was fully
//     written but no usable answer came back (timeout, connection lost, garbled
//     2xx), or the answer is a 502, a 504 or a 5xx without the gateway's own
//     error body (a proxy in front of the gateway answers those, and says nothing
//     of the gateway). The gateway may have accepted it; resending risks a
//     duplicate SMS.
//   - [KindUnauthorized]: 401 or 403. Every other job will fail the same way until
//     the credentials, the account's API permission or the allow-listed IPs are
//     fixed.
//   - [KindMisconfigured]: 3xx (plain HTTP redirected to HTTPS), 404 (a wrong
//     base path), 405, 406 or 415 (a wrong API version or media type). The
//     configuration is wrong, not the job; every other job gets the same answer.
//
// The table, with the document line behind each row, is in docs/gateway.md.
//
// # Guarantees
//
//   - One call, at most one message. Send never resends a request that may have
//     reached the gateway. It sets no Idempotency-Key header, so net/http treats
//     the POST as non-replayable: the HTTP/1 transport then retries by itself only
//     after a nothingWrittenError (not one byte of the request reached the
//     connection) and the HTTP/2 transport only after REFUSED_STREAM or a GOAWAY
//     that names the stream unprocessed. In both cases the gateway cannot have
//     seen the message, and the body is rewound (it is a bytes.Reader, so
//     Request.GetBody is set). Redirects are not followed (requests go straight
//     to the http.Transport, not through an http.Client): a 3xx is reported, not
//     turned into a GET.
//   - KindRetryable is returned for a failure only when the request was not fully
//     written. Whether it was is taken from net/http/httptrace (WroteHeaders and
//     WroteRequest, including WroteRequest's error). The judgement errs one way
//     only: a request that might have been complete at the gateway is KindUnknown,
//     never KindRetryable.
//   - Every job sent alone carries a reference: the job's Reference, or its ID
//     when Reference is empty, so delivery receipts and replies can always be
//     matched to the job. A REST v1 broadcast carries its jobs' common Reference
//     only (one reference serves all its messages); its receipts match by
//     message id.
//   - Each submission is bounded by [Config.Timeout] from the moment Send is
//     called until the answer has been read, including waiting for a free
//     connection when [Config.MaxConns] are busy.
//   - At most 64 KiB of any response body is read; bodies are drained and closed
//     so keep-alive connections are reused.
//
// # Failure handling
//
// Send returns an error wrapping an [*Error]; use [KindOf] or errors.As to read
// it, or errors.Is with [ErrRejected], [ErrRetryable], [ErrUnknownOutcome] and
// [ErrUnauthorized]. Transport errors stay reachable through Unwrap, so
// errors.Is(err, context.Canceled) and errors.Is(err, syscall.ECONNREFUSED) work
// too. Recognise a timeout by Error.Code "timeout" rather than by
// context.DeadlineExceeded: the transport's response-header timeout (also
// Config.Timeout) may fire first, and it does not wrap it.
//
// Status codes are classified as follows: 202 (and, defensively, any other 2xx
// whose body carries a message id) is success. 400 is decided by the gateway's
// error code: send_failed is retryable; invalid_json, missing_attrib,
// invalid_attrib, any other code and no code at all are rejected. 401 and 403 are
// unauthorised. 408 and 429 are retryable. 422 is rejected, keeping the
// gateway's own code (scheduled_in_past when it sends none). 3xx, 404, 405, 406
// and 415 are misconfigured; other 4xx are rejected. 502 and 504 are unknown;
// another 5xx is retryable with the gateway's own error body ({"error",...} or
// {"message","statusCode","error"}) and unknown without it. Both
// error bodies the gateway documents are understood: {"error":"<code>",
// "error-desc":[...] or "..."} and {"message":"...","statusCode":500,
// "error":"..."}; a body that is not JSON still classifies by status code.
// Retry-After (seconds or an HTTP-date) is reported as given, not capped: the
// worker bounds it.
//
// Failures without a response are classified by what was written: before the
// request was complete (connection refused, DNS failure, dial or TLS handshake
// failure or timeout, reset on write, no free connection in time, the caller's
// context ending) they are KindRetryable; after it (timeout, reset, EOF) they are
// KindUnknown. When the caller's context ends, Error.Err is ctx.Err(), so a
// shutdown reads as context.Canceled rather than as a gateway fault.
//
// # REST v1
//
// [RESTv1] classifies failures with the same code as RESTv2: the same kinds, the
// same codes, both error bodies. What differs is success and ids. A submission
// succeeds with 201 Created (any 2xx, defensively) and an integer id, read from
// the body bare (12345) or in brackets ([12345]), as the REST v1 page shows both,
// or else from the last path segment of the Location header; a 2xx with none of
// these is KindUnknown. Ids are positive int64s, handed out and taken in decimal.
// Every request carries Accept: application/vnd.modica.gateway.v1+json.
//
// [RESTv1.Broadcast] sends one content to many destinations in one request. The
// jobs must agree on everything but destination (see its documentation); one
// reference, their common Reference, goes for all. A failure of the whole request
// is one *Error for every job, classified as above, with [ErrBroadcastLimit]
// matching the gateway's broadcast_limit so the caller can split the batch. A 201
// carries one result per destination, which may mix success and failure: each
// job gets its own [BroadcastResult], a "failure" result being KindRejected with
// Code [CodeBroadcastFailure], and a job the answer says nothing about
// KindUnknown.
//
// [RESTv2.Probe] checks the gateway without sending an SMS: GET /healthz, then an
// authenticated look-up of a message no account has (404 is healthy). REST v1 has
// no health endpoint: [RESTv1.Health] (and Probe) asks for message 0, which
// checks reachability and credentials (404 is healthy) but not the base path. Its GET answer documents
// no status, so [Message].Status is empty under v1 unless the gateway sends one.
//
// The package does not log: it returns what happened once, and the worker decides
// whether to log it. A TLS failure (code "tls") is retryable but usually means a
// certificate or configuration problem an operator should see.
package dispatcher
