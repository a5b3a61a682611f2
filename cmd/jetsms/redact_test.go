package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/job"
)

// TestLogsHoldNoSecretsAndNoMessages runs a whole lifecycle at debug level and
// reads every log line: no password, no message text and no destination number
// appear while redaction is on (the default).
func TestLogsHoldNoSecretsAndNoMessages(t *testing.T) {
	t.Parallel()
	const (
		password = "pw-9f8e7d6c"
		content  = "TOPSECRET-CONTENT-4242"
		number   = "64219998877"
		local    = "0219998877"
	)
	b := setupRun(t, "--log.level", "debug", "--gateway.username", "app", "--gateway.password", password,
		"--callbacks.username", "gw", "--callbacks.password", password,
		"--sandbox.dlr_mix", "received=1", "--sandbox.dlr_delay", "10ms",
		// One message per number and hour: the per-destination guard acts.
		"--rate.destination_max", "1")
	url := b.natsURL(t)
	res := runJetsms(t, "send", "--to", "+"+number, "--text", content, "--id", "secret-1", "--wait", "--timeout", "20s", "--nats.url", url)
	require.Equal(t, 0, res.code, res.stderr)
	// A job the worker refuses, whose error names the number.
	require.NoError(t, publishRaw(url, "sms.send.default", `{"id":"secret-2","destination":"`+local+`","content":"`+content+`"}`))
	waitFinalEvent(t, url, "secret-2")

	// The opt-out path: the handset replies STOP (through the simulator, as the
	// gateway would), and a bulk job to it ends suppressed.
	sim := b.proc.waitLog(t, 0, "gateway: built-in simulator, no SMS leaves this machine; set gateway.url, gateway.username and gateway.password to send for real").str("url")
	req, err := http.NewRequest(http.MethodPost, sim+"/sim/mo",
		strings.NewReader(`{"source":"+`+number+`","destination":"2021","content":"STOP"}`))
	require.NoError(t, err)
	req.SetBasicAuth("app", password)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	waitInbound(t, url)
	require.NoError(t, publishRaw(url, "sms.send.bulk", `{"id":"secret-3","destination":"+`+number+`","content":"`+content+`"}`))
	require.Equal(t, job.StatusSuppressed, waitFinalEvent(t, url, "secret-3").Status)
	// The per-destination guard: the number had its one message this hour.
	require.NoError(t, publishRaw(url, "sms.send.priority", `{"id":"secret-4","destination":"+`+number+`","content":"`+content+`"}`))
	require.Equal(t, "destination_limit", waitEvent(t, url, "secret-4", func(ev job.Event) bool { return ev.Status == job.StatusRetrying }).Error)

	// A second process whose NATS URL holds a password with '#', '/' and '?', on a
	// server of its own that takes any credentials.
	host := strings.TrimPrefix(brokertest.Run(t).URL, "nats://")
	const natsPassword = "n#a/t?s@pw-5e4d"
	recv := startJetsms(t, nil, "receiver", "--nats.url", "nats://jetsms:"+netURLEscape(natsPassword)+"@"+host,
		"--log.level", "debug", "--gateway.username", "app", "--gateway.password", password,
		"--callbacks.username", "gw", "--callbacks.password", password, "--callbacks.listen", "127.0.0.1:0")
	recv.waitLog(t, startTimeout, "jetsms running")
	require.NoError(t, recv.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, recv.wait(t, exitTimeout))

	require.NoError(t, b.proc.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, b.proc.wait(t, exitTimeout))
	logs := strings.Join(b.proc.output(), "\n")
	require.Contains(t, logs, `"job_id":"secret-2"`, "jobs are named by id")
	require.Contains(t, logs, "number opted out", "the opt-out path ran")
	recvLogs := strings.Join(recv.output(), "\n")
	require.Contains(t, recvLogs, "jetsms:***@", "the URL is shown, its password hidden")
	for _, s := range []string{password, content, number, local, natsPassword, netURLEscape(natsPassword), "n#a", "t?s"} {
		require.NotContains(t, logs, s)
		require.NotContains(t, recvLogs, s)
	}
}

// netURLEscape is s as a URL's password: what an operator writes in nats.url.
func netURLEscape(s string) string { return url.UserPassword("u", s).String()[2:] }

// waitInbound waits for the first inbound message.
func waitInbound(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "SMS_INBOUND", jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	_, err = cons.Next(jetstream.FetchContext(ctx))
	require.NoError(t, err, "no inbound message")
}

// waitEvent follows the status stream from its start until jobID has an event
// that cond accepts.
func waitEvent(t *testing.T, url, jobID string, cond func(job.Event) bool) job.Event {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "SMS_STATUS", jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	for {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		require.NoError(t, err, "no such event of %s", jobID)
		var ev job.Event
		if json.Unmarshal(m.Data(), &ev) == nil && ev.JobID == jobID && cond(ev) {
			return ev
		}
	}
}

// publishRaw stores one job as a producer would.
func publishRaw(url, subject, body string) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = js.Publish(context.Background(), subject, []byte(body))
	return err
}

// waitFinalEvent follows the status stream from its start until jobID has a
// final event.
func waitFinalEvent(t *testing.T, url, jobID string) job.Event {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "SMS_STATUS", jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	for {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		require.NoError(t, err, "no final event of %s", jobID)
		var ev job.Event
		if json.Unmarshal(m.Data(), &ev) == nil && ev.JobID == jobID && ev.Final {
			return ev
		}
	}
}
