package dispatcher

import (
	"context"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/internal/gwsim"
	"github.com/jetsms/jetsms/internal/secret"
	"github.com/jetsms/jetsms/job"
)

// The interfaces the clients' consumers declare: the worker's Sender and the
// reconciler's Looker, plus what cmd uses. Both clients must satisfy them.
type (
	sender interface {
		Send(ctx context.Context, j *job.Job) (Result, error)
	}
	looker interface {
		Get(ctx context.Context, messageID string) (Message, error)
	}
	gatewayClient interface {
		sender
		looker
		Health(ctx context.Context) error
		Close()
	}
)

var (
	_ gatewayClient = (*RESTv2)(nil)
	_ gatewayClient = (*RESTv1)(nil)
)

// features says how one client's API differs where the suite looks.
type features struct {
	api      string         // gwsim.Config.API
	basePath string         // of the real gateway's base URL
	id       *regexp.Regexp // every message id
	// getStatus: a GET answer carries the message's status.
	getStatus bool
}

// implementation is one client under the conformance suite.
type implementation struct {
	name     string
	features features
	new      func(Config) (gatewayClient, error)
}

var implementations = []implementation{
	{
		name: "RESTv2",
		features: features{api: gwsim.APIv2, basePath: gwsim.BasePath, getStatus: true,
			id: regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)},
		new: func(cfg Config) (gatewayClient, error) { return NewRESTv2(cfg) },
	},
	{
		name:     "RESTv1",
		features: features{api: gwsim.APIv1, basePath: gwsim.BasePathV1, id: regexp.MustCompile(`^[1-9][0-9]{0,18}$`)},
		new:      func(cfg Config) (gatewayClient, error) { return NewRESTv1(cfg) },
	},
}

// simBundle is a simulator behind a real HTTP server, and what a test needs to
// drive it.
type simBundle struct {
	sim *gwsim.Simulator
	srv *httptest.Server
	url string // the gateway base URL, with the API's base path
}

// startSim starts cfg's simulator speaking f's API with the test credentials.
// Cleanup closes the simulator (ending held requests) before the server.
func startSim(t *testing.T, f features, cfg gwsim.Config) *simBundle {
	t.Helper()
	cfg.API = f.api
	if cfg.Username == "" {
		cfg.Username, cfg.Password = testUser, testPassword
	}
	sim, err := gwsim.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close)
	return &simBundle{sim: sim, srv: srv, url: srv.URL + f.basePath}
}

// client returns impl's client of b with the test credentials; edit
// changes the Config first.
func (impl implementation) client(t *testing.T, b *simBundle, edit ...func(*Config)) gatewayClient {
	t.Helper()
	cfg := Config{URL: b.url, Username: testUser, Password: secret.Secret(testPassword), Timeout: 5 * time.Second}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := impl.new(cfg)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// TestConformance runs every client against the simulator of its API: the same
// jobs and faults must give the same outcomes.
func TestConformance(t *testing.T) {
	t.Parallel()
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			testConformance(t, impl)
		})
	}
}

