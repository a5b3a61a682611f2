package dlr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jetsms/jetsms/internal/broker"
	"github.com/jetsms/jetsms/internal/broker/brokertest"
	"github.com/jetsms/jetsms/internal/secret"
)

// eventWait bounds every wait for an event; nothing here should take nearly this
// long.
const eventWait = 10 * time.Second

// testNow is the receiver's clock in these tests.
var testNow = time.Date(2026, 11, 22, 9, 0, 5, 0, time.FixedZone("NZDT", 13*3600))

const (
	testUser     = "gateway"
	testPassword = secret.Secret("cb-hunter2")
)

type testBundle struct {
	env    *brokertest.Env
	rc     *Receiver
	srv    *http.Server
	url    string // http://127.0.0.1:PORT
	addr   string // 127.0.0.1:PORT
	client *http.Client
	stream jetstream.Stream
}

// setup runs a receiver with cfg (credentials testUser/testPassword unless cfg
// sets others; cfg.Now defaults to testNow) on js, or on a fresh embedded server's
// when js is nil, behind a real http.Server from NewServer on 127.0.0.1.
func setup(t *testing.T, cfg Config, scfg ServerConfig, env *brokertest.Env, js jetstream.JetStream) *testBundle {
	t.Helper()
	if env == nil {
		env = brokertest.Run(t)
	}
	if js == nil {
		js = env.JS
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	if cfg.Username == "" {
		cfg.AllowUnauthenticated = true // the tests of what credentials change set them
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	rc, err := New(cfg, js, env.Names, log)
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	scfg.Addr = ln.Addr().String()
	srv, err := NewServer(scfg, rc, log)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), eventWait)
		defer cancel()
		require.NoError(t, srv.Shutdown(ctx))
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	})

	transport := &http.Transport{MaxIdleConnsPerHost: 8}
	t.Cleanup(transport.CloseIdleConnections)
	stream, err := env.JS.Stream(t.Context(), env.Names.CallbacksStream())
	require.NoError(t, err)
	return &testBundle{
		env: env, rc: rc, srv: srv, url: "http://" + scfg.Addr, addr: scfg.Addr,
		client: &http.Client{Transport: transport, Timeout: eventWait}, stream: stream,
	}
}

func withCredentials() Config { return Config{Username: testUser, Password: testPassword} }

// answer is a response read in full.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to path with the test credentials.
func (b *testBundle) post(t *testing.T, path, body string) answer {
	t.Helper()
	return b.do(t, http.MethodPost, path, strings.NewReader(body), func(r *http.Request) {
		r.SetBasicAuth(testUser, testPassword.Reveal())
	})
}

func (b *testBundle) do(t *testing.T, method, path string, body io.Reader, prepare func(*http.Request)) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, b.url+path, body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if prepare != nil {
		prepare(req)
	}
	resp, err := b.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: data}
}

// stored returns every message of the callbacks stream, in order.
func (b *testBundle) stored(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	info, err := b.stream.Info(t.Context())
	require.NoError(t, err)
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := b.stream.GetMsg(t.Context(), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(t, err)
		msgs = append(msgs, m)
	}
	return msgs
}

// requireRefused checks a 400 answer that names field, and that nothing was stored.
func (b *testBundle) requireRefused(t *testing.T, a answer, field, message string) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, a.status, "body %s", a.body)
	require.Equal(t, "application/json", a.header.Get("Content-Type"))
	var got struct{ Error, Field, Message string }
	require.NoError(t, json.Unmarshal(a.body, &got))
	require.Equal(t, "invalid_callback", got.Error)
	require.Equal(t, field, got.Field)
	require.Equal(t, message, got.Message)
	require.Empty(t, b.stored(t))
}

