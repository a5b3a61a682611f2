package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestMetrics(t *testing.T) {
	t.Parallel()

	t.Run("ScrapeShowsExactlyWhatWasRecorded", func(t *testing.T) {
		t.Parallel()
		m := New()
		m.SetBuildInfo("0.9.0")
		m.SetBuildInfo("1.2.3") // replaces the first
		m.InitLanes("priority")
		m.JobDone("priority", JobAccepted)
		m.JobDone("priority", JobAccepted)
		m.JobDone("bulk", JobFailed)
		m.ObserveGateway(GatewayAccepted, 20*time.Millisecond)
		m.ObserveGateway(GatewayUnknown, 10*time.Second)
		m.ObserveRateLimitWait(250 * time.Millisecond)
		m.SetRate(40)
		m.SetRateCeiling(50)
		m.SetReplicas(2)
		m.RateChanged("slowed")
		m.RateChanged("slowed")
		m.SubmissionStarted()
		m.SubmissionStarted()
		m.SubmissionStarted()
		m.SubmissionDone()
		m.SetConcurrencyLimit(64)
		m.ObserveClaim(3 * time.Millisecond)
		m.Callback(CallbackDLR, CallbackStored)
		m.Callback(CallbackDLR, CallbackStored)
		m.Callback(CallbackMO, CallbackUnauthorized)
		m.Receipt(ReceiptPublished)
		m.Receipt(ReceiptUnmatched)
		m.ObserveReceiptLag(1500 * time.Millisecond)
		m.PublishFailed(PublishDeadLetter)
		m.LedgerLookupMissed()
		m.LedgerLookupMissed()
		m.SetCircuitOpen(true)
		m.SetCircuitOpen(true) // already open: not a second opening
		m.SetCircuitOpen(false)
		m.SetCircuitOpen(true)
		m.Reconciled(ReconciledExpired)

		want := map[string]float64{
			`jetsms_build_info{version="1.2.3"}`:                                     1,
			`jetsms_ratelimit_wait_seconds_count`:                                    1,
			`jetsms_ratelimit_wait_seconds_sum`:                                      0.25,
			`jetsms_ledger_claim_duration_seconds_count`:                             1,
			`jetsms_ledger_claim_duration_seconds_sum`:                               0.003,
			`jetsms_rate_per_second`:                                                 40,
			`jetsms_rate_ceiling_per_second`:                                         50,
			`jetsms_replicas`:                                                        2,
			`jetsms_inflight_submissions`:                                            2,
			`jetsms_concurrency_limit`:                                               64,
			`jetsms_receipt_lag_seconds_count`:                                       1,
			`jetsms_receipt_lag_seconds_sum`:                                         1.5,
			`jetsms_ledger_lookup_misses_total`:                                      2,
			`jetsms_circuit_open`:                                                    1,
			`jetsms_circuit_opens_total`:                                             2,
			`jetsms_gateway_request_duration_seconds_count{outcome="accepted"}`:      1,
			`jetsms_gateway_request_duration_seconds_sum{outcome="accepted"}`:        0.02,
			`jetsms_gateway_request_duration_seconds_count{outcome="unknown"}`:       1,
			`jetsms_gateway_request_duration_seconds_sum{outcome="unknown"}`:         10,
			`jetsms_gateway_request_duration_seconds_count{outcome="rejected"}`:      0,
			`jetsms_gateway_request_duration_seconds_sum{outcome="rejected"}`:        0,
			`jetsms_gateway_request_duration_seconds_count{outcome="retryable"}`:     0,
			`jetsms_gateway_request_duration_seconds_sum{outcome="retryable"}`:       0,
			`jetsms_gateway_request_duration_seconds_count{outcome="unauthorized"}`:  0,
			`jetsms_gateway_request_duration_seconds_sum{outcome="unauthorized"}`:    0,
			`jetsms_gateway_request_duration_seconds_count{outcome="misconfigured"}`: 0,
			`jetsms_gateway_request_duration_seconds_sum{outcome="misconfigured"}`:   0,
		}
		// Series with a fixed set of labels start at zero.
		for _, o := range []string{"accepted", "failed", "expired", "suppressed", "cancelled", "retrying", "released", "duplicate_skipped"} {
			want[`jetsms_jobs_total{lane="priority",outcome="`+o+`"}`] = 0
			want[`jetsms_jobs_total{lane="unknown",outcome="`+o+`"}`] = 0
		}
		want[`jetsms_jobs_total{lane="priority",outcome="accepted"}`] = 2
		// bulk was not named by InitLanes: it counts as unknown.
		want[`jetsms_jobs_total{lane="unknown",outcome="failed"}`] = 1
		for _, r := range []string{"slowed", "recovered", "ceiling", "suspended", "resumed"} {
			want[`jetsms_rate_changes_total{reason="`+r+`"}`] = 0
		}
		want[`jetsms_rate_changes_total{reason="slowed"}`] = 2
		for _, k := range []string{"dlr", "mo"} {
			for _, r := range []string{"stored", "duplicate", "invalid", "unauthorized", "too_large", "unavailable", "forbidden"} {
				want[`jetsms_callbacks_total{kind="`+k+`",result="`+r+`"}`] = 0
			}
		}
		want[`jetsms_callbacks_total{kind="dlr",result="stored"}`] = 2
		want[`jetsms_callbacks_total{kind="mo",result="unauthorized"}`] = 1
		for _, r := range []string{"published", "unchanged", "retried", "unmatched"} {
			want[`jetsms_receipts_total{result="`+r+`"}`] = 0
		}
		want[`jetsms_receipts_total{result="published"}`] = 1
		want[`jetsms_receipts_total{result="unmatched"}`] = 1
		for _, k := range []string{"status", "dead_letter", "inbound"} {
			want[`jetsms_event_publish_failures_total{kind="`+k+`"}`] = 0
		}
		want[`jetsms_event_publish_failures_total{kind="dead_letter"}`] = 1
		for _, r := range []string{"final", "reported", "expired"} {
			want[`jetsms_reconciled_total{result="`+r+`"}`] = 0
		}
		want[`jetsms_reconciled_total{result="expired"}`] = 1

		families := scrape(t, m.Handler())
		require.Equal(t, want, samples(families, "jetsms_", false))

		buckets := samples(families, "jetsms_gateway_request_duration_seconds", true)
		require.Equal(t, 0.0, buckets[`jetsms_gateway_request_duration_seconds_bucket{outcome="accepted",le="0.01"}`])
		require.Equal(t, 1.0, buckets[`jetsms_gateway_request_duration_seconds_bucket{outcome="accepted",le="0.025"}`])
		require.Equal(t, 0.0, buckets[`jetsms_gateway_request_duration_seconds_bucket{outcome="unknown",le="5"}`])
		require.Equal(t, 1.0, buckets[`jetsms_gateway_request_duration_seconds_bucket{outcome="unknown",le="10"}`])
		require.Equal(t, 1.0, buckets[`jetsms_gateway_request_duration_seconds_bucket{outcome="unknown",le="30"}`])
	})

	t.Run("GatewayBucketsSpan5msTo30s", func(t *testing.T) {
		t.Parallel()
		families := scrape(t, New().Handler())
		h := families["jetsms_gateway_request_duration_seconds"].GetMetric()[0].GetHistogram()
		var bounds []float64
		for _, b := range h.GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		require.Equal(t, 0.005, bounds[0])
		// The text format adds +Inf after the last bucket.
		require.Equal(t, 30.0, bounds[len(bounds)-2])
	})

	t.Run("ServesRuntimeAndProcessSeries", func(t *testing.T) {
		t.Parallel()
		families := scrape(t, New().Handler())
		require.Contains(t, families, "go_goroutines")
		require.Contains(t, families, "process_cpu_seconds_total")
	})

	t.Run("ConcurrentUpdatesAddUp", func(t *testing.T) {
		t.Parallel()
		m := New()
		m.InitLanes("default")
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for range 100 {
					m.JobDone("default", JobAccepted)
					m.SubmissionStarted()
					m.SubmissionDone()
					m.SetCircuitOpen(i%2 == 0)
				}
			})
		}
		wg.Wait()
		m.SetCircuitOpen(false)
		got := samples(scrape(t, m.Handler()), "jetsms_", false)
		require.Equal(t, 800.0, got[`jetsms_jobs_total{lane="default",outcome="accepted"}`])
		require.Equal(t, 0.0, got[`jetsms_inflight_submissions`])
		require.Equal(t, 0.0, got[`jetsms_circuit_open`])
	})

	t.Run("UnknownLanesShareOneLabelValue", func(t *testing.T) {
		t.Parallel()
		m := New()
		m.InitLanes("priority", "bulk")
		for i := range 30 {
			m.JobDone(fmt.Sprintf("nosuch%d", i), JobFailed)
		}
		m.JobDone("_", JobFailed)
		m.JobDone("bulk", JobFailed)
		got := samples(scrape(t, m.Handler()), "jetsms_jobs_total", false)
		lanes := map[string]bool{}
		for series := range got {
			_, rest, _ := strings.Cut(series, `lane="`)
			lane, _, _ := strings.Cut(rest, `"`)
			lanes[lane] = true
		}
		require.Equal(t, map[string]bool{"priority": true, "bulk": true, "unknown": true}, lanes)
		require.Equal(t, 31.0, got[`jetsms_jobs_total{lane="unknown",outcome="failed"}`])
		require.Equal(t, 1.0, got[`jetsms_jobs_total{lane="bulk",outcome="failed"}`])
	})

	t.Run("NilMetricsDoNothing", func(t *testing.T) {
		t.Parallel()
		var m *Metrics
		require.NotPanics(t, func() {
			m.SetBuildInfo("x")
			m.InitLanes("a")
			m.JobDone("a", JobAccepted)
			m.ObserveGateway(GatewayAccepted, time.Second)
			m.ObserveRateLimitWait(time.Second)
			m.SetRate(1)
			m.SetRateCeiling(1)
			m.SetReplicas(1)
			m.RateChanged("slowed")
			m.SubmissionStarted()
			m.SubmissionDone()
			m.SetConcurrencyLimit(1)
			m.Callback(CallbackDLR, CallbackStored)
			m.Receipt(ReceiptPublished)
			m.ObserveReceiptLag(time.Second)
			m.PublishFailed(PublishStatus)
			m.LedgerLookupMissed()
			m.SetCircuitOpen(true)
			m.Reconciled(ReconciledFinal)
			require.NoError(t, m.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "x_total", Help: "x"})))
		})
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		require.Equal(t, http.StatusNotFound, rec.Code)
	})

	t.Run("RegisterRefusesAClash", func(t *testing.T) {
		t.Parallel()
		m := New()
		err := m.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "jetsms_ledger_lookup_misses_total", Help: "again"}))
		require.ErrorContains(t, err, "metrics: register")
	})
}

// scrape GETs handler's series over HTTP and parses the text format.
func scrape(t *testing.T, handler http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/metrics", nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, expfmt.TypeTextPlain, expfmt.ResponseFormat(resp.Header).FormatType())
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err)
	return families
}

// samples flattens the families whose names start with prefix into
// `name{label="value",...}` → value. Histograms give _count and _sum, and their
// _bucket series (with an le label) when withBuckets is set.
func samples(families map[string]*dto.MetricFamily, prefix string, withBuckets bool) map[string]float64 {
	out := map[string]float64{}
	for name, f := range families {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := func(suffix string, extra ...string) string {
				all := slices.Concat(labels, extra)
				if len(all) == 0 {
					return name + suffix
				}
				return name + suffix + "{" + strings.Join(all, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[key("_count")] = float64(h.GetSampleCount())
				out[key("_sum")] = h.GetSampleSum()
				if withBuckets {
					for _, b := range h.GetBucket() {
						le := strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64)
						out[key("_bucket", `le="`+le+`"`)] = float64(b.GetCumulativeCount())
					}
				}
			}
		}
	}
	return out
}
