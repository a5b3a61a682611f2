// Package cluster tests jetsms as it is deployed: several jetsms processes
// against a three-node JetStream cluster with replicated streams, on loopback.
//
// The tests build the jetsms binary once and run it as separate processes, so
// a replica can be killed with SIGKILL. They are part of `go test ./...`.
package cluster
