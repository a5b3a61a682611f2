// Package metrics holds jetsms's Prometheus series and serves them on /metrics.
package metrics

import (
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Histogram buckets, in seconds.
var (
	// gatewayBuckets spans one gateway request: 5 ms to the 30 s a slow gateway
	// or a long gateway.timeout may take.
	gatewayBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// rateWaitBuckets spans a wait for a rate token: nothing, a fraction of one
	// token's interval, up to a pause after the gateway pushed back.
	rateWaitBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// claimBuckets spans the send guard's claim, one ledger write: well under a
	// millisecond on an idle server, up to the seconds of a struggling one.
	claimBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
	// receiptLagBuckets spans receipt received → event stored, including receipts
	// retried until their job is in the ledger (callbacks.resolve_within, 2 min).
	receiptLagBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
)

// Metrics are the series of one jetsms process, in a registry of their own with
// the Go runtime and process collectors. Build it with New; every method is safe
// for concurrent use, and safe on a nil *Metrics, where it does nothing, so a
// component may leave its metrics unset in tests.
//
// Series with a fixed set of label values start at zero for every value, so a
// rate() sees the first increment; lane series start at zero once InitLanes names
// the lanes.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	jobs          *prometheus.CounterVec
	gateway       *prometheus.HistogramVec
	rateWait      prometheus.Histogram
	claim         prometheus.Histogram
	rate          prometheus.Gauge
	rateCeiling   prometheus.Gauge
	replicas      prometheus.Gauge
	rateChanges   *prometheus.CounterVec
	inflight      prometheus.Gauge
	concurrency   prometheus.Gauge
	callbacks     *prometheus.CounterVec
	receipts      *prometheus.CounterVec
	receiptLag    prometheus.Histogram
	publishFailed *prometheus.CounterVec
	ledgerMisses  prometheus.Counter
	circuitOpen   prometheus.Gauge
	circuitOpens  prometheus.Counter
	circuitMu     sync.Mutex // orders SetCircuitOpen calls
	circuitIsOpen bool
	reconciled    *prometheus.CounterVec
	buildInfo     *prometheus.GaugeVec

	// lanes are the lane label values InitLanes named; any other lane is
	// counted as LaneUnknown, so that what producers publish cannot add series.
	lanesMu sync.RWMutex
	lanes   map[string]bool
}

// LaneUnknown is the lane label of jobs on a lane that is not configured (or on
// a subject with no valid lane).
const LaneUnknown = "unknown"

