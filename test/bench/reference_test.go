package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/worker"
)

// referenceStream is the reference loop's own stream, made like the jobs
// stream: a work queue on file storage.
const referenceStream = "BENCH_REFERENCE"

// reference measures the plain loop the send guard is weighed against: a
// JetStream consumer whose jobs are POSTed to the gateway and acked when it
// accepts them, nothing else (no ledger, no events, no pacing). It takes the
// worker's consumer settings (ack wait, max deliver, max ack pending) and the
// dispatcher's HTTP transport settings (a pool of 64 kept-alive connections,
// 10 s timeout), with `concurrency` POSTs in flight and as many jobs buffered
// as a worker's lane queue holds (2 × concurrency).
func reference(tb testing.TB, s *server, gw *gateway, n int, name string) result {
	tb.Helper()
	ctx := context.Background()
	info, err := s.js.Stream(ctx, s.names.JobsStream())
	if err != nil {
		tb.Fatal(err)
	}
	scfg := info.CachedInfo().Config
	scfg.Name, scfg.Subjects, scfg.Description = referenceStream, []string{"reference.>"}, "jetsms benchmark: the reference loop"
	stream, err := s.js.CreateStream(ctx, scfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = s.js.DeleteStream(ctx, referenceStream) }()
	s.publishJobs(tb, "reference.bulk", n)

	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        dispatcher.MaxConnsDefault,
		MaxIdleConnsPerHost: dispatcher.MaxConnsDefault,
		MaxConnsPerHost:     dispatcher.MaxConnsDefault,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: dispatcher.TimeoutDefault}
	url := gw.url + "/messages"

	before := gw.accepted(tb)
	u := measure(tb, s, gw, name)
	const maxAttempts = worker.MaxAttemptsDefault
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       "reference",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       worker.AckWaitDefault,
		MaxDeliver:    max(100, 10*maxAttempts),
		MaxAckPending: max(1000, 4*(concurrency+2*concurrency)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	jobs := make(chan jetstream.Msg)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for {
				select {
				case m := <-jobs:
					post(client, url, m)
				case <-stop:
					return
				}
			}
		})
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case jobs <- m:
		case <-stop:
		}
	}, jetstream.PullMaxMessages(2*concurrency))
	if err != nil {
		tb.Fatal(err)
	}
	waitEmpty(tb, stream)
	r := u.done(tb, n)
	close(stop)
	cc.Stop()
	wg.Wait()
	if got := gw.accepted(tb) - before; got != int64(n) {
		tb.Fatalf("reference loop: gateway accepted %d messages for %d jobs", got, n)
	}
	return r
}

// post sends one job as a REST v2 message and acks it when the gateway accepts
// it; anything else is released for another try.
func post(client *http.Client, url string, m jetstream.Msg) {
	var j struct {
		Destination string `json:"destination"`
		Content     string `json:"content"`
	}
	if err := json.Unmarshal(m.Data(), &j); err != nil {
		_ = m.Term()
		return
	}
	body, _ := json.Marshal(struct {
		Destination string `json:"destination"`
		Content     string `json:"content"`
		Reference   string `json:"reference"`
	}{j.Destination, j.Content, m.Headers().Get(jetstream.MsgIDHeader)})
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		_ = m.Nak()
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		_ = m.Nak()
		return
	}
	_ = m.Ack()
}
