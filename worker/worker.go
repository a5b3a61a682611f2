package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/jetsms/jetsms/dispatcher"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/metrics"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/subjects"
	"github.com/jetsms/jetsms/job"
	"github.com/jetsms/jetsms/ratelimit"
)

// Defaults of Config.
const (
	ConcurrencyDefault = 64
	MaxAttemptsDefault = 10
	AckWaitDefault     = 30 * time.Second
	// QuickRetryBudget is how long a job may be retried in process before it is
	// released with a delayed nak instead.
	QuickRetryBudget = 5 * time.Second
	// QuickRetryMaxWait is the longest single wait spent in process.
	QuickRetryMaxWait = 2 * time.Second
	// NakDelayMin and NakDelayMax bound the delay of a released job, which doubles
	// with each release.
	NakDelayMin = 5 * time.Second
	NakDelayMax = 5 * time.Minute
	// StraySweepInterval is how often jobs on unknown lanes are looked for.
	StraySweepInterval = 10 * time.Second
	// finishTimeout bounds the steps that record a job's end (events, dead letter,
	// ack), which run even after a hard stop.
	finishTimeout = 10 * time.Second
	// RecordMax is the longest a worker tries to record an outcome while NATS does
	// not answer (one try, then retries for three times as long); a submit lease
	// must outlast a gateway request plus this.
	RecordMax = 4 * finishTimeout
	// SubmitLeaseDefault is how long a ledger entry in state submitting belongs to
	// the worker that set it; after that its submission's outcome counts as
	// unknown. It must exceed the gateway request timeout.
	SubmitLeaseDefault = 55 * time.Second
	// ConcurrencyMinDefault is the floor of the sized concurrency.
	ConcurrencyMinDefault = 4
	// ScheduleLeadMin is how far ahead a job's scheduled time must be, when it is
	// submitted, to be sent as a schedule. A nearer (or past) time is dropped and
	// the job sent now: by the time the request reaches the gateway the time
	// could be past, which the gateway refuses with 422.
	ScheduleLeadMin = 2 * time.Second
	// HoldForDefault is how long the hold policy waits for a receipt.
	HoldForDefault = 10 * time.Minute
	// fetchMaxWait is how long one fetch waits on an idle lane; Stop waits for it.
	fetchMaxWait = 2 * time.Second
)

// Sender submits one job to the gateway once; see dispatcher.RESTv2.Send.
type Sender interface {
	Send(ctx context.Context, j *job.Job) (dispatcher.Result, error)
}

// Limiter hands out the account's rate; see ratelimit.Limiter.
type Limiter interface {
	Wait(ctx context.Context, n int) error
}

