package gwsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetsms/jetsms/dlr"
)

// v1Config is a REST v1 simulator with credentials.
func v1Config() Config { return Config{API: APIv1, Username: "app", Password: "pw"} }

// created is a REST v1 201 answer, read.
type created struct {
	id       string // from the Location header
	location string
	body     string
}

// sendV1 posts body to POST /messages and requires a 201 with a Location.
func (b *testBundle) sendV1(t *testing.T, body string) created {
	t.Helper()
	a := b.post(t, body)
	require.Equal(t, http.StatusCreated, a.status, "body: %s", a.body)
	loc := a.header.Get("Location")
	i := strings.LastIndexByte(loc, '/')
	require.Positive(t, i, "Location %q", loc)
	id := loc[i+1:]
	_, err := strconv.ParseInt(id, 10, 64)
	require.NoError(t, err, "Location %q", loc)
	return created{id: id, location: loc, body: string(a.body)}
}

// broadcastV1 posts body to POST /messages/broadcast and returns its results.
func (b *testBundle) broadcastV1(t *testing.T, body string) []broadcastResult {
	t.Helper()
	a := b.do(t, http.MethodPost, "/messages/broadcast", body)
	require.Equal(t, http.StatusCreated, a.status, "body: %s", a.body)
	require.Equal(t, "application/json", a.header.Get("Content-Type"))
	var res []broadcastResult
	require.NoError(t, json.Unmarshal(a.body, &res))
	return res
}

