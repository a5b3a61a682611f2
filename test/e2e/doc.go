// Package e2e tests jetsms end to end — receipts, inbound replies, campaigns and the job ledger — with the process internal/app builds, as cmd/jetsms runs it.
package e2e