// Config configures a Worker. Zero values take the defaults above.
type Config struct {
	Names subjects.Names
	// Lanes are the lane names, highest priority first. Required.
	Lanes []string
	// Concurrency is the number of submissions in flight at once.
	Concurrency int
	// MaxAttempts is how many times a job is submitted before it fails with
	// retries_exhausted.
	MaxAttempts int
	// MaxDeliver is how often JetStream delivers a job before it stops; the
	// worker then ends the job failed (retries_exhausted) from the server's
	// advisory. It bounds a job whose handling crashes every time. Default
	// max(100, 10×MaxAttempts).
	MaxDeliver int
	// AckWait is the consumers' ack deadline; held jobs are extended every third
	// of it.
	AckWait time.Duration
	// MaxSegments caps a job's content (job.MaxSegmentsDefault when zero).
	MaxSegments int
	// QueuePerLane is how many fetched jobs each lane may hold waiting for a slot;
	// default 2×Concurrency.
	QueuePerLane int
	// ReleaseDelayMin is the delay of a job's first release after transient
	// failures; it doubles with each delivery up to NakDelayMax. Default NakDelayMin.
	ReleaseDelayMin time.Duration
	// StraySweepInterval is how often jobs on unknown lanes are looked for;
	// default StraySweepInterval.
	StraySweepInterval time.Duration
	// LaneOptions are the lanes' policies by lane name; a lane not in it takes
	// the zero LaneOptions.
	LaneOptions map[string]LaneOptions
	// Ledger is the job ledger, the send guard. Required.
	Ledger *ledger.Ledger
	// OptOuts, when set, suppresses marketing lanes' jobs to opted-out numbers.
	OptOuts *optout.List
	// SubmitLease is how long this worker's submitting mark on a job holds off
	// other workers; it must exceed the gateway request timeout. Default
	// SubmitLeaseDefault.
	SubmitLease time.Duration
	// Owner names this worker in the ledger; default a new UUID.
	Owner string
	// CircuitFailures is how many submissions in a row must fail for the
	// gateway's sake to stop taking jobs; a 401 or 403 stops it at once. Default
	// CircuitFailuresDefault.
	CircuitFailures int
	// CircuitProbeMin and CircuitProbeMax bound the wait before a trial
	// submission while the circuit is open. Defaults CircuitProbeMinDefault and
	// CircuitProbeMaxDefault.
	CircuitProbeMin, CircuitProbeMax time.Duration
	// OnCircuit, when set, is called as the circuit opens (true) and closes.
	OnCircuit func(open bool)
	// Probe, when set, checks the gateway without sending an SMS (see
	// dispatcher.RESTv2.Probe): once in Start, before any job is taken, and
	// while the circuit is open, instead of a trial submission. When nil and the
	// Sender is a Prober, the Sender's Probe is used; otherwise a real job is
	// the trial.
	Probe func(ctx context.Context) error
	// RateInSegments makes a job take one rate token per SMS segment instead of
	// one per job (rate.unit: segments).
	RateInSegments bool
	// ConcurrencyMin is the floor of the submissions in flight when they are
	// sized from the gateway's latency and the current rate (Little's law);
	// Concurrency is the ceiling. Default ConcurrencyMinDefault.
	ConcurrencyMin int
	// Destination, when its Max is set, bounds the messages to one number per
	// window; excess jobs are delayed.
	Destination DestinationLimit
	// Metrics, when set, counts jobs, gateway requests and waits.
	Metrics *metrics.Metrics
	// Campaigns, when set, holds back the jobs of paused campaigns and ends those
	// of cancelled ones.
	Campaigns CampaignStates
	// Batcher, when set, sends the jobs of lanes whose options say Broadcast
	// (see dispatcher.Batcher).
	Batcher Sender
	// LogDetails lets log lines carry error texts, which may quote a job's
	// destination or content (log.redact: false). Off, logs name jobs by id only.
	LogDetails bool
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Worker consumes the jobs stream. Start it once; Stop it once or more.
type Worker struct {
	cfg   Config
	js    jetstream.JetStream
	send  Sender
	limit Limiter
	pub   *events.Publisher
	log   *zap.Logger

	lanes   []*lane
	laneSet map[string]bool
	shares  *ratelimit.LaneShares
	sizer   *sizer
	dest    *destGuard
	arrived chan struct{} // a lane queue went from empty to not empty
	slots   chan struct{} // one token per submission in flight
	tracker *tracker
	ledger  *ledger.Ledger
	circuit *circuit
	// strayCursor is where the sweep of each wildcard subject goes on from
	// (sweeper goroutine only).
	strayCursor map[string]uint64

	mu       sync.Mutex
	started  bool
	stopped  bool
	cancel   context.CancelFunc // stops fetching and scheduling
	hardStop context.CancelFunc // cancels submissions in flight
	hardCtx  context.Context    // ended by hardStop
	loops    sync.WaitGroup     // feeders, scheduler, tracker, sweeper
	inflight sync.WaitGroup     // job handlers
}

// lane is one lane's consumer and its queue of fetched jobs.
type lane struct {
	index int // in Config.Lanes: its priority and its place in the shares
	name  string
	cons  jetstream.Consumer
	queue chan *jobRun  // fetched and decoded (prepare), waiting for a slot
	room  chan struct{} // the scheduler took from queue
}

// New checks cfg and returns a worker that is not yet running.
func New(cfg Config, js jetstream.JetStream, send Sender, limit Limiter, pub *events.Publisher, log *zap.Logger) (*Worker, error) {
	if len(cfg.Lanes) == 0 {
		return nil, errors.New("worker: lanes: at least one lane is required")
	}
	if js == nil || send == nil || limit == nil || pub == nil || cfg.Ledger == nil {
		return nil, errors.New("worker: jetstream, sender, limiter, publisher and ledger are required")
	}
	for name, o := range cfg.LaneOptions {
		switch o.Ambiguous {
		case "", AmbiguousResend, AmbiguousFail, AmbiguousHold:
		default:
			return nil, fmt.Errorf("worker: lane %s: ambiguous policy %q must be resend, fail or hold", name, o.Ambiguous)
		}
		switch o.HoldThen {
		case "", AmbiguousResend, AmbiguousFail:
		default:
			return nil, fmt.Errorf("worker: lane %s: hold_then %q must be resend or fail", name, o.HoldThen)
		}
	}
	if cfg.SubmitLease == 0 {
		cfg.SubmitLease = SubmitLeaseDefault
	}
	if cfg.Owner == "" {
		cfg.Owner = uuid.NewString()
	}
	if cfg.Concurrency < 0 || cfg.MaxAttempts < 0 || cfg.AckWait < 0 || cfg.QueuePerLane < 0 || cfg.ReleaseDelayMin < 0 {
		return nil, errors.New("worker: concurrency, max_attempts, ack_wait and queue size must not be negative")
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = ConcurrencyDefault
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = MaxAttemptsDefault
	}
	if cfg.AckWait == 0 {
		cfg.AckWait = AckWaitDefault
	}
	if cfg.MaxDeliver <= 0 {
		cfg.MaxDeliver = max(100, 10*cfg.MaxAttempts)
	}
	if cfg.MaxSegments == 0 {
		cfg.MaxSegments = job.MaxSegmentsDefault
	}
	if cfg.QueuePerLane == 0 {
		cfg.QueuePerLane = 2 * cfg.Concurrency
	}
	if cfg.ReleaseDelayMin == 0 {
		cfg.ReleaseDelayMin = NakDelayMin
	}
	if cfg.StraySweepInterval == 0 {
		cfg.StraySweepInterval = StraySweepInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.CircuitFailures <= 0 {
		cfg.CircuitFailures = CircuitFailuresDefault
	}
	if cfg.CircuitProbeMin <= 0 {
		cfg.CircuitProbeMin = CircuitProbeMinDefault
	}
	if cfg.CircuitProbeMax <= 0 {
		cfg.CircuitProbeMax = CircuitProbeMaxDefault
	}
	if cfg.OnCircuit == nil {
		cfg.OnCircuit = func(bool) {}
	}
	w := &Worker{
		cfg: cfg, js: js, send: send, limit: limit, pub: pub, log: log.Named("worker"),
		laneSet:     make(map[string]bool, len(cfg.Lanes)),
		arrived:     make(chan struct{}, 1),
		slots:       make(chan struct{}, cfg.Concurrency),
		tracker:     newTracker(cfg.AckWait / 3),
		ledger:      cfg.Ledger,
		strayCursor: make(map[string]uint64),
		circuit: newCircuit(cfg.CircuitFailures, cfg.CircuitProbeMin, cfg.CircuitProbeMax, cfg.Now,
			log.Named("worker"), cfg.OnCircuit),
	}
	w.circuit.probe = cfg.Probe
	if p, ok := send.(Prober); ok && w.circuit.probe == nil {
		w.circuit.probe = p.Probe
	}
	for _, name := range cfg.Lanes {
		if err := subjects.ValidateToken(name); err != nil {
			return nil, fmt.Errorf("worker: lanes: %w", err)
		}
		if w.laneSet[name] {
			return nil, fmt.Errorf("worker: lanes: %q appears twice", name)
		}
		w.laneSet[name] = true
		w.lanes = append(w.lanes, &lane{
			index: len(w.lanes),
			name:  name,
			queue: make(chan *jobRun, cfg.QueuePerLane),
			room:  make(chan struct{}, 1),
		})
	}
	shares := make([]ratelimit.LaneShare, len(cfg.Lanes))
	for i, name := range cfg.Lanes {
		shares[i] = ratelimit.LaneShare{Name: name, MinShare: cfg.LaneOptions[name].MinShare}
	}
	var err error
	if w.shares, err = ratelimit.NewLaneShares(shares); err != nil {
		return nil, fmt.Errorf("worker: lane min shares: %w", err)
	}
	if cfg.ConcurrencyMin <= 0 {
		cfg.ConcurrencyMin = ConcurrencyMinDefault
	}
	w.cfg.ConcurrencyMin = min(cfg.ConcurrencyMin, cfg.Concurrency)
	w.sizer = newSizer(w.cfg.ConcurrencyMin, cfg.Concurrency, limit)
	w.sizer.onChange = cfg.Metrics.SetConcurrencyLimit
	cfg.Metrics.SetConcurrencyLimit(cfg.Concurrency)
	// Only the configured lanes are label values; jobs of any other count as
	// lane "unknown".
	cfg.Metrics.InitLanes(cfg.Lanes...)
	if cfg.Destination.Max > 0 {
		if cfg.Destination.Window <= 0 {
			return nil, errors.New("worker: destination limit: window must be > 0")
		}
		w.dest = newDestGuard(js, cfg.Names, cfg.Destination)
	}
	return w, nil
}

// Start creates or updates each lane's durable consumer and starts fetching and
// sending. It returns once the worker runs. ctx bounds the set-up only.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return errors.New("worker: already started")
	}
	for _, l := range w.lanes {
		cons, err := w.js.CreateOrUpdateConsumer(ctx, w.cfg.Names.JobsStream(), jetstream.ConsumerConfig{
			Durable:        w.cfg.Names.Consumer(l.name),
			Description:    "jetsms workers of lane " + l.name,
			FilterSubjects: w.cfg.Names.LaneFilters(l.name),
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        w.cfg.AckWait,
			// The worker counts attempts itself; MaxDeliver only stops a job whose
			// handling never finishes (see watchMaxDeliver).
			MaxDeliver:    w.cfg.MaxDeliver,
			MaxAckPending: maxAckPending(w.cfg),
		})
		if err != nil {
			return fmt.Errorf("worker: consumer for lane %s: %w", l.name, err)
		}
		l.cons = cons
	}
	// The gateway is checked before the first job is taken: a wrong URL, API
	// version or credentials open the circuit now, with the reason logged, and
	// no job is taken until a probe succeeds.
	w.circuit.check(ctx)
	runCtx, cancel := context.WithCancel(context.Background())
	hardCtx, hardStop := context.WithCancel(context.Background())
	w.cancel, w.hardStop, w.hardCtx = cancel, hardStop, hardCtx
	w.started = true

	for _, l := range w.lanes {
		w.loops.Go(func() { w.feed(runCtx, l) })
	}
	w.loops.Go(func() { w.schedule(runCtx, hardCtx) })
	w.loops.Go(func() { w.tracker.run(runCtx) })
	w.loops.Go(func() { w.sweepStrays(runCtx) })
	w.loops.Go(func() { w.watchMaxDeliver(runCtx) })
	w.loops.Go(func() { w.sizer.run(runCtx) })
	w.log.Info("worker started", zap.Strings("lanes", w.cfg.Lanes), zap.Int("concurrency", w.cfg.Concurrency))
	return nil
}

