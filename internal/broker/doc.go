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