func TestReceiver(t *testing.T) {
	t.Parallel()

	t.Run("StoresEachDocumentedBodyOnItsSubjectWithItsMsgID", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		at := testNow.UTC()
		for _, tc := range []struct {
			name, path, body, subject, msgID string
			want                             any
		}{
			{"ReceiptRESTv2", PathDLR, receiptV2Reference, "sms.callbacks.dlr", "dlr:1e41f423-24cf-4fa2-9a8a-888c30653305:sent",
				Receipt{MessageID: "1e41f423-24cf-4fa2-9a8a-888c30653305", Status: "sent", Detail: "+64211234567",
					Reference: "order-1234", API: APIv2, ReceivedAt: at}},
			{"ReceiptOpenAPI", PathDLR, receiptOpenAPI, "sms.callbacks.dlr", "dlr:497f6eca-6276-4993-bfeb-53cbbbba6f08:accepted",
				Receipt{MessageID: "497f6eca-6276-4993-bfeb-53cbbbba6f08", Status: "accepted", Detail: "+642712345678",
					API: APIv2, ReceivedAt: at}},
			{"ReceiptRESTv1", PathDLR, receiptV1Number, "sms.callbacks.dlr", "dlr:123456789:received",
				Receipt{MessageID: "123456789", Status: "received", Reference: "order-1234", API: APIv1, ReceivedAt: at}},
			{"InboundRESTv2", PathMO, inboundV2Reply, "sms.callbacks.mo", "mo:3f9f0c4e-5b7a-4a43-9d0e-2c7d0a1b2c3d",
				Inbound{ID: "3f9f0c4e-5b7a-4a43-9d0e-2c7d0a1b2c3d", Source: "+64211234567", Destination: "2021",
					Content: "Yes please", Operator: "Spark", ReplyTo: "1e41f423-24cf-4fa2-9a8a-888c30653305",
					Reference: "order-1234", API: APIv2, ReceivedAt: at}},
			{"InboundRESTv1", PathMO, inboundV1, "sms.callbacks.mo", "mo:987654",
				Inbound{ID: "987654", Source: "+64211234567", Destination: "2021", Content: "Hello",
					Operator: "Vodafone", API: APIv1, ReceivedAt: at}},
		} {
			a := b.post(t, tc.path, tc.body)
			require.Equal(t, http.StatusOK, a.status, "%s: %s", tc.name, a.body)
			// A 200 means stored: no waiting.
			m, err := b.stream.GetLastMsgForSubject(t.Context(), tc.subject)
			require.NoError(t, err, tc.name)
			require.Equal(t, tc.msgID, m.Header.Get(jetstream.MsgIDHeader), tc.name)
			switch want := tc.want.(type) {
			case Receipt:
				var got Receipt
				require.NoError(t, json.Unmarshal(m.Data, &got), tc.name)
				require.Equal(t, want, got, tc.name)
			case Inbound:
				var got Inbound
				require.NoError(t, json.Unmarshal(m.Data, &got), tc.name)
				require.Equal(t, want, got, tc.name)
			}
			var fields map[string]any
			require.NoError(t, json.Unmarshal(m.Data, &fields))
			require.Equal(t, "2026-11-21T20:00:05Z", fields["received_at"], "%s: stamped in UTC", tc.name)
		}
		require.Len(t, b.stored(t), 5)
		st := b.rc.Stats()
		require.Equal(t, Counts{Stored: 3}, st.DLR)
		require.Equal(t, Counts{Stored: 2}, st.MO)
	})

	t.Run("RepeatedCallbackIsStoredOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		for range 3 {
			require.Equal(t, http.StatusOK, b.post(t, PathDLR, receiptV2).status)
			require.Equal(t, http.StatusOK, b.post(t, PathMO, inboundV1).status)
		}
		// The same message in a later status is a new receipt.
		later := strings.Replace(receiptV2, `"received"`, `"expired"`, 1)
		require.Equal(t, http.StatusOK, b.post(t, PathDLR, later).status)

		msgs := b.stored(t)
		require.Len(t, msgs, 3)
		require.Equal(t, "dlr:1e41f423-24cf-4fa2-9a8a-888c30653305:received", msgs[0].Header.Get(jetstream.MsgIDHeader))
		require.Equal(t, "mo:987654", msgs[1].Header.Get(jetstream.MsgIDHeader))
		require.Equal(t, "dlr:1e41f423-24cf-4fa2-9a8a-888c30653305:expired", msgs[2].Header.Get(jetstream.MsgIDHeader))
		st := b.rc.Stats()
		require.Equal(t, Counts{Stored: 4, Duplicate: 2}, st.DLR)
		require.Equal(t, Counts{Stored: 3, Duplicate: 2}, st.MO)
	})

	t.Run("UnknownStatusIsStoredAsItCame", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		a := b.post(t, PathDLR, `{"message_id":"m-1","status":"Delivered To Network","detail":"x"}`)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		msgs := b.stored(t)
		require.Len(t, msgs, 1)
		var got Receipt
		require.NoError(t, json.Unmarshal(msgs[0].Data, &got))
		require.Equal(t, "Delivered To Network", got.Status)
		require.Equal(t, "dlr:m-1:Delivered To Network", msgs[0].Header.Get(jetstream.MsgIDHeader))
	})

	t.Run("CredentialsAreRequiredWhenConfigured", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		for _, tc := range []struct {
			name    string
			prepare func(*http.Request)
		}{
			{"None", nil},
			{"WrongPassword", func(r *http.Request) { r.SetBasicAuth(testUser, "cb-hunter3") }},
			{"WrongUser", func(r *http.Request) { r.SetBasicAuth("gatewa", testPassword.Reveal()) }},
			{"Swapped", func(r *http.Request) { r.SetBasicAuth(testPassword.Reveal(), testUser) }},
			{"EmptyPassword", func(r *http.Request) { r.SetBasicAuth(testUser, "") }},
			{"NotBasic", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+testPassword.Reveal()) }},
		} {
			a := b.do(t, http.MethodPost, PathDLR, strings.NewReader(receiptV2), tc.prepare)
			require.Equal(t, http.StatusUnauthorized, a.status, tc.name)
			require.Equal(t, `Basic realm="jetsms callbacks", charset="UTF-8"`, a.header.Get("WWW-Authenticate"), tc.name)
		}
		require.Empty(t, b.stored(t))
		require.Equal(t, Counts{Unauthorized: 6}, b.rc.Stats().DLR)
		require.Equal(t, int64(6), b.rc.Stats().DLR.Rejected())

		require.Equal(t, http.StatusOK, b.post(t, PathDLR, receiptV2).status)
	})

	t.Run("NoCredentialsConfiguredAcceptsAnyRequest", func(t *testing.T) {
		t.Parallel()
		b := setup(t, Config{}, ServerConfig{}, nil, nil)
		a := b.do(t, http.MethodPost, PathMO, strings.NewReader(inboundV2), nil)
		require.Equal(t, http.StatusOK, a.status, "%s", a.body)
		require.Len(t, b.stored(t), 1)
	})

	t.Run("BodyOver64KiBIs413", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		big := `{"message_id":"m1","status":"sent","detail":"` + strings.Repeat("x", 65<<10) + `"}`

		a := b.post(t, PathDLR, big) // with Content-Length
		require.Equal(t, http.StatusRequestEntityTooLarge, a.status)
		require.Contains(t, string(a.body), "body: must be at most 65536 bytes")

		// Chunked, so the size shows only while reading.
		a = b.do(t, http.MethodPost, PathMO, io.MultiReader(strings.NewReader(big)), func(r *http.Request) {
			r.SetBasicAuth(testUser, testPassword.Reveal())
			r.ContentLength = -1
		})
		require.Equal(t, http.StatusRequestEntityTooLarge, a.status)
		require.Empty(t, b.stored(t))
		require.Equal(t, int64(1), b.rc.Stats().DLR.TooLarge)
		require.Equal(t, int64(1), b.rc.Stats().MO.TooLarge)
	})

	t.Run("BodyAtTheLimitWhoseStoredFormIsTooLargeIs413Not503", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		// content is the one field bounded by the body alone.
		head, tail := `{"id":"m1","source":"+64211234567","destination":"2021","content":"`, `"}`
		body := head + strings.Repeat("x", MaxBodyBytes-len(head)-len(tail)) + tail
		require.Len(t, body, MaxBodyBytes)
		a := b.post(t, PathMO, body)
		require.Equal(t, http.StatusRequestEntityTooLarge, a.status, "%s", a.body)
		require.Empty(t, a.header.Get("Retry-After"))
		require.Equal(t, Counts{TooLarge: 1}, b.rc.Stats().MO)
	})

	t.Run("MalformedOrMistypedBodyIs400NamingTheField", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		for _, tc := range []struct {
			path, body, field, message string
		}{
			{PathDLR, `{"message_id":"m1","status":`, "body", "body: not valid JSON at byte 28: unexpected end of JSON input"},
			{PathDLR, `<xml/>`, "body", "body: not valid JSON"},
			{PathDLR, `[]`, "body", "body: not a JSON object, got array"},
			{PathDLR, `{"message_id":"m1","status":3}`, "status", "status: must be a string, got number"},
			{PathDLR, `{"status":"sent"}`, "message_id", "message_id: required"},
			{PathDLR, `{"message_id":1.5,"status":"sent"}`, "message_id", `message_id: must be a non-negative integer, got "1.5"`},
			{PathDLR, inboundV2, "status", "status: required"},
			{PathMO, `{"id":"i1","source":"+64211234567","destination":2021,"content":"x"}`, "destination",
				"destination: must be a string, got number"},
			{PathMO, receiptV2, "id", "id: required"},
		} {
			b.requireRefused(t, b.post(t, tc.path, tc.body), tc.field, tc.message)
		}
		require.Equal(t, Counts{Invalid: 7}, b.rc.Stats().DLR)
		require.Equal(t, Counts{Invalid: 2}, b.rc.Stats().MO)
	})

	t.Run("OtherMethodsAre405AndOtherPaths404", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		auth := func(r *http.Request) { r.SetBasicAuth(testUser, testPassword.Reveal()) }
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			a := b.do(t, method, PathDLR, nil, auth)
			require.Equal(t, http.StatusMethodNotAllowed, a.status, method)
			require.Equal(t, "POST", a.header.Get("Allow"))
		}
		for _, path := range []string{"/callbacks", "/callbacks/", "/callbacks/dlr/", "/callbacks/DLR", "/healthz"} {
			require.Equal(t, http.StatusNotFound, b.post(t, path, receiptV2).status, path)
		}
		require.Equal(t, Stats{}, b.rc.Stats())
	})

	t.Run("ConcurrentCallbacksAreAllStored", func(t *testing.T) {
		t.Parallel()
		b := setup(t, withCredentials(), ServerConfig{}, nil, nil)
		const n = 200
		var wg sync.WaitGroup
		statuses := make([]int, n)
		for i := range n {
			wg.Go(func() {
				req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.url+PathDLR,
					strings.NewReader(fmt.Sprintf(`{"message_id":%d,"status":"received"}`, i)))
				if err != nil {
					return
				}
				req.SetBasicAuth(testUser, testPassword.Reveal())
				resp, err := b.client.Do(req)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[i] = resp.StatusCode
			})
		}
		wg.Wait()
		for i, s := range statuses {
			require.Equal(t, http.StatusOK, s, "callback %d", i)
		}
		require.Len(t, b.stored(t), n)
		require.Equal(t, Counts{Stored: n}, b.rc.Stats().DLR)
	})

	t.Run("Answers503WhileNATSIsDownAnd200AfterItIsBack", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		env := brokertest.Start(t, dir)
		_, port, err := net.SplitHostPort(strings.TrimPrefix(env.URL, "nats://"))
		require.NoError(t, err)

		// The receiver's own connection, so the test can await its disconnect and
		// reconnect instead of sleeping.
		disconnected, reconnected := make(chan struct{}, 1), make(chan struct{}, 1)
		nc, err := nats.Connect(env.URL,
			nats.MaxReconnects(-1),
			nats.ReconnectWait(20*time.Millisecond),
			nats.ReconnectJitter(0, 0),
			nats.DisconnectErrHandler(func(*nats.Conn, error) { signal(disconnected) }),
			nats.ReconnectHandler(func(*nats.Conn) { signal(reconnected) }),
		)
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		b := setup(t, Config{Username: testUser, Password: testPassword, PublishTimeout: 300 * time.Millisecond,
			RetryAfter: 1500 * time.Millisecond}, ServerConfig{}, env, js)

		require.Equal(t, http.StatusOK, b.post(t, PathDLR, receiptV2).status)

		env.Server.Stop()
		await(t, disconnected, "the receiver's connection to notice the server is gone")
		a := b.post(t, PathDLR, receiptV1Number)
		require.Equal(t, http.StatusServiceUnavailable, a.status, "%s", a.body)
		require.Equal(t, "2", a.header.Get("Retry-After"), "1.5 s rounded up")
		a = b.post(t, PathMO, inboundV2)
		require.Equal(t, http.StatusServiceUnavailable, a.status, "%s", a.body)
		require.Equal(t, Counts{Stored: 1, Unavailable: 1}, b.rc.Stats().DLR)
		require.Equal(t, Counts{Unavailable: 1}, b.rc.Stats().MO)

		// The same store, the same port: the connection finds it again.
		restarted, err := broker.StartEmbedded(broker.EmbeddedConfig{StoreDir: dir, Listen: "127.0.0.1:" + port, NoAuth: true},
			zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
		require.NoError(t, err)
		t.Cleanup(restarted.Stop)
		await(t, reconnected, "the receiver's connection to reconnect")

		// The gateway sends both again. The publishes that waited in the client's
		// reconnect buffer may have been stored on reconnection: the retries are
		// then duplicates, and each callback is stored once either way.
		require.Equal(t, http.StatusOK, b.post(t, PathDLR, receiptV1Number).status)
		require.Equal(t, http.StatusOK, b.post(t, PathMO, inboundV2).status)

		stream, err := js.Stream(t.Context(), env.Names.CallbacksStream())
		require.NoError(t, err)
		b.stream = stream
		var ids []string
		for _, m := range b.stored(t) {
			ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
		}
		require.ElementsMatch(t, []string{"dlr:1e41f423-24cf-4fa2-9a8a-888c30653305:received",
			"dlr:123456789:received", "mo:3f9f0c4e-5b7a-4a43-9d0e-2c7d0a1b2c3d"}, ids)
		require.Equal(t, int64(2), b.rc.Stats().DLR.Stored)
		require.Equal(t, int64(1), b.rc.Stats().MO.Stored)
	})

	t.Run("SlowHeadersAreCutOffByReadHeaderTimeout", func(t *testing.T) {
		t.Parallel()
		const headerTimeout = 300 * time.Millisecond
		b := setup(t, withCredentials(), ServerConfig{ReadHeaderTimeout: headerTimeout, ReadTimeout: time.Minute,
			WriteTimeout: time.Minute, IdleTimeout: time.Minute}, nil, nil)

		conn, err := net.Dial("tcp", b.addr)
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		start := time.Now()
		_, err = io.WriteString(conn, "POST "+PathDLR+" HTTP/1.1\r\nHost: "+b.addr+"\r\nX-Slow: ")
		require.NoError(t, err)

		// Trickle one byte of a header that never ends, well within any idle or
		// read timeout of a single byte, until the server hangs up.
		stop := make(chan struct{})
		trickled := make(chan struct{})
		go func() {
			defer close(trickled)
			tick := time.NewTicker(headerTimeout / 10)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		}()
		defer func() { close(stop); <-trickled }()

		require.NoError(t, conn.SetReadDeadline(time.Now().Add(eventWait)))
		got, err := io.ReadAll(conn) // returns when the server closes the connection
		elapsed := time.Since(start)
		var netErr net.Error
		require.False(t, errors.As(err, &netErr) && netErr.Timeout(), "the server did not hang up within %s", eventWait)
		require.GreaterOrEqual(t, elapsed, headerTimeout-headerTimeout/10)
		require.Less(t, elapsed, eventWait)
		// net/http closes without an answer, or with a 408 on newer versions.
		if len(got) > 0 {
			require.True(t, bytes.HasPrefix(got, []byte("HTTP/1.1 408")), "answer %q", got)
		}
		require.Equal(t, Stats{}, b.rc.Stats())

		// The server still serves others.
		require.Equal(t, http.StatusOK, b.post(t, PathDLR, receiptV2).status)
	})
}