// maxAckPending lets every replica keep its queues and submissions full.
func maxAckPending(cfg Config) int {
	return max(1000, 4*(cfg.Concurrency+cfg.QueuePerLane))
}

// Stop stops the worker gracefully: it stops fetching, releases queued jobs at once
// so other workers can take them, and waits for submissions in flight until ctx
// ends. Then it cancels what is still in flight and waits for those jobs to be
// released or recorded. Stop is safe to call twice and without Start; it returns
// ctx's error when the grace period ran out.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	if !w.started || w.stopped {
		w.mu.Unlock()
		return nil
	}
	w.stopped = true
	w.mu.Unlock()

	w.cancel()
	w.loops.Wait() // feeders have finished their last fetch; nothing new arrives
	for _, l := range w.lanes {
		w.releaseQueued(l)
	}
	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("worker: grace period over, cancelling jobs in flight: %w", ctx.Err())
		w.hardStop()
		<-done
	}
	w.hardStop()
	w.log.Info("worker stopped")
	return err
}

// releaseQueued naks every job still queued, so it is redelivered at once.
func (w *Worker) releaseQueued(l *lane) {
	for {
		select {
		case r := <-l.queue:
			w.tracker.remove(r.msg)
			if err := r.msg.Nak(); err != nil {
				w.log.Warn("release queued job", zap.String("lane", l.name), zap.Error(err))
			}
		default:
			return
		}
	}
}

