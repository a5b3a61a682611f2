// Package gwsim is a stand-in for the Modica gateway, REST v2 or REST v1: the default run, the tests and the benchmarks send to it.
//
// Besides answering requests it calls back, as the gateway does: delivery receipts
// (DLRs) for every accepted message when Config.DLRURL is set, and inbound messages
// (MOs) on demand, through SendMO or POST /sim/mo, when Config.MOURL is set. So the
// whole lifecycle of a message — accepted, sent, received — can be watched.
//
// A Simulator is an http.Handler, as strict as the documents make the gateway: it
// serves REST v2 only under BasePath and REST v1 only under BasePathV1, so the
// gateway base URL is the server URL plus that path
// (http://127.0.0.1:PORT/rest/sms/v2); any other path is 404.
//
//	sim, err := gwsim.New(gwsim.Config{Username: "app", Password: "pw"})
//	srv := httptest.NewServer(sim)
//	baseURL := srv.URL + gwsim.BasePath
//	t.Cleanup(srv.Close)
//	t.Cleanup(sim.Close) // runs first: ends held requests so srv.Close does not wait
//
// # What it simulates faithfully
//
// Following the REST v2 page and the OpenAPI page:
//
//   - POST /messages with a JSON body and HTTP Basic credentials; 401 for missing or
//     wrong credentials when Config sets them (SetCredentials changes them while
//     the simulator runs).
//   - Validation with the gateway's codes and both forms of "error-desc": a body that
//     is not a JSON object is 400 invalid_json (desc a string); a missing or empty
//     destination or content is 400 missing_attrib (desc an array); an attribute of
//     the wrong JSON type, a destination not in international format ('+', a digit
//     1–9, at most 15 digits), an sms_class outside 0–3 or an expires that is not
//     RFC 3339 is 400 invalid_attrib (desc an array); a scheduled time that is not
//     RFC 3339 or is ScheduleLimit (60 days) or more ahead is 400 invalid_attrib and
//     one in the past is 422 (desc a string, the page's wording).
//   - Success is 202 Accepted, Content-Type application/json,
//     {"id":"<uuid v4>","status":"accepted","detail":"<destination>"}.
//   - GET /messages?id= answers 200 with id, source, destination, content, status
//     and (when set) reference, and a Location header; 404 for an unknown or
//     dropped id. GET /healthz answers 200 without credentials.
//   - Both documented error shapes: {"error","error-desc"} and the OpenAPI page's
//     {"message","statusCode","error"} (FaultOpenAPIError).
//   - DLR callbacks: POST to Config.DLRURL, Content-Type application/json, body
//     {"message_id","status","detail","reference"} with reference only when the
//     message had one; credentials in the URL go as HTTP Basic. By default each
//     accepted message gets a "sent" receipt (Config.DLRInterim) and then a last one
//     whose status Config.DLRMix draws: received unless the mix says otherwise
//     (rejected, expired, failed, dead, or a non-final status, or none at all).
//     The first comes Config.DLRDelay after acceptance, each next one Config.DLRGap
//     after the one before, both plus Config.DLRJitter. The message's status for GET
//     follows the receipts.
//   - MO callbacks: POST to Config.MOURL, body {"id","source","destination",
//     "content","operator"} plus "reply_to", "reference" and "encoding":"base64"
//     when they apply. SendMO sends one; so does POST /sim/mo (below).
//   - Callbacks that fail — an answer that is not 2xx, including a redirect, or
//     no answer within Config.CallbackTimeout — are retried, as the gateway calls
//     again.
//   - The base path: REST v2 routes only under /rest/sms/v2, REST v1 routes only
//     under /rest/gateway ("Base URI" of both pages); 404 anywhere else.
//   - Accept and Content-Type per API: REST v2 answers application/json (its
//     "Versions"); REST v1 answers application/vnd.modica.gateway.v1+json and
//     application/json (its "Versions", and its own code samples); a missing
//     Accept, */* and application/* admit either. A request whose Accept admits
//     neither gets 406; a POST whose body is not application/json (REST v1: or its
//     media type) gets 415.
//   - HTTPS redirect (Config.RedirectHTTPS, SetRedirectHTTPS): every request that
//     did not come over TLS gets 301 to the https URL, as the pages say plain HTTP
//     is redirected.
//   - Scheduled messages: a message scheduled ahead stays "accepted" (GET shows it)
//     and gets no receipt until the simulator's clock (Config.Now) reaches its
//     time; ReleaseDue sends the receipts then (a timer calls it in real time).
//   - Both receipt shapes of REST v2: the REST v2 page's {"message_id",...}
//     (default) and the OpenAPI page's StatusCallback {"id","status","detail"}
//     (Config.DLRShape DLRShapeID).
//   - An MO carries "reference" only with "reply_to", as both pages add it only to
//     a reply; SendMO refuses a reference without reply_to.
//   - The destination rule: international format, as both pages require.
//
// # REST v1
//
// With Config.API set to APIv1 the simulator speaks REST v1 instead (the REST v1
// page), under BasePathV1 only: the base URL is http://127.0.0.1:PORT/rest/gateway. One simulator speaks one API,
// as a gateway application is set up for one; run two to serve both. Credentials,
// faults (Inject and Config.Faults), latency, validation and its error bodies,
// OnAccept, Stats, Keep and callbacks work as under REST v2, with these
// differences:
//
//   - Ids are positive integers, counting up from the time New ran in
//     microseconds, so that a restarted simulator does not reuse recent ones.
//     Message.ID and SendMO's id hold them in decimal.
//   - POST /messages answers 201 Created with a Location header
//     (<scheme>://<host><path>/<id>) and, as Config.V1IDForm says, the id in
//     brackets ([12345], the default), bare (12345) or no body at all.
//   - POST /messages/broadcast takes the same body with "destination" an array.
//     The whole request is refused, as a POST /messages would be, for bad JSON,
//     an attribute of the wrong type (a destination that is not an array of
//     strings included), a missing or empty destination array or content, an
//     invalid sms_class, expires or scheduled; and with 400 broadcast_limit (desc
//     an array) for more than Config.BroadcastLimit destinations. Otherwise each
//     destination in international format is accepted as a message of its own
//     (one OnAccept call, one id, its own receipts; a destination given twice is
//     sent twice) and each other one gets a failure entry, in one 201 answer with
//     an entry per destination in order: {"status":"success","message":null,
//     "destination":..,"id":<int>} or {"status":"failure","message":"Invalid
//     destination (X)","destination":"X","id":null}. A fault takes the whole
//     request, as for a POST /messages; an accept-then fault accepts every valid
//     destination first.
//   - GET /messages/{id} answers 200 with "id" (a string, as the page types it),
//     source, destination, content and (when set) reference, and a Location
//     header; no status, as the page lists none. 404 for an unknown or dropped id
//     and for one that is not a positive integer. There is no GET /healthz.
//   - Receipts are {"message_id":<int>,"status","reference"?}, without detail;
//     MOs have an integer "id", and their "reply_to", when given, must be a REST v1
//     id and is sent as a string, as the page shows it.
//
// # Sending an MO by hand
//
// POST /sim/mo takes the MO callback's JSON without "id" ("source", "destination",
// "content", and optionally "reply_to", "reference", "operator", "encoding"), with
// the simulator's credentials, and answers 200 {"id":"<id>"} once the receiver at
// Config.MOURL has answered 2xx:
//
//	curl -u app:pw -d '{"source":"+64211234567","destination":"2021","content":"STOP"}' \
//	    http://127.0.0.1:PORT/sim/mo
//
// It waits while the MO is retried; curl -m bounds the wait. An error answer has
// the gateway's shape, {"error","error-desc"}, with codes of its own: 400
// invalid_json or invalid_attrib, 409 no_mo_url, 503 unavailable (queue full or
// closed), 502 callback_failed (with "id", as the receiver may have the MO).
//
// # What it does not simulate
//
//   - TLS itself (serve it with httptest.NewTLSServer), IP allow-lists, GET
//     /openapi.yaml, and both APIs from one simulator.
//   - Delivery itself: receipts follow Config, not the destination, the content or
//     expires. The "detail" of a receipt is the destination, as in the 202
//     answer; the documents do not say what the gateway puts there. Without
//     Config.DLRURL no receipts are sent and the status stays "accepted" for good.
//     Source numbers are not assigned: GET shows the source as sent.
//
// # Guesses
//
// Where the documents are silent the simulator has to answer something. These are
// its choices, not the gateway's documented behaviour; clients must not depend on
// them:
//
//   - The status codes of faults: send_failed is a 400 with {"error":"send_failed"}
//     (the pages list the code under "Error Codes" without a status); 500 is plain
//     text, 503 carries the OpenAPI error body, 502 and 504 an HTML proxy page
//     (504 after accepting the message).
//   - 422's body: {"error":"invalid_attrib","error-desc":"Invalid scheduled
//     timestamp (must not be in the past)"}; the pages give 422 and its text only.
//   - 406 and 415 for a wrong Accept or Content-Type; the pages name neither.
//   - GET /healthz needs no credentials (the OpenAPI example sends none).
//   - GET shows "accepted" for a scheduled message until its time (the first
//     value of the OpenAPI status enum).
//   - The retry of callbacks (CallbackBackoff, CallbackGiveUp), which the
//     documents do not give.
//   - The REST v1 broadcast limit (BroadcastLimitDefault), which the documents do
//     not give.
//   - The real gateway's REST v1 broadcast limit, and which other destinations it
//     answers with a failure entry rather than accepts; neither is documented.
//   - Limits the documents do not state: content length and segments are not
//     checked, expires is not compared with scheduled, and per-account rate limits
//     exist only as random or injected 429s. Bodies over MaxBodyBytes get 413.
//   - The real gateway's wording of most error descriptions, and of the bodies of
//     401, 429, 500 and 503 answers, which the documents do not show; the simulator
//     uses plausible ones (an API gateway's {"message":...} for 401, 429 and 503,
//     plain text for 500). Clients must not depend on them.
//
// # Guarantees
//
//   - A message is accepted — stored for GET, passed to OnAccept, counted in
//     Stats.Accepted — before the latency is waited out and before it is answered.
//     By the time a client reads a 202 (REST v1: 201), OnAccept has returned.
//   - A faulted request is never accepted, except under FaultAcceptThenReset and
//     FaultAcceptThenHang, which accept and then give no answer: the unknown-outcome
//     case. Timeout and reset faults are decided before acceptance.
//   - Injected faults apply to the next POST /messages (and POST
//     /messages/broadcast) requests in order, whatever those requests hold, before
//     any draw from the random mix.
//   - Memory is bounded: at most Config.Keep messages are kept; the oldest is
//     dropped first. At most Config.CallbackQueue callbacks are pending (a message
//     with receipts still to come counts one); a message accepted while the queue
//     is full gets no receipts, counted in Stats.ReceiptsDropped. Callbacks are
//     posted by Config.CallbackSenders goroutines sharing one keep-alive client; a
//     retry waits in the queue, not in a sender.
//   - A receipt is retried, with exponential backoff from Config.CallbackBackoff up
//     to Config.CallbackBackoffMax, until the receiver answers 2xx or
//     Config.CallbackGiveUp has passed since its first attempt; then it is dropped
//     and the message's next receipt, if any, follows. Delivery is at least once:
//     a receiver that took a receipt but whose answer was lost gets it again.
//   - A message's receipts are sent one at a time in their order — interim ones,
//     then the last — never two at once: Config.DLRReorder sends the last one first
//     and Config.DLRDuplicate sends each one twice in a row, to test receivers
//     against both. Receipts of different messages have no order among them. The
//     first receipt is scheduled after OnAccept returns, and may reach the
//     receiver before the client reads its 202 (or 201).
//   - A message's status (GET /messages, Message) becomes each receipt's status
//     as its first attempt starts, whether or not the receiver takes it, except
//     that a final status (received, rejected, failed, dead, expired) is never
//     replaced by a non-final one.
//   - SendMO returns nil only after the receiver answered 2xx.
//   - Nothing is logged.
//
// # Failure handling
//
// A hang (FaultTimeout, FaultAcceptThenHang) ends when HangFor passes, when the
// client hangs up, or when Close is called, whichever is first, and then closes the
// connection without an answer. A reset hijacks the connection and closes it with
// SO_LINGER 0 so the client sees a reset; on HTTP/2, where hijacking is impossible,
// it panics with http.ErrAbortHandler instead. Latency waits end early on the same
// events and then answer. http.Server.Shutdown and httptest.Server.Close wait for
// running handlers without cancelling them, so call Close first.
//
// A client that gives up during the latency of an accepted message does not learn
// that it was accepted; this is deliberate, as it is with the real gateway.
//
// Close stops the callbacks: it cancels attempts in flight, drops the receipts
// still pending (counted in Stats.ReceiptsDropped), fails pending MOs with ErrClosed
// and waits for the callback goroutines to return, so none outlives it. Messages
// accepted after Close get no receipts. A SendMO whose context ends returns at once;
// its MO is dropped before its next attempt, or its attempt in flight cancelled.
package gwsim
