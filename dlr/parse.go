package dlr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Limits of a callback's values, in bytes (docs/contract.md, "Callback field
// limits"). Gateway ids are UUIDs (36 bytes) or decimal integers, statuses are
// short words, numbers are at most 15 digits and short codes or sender ids
// shorter still, and a reference is one jetsms sent (at most
// job.ReferenceMaxLen), so these only refuse bodies that are not callbacks. The
// gateway's documents give no limits; these are the safe reading. Each value
// except content and detail must also be free of control characters and invalid
// UTF-8, as it may become part of a header, a subject or a KV key.
const (
	MaxIDBytes        = 128 // message_id, id, reply_to
	MaxStatusBytes    = 64
	MaxNumberBytes    = 64 // source, destination
	MaxReferenceBytes = 128
	MaxOperatorBytes  = 64
	MaxEncodingBytes  = 32
	MaxDetailBytes    = 1024
)

// ErrInvalid is matched by errors.Is for every error ParseReceipt and ParseInbound
// return: the body is not a callback jetsms can store.
var ErrInvalid = errors.New("invalid callback")

// FieldError says which field of a callback body breaks which rule, e.g.
// "status: must be a string, got number". Field is the JSON key as the gateway
// sends it, or "body" for the body as a whole. Its Error text is meant for the
// HTTP answer: it quotes no string of the body, only (cut short) a malformed
// number or the character where the JSON syntax breaks.
type FieldError struct {
	Field string
	Rule  string
}

// Error returns "<field>: <rule>".
func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

// Is reports whether target is ErrInvalid.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// receiptBody is a DLR body of either API. Each field stays raw so that its JSON
// type can be checked and named in the error; null counts as absent.
type receiptBody struct {
	MessageID json.RawMessage `json:"message_id"`
	ID        json.RawMessage `json:"id"`
	Status    json.RawMessage `json:"status"`
	Detail    json.RawMessage `json:"detail"`
	Reference json.RawMessage `json:"reference"`
}

// inboundBody is an MO body of either API.
type inboundBody struct {
	ID          json.RawMessage `json:"id"`
	Source      json.RawMessage `json:"source"`
	Destination json.RawMessage `json:"destination"`
	Content     json.RawMessage `json:"content"`
	Operator    json.RawMessage `json:"operator"`
	Encoding    json.RawMessage `json:"encoding"`
	ReplyTo     json.RawMessage `json:"reply_to"`
	Reference   json.RawMessage `json:"reference"`
}

// ParseReceipt reads a delivery receipt body of REST v2
// ({"message_id","status","detail","reference"}, or "id" for "message_id" as the
// OpenAPI page has it) or REST v1 ({"message_id","status","reference"}, the id a
// JSON integer or a string).
//
// Rules: the body is one JSON object; the id (message_id, else id) is a non-empty
// string or a non-negative JSON integer, at most MaxIDBytes, without control
// characters; when both message_id and id are given they must be equal; status is
// a non-empty string of at most MaxStatusBytes without control characters, kept as
// it came even when the status is not one the documents list; detail and
// reference, when given, are strings. Unknown fields are ignored, JSON null is
// taken as absent, and keys match without regard to case (as encoding/json does).
//
// API is APIv1 when the id is a JSON number, else APIv2. ReceivedAt is left zero.
// A body that breaks a rule gets a *FieldError, which matches ErrInvalid.
func ParseReceipt(body []byte) (Receipt, error) {
	var raw receiptBody
	if err := decodeObject(body, &raw); err != nil {
		return Receipt{}, err
	}
	var (
		r       Receipt
		numeric bool
		err     error
	)
	switch {
	case present(raw.MessageID):
		if r.MessageID, numeric, err = parseID("message_id", raw.MessageID); err != nil {
			return Receipt{}, err
		}
		if present(raw.ID) {
			other, _, err := parseID("id", raw.ID)
			if err != nil {
				return Receipt{}, err
			}
			if other != r.MessageID {
				return Receipt{}, fieldErr("id", "must equal message_id when both are given")
			}
		}
	case present(raw.ID):
		if r.MessageID, numeric, err = parseID("id", raw.ID); err != nil {
			return Receipt{}, err
		}
	default:
		return Receipt{}, fieldErr("message_id", "required")
	}
	r.API = apiOf(numeric)

	if r.Status, err = requiredString("status", raw.Status); err != nil {
		return Receipt{}, err
	}
	if err := headerSafe("status", r.Status, MaxStatusBytes); err != nil {
		return Receipt{}, err
	}
	if r.Detail, err = optionalString("detail", raw.Detail); err != nil {
		return Receipt{}, err
	}
	if len(r.Detail) > MaxDetailBytes {
		return Receipt{}, fieldErr("detail", "must be at most %d bytes, got %d", MaxDetailBytes, len(r.Detail))
	}
	if r.Reference, err = optionalString("reference", raw.Reference); err != nil {
		return Receipt{}, err
	}
	if err := headerSafe("reference", r.Reference, MaxReferenceBytes); err != nil {
		return Receipt{}, err
	}
	return r, nil
}