// feed fetches jobs of one lane whenever its queue has room for a batch.
func (w *Worker) feed(ctx context.Context, l *lane) {
	log := w.log.With(zap.String("lane", l.name))
	batchMin := max(1, cap(l.queue)/4)
	for ctx.Err() == nil {
		free := cap(l.queue) - len(l.queue)
		if free < batchMin {
			select {
			case <-l.room:
				continue
			case <-ctx.Done():
				return
			}
		}
		if err := w.fetchOnce(l, free); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("fetch jobs", zap.Error(err))
			wait(ctx, time.Second)
		}
	}
}

// fetchOnce asks for up to n jobs and queues those that come within fetchMaxWait.
// It is not cancelled by Stop: a cancelled fetch could leave jobs on their way to
// this worker unseen until their ack deadline.
func (w *Worker) fetchOnce(l *lane, n int) error {
	batch, err := l.cons.Fetch(n, jetstream.FetchMaxWait(fetchMaxWait))
	if err != nil {
		return err
	}
	for m := range batch.Messages() {
		w.tracker.add(m)
		r := w.prepare(l, m)
		if w.campaignBlocked(m) || w.refused(r) {
			// A paused or cancelled campaign's job, and a job that will not be
			// sent (invalid, on an invalid subject, not a row of its campaign),
			// take no slot and no rate token: held back or ended at once.
			w.inflight.Add(1)
			go func() {
				defer w.inflight.Done()
				w.handle(w.hardCtx, r, func() {})
			}()
			continue
		}
		l.queue <- r // never blocks: the scheduler alone takes, and room was free
		// Signal after every push, not only onto an empty queue: the scheduler may
		// have emptied the queue and gone to wait between a check and this push.
		// awaitWork re-checks the lengths, so a spare signal costs one loop.
		select {
		case w.arrived <- struct{}{}:
		default:
		}
	}
	// A fetch that ends with fewer jobs than asked for (an idle lane) is no error.
	return batch.Error()
}

