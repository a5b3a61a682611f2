// Package e2e tests jetsms end to end — receipts, inbound replies and the job ledger — with the real parts wired as cmd/jetsms wires them.
package e2e