// New returns the series, registered in a new registry with the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetsms_jobs_total",
			Help: "Jobs handled by this worker, by lane and how their handling ended.",
		}, []string{"lane", "outcome"}),
		gateway: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "jetsms_gateway_request_duration_seconds",
			Help:    "Duration of gateway submissions, by outcome.",
			Buckets: gatewayBuckets,
		}, []string{"outcome"}),
		rateWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jetsms_ratelimit_wait_seconds",
			Help:    "Time a submission waited for a rate token.",
			Buckets: rateWaitBuckets,
		}),
		claim: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jetsms_ledger_claim_duration_seconds",
			Help:    "Duration of the send guard's claim: the ledger write each submission waits for before its request leaves, inside its submission slot.",
			Buckets: claimBuckets,
		}),
		rate: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetsms_rate_per_second",
			Help: "Current adaptive submission rate of this replica.",
		}),
		rateCeiling: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetsms_rate_ceiling_per_second",
			Help: "Most submissions per second this replica may make: its share of the account rate.",
		}),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetsms_replicas",
			Help: "Replicas sharing the account rate, as this replica sees them.",
		}),
		rateChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetsms_rate_changes_total",
			Help: "Changes of the adaptive rate, by reason.",
		}, []string{"reason"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetsms_inflight_submissions",
			Help: "Gateway submissions in flight.",
		}),
		concurrency: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetsms_concurrency_limit",
			Help: "Most jobs this worker holds at once (worker.concurrency).",
		}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetsms_callbacks_total",
			Help: "Gateway callbacks received, by kind and how they were answered.",
		}, []string{"kind", "result"}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetsms_receipts_total",
			Help: "Delivery receipts resolved, by result.",
		}, []string{"result"}),
		receiptLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "jetsms_receipt_lag_seconds",
			Help:    "Time from a delivery receipt's arrival to its status event being stored.",
			Buckets: receiptLagBuckets,
		}),
		publishFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetsms_event_publish_failures_total",
			Help: "Publishes to JetStream that failed, by what was published.",
		}, []string{"kind"}),
		ledgerMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetsms_ledger_lookup_misses_total",
			Help: "Ledger lookups that found no job.",
		}),
		circuitOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "jetsms_circuit_open",
			Help: "1 while the gateway refuses our credentials and submissions are held, else 0.",
		}),
		circuitOpens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetsms_circuit_opens_total",
			Help: "Times the circuit opened because the gateway refused our credentials.",
		}),
		reconciled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetsms_reconciled_total",
			Help: "Jobs with no final receipt looked up at the gateway, by result.",
		}, []string{"result"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "jetsms_build_info",
			Help: "Always 1; its version label is the running jetsms version.",
		}, []string{"version"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.jobs, m.gateway, m.rateWait, m.claim, m.rate, m.rateCeiling, m.replicas, m.rateChanges,
		m.inflight, m.concurrency, m.callbacks, m.receipts, m.receiptLag, m.publishFailed,
		m.ledgerMisses, m.circuitOpen, m.circuitOpens, m.reconciled, m.buildInfo,
	)
	for _, o := range gatewayOutcomes {
		m.gateway.WithLabelValues(string(o))
	}
	for _, r := range rateChangeReasons {
		m.rateChanges.WithLabelValues(r)
	}
	for _, k := range callbackKinds {
		for _, r := range callbackResults {
			m.callbacks.WithLabelValues(string(k), string(r))
		}
	}
	for _, r := range receiptResults {
		m.receipts.WithLabelValues(string(r))
	}
	for _, k := range publishKinds {
		m.publishFailed.WithLabelValues(string(k))
	}
	for _, r := range reconcileResults {
		m.reconciled.WithLabelValues(string(r))
	}
	// A collector that fails (the backlog, while NATS is away) leaves its series
	// out of the scrape rather than failing the whole scrape.
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	})
	return m
}

// Handler serves the series in the Prometheus text format (or OpenMetrics when
// asked), for GET /metrics.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return m.handler
}

// Register adds a collector, such as a BacklogCollector, to the registry. It
// returns the registry's error when c's series clash with registered ones.
func (m *Metrics) Register(c prometheus.Collector) error {
	if m == nil {
		return nil
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: register: %w", err)
	}
	return nil
}

// SetBuildInfo sets jetsms_build_info{version} to 1, replacing an earlier version.
func (m *Metrics) SetBuildInfo(version string) {
	if m == nil {
		return
	}
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version).Set(1)
}

// InitLanes starts jetsms_jobs_total at zero for every outcome of each lane.
func (m *Metrics) InitLanes(lanes ...string) {
	if m == nil {
		return
	}
	m.lanesMu.Lock()
	if m.lanes == nil {
		m.lanes = make(map[string]bool, len(lanes))
	}
	for _, l := range lanes {
		m.lanes[l] = true
	}
	m.lanesMu.Unlock()
	for _, l := range append(lanes, LaneUnknown) {
		for _, o := range jobOutcomes {
			m.jobs.WithLabelValues(l, string(o))
		}
	}
}

// JobDone counts one job of lane whose handling ended in o. A lane InitLanes did
// not name counts as LaneUnknown.
func (m *Metrics) JobDone(lane string, o JobOutcome) {
	if m == nil {
		return
	}
	m.lanesMu.RLock()
	known := m.lanes[lane]
	m.lanesMu.RUnlock()
	if !known {
		lane = LaneUnknown
	}
	m.jobs.WithLabelValues(lane, string(o)).Inc()
}