func testConformance(t *testing.T, impl implementation) {
	ctx := context.Background()
	f := impl.features

	t.Run("SendsAndLooksUp", func(t *testing.T) {
		t.Parallel()
		b := startSim(t, f, gwsim.Config{})
		c := impl.client(t, b)
		res, err := c.Send(ctx, testJob())
		require.NoError(t, err)
		require.Regexp(t, f.id, res.MessageID)
		require.Equal(t, "accepted", res.Status)
		require.Equal(t, "+64211234567", res.Detail)

		kept, ok := b.sim.Message(res.MessageID)
		require.True(t, ok)
		require.Equal(t, "order-1234-otp", kept.Reference, "the job id stands in for the reference")

		m, err := c.Get(ctx, res.MessageID)
		require.NoError(t, err)
		want := Message{ID: res.MessageID, Destination: "+64211234567", Content: "Your code is 123456",
			Reference: "order-1234-otp"}
		if f.getStatus {
			want.Status = "accepted"
		}
		require.Equal(t, want, m)
	})

	t.Run("GetReturnsErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := startSim(t, f, gwsim.Config{})
		c := impl.client(t, b)
		res, err := c.Send(ctx, testJob())
		require.NoError(t, err)
		other := "1e41f423-24cf-4fa2-9a8a-888c30653305"
		if f.api == gwsim.APIv1 {
			other = "1" + res.MessageID
		}
		_, err = c.Get(ctx, other)
		require.ErrorIs(t, err, ErrNotFound)
		require.Zero(t, KindOf(err))
	})

	t.Run("ChecksHealth", func(t *testing.T) {
		t.Parallel()
		b := startSim(t, f, gwsim.Config{})
		require.NoError(t, impl.client(t, b).Health(ctx))
	})

	t.Run("ConcurrentSendsGetDistinctIDs", func(t *testing.T) {
		t.Parallel()
		n := 200
		if testing.Short() {
			n = 20
		}
		b := startSim(t, f, gwsim.Config{})
		c := impl.client(t, b, func(cfg *Config) { cfg.MaxConns = 8 })
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				var res Result
				res, errs[i] = c.Send(ctx, testJob())
				ids[i] = res.MessageID
			})
		}
		wg.Wait()
		seen := make(map[string]bool, n)
		for i := range n {
			require.NoError(t, errs[i])
			require.Regexp(t, f.id, ids[i])
			require.False(t, seen[ids[i]], "id %s given twice", ids[i])
			seen[ids[i]] = true
		}
		require.Equal(t, int64(n), b.sim.Stats().Accepted)
	})

	t.Run("ClassifiesEveryFault", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name       string
			fault      gwsim.Fault
			job        *job.Job
			kind       Kind
			status     int
			code       string
			retryAfter time.Duration
			accepted   int64 // what the simulator took
		}{
			{"InvalidAttribIsRejected", gwsim.FaultInvalidAttrib, nil, KindRejected, 400, CodeInvalidAttrib, 0, 0},
			{"SendFailedIsRetryable", gwsim.FaultSendFailed, nil, KindRetryable, 400, CodeSendFailed, 0, 0},
			{"500WithoutTheGatewaysBodyIsUnknown", gwsim.Fault500, nil, KindUnknown, 500, "http_500", 0, 0},
			{"502IsUnknown", gwsim.Fault502, nil, KindUnknown, 502, "http_502", 0, 0},
			{"504AfterAcceptingIsUnknown", gwsim.Fault504, nil, KindUnknown, 504, "http_504", 0, 1},
			{"OpenAPI500IsRetryable", gwsim.FaultOpenAPIError, nil, KindRetryable, 500, "http_500", 0, 0},
			{"503IsRetryableAfter", gwsim.Fault503, nil, KindRetryable, 503, "http_503", 3 * time.Second, 0},
			{"429IsRetryableAfter", gwsim.Fault429, nil, KindRetryable, 429, "http_429", 3 * time.Second, 0},
			{"401IsUnauthorized", gwsim.FaultUnauthorized, nil, KindUnauthorized, 401, CodeUnauthorized, 0, 0},
			{"ResetAfterTheRequestIsUnknown", gwsim.FaultReset, nil, KindUnknown, 0, "", 0, 0},
			{"ResetAfterAcceptingIsUnknown", gwsim.FaultAcceptThenReset, nil, KindUnknown, 0, "", 0, 1},
			{"LocalNumberIsRejected", gwsim.FaultNone,
				&job.Job{ID: "j", Destination: "0211234567", Content: "hi"}, KindRejected, 400, CodeInvalidAttrib, 0, 0},
			{"MissingContentIsRejected", gwsim.FaultNone,
				&job.Job{ID: "j", Destination: "+64211234567"}, KindRejected, 400, CodeMissingAttrib, 0, 0},
			{"ScheduledInThePastIsRejected", gwsim.FaultNone,
				&job.Job{ID: "j", Destination: "+64211234567", Content: "hi", Scheduled: new(time.Now().Add(-time.Hour))},
				KindRejected, 422, CodeInvalidAttrib, 0, 0}, // the gateway's own code is kept
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				b := startSim(t, f, gwsim.Config{RetryAfter: 3 * time.Second})
				c := impl.client(t, b)
				b.sim.Inject(tc.fault)
				j := tc.job
				if j == nil {
					j = testJob()
				}
				_, err := c.Send(ctx, j)
				var e *Error
				require.ErrorAs(t, err, &e)
				require.Equal(t, tc.kind, e.Kind, "%v", err)
				require.Equal(t, tc.status, e.StatusCode, "%v", err)
				if tc.code != "" {
					require.Equal(t, tc.code, e.Code, "%v", err)
				} else {
					// A reset reads as reset or as a closed connection, depending
					// on when the client notices it.
					require.Contains(t, []string{CodeConnectionReset, CodeConnectionClosed}, e.Code, "%v", err)
				}
				require.Equal(t, tc.retryAfter, e.RetryAfter)
				st := b.sim.Stats()
				require.Equal(t, tc.accepted, st.Accepted)
				require.Equal(t, int64(1), st.Requests, "sent once, never resent")
			})
		}
	})

	t.Run("WrongPasswordIsUnauthorized", func(t *testing.T) {
		t.Parallel()
		b := startSim(t, f, gwsim.Config{})
		c := impl.client(t, b, func(cfg *Config) { cfg.Password = "wrong" })
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindUnauthorized, 401, CodeUnauthorized)
		_, err = c.Get(ctx, "1")
		requireOutcome(t, err, KindUnauthorized, 401, CodeUnauthorized)
		require.Equal(t, int64(2), b.sim.Stats().Unauthorized)
	})

	t.Run("HangPastTimeoutIsUnknown", func(t *testing.T) {
		t.Parallel()
		b := startSim(t, f, gwsim.Config{})
		c := impl.client(t, b, func(cfg *Config) { cfg.Timeout = shortTimeout })
		b.sim.Inject(gwsim.FaultAcceptThenHang)
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindUnknown, 0, CodeTimeout)
		require.Equal(t, int64(1), b.sim.Stats().Accepted)
	})

	t.Run("CancelledBeforeSendingIsRetryable", func(t *testing.T) {
		t.Parallel()
		b := startSim(t, f, gwsim.Config{})
		c := impl.client(t, b)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := c.Send(cctx, testJob())
		requireOutcome(t, err, KindRetryable, 0, CodeCancelled)
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, b.sim.Stats().Requests)
	})

	t.Run("RefusedConnectionIsRetryable", func(t *testing.T) {
		t.Parallel()
		b := startSim(t, f, gwsim.Config{})
		c := impl.client(t, b)
		b.srv.Close()
		_, err := c.Send(ctx, testJob())
		requireOutcome(t, err, KindRetryable, 0, CodeConnectionRefused)
		require.Error(t, c.Health(ctx))
	})
}