func TestNew(t *testing.T) {
	t.Parallel()
	env := brokertest.Run(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"UserWithoutPassword", Config{Username: "gw"}, "Username and Password must be set together"},
		{"PasswordWithoutUser", Config{Password: "pw"}, "Username and Password must be set together"},
		{"NegativePublishTimeout", Config{AllowUnauthenticated: true, PublishTimeout: -time.Second}, "PublishTimeout -1s: must be >= 0"},
		{"NegativeRetryAfter", Config{AllowUnauthenticated: true, RetryAfter: -time.Second}, "RetryAfter -1s: must be >= 0"},
		{"NoCredentials", Config{}, "no callback credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfg, env.JS, env.Names, nil)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("NoJetStream", func(t *testing.T) {
		t.Parallel()
		_, err := New(Config{}, nil, env.Names, nil)
		require.ErrorIs(t, err, ErrInvalidConfig)
	})
	t.Run("DefaultsAndPasswordNeverPrinted", func(t *testing.T) {
		t.Parallel()
		rc, err := New(Config{Username: "gw", Password: "pw-secret"}, env.JS, env.Names, nil)
		require.NoError(t, err)
		require.Equal(t, PublishTimeoutDefault, rc.publishTimeout)
		require.Equal(t, []string{"5"}, rc.retryAfter)
		require.NotContains(t, fmt.Sprintf("%+v", Config{Username: "gw", Password: "pw-secret"}), "pw-secret")
	})
}