func TestSimulatorV1(t *testing.T) {
	t.Parallel()

	t.Run("AnswersEachIDForm", func(t *testing.T) {
		t.Parallel()
		for _, form := range []IDForm{IDBracketed, IDBare, IDLocationOnly} {
			t.Run(form.String(), func(t *testing.T) {
				t.Parallel()
				cfg := v1Config()
				cfg.V1IDForm = form
				b := setup(t, cfg)
				var accepted []Message
				var mu sync.Mutex
				b.sim.OnAccept(func(m Message) { mu.Lock(); accepted = append(accepted, m); mu.Unlock() })

				first := b.sendV1(t, validBody)
				second := b.sendV1(t, validBody)
				require.Equal(t, b.baseURL+"/messages/"+first.id, first.location)
				switch form {
				case IDBracketed:
					require.Equal(t, "["+first.id+"]", first.body)
				case IDBare:
					require.Equal(t, first.id, first.body)
				case IDLocationOnly:
					require.Empty(t, first.body)
				}
				n1, _ := strconv.ParseInt(first.id, 10, 64)
				n2, _ := strconv.ParseInt(second.id, 10, 64)
				require.Equal(t, n1+1, n2, "ids count up")

				mu.Lock()
				defer mu.Unlock()
				require.Len(t, accepted, 2)
				require.Equal(t, first.id, accepted[0].ID)
				m, ok := b.sim.Message(first.id)
				require.True(t, ok)
				require.Equal(t, "+64211234567", m.Destination)
				require.Equal(t, int64(2), b.sim.Stats().Accepted)
			})
		}
	})

	t.Run("AnswersUnderBasePathV1", func(t *testing.T) {
		t.Parallel()
		b := setup(t, v1Config())
		c := b.sendV1(t, validBody)
		require.Equal(t, b.baseURL+"/messages/"+c.id, c.location)
		a := b.do(t, http.MethodGet, "/messages/"+c.id, "")
		require.Equal(t, http.StatusOK, a.status, "body: %s", a.body)
		require.Equal(t, c.location, a.header.Get("Location"))
	})

	t.Run("GetReturnsTheMessageWithoutStatus", func(t *testing.T) {
		t.Parallel()
		b := setup(t, v1Config())
		c := b.sendV1(t, `{"destination":"+64211234567","content":"Hello world!","source":"2021","reference":"order-1"}`)
		a := b.do(t, http.MethodGet, "/messages/"+c.id, "")
		require.Equal(t, http.StatusOK, a.status)
		require.JSONEq(t, `{"id":"`+c.id+`","source":"2021","destination":"+64211234567",`+
			`"content":"Hello world!","reference":"order-1"}`, string(a.body))
		require.Equal(t, b.baseURL+"/messages/"+c.id, a.header.Get("Location"))

		for _, id := range []string{"1", "abc", "-5", "0", c.id + "0", "99999999999999999999"} {
			require.Equal(t, http.StatusNotFound, b.do(t, http.MethodGet, "/messages/"+id, "").status, id)
		}
		b.user, b.pass = "", ""
		require.Equal(t, http.StatusUnauthorized, b.do(t, http.MethodGet, "/messages/"+c.id, "").status)
		require.Equal(t, int64(8), b.sim.Stats().Lookups, "every GET counts, whatever the answer")
	})

	t.Run("ServesOnlyTheV1Routes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, v1Config())
		require.Equal(t, http.StatusNotFound, b.do(t, http.MethodGet, "/healthz", "").status)
		a := b.do(t, http.MethodGet, "/messages?id=1", "")
		require.Equal(t, http.StatusMethodNotAllowed, a.status)
		require.Equal(t, "POST", a.header.Get("Allow"))
		a = b.do(t, http.MethodPost, "/messages/123", validBody)
		require.Equal(t, http.StatusMethodNotAllowed, a.status)
		require.Equal(t, http.StatusNotFound, b.do(t, http.MethodPost, BasePath+"/messages", validBody).status)

		v2 := setup(t, Config{})
		require.Equal(t, http.StatusNotFound, v2.do(t, http.MethodPost, "/messages/broadcast", validBody).status)
	})

	t.Run("ValidatesAsV2Does", func(t *testing.T) {
		t.Parallel()
		cfg := v1Config()
		cfg.Now = func() time.Time { return testNow }
		b := setup(t, cfg)
		for body, want := range map[string]struct {
			status int
			code   string
		}{
			`{"content":"hi"}`:                           {400, codeMissingAttrib},
			`{"destination":"021123","content":"hi"}`:    {400, codeInvalidAttrib},
			`{"destination":"+64211234567","content":1}`: {400, codeInvalidAttrib},
			`[`: {400, codeInvalidJSON},
			`{"destination":"+64211234567","content":"hi","scheduled":"2026-11-22T08:00:00Z"}`: {422, codeInvalidAttrib},
		} {
			a := b.post(t, body)
			require.Equal(t, want.status, a.status, body)
			require.Equal(t, want.code, parseError(t, a.body).Error, body)
		}
		b.user = "intruder"
		require.Equal(t, http.StatusUnauthorized, b.post(t, validBody).status)
		st := b.sim.Stats()
		require.Equal(t, int64(5), st.Rejected)
		require.Equal(t, int64(1), st.Unauthorized)
		require.Zero(t, st.Accepted)
	})

	t.Run("BroadcastAnswersEachDestination", func(t *testing.T) {
		t.Parallel()
		b := setup(t, v1Config())
		var accepted []Message
		var mu sync.Mutex
		b.sim.OnAccept(func(m Message) { mu.Lock(); accepted = append(accepted, m); mu.Unlock() })

		res := b.broadcastV1(t, `{"destination":["+64211234567","X","+61414123456","+64211234567",""],`+
			`"content":"Sale on","source":"2021","reference":"promo-1","sms_class":1}`)
		require.Len(t, res, 5)
		for i, want := range []struct{ dest, status, message string }{
			{"+64211234567", "success", ""},
			{"X", "failure", "Invalid destination (X)"},
			{"+61414123456", "success", ""},
			{"+64211234567", "success", ""}, // given twice: sent twice
			{"", "failure", "Invalid destination ()"},
		} {
			r := res[i]
			require.Equal(t, want.dest, r.Destination, i)
			require.Equal(t, want.status, r.Status, i)
			if want.status == "failure" {
				require.Nil(t, r.ID, i)
				require.NotNil(t, r.Message, i)
				require.Equal(t, want.message, *r.Message, i)
				continue
			}
			require.Nil(t, r.Message, i)
			require.NotNil(t, r.ID, i)
			m, ok := b.sim.Message(strconv.FormatInt(*r.ID, 10))
			require.True(t, ok, i)
			require.Equal(t, want.dest, m.Destination)
			require.Equal(t, "Sale on", m.Content)
			require.Equal(t, "2021", m.Source)
			require.Equal(t, "promo-1", m.Reference)
			require.Equal(t, 1, *m.SMSClass)
		}
		require.NotEqual(t, *res[0].ID, *res[3].ID)

		mu.Lock()
		require.Len(t, accepted, 3)
		mu.Unlock()
		st := b.sim.Stats()
		require.Equal(t, int64(1), st.Requests)
		require.Equal(t, int64(1), st.Broadcasts)
		require.Equal(t, int64(3), st.Accepted)
		require.Equal(t, int64(2), st.BroadcastFailures)
		require.Zero(t, st.Rejected)

		// The documented null shapes, exactly.
		a := b.do(t, http.MethodPost, "/messages/broadcast", `{"destination":["X"],"content":"hi"}`)
		require.Equal(t, http.StatusCreated, a.status)
		require.JSONEq(t, `[{"status":"failure","message":"Invalid destination (X)","destination":"X","id":null}]`, string(a.body))
	})

	t.Run("BroadcastOverTheLimitIsRefused", func(t *testing.T) {
		t.Parallel()
		cfg := v1Config()
		cfg.BroadcastLimit = 2
		b := setup(t, cfg)
		require.Len(t, b.broadcastV1(t, `{"destination":["+64211234567","+64211234568"],"content":"hi"}`), 2)

		a := b.do(t, http.MethodPost, "/messages/broadcast", `{"destination":["+64211234567","+64211234568","+64211234569"],"content":"hi"}`)
		require.Equal(t, http.StatusBadRequest, a.status)
		e := parseError(t, a.body)
		require.Equal(t, codeBroadcastLimit, e.Error)
		require.JSONEq(t, `["Broadcast limit has been exceeded: 3 destinations given, at most 2 allowed"]`, string(e.Desc))
		st := b.sim.Stats()
		require.Equal(t, int64(2), st.Accepted)
		require.Equal(t, int64(1), st.Rejected)
		require.Equal(t, int64(2), st.Broadcasts)
	})

	t.Run("BroadcastIsRefusedAsAWhole", func(t *testing.T) {
		t.Parallel()
		b := setup(t, v1Config())
		for body, code := range map[string]string{
			`{"destination":"+64211234567","content":"hi"}`:                 codeInvalidAttrib,
			`{"destination":["+64211234567",5],"content":"hi"}`:             codeInvalidAttrib,
			`{"destination":[],"content":"hi"}`:                             codeMissingAttrib,
			`{"destination":["+64211234567"]}`:                              codeMissingAttrib,
			`{"destination":["+64211234567"],"content":"hi","sms_class":7}`: codeInvalidAttrib,
			`{"destination":["+64211234567"],"content":"hi","expires":"x"}`: codeInvalidAttrib,
			`"hi"`: codeInvalidJSON,
		} {
			a := b.do(t, http.MethodPost, "/messages/broadcast", body)
			require.Equal(t, http.StatusBadRequest, a.status, body)
			require.Equal(t, code, parseError(t, a.body).Error, body)
		}
		require.Zero(t, b.sim.Stats().Accepted)
	})

	t.Run("BroadcastTakesFaults", func(t *testing.T) {
		t.Parallel()
		b := setup(t, v1Config())
		b.sim.Inject(Fault503, FaultSendFailed, FaultAcceptThenReset)
		const body = `{"destination":["+64211234567","X","+64211234568"],"content":"hi"}`
		a := b.do(t, http.MethodPost, "/messages/broadcast", body)
		require.Equal(t, http.StatusServiceUnavailable, a.status)
		require.Equal(t, "1", a.header.Get("Retry-After"))
		a = b.do(t, http.MethodPost, "/messages/broadcast", body)
		require.Equal(t, http.StatusBadRequest, a.status)
		require.Equal(t, codeSendFailed, parseError(t, a.body).Error)
		_, err := b.request(t, b.client, http.MethodPost, "/messages/broadcast", body)
		require.Error(t, err, "accept then reset gives no answer")

		st := b.sim.Stats()
		require.Equal(t, int64(2), st.Accepted, "the valid destinations were accepted before the reset")
		require.Equal(t, map[Fault]int64{Fault503: 1, FaultSendFailed: 1, FaultAcceptThenReset: 1}, st.Faults)
	})

	t.Run("ReceiptsAreV1", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		cfg := v1Config()
		cfg.DLRURL = rc.url + "/callbacks/dlr"
		b := setup(t, cfg)
		plain := b.sendV1(t, validBody).id
		withRef := b.sendV1(t, `{"destination":"+64211234567","content":"hi","reference":"order-1"}`).id
		res := b.broadcastV1(t, `{"destination":["+61414123456"],"content":"hi"}`)
		fromBroadcast := strconv.FormatInt(*res[0].ID, 10)
		waitN(t, b.delivered, 6, "receipts delivered")

		got := map[string][]string{}
		for range 6 {
			c := rc.next(t)
			var raw map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(c.body, &raw), "body: %s", c.body)
			require.NotContains(t, raw, "detail", "REST v1 receipts have no detail")
			r, err := dlr.ParseReceipt(c.body)
			require.NoError(t, err, "body: %s", c.body)
			require.Equal(t, dlr.APIv1, r.API, "message_id must be a JSON integer: %s", c.body)
			if r.MessageID == withRef {
				require.Equal(t, "order-1", r.Reference)
				require.Len(t, raw, 3)
			} else {
				require.Len(t, raw, 2, "message_id and status: %s", c.body)
			}
			got[r.MessageID] = append(got[r.MessageID], r.Status)
		}
		for _, id := range []string{plain, withRef, fromBroadcast} {
			require.Equal(t, []string{"sent", "received"}, got[id], id)
			m, ok := b.sim.Message(id)
			require.True(t, ok)
			require.Equal(t, StatusReceived, m.Status)
		}
	})

	t.Run("MOsAreV1", func(t *testing.T) {
		t.Parallel()
		rc := newReceiver(t, nil)
		cfg := v1Config()
		cfg.MOURL = rc.url
		b := setup(t, cfg)
		mt := b.sendV1(t, `{"destination":"+64211234567","content":"Reply YES","reference":"order-7"}`).id

		id, err := b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "YES", ReplyTo: mt})
		require.NoError(t, err)
		c := rc.next(t)
		in, err := dlr.ParseInbound(c.body)
		require.NoError(t, err, "body: %s", c.body)
		require.Equal(t, dlr.APIv1, in.API, "id must be a JSON integer: %s", c.body)
		require.Equal(t, id, in.ID)
		require.Equal(t, mt, in.ReplyTo)
		require.Equal(t, "order-7", in.Reference)
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(c.body, &raw))
		require.Equal(t, `"`+mt+`"`, string(raw["reply_to"]), "reply_to is a string, as the page shows it")

		_, err = b.sim.SendMO(bounded(t), MO{Source: "+64211234567", Destination: "2021", Content: "YES",
			ReplyTo: "1e41f423-24cf-4fa2-9a8a-888c30653305"})
		require.ErrorIs(t, err, ErrInvalidMO)
		require.ErrorContains(t, err, "reply_to")
	})

	t.Run("NewNamesTheBadV1Field", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			cfg  Config
			want string
		}{
			{Config{API: "v3"}, `API "v3"`},
			{Config{API: APIv1, V1IDForm: 7}, "V1IDForm 7"},
			{Config{API: APIv1, V1IDForm: -1}, "V1IDForm -1"},
			{Config{API: APIv1, BroadcastLimit: -1}, "BroadcastLimit -1"},
		} {
			_, err := New(tc.cfg)
			require.ErrorIs(t, err, ErrInvalidConfig, tc.want)
			require.ErrorContains(t, err, tc.want)
		}
		require.Equal(t, "IDForm(9)", IDForm(9).String())
	})
}

