// Package broker starts an embedded NATS JetStream server or connects to an existing
// one, and declares the streams of the wire contract.
//
// # Guarantees
//
// The embedded server listens on a TCP address (127.0.0.1:4222 by default) so that
// other programs can publish to it, and stores in a directory of its own. With
// SyncAlways, every write reaches the disk before JetStream acknowledges it, so no
// acknowledged job is lost even on power loss. EnsureStreams creates missing streams
// and brings existing ones to the configured limits; it never silently keeps a stream
// whose fixed settings (storage, retention) differ from what jetsms needs.
//
// The embedded server requires authentication: the credentials it is given, or else
// the user EmbeddedUser with a random password it generates on first start in the
// store directory's PasswordFile (mode 0600, reused at every restart). Connect finds
// that file through ConnectConfig.LocalCredentialsDir when no credentials are set
// and every URL points at this machine, so the password never leaves it. A server
// without authentication (NoAuth, for tests) is refused beyond loopback.
//
// # Failure handling
//
// Connect reconnects forever with jittered backoff and logs each disconnect and
// reconnect once; publishes made while disconnected fail fast and are the caller's to
// retry. A connection the server closes for good (an error nats.go does not
// reconnect after) is seen by Watch, which ends the process's context, fails its
// liveness and, if the process has not stopped ExitAfter later, exits with status
// 1. WatchMaxDeliveries is the one watcher of max-deliveries advisories: the
// workers end jobs with it, the resolver dead-letters callbacks with it. EnsureStreams returns an error naming the stream and the setting when the
// server refuses a change.
package broker