// ObserveGateway records one gateway request that took d and ended in o.
func (m *Metrics) ObserveGateway(o GatewayOutcome, d time.Duration) {
	if m == nil {
		return
	}
	m.gateway.WithLabelValues(string(o)).Observe(d.Seconds())
}

// ObserveClaim records a claim of the send guard that took d.
func (m *Metrics) ObserveClaim(d time.Duration) {
	if m == nil {
		return
	}
	m.claim.Observe(d.Seconds())
}

// ObserveRateLimitWait records a wait of d for a rate token.
func (m *Metrics) ObserveRateLimitWait(d time.Duration) {
	if m == nil {
		return
	}
	m.rateWait.Observe(d.Seconds())
}

// SetRate sets the current adaptive rate of this replica, per second.
func (m *Metrics) SetRate(perSecond float64) {
	if m == nil {
		return
	}
	m.rate.Set(perSecond)
}

// SetRateCeiling sets the rate this replica may climb back to, per second.
func (m *Metrics) SetRateCeiling(perSecond float64) {
	if m == nil {
		return
	}
	m.rateCeiling.Set(perSecond)
}

// SetReplicas sets how many replicas share the account rate.
func (m *Metrics) SetReplicas(n int) {
	if m == nil {
		return
	}
	m.replicas.Set(float64(n))
}

// RateChanged counts one change of the adaptive rate; reason is a
// ratelimit.ChangeReason such as "slowed".
func (m *Metrics) RateChanged(reason string) {
	if m == nil {
		return
	}
	m.rateChanges.WithLabelValues(reason).Inc()
}

// SubmissionStarted counts a gateway submission in flight until SubmissionDone.
func (m *Metrics) SubmissionStarted() {
	if m == nil {
		return
	}
	m.inflight.Inc()
}

// SubmissionDone ends a submission counted by SubmissionStarted.
func (m *Metrics) SubmissionDone() {
	if m == nil {
		return
	}
	m.inflight.Dec()
}

// SetConcurrencyLimit sets the most jobs this worker holds at once.
func (m *Metrics) SetConcurrencyLimit(n int) {
	if m == nil {
		return
	}
	m.concurrency.Set(float64(n))
}

// Callback counts one gateway callback of kind answered with r.
func (m *Metrics) Callback(kind CallbackKind, r CallbackResult) {
	if m == nil {
		return
	}
	m.callbacks.WithLabelValues(string(kind), string(r)).Inc()
}

// Receipt counts one delivery receipt the resolver handled with r.
func (m *Metrics) Receipt(r ReceiptResult) {
	if m == nil {
		return
	}
	m.receipts.WithLabelValues(string(r)).Inc()
}

// ObserveReceiptLag records the time from a receipt's arrival to its event being
// stored.
func (m *Metrics) ObserveReceiptLag(d time.Duration) {
	if m == nil {
		return
	}
	m.receiptLag.Observe(d.Seconds())
}

// PublishFailed counts one publish of kind that JetStream did not store.
func (m *Metrics) PublishFailed(kind PublishKind) {
	if m == nil {
		return
	}
	m.publishFailed.WithLabelValues(string(kind)).Inc()
}

// LedgerLookupMissed counts one ledger lookup that found no job.
func (m *Metrics) LedgerLookupMissed() {
	if m == nil {
		return
	}
	m.ledgerMisses.Inc()
}

// SetCircuitOpen sets jetsms_circuit_open, and counts an opening each time it
// goes from closed to open; setting the same state again counts nothing.
func (m *Metrics) SetCircuitOpen(open bool) {
	if m == nil {
		return
	}
	m.circuitMu.Lock()
	defer m.circuitMu.Unlock()
	if m.circuitIsOpen == open {
		return
	}
	m.circuitIsOpen = open
	if open {
		m.circuitOpen.Set(1)
		m.circuitOpens.Inc()
		return
	}
	m.circuitOpen.Set(0)
}

// Reconciled counts one job looked up at the gateway for want of a final receipt.
func (m *Metrics) Reconciled(r ReconcileResult) {
	if m == nil {
		return
	}
	m.reconciled.WithLabelValues(string(r)).Inc()
}