func FuzzDecodeBroadcast(f *testing.F) {
	for _, seed := range []string{
		`{"destination":["+64211234567","X"],"content":"hi"}`, "", "null", "[]", `{"destination":[]}`,
		`{"destination":"+64211234567","content":"hi"}`,
		`{"destination":["+1","+2","+3","+4"],"content":"x","sms_class":3,"scheduled":"2026-11-23T00:00:00Z"}`,
	} {
		f.Add([]byte(seed))
	}
	const limit = 3
	f.Fuzz(func(t *testing.T, body []byte) {
		dests, m, rej := decodeBroadcast(body, testNow, limit)
		if rej != nil {
			require.Contains(t, []int{400, 422}, rej.status)
			var e gwError
			require.NoError(t, json.Unmarshal(rej.body, &e))
			require.NotEmpty(t, e.Error)
			require.NotEmpty(t, e.Desc)
			return
		}
		require.NotEmpty(t, dests)
		require.LessOrEqual(t, len(dests), limit, fmt.Sprint(dests))
		require.Empty(t, m.Destination)
		require.NotEmpty(t, m.Content)
		require.NotEmpty(t, m.Class)
		if m.SMSClass != nil {
			require.True(t, *m.SMSClass >= 0 && *m.SMSClass <= 3)
		}
	})
}
