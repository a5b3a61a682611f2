package resolve_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/dlr"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/events"
	"github.com/jetsms/jetsms/internal/ledger"
	"github.com/jetsms/jetsms/internal/optout"
	"github.com/jetsms/jetsms/internal/resolve"
)

// FuzzCallbacks posts arbitrary callbacks to a running receiver, whose stored
// callbacks a running resolver handles, and checks that nothing a request holds
// can cut the process's NATS connection: every answer is 200, 400 or 413, and
// once the resolver has handled what was stored the connection is still open and
// was never cut.
func FuzzCallbacks(f *testing.F) {
	env := brokertest.Run(f)
	ctx := context.Background()
	log := zaptest.NewLogger(f, zaptest.Level(zap.ErrorLevel))
	led, err := ledger.Open(ctx, env.JS, ledger.Config{Bucket: env.Names.LedgerBucket()})
	require.NoError(f, err)
	list, err := optout.Open(ctx, env.JS, optout.Config{Bucket: env.Names.OptOutBucket()})
	require.NoError(f, err)
	res, err := resolve.New(resolve.Config{
		Names: env.Names, Ledger: led, OptOuts: list, Publisher: events.New(env.JS, env.Names),
		ResolveWithin: time.Millisecond, RetryDelay: time.Millisecond,
	}, env.JS, log)
	require.NoError(f, err)
	require.NoError(f, res.Start(ctx))
	f.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(f, res.Stop(sctx))
	})
	rc, err := dlr.New(dlr.Config{Username: "gw", Password: "pw"}, env.JS, env.Names, log)
	require.NoError(f, err)
	srv := httptest.NewServer(rc)
	f.Cleanup(srv.Close)

	long := strings.Repeat("9", 5000)
	for _, seed := range []struct {
		mo   bool
		body string
	}{
		{false, `{"message_id":"1e41f423-24cf-4fa2-9a8a-888c30653305","status":"received","reference":"order-1"}`},
		{false, `{"id":42,"status":"delivered","detail":"ok"}`},
		{false, `{"message_id":"m","status":"sent","reference":"` + long + `"}`},
		{true, `{"id":"mo-1","source":"+64211234567","destination":"2021","content":"STOP"}`},
		{true, `{"id":"mo-2","source":"+` + long + `","destination":"` + long + `","content":"START"}`},
		{true, `{"id":"mo-3","source":"+64211234567","destination":"2021","content":"` + long + `","reply_to":"x"}`},
		{true, `{"id":"mo-4","source":"a\u0000b","destination":"..*>","content":""}`},
	} {
		f.Add(seed.mo, []byte(seed.body))
	}

	handled := func() int64 {
		st := res.Stats()
		return st.Published + st.Unchanged + st.Retried + st.Unmatched + st.Inbound + st.Failed + st.DeadLettered
	}
	f.Fuzz(func(t *testing.T, mo bool, body []byte) {
		path := dlr.PathDLR
		if mo {
			path = dlr.PathMO
		}
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		require.NoError(t, err)
		req.SetBasicAuth("gw", "pw")
		resp, err := srv.Client().Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge}, resp.StatusCode)

		// Every new stored callback is handled at least once.
		st := rc.Stats()
		stored := st.DLR.Stored - st.DLR.Duplicate + st.MO.Stored - st.MO.Duplicate
		deadline := time.Now().Add(10 * time.Second)
		for handled() < stored && env.Conn.Status() == nats.CONNECTED {
			require.True(t, time.Now().Before(deadline), "the resolver did not handle the callback within 10 s")
			time.Sleep(time.Millisecond) // polled: the resolver's counters have no event to wait on
		}
		require.NoError(t, env.Conn.FlushTimeout(5*time.Second), "a round trip on the connection")
		require.Equal(t, nats.CONNECTED, env.Conn.Status(), "the NATS connection is open")
		require.Zero(t, env.Conn.Stats().Reconnects, "and it was never cut")
	})
}
