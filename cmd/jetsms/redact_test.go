package main

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

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
		"--sandbox.dlr_mix", "received=1", "--sandbox.dlr_delay", "10ms")
	url := b.natsURL(t)
	res := runJetsms(t, "send", "--to", "+"+number, "--text", content, "--id", "secret-1", "--wait", "--timeout", "20s", "--nats.url", url)
	require.Equal(t, 0, res.code, res.stderr)
	// A job the worker refuses, whose error names the number.
	require.NoError(t, publishRaw(url, "sms.send.default", `{"id":"secret-2","destination":"`+local+`","content":"`+content+`"}`))
	waitFinalEvent(t, url, "secret-2")

	require.NoError(t, b.proc.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, b.proc.wait(t, exitTimeout))
	logs := strings.Join(b.proc.output(), "\n")
	require.Contains(t, logs, `"job_id":"secret-2"`, "jobs are named by id")
	for _, s := range []string{password, content, number, local} {
		require.NotContains(t, logs, s)
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
