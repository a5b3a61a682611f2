package dlr

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Bodies as the gateway documents show them (gateway-docs/rest-v2.txt,
// rest-v2-openapi.txt, rest-v1.txt), with example values in place of the
// placeholders.
const (
	receiptV2            = `{"message_id":"1e41f423-24cf-4fa2-9a8a-888c30653305","status":"received","detail":"+64211234567"}`
	receiptV2Reference   = `{"message_id":"1e41f423-24cf-4fa2-9a8a-888c30653305","status":"sent","detail":"+64211234567","reference":"order-1234"}`
	receiptOpenAPI       = `{"id":"497f6eca-6276-4993-bfeb-53cbbbba6f08","status":"accepted","detail":"+642712345678"}`
	receiptV1Number      = `{"message_id":123456789,"status":"received","reference":"order-1234"}`
	receiptV1String      = `{"message_id":"123456789","status":"received"}`
	inboundV2            = `{"id":"3f9f0c4e-5b7a-4a43-9d0e-2c7d0a1b2c3d","source":"+64211234567","destination":"2021","content":"STOP","operator":"Spark"}`
	inboundV2Reply       = `{"id":"3f9f0c4e-5b7a-4a43-9d0e-2c7d0a1b2c3d","source":"+64211234567","destination":"2021","content":"Yes please","operator":"Spark","reply_to":"1e41f423-24cf-4fa2-9a8a-888c30653305","reference":"order-1234"}`
	inboundV2Binary      = `{"id":"3f9f0c4e-5b7a-4a43-9d0e-2c7d0a1b2c3d","source":"+64211234567","destination":"2021","content":"AAECAw==","operator":"Spark","encoding":"base64"}`
	inboundOpenAPI       = `{"id":"497f6eca-6276-4993-bfeb-53cbbbba6f08","source":"string","destination":"string","content":"string","operator":"string"}`
	inboundV1            = `{"id":987654,"source":"+64211234567","destination":"2021","content":"Hello","operator":"Vodafone"}`
	inboundV1ReplyNumber = `{"id":987654,"source":"+64211234567","destination":"2021","content":"Hello","reply_to":123456789,"reference":"order-1234"}`
)

func TestParseReceipt(t *testing.T) {
	t.Parallel()

	t.Run("ReadsTheDocumentedBodies", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			body string
			want Receipt
		}{
			{"RESTv2", receiptV2, Receipt{MessageID: "1e41f423-24cf-4fa2-9a8a-888c30653305", Status: "received",
				Detail: "+64211234567", API: APIv2}},
			{"RESTv2WithReference", receiptV2Reference, Receipt{MessageID: "1e41f423-24cf-4fa2-9a8a-888c30653305",
				Status: "sent", Detail: "+64211234567", Reference: "order-1234", API: APIv2}},
			{"OpenAPIWithID", receiptOpenAPI, Receipt{MessageID: "497f6eca-6276-4993-bfeb-53cbbbba6f08",
				Status: "accepted", Detail: "+642712345678", API: APIv2}},
			{"RESTv1NumberID", receiptV1Number, Receipt{MessageID: "123456789", Status: "received",
				Reference: "order-1234", API: APIv1}},
			{"RESTv1StringIDIsTakenAsGiven", receiptV1String, Receipt{MessageID: "123456789", Status: "received", API: APIv2}},
			{"UnknownStatusKeptAsItCame", `{"message_id":"m1","status":"Delivered-Maybe"}`,
				Receipt{MessageID: "m1", Status: "Delivered-Maybe", API: APIv2}},
			{"UnknownFieldsIgnored", `{"message_id":"m1","status":"sent","carrier":{"name":"x"},"extra":[1,2]}`,
				Receipt{MessageID: "m1", Status: "sent", API: APIv2}},
			{"NullIsAbsent", `{"message_id":"m1","status":"sent","detail":null,"reference":null,"id":null}`,
				Receipt{MessageID: "m1", Status: "sent", API: APIv2}},
			{"BothIDKeysAgreeing", `{"message_id":"m1","id":"m1","status":"sent"}`,
				Receipt{MessageID: "m1", Status: "sent", API: APIv2}},
			{"WhitespaceAroundTheObject", " \n\t" + receiptV1Number + "\r\n ",
				Receipt{MessageID: "123456789", Status: "received", Reference: "order-1234", API: APIv1}},
			{"ZeroID", `{"message_id":0,"status":"sent"}`, Receipt{MessageID: "0", Status: "sent", API: APIv1}},
			{"IDStringKeptWithItsSpaces", `{"message_id":" m 1 ","status":"sent"}`,
				Receipt{MessageID: " m 1 ", Status: "sent", API: APIv2}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				got, err := ParseReceipt([]byte(tc.body))
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
			})
		}
	})

	t.Run("RefusalsNameTheFieldAndTheRule", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			body string
			want string
		}{
			{"Empty", ``, "body: empty; a JSON object is required"},
			{"Malformed", `{"message_id":"m1",`, "body: not valid JSON at byte 19: unexpected end of JSON input"},
			{"NotJSON", `message_id=m1&status=sent`, "body: not valid JSON"},
			{"Array", `[{"message_id":"m1","status":"sent"}]`, "body: not a JSON object, got array"},
			{"String", `"sent"`, "body: not a JSON object, got string"},
			{"TrailingData", `{"message_id":"m1","status":"sent"} {}`,
				"body: not valid JSON at byte 37: invalid character '{' after top-level value"},
			{"NoID", `{"status":"sent"}`, "message_id: required"},
			{"NullID", `{"message_id":null,"status":"sent"}`, "message_id: required"},
			{"EmptyID", `{"message_id":"","status":"sent"}`, "message_id: must not be empty"},
			{"EmptyOpenAPIID", `{"id":"","status":"sent"}`, "id: must not be empty"},
			{"BooleanID", `{"message_id":true,"status":"sent"}`, "message_id: must be a string or an integer, got boolean"},
			{"ObjectID", `{"id":{"v":1},"status":"sent"}`, "id: must be a string or an integer, got object"},
			{"FractionID", `{"message_id":12.5,"status":"sent"}`, `message_id: must be a non-negative integer, got "12.5"`},
			{"NegativeID", `{"message_id":-3,"status":"sent"}`, `message_id: must be a non-negative integer, got "-3"`},
			{"ExponentID", `{"message_id":1e3,"status":"sent"}`, `message_id: must be a non-negative integer, got "1e3"`},
			{"IDsDisagree", `{"message_id":"m1","id":"m2","status":"sent"}`, "id: must equal message_id when both are given"},
			{"IDWithLineBreak", `{"message_id":"m1\r\nX-Evil: 1","status":"sent"}`,
				"message_id: must not contain control characters or invalid UTF-8"},
			{"IDTooLong", `{"message_id":"` + strings.Repeat("a", MaxIDBytes+1) + `","status":"sent"}`,
				"message_id: must be at most 128 bytes, got 129"},
			{"NoStatus", `{"message_id":"m1"}`, "status: required"},
			{"EmptyStatus", `{"message_id":"m1","status":""}`, "status: must not be empty"},
			{"NumberStatus", `{"message_id":"m1","status":3}`, "status: must be a string, got number"},
			{"StatusWithNewline", `{"message_id":"m1","status":"sent\n"}`,
				"status: must not contain control characters or invalid UTF-8"},
			{"StatusTooLong", `{"message_id":"m1","status":"` + strings.Repeat("s", MaxStatusBytes+1) + `"}`,
				"status: must be at most 64 bytes, got 65"},
			{"ArrayDetail", `{"message_id":"m1","status":"sent","detail":["a"]}`, "detail: must be a string, got array"},
			{"NumberReference", `{"message_id":"m1","status":"sent","reference":42}`, "reference: must be a string, got number"},
			{"AnMOIsNotADLR", inboundV2, "status: required"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				_, err := ParseReceipt([]byte(tc.body))
				requireFieldError(t, err, tc.want)
			})
		}
	})
}

