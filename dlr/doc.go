// Package dlr receives the gateway's callbacks (delivery receipts and inbound
// replies), checks them and stores them on the callbacks stream before answering.
//
// [Receiver] is an http.Handler for POST /callbacks/dlr and POST /callbacks/mo.
// The caller mounts it beside its own /healthz, /readyz and /metrics, and serves
// the mux with [NewServer], which sets every timeout of http.Server:
//
//	rc, err := dlr.New(dlr.Config{Username: "gw", Password: pw}, js, names, log)
//	mux := http.NewServeMux()
//	mux.Handle("/callbacks/", rc)
//	srv, err := dlr.NewServer(dlr.ServerConfig{Addr: ":8080"}, mux, log)
//	go srv.ListenAndServe() // http.ErrServerClosed after Shutdown is a clean stop
//
// [ParseReceipt] and [ParseInbound] read the bodies of both gateway APIs: REST v2
// (UUID ids; the DLR id under "message_id" or, as the OpenAPI page has it, "id")
// and REST v1 (integer ids, given as JSON numbers or strings). What they store is
// a [Receipt] on <prefix>.callbacks.dlr or an [Inbound] on <prefix>.callbacks.mo,
// JSON-encoded, with Nats-Msg-Id [ReceiptMsgID] or [InboundMsgID]. Resolving a
// stored callback against the job ledger is another component's job.
//
// # Guarantees
//
//   - A 200 answer means JetStream has acknowledged the callback: it is stored on
//     the callbacks stream (with the server's own durability setting), or it was
//     stored before under the same Nats-Msg-Id. Nothing is answered 200 from
//     memory.
//   - A callback the gateway sends again (same DLR id and status, or same MO id)
//     within the stream's duplicate window (2 minutes by default) is stored once,
//     and still answered 200.
//   - A receipt with a status the documents do not list is stored with its status
//     as it came; only an empty or non-string status is refused.
//   - Every refusal names the field and the rule in its answer
//     (400 {"error":"invalid_callback","field":"status","message":"status: must
//     be a string, got number"}), so the gateway's operators can see it.
//   - Every field has a maximum (MaxIDBytes and the others beside it) and values
//     that may become part of a NATS name hold no control characters, so no
//     callback can make a subject, key or header that the server refuses.
//   - Credentials are required unless Config.AllowUnauthenticated says otherwise
//     (New warns then); Config.AllowFrom refuses other source addresses with 403.
//   - A body that is not read whole (cut short, or slower than the server's
//     ReadTimeout) is answered 400 with Connection: close, never 200; and no path
//     of the handler ends without an answer, which net/http would send as 200.
//   - At most MaxBodyBytes (64 KiB) of a body is read. Credentials are compared
//     in constant time. With the server from NewServer, no client holds a
//     connection longer than its timeouts allow: a client that sends its headers
//     slowly is cut off after ReadHeaderTimeout.
//   - Bodies are not logged: they carry phone numbers and message text.
//
// What is not guaranteed: the order in which callbacks are stored is the order in
// which their publishes reach JetStream, not the gateway's order; and a callback
// answered 503 may still have been stored (see below), so a consumer may see a
// callback the gateway believes failed — the gateway's retry of it then finds the
// duplicate.
//
// # Failure handling
//
// While JetStream cannot store a callback (NATS unreachable, the stream missing,
// no acknowledgement within Config.PublishTimeout), the answer is 503 with
// Retry-After, so the gateway sends it again; the NATS connection reconnects by
// itself and the next callback after that is stored. A publish made while the
// connection is down waits in the client's reconnect buffer: if it reaches the
// server after the 503 was sent, it is stored then, and the gateway's retry is
// recognised as its duplicate within the window.
//
// A callback whose stored form exceeds the stream's maximum message size is
// answered 413, not 503, since sending it again cannot succeed. When the gateway
// hangs up before the answer, the 503 written goes nowhere and nothing is counted;
// the publish may still complete.
//
// Parse errors are *FieldError values matching ErrInvalid; configuration errors
// wrap ErrInvalidConfig.
package dlr
