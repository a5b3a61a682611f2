package dispatcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// maxIDDigits is the most digits of a REST v1 id, an int64.
const maxIDDigits = 19

// parseCreatedID returns the id of the message a REST v1 POST /messages
// created, in canonical decimal: from the body, an integer bare (12345) or in
// brackets ([12345]), as the REST v1 page shows both; otherwise from the last
// path segment of the Location header (…/messages/12345). A quoted integer is
// taken as well. Ids are positive int64s; anything else is no id.
func parseCreatedID(body []byte, location string) (string, bool) {
	if id, ok := bodyID(body); ok {
		return id, true
	}
	return locationID(location)
}

// bodyID reads an id from a 201's body: a JSON integer, or an array holding
// exactly one.
func bodyID(body []byte) (string, bool) {
	b := trimJSONSpace(body)
	if len(b) == 0 {
		return "", false
	}
	if b[0] == '[' {
		var items []json.RawMessage
		if json.Unmarshal(b, &items) != nil || len(items) != 1 {
			return "", false
		}
		b = items[0]
	}
	return jsonID(b)
}

// locationID reads an id from the last path segment of a Location header,
// absolute or relative.
func locationID(location string) (string, bool) {
	if location == "" {
		return "", false
	}
	u, err := url.Parse(location)
	if err != nil {
		return "", false
	}
	p := strings.TrimRight(u.Path, "/")
	return decimalID(p[strings.LastIndexByte(p, '/')+1:])
}

// jsonID reads a JSON value holding an id: an integer, or a string of one.
func jsonID(raw []byte) (string, bool) {
	raw = trimJSONSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return decimalID(s)
	}
	return decimalID(string(raw))
}

// decimalID returns s in canonical decimal when it is a positive int64 written
// in ASCII digits alone (no sign, no exponent).
func decimalID(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	s = strings.TrimLeft(s, "0")
	if s == "" || len(s) > maxIDDigits {
		return "", false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return "", false
	}
	return strconv.FormatInt(n, 10), true
}

// trimJSONSpace trims the four whitespace characters JSON allows around a
// value.
func trimJSONSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

// broadcastEntry is one destination's result in a broadcast's 201 answer.
type broadcastEntry struct {
	status      string // "success" or "failure" as documented; kept as given
	message     string // the failure's reason; "" for null
	destination string // as the gateway echoed it
	id          string // canonical decimal; "" for null or an unreadable id
}

// rawEntry holds one result with every field raw, so that one field of an
// unexpected type does not lose the others.
type rawEntry struct {
	Status      json.RawMessage `json:"status"`
	Message     json.RawMessage `json:"message"`
	Destination json.RawMessage `json:"destination"`
	ID          json.RawMessage `json:"id"`
}

var errNotResults = errors.New("broadcast answer is not an array of results")

// parseBroadcast reads a broadcast's 201 body: a JSON array with one object per
// destination, {"status","message","destination","id"}. It fails when the body
// is not an array of objects; within an object, a field of another type than
// documented reads as absent (a result without a readable destination then
// matches no job).
func parseBroadcast(body []byte) ([]broadcastEntry, error) {
	b := trimJSONSpace(body)
	if len(b) == 0 || b[0] != '[' {
		return nil, errNotResults
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", errNotResults, err)
	}
	entries := make([]broadcastEntry, len(raw))
	for i, item := range raw {
		if item[0] != '{' {
			return nil, fmt.Errorf("%w: result %d is not an object", errNotResults, i)
		}
		var re rawEntry
		if err := json.Unmarshal(item, &re); err != nil {
			return nil, fmt.Errorf("%w: result %d: %w", errNotResults, i, err)
		}
		en := &entries[i]
		en.status, _ = jsonString(re.Status)
		en.message, _ = jsonString(re.Message)
		en.destination, _ = jsonString(re.Destination)
		en.id, _ = jsonID(re.ID)
	}
	return entries, nil
}

// jsonString returns raw's value when it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// messageV1 is the GET /messages/{id} answer. The page types "id" as a string
// and shows it as a number: both are read.
type messageV1 struct {
	ID          json.RawMessage `json:"id"`
	Source      string          `json:"source"`
	Destination string          `json:"destination"`
	Content     string          `json:"content"`
	Status      string          `json:"status"`
	Reference   string          `json:"reference"`
}

// parseMessageV1 reads a GET /messages/{id} answer; asked is the id asked
// for, kept when the answer has none.
func parseMessageV1(body []byte, asked string) (Message, error) {
	var mv messageV1
	if err := json.Unmarshal(body, &mv); err != nil {
		return Message{}, err
	}
	m := Message{ID: asked, Source: mv.Source, Destination: mv.Destination, Content: mv.Content,
		Status: mv.Status, Reference: mv.Reference}
	if len(mv.ID) > 0 && string(mv.ID) != "null" {
		if s, ok := jsonString(mv.ID); ok && s != "" {
			m.ID = s
		} else if id, ok := jsonID(mv.ID); ok {
			m.ID = id
		} else {
			return Message{}, fmt.Errorf("id %s is neither a string nor a positive integer", mv.ID)
		}
	}
	return m, nil
}