// ParseInbound reads an inbound (MO) message body of REST v2 (id a UUID string)
// or REST v1 (id a JSON integer): {"id","source","destination","content",
// "operator"}, with "reply_to", "reference" and "encoding" when they apply.
//
// Rules: the body is one JSON object; id follows the id rules of ParseReceipt;
// source and destination are non-empty strings; content is a string and may be
// empty or absent (an empty SMS); operator, encoding and reference, when given,
// are strings; reply_to, when given, is a string or a non-negative integer
// (written in decimal). Encoding is kept as it came; content is not decoded.
// Unknown fields are ignored and JSON null is taken as absent.
//
// API is APIv1 when the id is a JSON number, else APIv2. ReceivedAt is left zero.
// A body that breaks a rule gets a *FieldError, which matches ErrInvalid.
func ParseInbound(body []byte) (Inbound, error) {
	var raw inboundBody
	if err := decodeObject(body, &raw); err != nil {
		return Inbound{}, err
	}
	var in Inbound
	if !present(raw.ID) {
		return Inbound{}, fieldErr("id", "required")
	}
	id, numeric, err := parseID("id", raw.ID)
	if err != nil {
		return Inbound{}, err
	}
	in.ID, in.API = id, apiOf(numeric)
	if in.Source, err = requiredString("source", raw.Source); err != nil {
		return Inbound{}, err
	}
	if in.Destination, err = requiredString("destination", raw.Destination); err != nil {
		return Inbound{}, err
	}
	if in.Content, err = optionalString("content", raw.Content); err != nil {
		return Inbound{}, err
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{
		{"operator", raw.Operator, &in.Operator},
		{"encoding", raw.Encoding, &in.Encoding},
		{"reference", raw.Reference, &in.Reference},
	} {
		if *f.dst, err = optionalString(f.name, f.raw); err != nil {
			return Inbound{}, err
		}
	}
	if present(raw.ReplyTo) {
		if in.ReplyTo, err = replyTo(raw.ReplyTo); err != nil {
			return Inbound{}, err
		}
	}
	for _, f := range []struct {
		name string
		v    string
		max  int
	}{
		{"source", in.Source, MaxNumberBytes},
		{"destination", in.Destination, MaxNumberBytes},
		{"operator", in.Operator, MaxOperatorBytes},
		{"encoding", in.Encoding, MaxEncodingBytes},
		{"reply_to", in.ReplyTo, MaxIDBytes},
		{"reference", in.Reference, MaxReferenceBytes},
	} {
		if err := headerSafe(f.name, f.v, f.max); err != nil {
			return Inbound{}, err
		}
	}
	return in, nil
}

func apiOf(numeric bool) string {
	if numeric {
		return APIv1
	}
	return APIv2
}

// decodeObject decodes body, which must be exactly one JSON object, into dst.
func decodeObject(body []byte, dst any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return fieldErr("body", "empty; a JSON object is required")
	}
	if trimmed[0] != '{' {
		if !json.Valid(trimmed) {
			return fieldErr("body", "not valid JSON")
		}
		return fieldErr("body", "not a JSON object, got %s", kindOf(trimmed))
	}
	if err := json.Unmarshal(body, dst); err != nil {
		// Every field of dst is a json.RawMessage, which takes any valid value, so
		// this is a syntax error.
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return fieldErr("body", "not valid JSON at byte %d: %s", syntax.Offset, syntax.Error())
		}
		return fieldErr("body", "not a callback: %s", err.Error())
	}
	return nil
}