// schedule hands queued jobs to handlers: first a free slot, then a rate token, then
// the job of the highest-priority lane that has one.
func (w *Worker) schedule(ctx, hardCtx context.Context) {
	for {
		if !w.sizer.admit(ctx, w.InFlight) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case w.slots <- struct{}{}:
		}
		if !w.awaitWork(ctx) {
			<-w.slots
			return
		}
		// While the gateway cannot take submissions, jobs stay queued.
		if err := w.circuit.admit(ctx); err != nil {
			<-w.slots
			return
		}
		waitStart := time.Now()
		if err := w.limit.Wait(ctx, 1); err != nil {
			<-w.slots
			return
		}
		w.cfg.Metrics.ObserveRateLimitWait(time.Since(waitStart))
		l, r := w.pick()
		select {
		case l.room <- struct{}{}:
		default:
		}
		w.inflight.Add(1)
		go func() {
			defer w.inflight.Done()
			// The sizer measures how long a slot is held — the ledger claim and the
			// gateway's answer — which is the latency Little's law needs.
			taken := time.Now()
			w.handle(hardCtx, r, sync.OnceFunc(func() {
				w.sizer.observe(time.Since(taken))
				<-w.slots
				w.sizer.freed()
			}))
		}()
	}
}

// awaitWork blocks until some lane has a queued job. Only the scheduler takes from
// the queues, so a job seen here is still there when pick runs.
func (w *Worker) awaitWork(ctx context.Context) bool {
	for {
		for _, l := range w.lanes {
			if len(l.queue) > 0 {
				return true
			}
		}
		select {
		case <-w.arrived:
		case <-ctx.Done():
			return false
		}
	}
}

// pick takes the job of the lane the shares choose: the highest lane with work,
// unless a lane with a minimum share is behind it. The token already taken is
// counted to that lane.
func (w *Worker) pick() (*lane, *jobRun) {
	i, ok := w.shares.Pick(func(i int) bool { return len(w.lanes[i].queue) > 0 })
	if !ok {
		panic("worker: pick found no job after awaitWork saw one")
	}
	l := w.lanes[i]
	w.shares.Took(i, 1)
	return l, <-l.queue
}

// wait sleeps for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// ConcurrencyLimit is how many submissions may be in flight now, as sized from
// the gateway's latency and the current rate.
func (w *Worker) ConcurrencyLimit() int { return w.sizer.limit() }

// CircuitOpen reports whether the worker has stopped taking jobs because the
// gateway refuses them, and why.
func (w *Worker) CircuitOpen() (bool, string) { return w.circuit.open() }

// InFlight is how many submissions hold a slot now (at most Concurrency).
func (w *Worker) InFlight() int { return len(w.slots) }

// Queued is how many fetched jobs wait for a slot, per lane.
func (w *Worker) Queued() map[string]int {
	out := make(map[string]int, len(w.lanes))
	for _, l := range w.lanes {
		out[l.name] = len(l.queue)
	}
	return out
}
