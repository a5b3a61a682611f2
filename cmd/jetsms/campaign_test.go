package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/campaign"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/job"
)

// exampleFile is the README's example: five rows, one with a local number.
const exampleFile = "../../examples/recipients.csv"

func sendExample(t *testing.T, env *brokertest.Env, extra ...string) result {
	t.Helper()
	args := append([]string{"campaign", "send", "--name", "spring", "--file", exampleFile,
		"--template", "Kia ora {{.name}}, our spring sale starts today!", "--nats.url", env.URL}, extra...)
	return runJetsms(t, args...)
}

func TestCampaign(t *testing.T) {
	t.Parallel()

	t.Run("SendsTheExampleFileOnce", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		res := sendExample(t, env)
		require.Equal(t, 0, res.code, res.stderr)
		require.Contains(t, res.stdout, "campaign spring: 4 jobs published to sms.send.bulk.spring (5 rows, 1 bad row)")
		require.Contains(t, res.stderr, `line 5: destination: "021234504" is a local number; use international format`)
		require.Equal(t, uint64(4), jobsStored(t, env))

		res = sendExample(t, env)
		require.Equal(t, 0, res.code, res.stderr)
		require.Contains(t, res.stdout, "campaign spring was published in full before (4 jobs); nothing published")
		require.Equal(t, uint64(4), jobsStored(t, env), "a second run publishes nothing")
	})

	t.Run("DryRunCountsAndPricesAndSendsNothing", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		res := sendExample(t, env, "--dry-run", "--campaign.price_per_segment", "0.05")
		require.Equal(t, 0, res.code, res.stderr)
		for _, want := range []string{
			"campaign spring (dry run: nothing published)",
			"rows            5",
			"jobs            4",
			"bad rows        1",
			"segments        4 (GSM-7: 3 jobs, 3 segments; UCS-2: 1 job, 1 segment)",
			"suppressed      0 jobs, 0 segments",
			"estimated cost  4 segments × 0.05 = 0.20",
		} {
			require.Contains(t, res.stdout, want)
		}
		require.Contains(t, res.stderr, "line 5: destination:")
		require.Zero(t, jobsStored(t, env))

		res = sendExample(t, env, "--dry-run", "--lane", "default")
		require.Equal(t, 0, res.code, res.stderr)
		require.Contains(t, res.stdout, "not counted: lane default is not a marketing lane")
		require.Contains(t, res.stdout, "set campaign.price_per_segment")
	})

	t.Run("StatusListPauseResumeCancel", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		res := sendExample(t, env, "--campaign.price_per_segment", "0.05")
		require.Equal(t, 0, res.code, res.stderr)
		require.Contains(t, res.stdout, "estimated cost 0.20 (4 segments × 0.05; opted-out numbers not looked up)")
		nats := []string{"--nats.url", env.URL}

		res = runJetsms(t, append([]string{"campaign", "status", "spring"}, nats...)...)
		require.Equal(t, 0, res.code, res.stderr)
		require.Regexp(t, `estimated cost +4 segments × 0\.05 = 0\.20 \(opted-out numbers not looked up\)`, res.stdout)
		require.Regexp(t, `state +running`, res.stdout)
		require.Regexp(t, `rows +5 \(4 jobs, 1 bad row\)`, res.stdout)
		require.Regexp(t, `final +0 of 4`, res.stdout)
		require.Contains(t, res.stdout, `  line 5: destination: "021234504" is a local number`)

		res = runJetsms(t, append([]string{"campaign", "list"}, nats...)...)
		require.Equal(t, 0, res.code, res.stderr)
		require.Regexp(t, `(?m)^spring +running +bulk +4 +0 +0 +1 `, res.stdout)

		res = runJetsms(t, append([]string{"campaign", "pause", "spring"}, nats...)...)
		require.Equal(t, 0, res.code, res.stderr)
		require.Contains(t, res.stdout, "campaign spring paused")
		res = runJetsms(t, append([]string{"campaign", "status", "spring"}, nats...)...)
		require.Regexp(t, `state +paused`, res.stdout)

		res = runJetsms(t, append([]string{"campaign", "resume", "spring"}, nats...)...)
		require.Equal(t, 0, res.code, res.stderr)
		require.Contains(t, res.stdout, "campaign spring is running")

		res = runJetsms(t, append([]string{"campaign", "cancel", "spring"}, nats...)...)
		require.Equal(t, 0, res.code, res.stderr)
		require.Contains(t, res.stdout, "campaign spring cancelled: its 4 unsent jobs end cancelled as workers take them")

		res = runJetsms(t, append([]string{"campaign", "resume", "spring"}, nats...)...)
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stderr, "resume campaign spring: it is cancelled")

		res = runJetsms(t, append([]string{"campaign", "status", "nobody"}, nats...)...)
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stderr, "campaign not found: nobody")
	})

	t.Run("StatusWatchFollowsUntilEveryJobHasEnded", func(t *testing.T) {
		t.Parallel()
		env := brokertest.Run(t)
		require.Equal(t, 0, sendExample(t, env).code)
		store, err := campaign.Open(t.Context(), env.JS, campaign.StoreConfig{Bucket: env.Names.CampaignBucket()})
		require.NoError(t, err)
		tr, err := campaign.NewTracker(campaign.TrackerConfig{Names: env.Names, Store: store, FlushInterval: 10 * time.Millisecond}, env.JS, nil)
		require.NoError(t, err)
		require.NoError(t, tr.Start(t.Context()))
		t.Cleanup(func() { require.NoError(t, tr.Stop(context.Background())) })

		watch := startJetsms(t, nil, "campaign", "status", "spring", "--watch", "--nats.url", env.URL)
		// The record is printed before the watch begins; the jobs end only after
		// it, so the watch follows them (it starts from the record's latest value).
		watch.waitStdout(t, 30*time.Second, "line 5: destination")
		require.NotContains(t, watch.stdout.String(), "state      done")
		pub := events.New(env.JS, env.Names)
		for _, row := range []int{1, 2, 3, 5} {
			ev := job.Event{JobID: campaign.JobID("spring", row), MessageID: "m", Status: job.StatusReceived, Final: true,
				Campaign: "spring", Lane: "bulk", At: time.Now()}
			require.NoError(t, pub.Status(t.Context(), ev))
		}
		require.Equal(t, 0, watch.wait(t, 30*time.Second), "status --watch returns once every job has ended")
		out := watch.stdout.String()
		require.Contains(t, out, "4 of 4 ended, 4 sent")
		require.Regexp(t, `state +done`, out)
		require.Regexp(t, `final +4 of 4: received 4`, out)
	})

	t.Run("RefusesBadUse", func(t *testing.T) {
		t.Parallel()
		res := runJetsms(t, "campaign")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, "Usage: jetsms campaign send")

		res = runJetsms(t, "campaign", "send", "--name", "spring")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, "--name, --file and --template are required")

		res = runJetsms(t, "campaign", "send", "--name", "spring", "--file", exampleFile, "--template", "Hi", "--lane", "nope")
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stderr, `--lane: "nope" is not a configured lane (lanes: priority, default, bulk)`)

		res = runJetsms(t, "campaign", "send", "--name", "a.b", "--file", exampleFile, "--template", "Hi")
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stderr, "--name: invalid campaign name")

		res = runJetsms(t, "campaign", "send", "--name", "spring", "--file", exampleFile, "--template", "Hi", "--schedule", "tomorrow")
		require.Equal(t, 1, res.code)
		require.Contains(t, res.stderr, `--schedule: "tomorrow" is not an RFC 3339 time`)

		res = runJetsms(t, "campaign", "pause")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, "a campaign name is required")

		res = runJetsms(t, "campaign", "frobnicate")
		require.Equal(t, 2, res.code)
		require.Contains(t, res.stderr, `unknown verb "frobnicate"`)
	})
}