// TestProbe checks that each client's Probe tells a working gateway from a
// wrong base path, API version, credentials or plain HTTP, without sending.
func TestProbe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kind := func(t *testing.T, err error) Kind {
		t.Helper()
		require.Error(t, err)
		return KindOf(err)
	}

	t.Run("RESTv2", func(t *testing.T) {
		t.Parallel()
		f := implementations[0].features
		b := startSim(t, f, gwsim.Config{})
		impl := implementations[0]
		require.NoError(t, impl.client(t, b).(*RESTv2).Probe(ctx))
		wrongPath := impl.client(t, b, func(c *Config) { c.URL = b.srv.URL + "/rest/v2" }).(*RESTv2)
		require.Equal(t, KindMisconfigured, kind(t, wrongPath.Probe(ctx)))
		atV1 := startSim(t, implementations[1].features, gwsim.Config{})
		v2AtV1 := impl.client(t, atV1, func(c *Config) { c.URL = atV1.srv.URL + gwsim.BasePathV1 }).(*RESTv2)
		require.Equal(t, KindMisconfigured, kind(t, v2AtV1.Probe(ctx)), "REST v1 has no /healthz")
		badCreds := impl.client(t, b, func(c *Config) { c.Password = "wrong" }).(*RESTv2)
		require.Equal(t, KindUnauthorized, kind(t, badCreds.Probe(ctx)))
		redirect := startSim(t, f, gwsim.Config{RedirectHTTPS: true})
		require.Equal(t, KindMisconfigured, kind(t, impl.client(t, redirect).(*RESTv2).Probe(ctx)))
		require.Zero(t, b.sim.Stats().Requests, "no probe sent a message")
	})

	t.Run("RESTv1", func(t *testing.T) {
		t.Parallel()
		impl := implementations[1]
		b := startSim(t, impl.features, gwsim.Config{})
		require.NoError(t, impl.client(t, b).(*RESTv1).Probe(ctx))
		badCreds := impl.client(t, b, func(c *Config) { c.Password = "wrong" }).(*RESTv1)
		require.Equal(t, KindUnauthorized, kind(t, badCreds.Probe(ctx)))
		atV2 := startSim(t, implementations[0].features, gwsim.Config{})
		v1AtV2 := impl.client(t, atV2, func(c *Config) { c.URL = atV2.srv.URL + gwsim.BasePath }).(*RESTv1)
		_, err := v1AtV2.Send(ctx, testJob())
		require.Equal(t, KindMisconfigured, kind(t, err), "the REST v2 gateway refuses the REST v1 media type (406)")
		require.Zero(t, b.sim.Stats().Requests+atV2.sim.Stats().Accepted)
	})
}
