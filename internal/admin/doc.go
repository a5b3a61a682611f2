// Package admin serves jetsms's operator endpoints — /healthz, /readyz, /metrics and
// whatever other components register — on a listener of their own, apart from the
// public callbacks listener.
//
// # Guarantees
//
// /healthz and /readyz are open to probes and answer with short reason codes
// (ReasonStarting, ReasonNATSDisconnected, ReasonCircuitOpen, …), never internal
// error text. Everything else on the listener requires the configured HTTP Basic
// credentials, compared in constant time. New refuses a listen address beyond
// loopback without credentials unless Config.AllowUnauthenticated says so.
//
// # Failure handling
//
// Start returns the listener's error (a port in use, say) before serving. Stop
// shuts the server down gracefully within its context and is safe twice and
// without Start. A handler registered after Start is served at once.
package admin
