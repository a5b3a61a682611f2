// Package gwsim is a stand-in for the Modica REST v2 gateway: the default run, the tests and the benchmarks send to it.
//
// A Simulator is an http.Handler. Mount it so that the gateway base URL is the
// server URL (http://127.0.0.1:PORT/); the routes also answer under BasePath, so a
// base URL of http://127.0.0.1:PORT/rest/sms/v2 works too.
//
//	sim, err := gwsim.New(gwsim.Config{Username: "app", Password: "pw"})
//	srv := httptest.NewServer(sim)
//	t.Cleanup(srv.Close)
//	t.Cleanup(sim.Close) // runs first: ends held requests so srv.Close does not wait
//
// # What it simulates faithfully
//
// Following gateway-docs/rest-v2.txt and rest-v2-openapi.txt:
//
//   - POST /messages with a JSON body and HTTP Basic credentials; 401 for missing or
//     wrong credentials when Config sets them.
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
//
// # What it does not simulate
//
//   - HTTPS and the redirect from plain HTTP (serve it with httptest.NewTLSServer
//     for TLS), IP allow-lists, REST v1, GET /openapi.yaml.
//   - Delivery: no DLR or MO callbacks are sent, and a message's status stays
//     "accepted" for good. Source numbers are not assigned: GET shows the source as
//     sent.
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
//     By the time a client reads a 202, OnAccept has returned.
//   - A faulted request is never accepted, except under FaultAcceptThenReset and
//     FaultAcceptThenHang, which accept and then give no answer: the unknown-outcome
//     case. Timeout and reset faults are decided before acceptance.
//   - Injected faults apply to the next POST /messages requests in order, whatever
//     those requests hold, before any draw from the random mix.
//   - Memory is bounded: at most Config.Keep messages are kept; the oldest is
//     dropped first.
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
package gwsim
