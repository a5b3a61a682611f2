// Package bench measures the send pipeline against the ceilings of the machine it
// runs on: the raw JetStream consume-and-ack rate and the raw rate of HTTP POSTs to
// the gateway simulator, measured in the same run. Run it with `make bench`.
package bench