func TestNewServer(t *testing.T) {
	t.Parallel()
	t.Run("SetsEveryTimeout", func(t *testing.T) {
		t.Parallel()
		srv, err := NewServer(ServerConfig{}, http.NotFoundHandler(), nil)
		require.NoError(t, err)
		require.Equal(t, ListenDefault, srv.Addr)
		require.Equal(t, ReadHeaderTimeoutDefault, srv.ReadHeaderTimeout)
		require.Equal(t, ReadTimeoutDefault, srv.ReadTimeout)
		require.Equal(t, WriteTimeoutDefault, srv.WriteTimeout)
		require.Equal(t, IdleTimeoutDefault, srv.IdleTimeout)
		require.Equal(t, MaxHeaderBytesDefault, srv.MaxHeaderBytes)
		require.Greater(t, WriteTimeoutDefault, ReadTimeoutDefault+PublishTimeoutDefault)
	})
	t.Run("KeepsGivenValues", func(t *testing.T) {
		t.Parallel()
		srv, err := NewServer(ServerConfig{Addr: "127.0.0.1:9999", ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second,
			WriteTimeout: 3 * time.Second, IdleTimeout: 4 * time.Second, MaxHeaderBytes: 1024}, http.NotFoundHandler(), nil)
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:9999", srv.Addr)
		require.Equal(t, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second},
			[]time.Duration{srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout})
		require.Equal(t, 1024, srv.MaxHeaderBytes)
	})
	t.Run("RefusesNegativeValues", func(t *testing.T) {
		t.Parallel()
		for _, cfg := range []ServerConfig{{ReadHeaderTimeout: -1}, {ReadTimeout: -1}, {WriteTimeout: -1},
			{IdleTimeout: -1}, {MaxHeaderBytes: -1}} {
			_, err := NewServer(cfg, http.NotFoundHandler(), nil)
			require.ErrorIs(t, err, ErrInvalidConfig, "%+v", cfg)
		}
	})
}

// signal notifies ch without ever blocking the caller.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(eventWait):
		t.Fatalf("timed out after %s waiting for %s", eventWait, what)
	}
}