func TestParseInbound(t *testing.T) {
	t.Parallel()

	t.Run("ReadsTheDocumentedBodies", func(t *testing.T) {
		t.Parallel()
		const v2ID = "3f9f0c4e-5b7a-4a43-9d0e-2c7d0a1b2c3d"
		for _, tc := range []struct {
			name string
			body string
			want Inbound
		}{
			{"RESTv2", inboundV2, Inbound{ID: v2ID, Source: "+64211234567", Destination: "2021", Content: "STOP",
				Operator: "Spark", API: APIv2}},
			{"RESTv2Reply", inboundV2Reply, Inbound{ID: v2ID, Source: "+64211234567", Destination: "2021",
				Content: "Yes please", Operator: "Spark", ReplyTo: "1e41f423-24cf-4fa2-9a8a-888c30653305",
				Reference: "order-1234", API: APIv2}},
			{"RESTv2Binary", inboundV2Binary, Inbound{ID: v2ID, Source: "+64211234567", Destination: "2021",
				Content: "AAECAw==", Operator: "Spark", Encoding: "base64", API: APIv2}},
			{"OpenAPI", inboundOpenAPI, Inbound{ID: "497f6eca-6276-4993-bfeb-53cbbbba6f08", Source: "string",
				Destination: "string", Content: "string", Operator: "string", API: APIv2}},
			{"RESTv1", inboundV1, Inbound{ID: "987654", Source: "+64211234567", Destination: "2021",
				Content: "Hello", Operator: "Vodafone", API: APIv1}},
			{"RESTv1NumberReplyTo", inboundV1ReplyNumber, Inbound{ID: "987654", Source: "+64211234567",
				Destination: "2021", Content: "Hello", ReplyTo: "123456789", Reference: "order-1234", API: APIv1}},
			{"EmptyContent", `{"id":"i1","source":"+64211234567","destination":"2021","content":""}`,
				Inbound{ID: "i1", Source: "+64211234567", Destination: "2021", API: APIv2}},
			{"NoContentIsEmpty", `{"id":"i1","source":"+64211234567","destination":"2021"}`,
				Inbound{ID: "i1", Source: "+64211234567", Destination: "2021", API: APIv2}},
			{"UnicodeContentKept", `{"id":"i1","source":"+64211234567","destination":"2021","content":"Kia ora \u0101 \ud83d\ude00\nline 2"}`,
				Inbound{ID: "i1", Source: "+64211234567", Destination: "2021", Content: "Kia ora ā 😀\nline 2", API: APIv2}},
			{"UnknownEncodingKept", `{"id":"i1","source":"s","destination":"d","content":"x","encoding":"hex"}`,
				Inbound{ID: "i1", Source: "s", Destination: "d", Content: "x", Encoding: "hex", API: APIv2}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				got, err := ParseInbound([]byte(tc.body))
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
			})
		}
	})

	t.Run("RefusalsNameTheFieldAndTheRule", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			body string
			want string
		}{
			{"Empty", "  ", "body: empty; a JSON object is required"},
			{"Null", `null`, "body: not a JSON object, got null"},
			{"Malformed", `{"id":"i1"`, "body: not valid JSON at byte 10: unexpected end of JSON input"},
			{"NoID", `{"source":"s","destination":"d","content":"x"}`, "id: required"},
			{"EmptyID", `{"id":"","source":"s","destination":"d","content":"x"}`, "id: must not be empty"},
			{"FractionID", `{"id":1.0,"source":"s","destination":"d","content":"x"}`, `id: must be a non-negative integer, got "1.0"`},
			{"ArrayID", `{"id":[1],"source":"s","destination":"d","content":"x"}`, "id: must be a string or an integer, got array"},
			{"NoSource", `{"id":"i1","destination":"d","content":"x"}`, "source: required"},
			{"NumberSource", `{"id":"i1","source":64211234567,"destination":"d","content":"x"}`, "source: must be a string, got number"},
			{"EmptyDestination", `{"id":"i1","source":"s","destination":"","content":"x"}`, "destination: must not be empty"},
			{"NumberDestination", `{"id":"i1","source":"s","destination":2021,"content":"x"}`, "destination: must be a string, got number"},
			{"ObjectContent", `{"id":"i1","source":"s","destination":"d","content":{"text":"x"}}`, "content: must be a string, got object"},
			{"BooleanOperator", `{"id":"i1","source":"s","destination":"d","content":"x","operator":false}`, "operator: must be a string, got boolean"},
			{"NumberEncoding", `{"id":"i1","source":"s","destination":"d","content":"x","encoding":64}`, "encoding: must be a string, got number"},
			{"ObjectReplyTo", `{"id":"i1","source":"s","destination":"d","content":"x","reply_to":{}}`, "reply_to: must be a string or an integer, got object"},
			{"NegativeReplyTo", `{"id":"i1","source":"s","destination":"d","content":"x","reply_to":-1}`, `reply_to: must be a non-negative integer, got "-1"`},
			{"ArrayReference", `{"id":"i1","source":"s","destination":"d","content":"x","reference":[]}`, "reference: must be a string, got array"},
			{"ADLRIsNotAnMO", receiptOpenAPI, "source: required"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				_, err := ParseInbound([]byte(tc.body))
				requireFieldError(t, err, tc.want)
			})
		}
	})
}