// present reports whether a field was given with a value other than null.
func present(raw json.RawMessage) bool { return len(raw) > 0 && raw[0] != 'n' }

// kindOf names the JSON type of a valid JSON value.
func kindOf(raw []byte) string {
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// parseID reads a gateway id: a string, kept as given, or a non-negative JSON
// integer, kept as its decimal text (numeric is then true).
func parseID(field string, raw json.RawMessage) (id string, numeric bool, err error) {
	switch kindOf(raw) {
	case "string":
		id = unquote(raw)
		if id == "" {
			return "", false, fieldErr(field, "must not be empty")
		}
	case "number":
		if !digits(raw) {
			return "", false, fieldErr(field, "must be a non-negative integer, got %s", quoteShort(raw))
		}
		id, numeric = string(raw), true
	default:
		return "", false, fieldErr(field, "must be a string or an integer, got %s", kindOf(raw))
	}
	if err := headerSafe(field, id, MaxIDBytes); err != nil {
		return "", false, err
	}
	return id, numeric, nil
}

// replyTo reads reply_to: the id of the message an MO answers, a string or (REST
// v1) an integer.
func replyTo(raw json.RawMessage) (string, error) {
	switch kindOf(raw) {
	case "string":
		return unquote(raw), nil
	case "number":
		if !digits(raw) {
			return "", fieldErr("reply_to", "must be a non-negative integer, got %s", quoteShort(raw))
		}
		return string(raw), nil
	}
	return "", fieldErr("reply_to", "must be a string or an integer, got %s", kindOf(raw))
}

func requiredString(field string, raw json.RawMessage) (string, error) {
	if !present(raw) {
		return "", fieldErr(field, "required")
	}
	s, err := optionalString(field, raw)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", fieldErr(field, "must not be empty")
	}
	return s, nil
}

func optionalString(field string, raw json.RawMessage) (string, error) {
	if !present(raw) {
		return "", nil
	}
	if kind := kindOf(raw); kind != "string" {
		return "", fieldErr(field, "must be a string, got %s", kind)
	}
	return unquote(raw), nil
}

// unquote returns the value of a JSON string literal taken from a valid JSON
// document. Most gateway values have no escapes and are valid UTF-8: those are
// copied as they are; the others go through encoding/json, which also replaces
// invalid UTF-8 with U+FFFD.
func unquote(raw json.RawMessage) string {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		// raw is a string literal of a document encoding/json has accepted.
		return string(inner)
	}
	return s
}

// headerSafe checks a value that becomes part of a Nats-Msg-Id header: a line
// break would end the header, and other control characters have no place in an id.
func headerSafe(field, s string, maxBytes int) error {
	if len(s) > maxBytes {
		return fieldErr(field, "must be at most %d bytes, got %d", maxBytes, len(s))
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return fieldErr(field, "must not contain control characters or invalid UTF-8")
		}
	}
	return nil
}

// digits reports whether a JSON number is written with digits alone: an integer
// without sign, fraction or exponent.
func digits(raw []byte) bool {
	for _, c := range raw {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(raw) > 0
}

// quoteShort quotes a malformed number for an error message, cut to a length
// that keeps the message one short line.
func quoteShort(raw []byte) string {
	const limit = 32
	if len(raw) > limit {
		return strconv.Quote(string(raw[:limit])) + "…"
	}
	return strconv.Quote(string(raw))
}
