// Package ratelimit paces gateway submissions so the account's rate is used fully but never exceeded.
//
// [Limiter] is a fixed token bucket. [Adaptive] is a token bucket whose rate backs
// off when the gateway pushes back ([Adaptive.Slow] on a 429 or 503) and climbs back
// to its ceiling. [Share] divides the account's rate among the replicas of jetsms
// through a NATS KV bucket, by setting each replica's Adaptive ceiling. [LaneShares]
// decides which lane gets the next token. Tokens are whatever the caller counts: one
// per message, or one per segment.
//
// # Guarantees
//
//   - Limiter and Adaptive never grant more than rate + burst tokens in any one
//     second to requests of at most the burst. Adaptive's rate never exceeds its
//     ceiling.
//   - A request for more tokens than the burst is never refused: it is granted once
//     that many tokens have accrued at the configured (Limiter) or current
//     (Adaptive) rate, all at one instant.
//   - A Wait that returns an error has taken nothing (Limiter keeps the parts of a
//     request larger than the burst that it already took).
//   - Adaptive serves takers in arrival order. After Slow(d) it grants nothing for d
//     (at most MaxPause), then starts from an empty bucket at the cut rate, which
//     climbs linearly back to the ceiling. Slows that answer requests sent before a
//     cut do not cut again (CutCooldown).
//   - Share: with N replicas alive, each ceiling is the account's rate / N and each
//     burst the account's burst / N (at least 1). A replica that stops is counted
//     out by the others as soon as they see its key deleted (milliseconds); one that
//     dies, within TTL of its last heartbeat. A replica hands out no tokens before
//     Start has counted the replicas, after Stop, or while it cannot see its own
//     heartbeats (it then cannot see who else is there, and the others may soon
//     count it out).
//   - LaneShares is deterministic. Over any long run in which all lanes have work,
//     each lane with a minimum share gets that share of the tokens, and the lanes
//     above it split the rest in priority order. A lane without work gives its share
//     to the others and does not catch up afterwards.
//
// Not guaranteed: a replica that joins takes its share at once, so until the others
// see its key (milliseconds) the replicas together may exceed the account's rate by
// that share. When the account's burst is smaller than the number of replicas, each
// still gets a burst of 1. Replicas must be configured with the same account rate;
// Share does not compare them.
//
// # Failure handling
//
//   - Wait returns ctx's error (context.Canceled or context.DeadlineExceeded, also
//     when Limiter sees the deadline come before the tokens would).
//   - Configuration errors wrap ErrInvalidConfig and name the setting and the rule.
//   - Share, NATS unreachable: a failed heartbeat is logged once (then at debug
//     level) and retried every heartbeat. When its own heartbeats have not come back
//     on the watch for TTL − Heartbeat, the replica suspends its limiter, restarts
//     the watch with jittered waits, and resumes once a heartbeat comes back; the
//     ceiling it resumes at is recounted from the watch. A bucket the server lost is
//     recreated by the next heartbeat. A replica whose key expired without a
//     delete marker reaching a watcher is counted out after TTL + Heartbeat of
//     silence.
//   - Share.Stop: if the key cannot be deleted, Stop returns the error and the key
//     expires after TTL; the limiter is suspended either way.
package ratelimit