func requireFieldError(t *testing.T, err error, want string) {
	t.Helper()
	require.EqualError(t, err, want)
	require.ErrorIs(t, err, ErrInvalid)
	var fe *FieldError
	require.ErrorAs(t, err, &fe)
	field, _, _ := strings.Cut(want, ":")
	require.Equal(t, field, fe.Field)
}

// receiptBodyOf writes r back as the gateway would send it: the id as a JSON number
// for REST v1, as a string for REST v2.
func receiptBodyOf(t *testing.T, r Receipt) []byte {
	t.Helper()
	m := map[string]any{"message_id": r.MessageID, "status": r.Status}
	if r.API == APIv1 {
		m["message_id"] = json.Number(r.MessageID)
	}
	if r.Detail != "" {
		m["detail"] = r.Detail
	}
	if r.Reference != "" {
		m["reference"] = r.Reference
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// inboundBodyOf writes in back as the gateway would send it.
func inboundBodyOf(t *testing.T, in Inbound) []byte {
	t.Helper()
	m := map[string]any{"id": in.ID, "source": in.Source, "destination": in.Destination, "content": in.Content}
	if in.API == APIv1 {
		m["id"] = json.Number(in.ID)
	}
	for k, v := range map[string]string{"operator": in.Operator, "encoding": in.Encoding,
		"reply_to": in.ReplyTo, "reference": in.Reference} {
		if v != "" {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

// requireRefusal checks the shape of every parse error.
func requireRefusal(t *testing.T, err error) {
	t.Helper()
	var fe *FieldError
	require.True(t, errors.As(err, &fe), "error %v (%T) is not a *FieldError", err, err)
	require.ErrorIs(t, err, ErrInvalid)
	require.NotEmpty(t, fe.Field)
	require.NotEmpty(t, fe.Rule)
	require.NotContains(t, err.Error(), "\n")
}

// requireLikeEncodingJSON checks that our encoding of v is the object
// encoding/json makes of it.
func requireLikeEncodingJSON(t *testing.T, ours []byte, v any) {
	t.Helper()
	require.True(t, json.Valid(ours), "%s", ours)
	std, err := json.Marshal(v)
	require.NoError(t, err)
	var got, want map[string]any
	require.NoError(t, json.Unmarshal(ours, &got))
	require.NoError(t, json.Unmarshal(std, &want))
	require.Equal(t, want, got)
}

var fuzzReceivedAt = time.Date(2026, 11, 22, 9, 0, 5, 123456789, time.UTC)

// FuzzParseReceipt checks that no body panics the parser, that every refusal is a
// *FieldError, and that an accepted receipt is header-safe, survives being sent
// again in the gateway's form, and survives its stored form.
func FuzzParseReceipt(f *testing.F) {
	for _, seed := range []string{receiptV2, receiptV2Reference, receiptOpenAPI, receiptV1Number, receiptV1String,
		`{"message_id":"m1","id":"m1","status":"sent"}`, `{"message_id":1e3,"status":"sent"}`,
		`{"message_id":"m\u0000","status":"sent"}`, `{"MESSAGE_ID":"m1","Status":"x"}`, `[]`, `{`, ``} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseReceipt(body)
		if err != nil {
			requireRefusal(t, err)
			return
		}
		require.NotEmpty(t, r.MessageID)
		require.NotEmpty(t, r.Status)
		require.Contains(t, []string{APIv1, APIv2}, r.API)
		require.NotContains(t, ReceiptMsgID(r), "\r")
		require.NotContains(t, ReceiptMsgID(r), "\n")
		require.True(t, json.Valid(body), "accepted a body that is not JSON")

		again, err := ParseReceipt(receiptBodyOf(t, r))
		require.NoError(t, err)
		require.Equal(t, r, again)

		r.ReceivedAt = fuzzReceivedAt
		stored := appendReceipt(nil, &r)
		requireLikeEncodingJSON(t, stored, r)
		var back Receipt
		require.NoError(t, json.Unmarshal(stored, &back))
		require.Equal(t, r, back)
	})
}

// FuzzParseInbound is FuzzParseReceipt for inbound messages.
func FuzzParseInbound(f *testing.F) {
	for _, seed := range []string{inboundV2, inboundV2Reply, inboundV2Binary, inboundOpenAPI, inboundV1,
		inboundV1ReplyNumber, `{"id":"i1","source":"s","destination":"d"}`, `{"id":-1}`, `null`, `{"id":"\ud800"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := ParseInbound(body)
		if err != nil {
			requireRefusal(t, err)
			return
		}
		require.NotEmpty(t, in.ID)
		require.NotEmpty(t, in.Source)
		require.NotEmpty(t, in.Destination)
		require.Contains(t, []string{APIv1, APIv2}, in.API)
		require.NotContains(t, InboundMsgID(in), "\r")
		require.NotContains(t, InboundMsgID(in), "\n")
		require.True(t, json.Valid(body), "accepted a body that is not JSON")

		again, err := ParseInbound(inboundBodyOf(t, in))
		require.NoError(t, err)
		require.Equal(t, in, again)

		in.ReceivedAt = fuzzReceivedAt
		stored := appendInbound(nil, &in)
		requireLikeEncodingJSON(t, stored, in)
		var back Inbound
		require.NoError(t, json.Unmarshal(stored, &back))
		require.Equal(t, in, back)
	})
}

func TestEncode(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 9, 0, 5, 120000000, time.UTC)
	t.Run("ReceiptMatchesEncodingJSON", func(t *testing.T) {
		t.Parallel()
		full := Receipt{MessageID: "m-1", Status: "received", Detail: "<+642\u2028>", Reference: "a\"b\\c", API: APIv2, ReceivedAt: at}
		requireLikeEncodingJSON(t, appendReceipt(nil, &full), full)
		bare := Receipt{MessageID: "1", Status: "sent", API: APIv1, ReceivedAt: at}
		require.Equal(t, `{"message_id":"1","status":"sent","api":"v1","received_at":"2026-11-22T09:00:05.12Z"}`,
			string(appendReceipt(nil, &bare)))
	})
	t.Run("InboundMatchesEncodingJSON", func(t *testing.T) {
		t.Parallel()
		full := Inbound{ID: "i", Source: "+64211234567", Destination: "2021", Content: "line\nbreak\ttab \x01",
			Operator: "Spark", Encoding: "base64", ReplyTo: "m-1", Reference: "r", API: APIv2, ReceivedAt: at}
		requireLikeEncodingJSON(t, appendInbound(nil, &full), full)
		bare := Inbound{ID: "7", Source: "s", Destination: "d", API: APIv1, ReceivedAt: at}
		require.Equal(t, `{"id":"7","source":"s","destination":"d","content":"","api":"v1","received_at":"2026-11-22T09:00:05.12Z"}`,
			string(appendInbound(nil, &bare)))
		requireLikeEncodingJSON(t, appendInbound(nil, &bare), bare)
	})
}

// TestFieldLimits: every field has a maximum, and one over it is refused naming
// the field; a field at its maximum is taken.
func TestFieldLimits(t *testing.T) {
	t.Parallel()
	const uuid = "1e41f423-24cf-4fa2-9a8a-888c30653305"
	for _, tc := range []struct {
		mo    bool
		field string
		max   int
	}{
		{false, "message_id", MaxIDBytes},
		{false, "id", MaxIDBytes},
		{false, "status", MaxStatusBytes},
		{false, "detail", MaxDetailBytes},
		{false, "reference", MaxReferenceBytes},
		{true, "id", MaxIDBytes},
		{true, "source", MaxNumberBytes},
		{true, "destination", MaxNumberBytes},
		{true, "operator", MaxOperatorBytes},
		{true, "encoding", MaxEncodingBytes},
		{true, "reply_to", MaxIDBytes},
		{true, "reference", MaxReferenceBytes},
	} {
		body := func(n int) []byte {
			v := map[string]any{"message_id": uuid, "status": "received"}
			if tc.mo {
				v = map[string]any{"id": uuid, "source": "+64211234567", "destination": "2021", "content": "hi"}
			}
			if tc.field == "id" && !tc.mo {
				delete(v, "message_id")
			}
			v[tc.field] = strings.Repeat("9", n)
			b, err := json.Marshal(v)
			require.NoError(t, err)
			return b
		}
		parse := func(b []byte) error {
			if tc.mo {
				_, err := ParseInbound(b)
				return err
			}
			_, err := ParseReceipt(b)
			return err
		}
		require.NoError(t, parse(body(tc.max)), "%s at its maximum of %d", tc.field, tc.max)
		err := parse(body(tc.max + 1))
		var fe *FieldError
		require.ErrorAs(t, err, &fe, "%s over its maximum", tc.field)
		require.Equal(t, tc.field, fe.Field)
		require.Contains(t, fe.Rule, "at most")
		require.Less(t, len(err.Error()), 200, "the error does not quote the value")
	}
	// A control character in a value that may become a name is refused.
	_, err := ParseInbound([]byte(`{"id":"x","source":"+6421\n","destination":"2021","content":"hi"}`))
	require.ErrorContains(t, err, "source: must not contain control characters")
}
