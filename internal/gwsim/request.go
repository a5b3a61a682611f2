package gwsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"
)

// submission is the POST /messages body.
type submission struct {
	Destination string `json:"destination"`
	attributes
}

// broadcastSubmission is the REST v1 POST /messages/broadcast body: the same
// attributes for many destinations.
type broadcastSubmission struct {
	Destination []string `json:"destination"`
	attributes
}

// attributes are the submission's attributes other than destination. Absent and
// empty strings are the same to the gateway; scheduled and expires stay strings so
// a bad timestamp gets its own error rather than a type error.
type attributes struct {
	Content   string  `json:"content"`
	Source    string  `json:"source"`
	Reference string  `json:"reference"`
	Class     string  `json:"class"`
	Mask      string  `json:"mask"`
	SMSClass  *int    `json:"sms_class"`
	Scheduled *string `json:"scheduled"`
	Expires   *string `json:"expires"`
}

// rejection is a validation answer: its status and its body.
type rejection struct {
	status int
	body   []byte
}

// errorBody is the gateway's error body. Desc is a []string for missing_attrib and
// per-field invalid_attrib errors and a string for the others, as the REST v2 page
// shows both forms.
type errorBody struct {
	Error string `json:"error"`
	Desc  any    `json:"error-desc"`
}

// Error codes of the REST v2 and v1 pages.
const (
	codeSendFailed     = "send_failed"
	codeInvalidJSON    = "invalid_json"
	codeMissingAttrib  = "missing_attrib"
	codeInvalidAttrib  = "invalid_attrib"
	codeBroadcastLimit = "broadcast_limit" // REST v1 only
)

// Error descriptions of the REST v2 page, word for word.
const (
	descSendFailed     = "Could not queue message due to an unknown error"
	descInvalidJSON    = "Invalid JSON data in the request body"
	descScheduledRFC   = "Invalid scheduled timestamp (must be RFC3339)"
	descScheduledLimit = "Invalid scheduled timestamp (must be less than 60 days)"
	descScheduledPast  = "Invalid scheduled timestamp (must not be in the past)"
	descBroadcastLimit = "Broadcast limit has been exceeded"
)

func reject(status int, code string, desc any) *rejection {
	b, err := json.Marshal(errorBody{Error: code, Desc: desc})
	if err != nil {
		// Strings and string slices always marshal; this keeps the answer valid
		// should that ever change.
		b = []byte(`{"error":"` + code + `","error-desc":"` + code + `"}`)
	}
	return &rejection{status: status, body: b}
}

// decode parses and validates a POST /messages body as the gateway does, in this
// order: JSON syntax (invalid_json), attribute types (invalid_attrib), required
// attributes (missing_attrib), attribute values (invalid_attrib), then the scheduled
// time (400 when not RFC 3339 or too far ahead, 422 when in the past). It returns
// the message to accept, without ID, Status and At, or the rejection.
func decode(body []byte, now time.Time) (Message, *rejection) {
	var sub submission
	if rej := unmarshal(body, &sub); rej != nil {
		return Message{}, rej
	}
	if rej := sub.missing(sub.Destination == ""); rej != nil {
		return Message{}, rej
	}
	var invalid []string
	if !international(sub.Destination) {
		invalid = append(invalid, fmt.Sprintf("destination: %q is not in international format: want + then at most 15 digits, e.g. +64211234567", sub.Destination))
	}
	m, rej := sub.check(invalid, now)
	if rej != nil {
		return Message{}, rej
	}
	m.Destination = sub.Destination
	return m, nil
}

// decodeBroadcast parses and validates a REST v1 POST /messages/broadcast body in
// decode's order, with the broadcast limit checked after the required attributes
// (400 broadcast_limit when more than limit destinations are given). Destinations
// are not checked here: each invalid one gets a failure entry in the 201 answer.
// It returns the destinations and the message to accept for each, without
// Destination, ID, Status and At, or the rejection.
func decodeBroadcast(body []byte, now time.Time, limit int) ([]string, Message, *rejection) {
	var sub broadcastSubmission
	if rej := unmarshal(body, &sub); rej != nil {
		return nil, Message{}, rej
	}
	if rej := sub.missing(len(sub.Destination) == 0); rej != nil {
		return nil, Message{}, rej
	}
	if n := len(sub.Destination); n > limit {
		return nil, Message{}, reject(http.StatusBadRequest, codeBroadcastLimit,
			[]string{fmt.Sprintf("%s: %d destinations given, at most %d allowed", descBroadcastLimit, n, limit)})
	}
	m, rej := sub.check(nil, now)
	if rej != nil {
		return nil, Message{}, rej
	}
	return sub.Destination, m, nil
}

// unmarshal decodes a submission body into sub, or returns the gateway's
// rejection: invalid_json for bad syntax or a body that is not an object,
// invalid_attrib naming the field for an attribute of the wrong type.
func unmarshal(body []byte, sub any) *rejection {
	err := json.Unmarshal(body, sub)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return reject(http.StatusBadRequest, codeInvalidAttrib,
			[]string{fmt.Sprintf("%s: must be %s, not %s", typeErr.Field, jsonKind(typeErr), typeErr.Value)})
	}
	if typeErr != nil {
		return reject(http.StatusBadRequest, codeInvalidJSON, descInvalidJSON+": the body must be a JSON object")
	}
	return reject(http.StatusBadRequest, codeInvalidJSON, descInvalidJSON+": "+err.Error())
}

// missing returns the missing_attrib rejection when the destination (noDest) or
// the content is missing or empty.
func (a *attributes) missing(noDest bool) *rejection {
	var missing []string
	if noDest {
		missing = append(missing, "destination is required")
	}
	if a.Content == "" {
		missing = append(missing, "content is required")
	}
	if missing != nil {
		return reject(http.StatusBadRequest, codeMissingAttrib, missing)
	}
	return nil
}

// check validates the attribute values, after the destination's problems in
// invalid (an invalid_attrib rejection lists them all), then the scheduled time,
// and returns the message they make, without Destination.
func (a *attributes) check(invalid []string, now time.Time) (Message, *rejection) {
	if a.SMSClass != nil && (*a.SMSClass < 0 || *a.SMSClass > 3) {
		invalid = append(invalid, fmt.Sprintf("sms_class: %d is out of range: want 0 to 3", *a.SMSClass))
	}
	var expires *time.Time
	if a.Expires != nil {
		t, err := time.Parse(time.RFC3339, *a.Expires)
		if err != nil {
			invalid = append(invalid, fmt.Sprintf("expires: %q is not an RFC 3339 timestamp", *a.Expires))
		} else {
			expires = &t
		}
	}
	if invalid != nil {
		return Message{}, reject(http.StatusBadRequest, codeInvalidAttrib, invalid)
	}

	var scheduled *time.Time
	if a.Scheduled != nil {
		t, err := time.Parse(time.RFC3339, *a.Scheduled)
		switch {
		case err != nil:
			return Message{}, reject(http.StatusBadRequest, codeInvalidAttrib, descScheduledRFC)
		case t.Before(now):
			return Message{}, reject(http.StatusUnprocessableEntity, codeInvalidAttrib, descScheduledPast)
		case !t.Before(now.Add(ScheduleLimit)):
			return Message{}, reject(http.StatusBadRequest, codeInvalidAttrib, descScheduledLimit)
		}
		scheduled = &t
	}

	class := a.Class
	if class == "" {
		class = ClassDefault
	}
	return Message{
		Source:    a.Source,
		Content:   a.Content,
		Reference: a.Reference,
		Class:     class,
		Mask:      a.Mask,
		SMSClass:  a.SMSClass,
		Scheduled: scheduled,
		Expires:   expires,
	}, nil
}

// international reports whether d is '+', a country code digit 1–9, then digits,
// at most 15 digits in all (E.164), as docs/contract.md has it.
func international(d string) bool {
	if len(d) < 3 || len(d) > 16 || d[0] != '+' || d[1] < '1' || d[1] > '9' {
		return false
	}
	for i := 2; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

// jsonKind names the JSON type a field wants, in the terms of a JSON client.
func jsonKind(e *json.UnmarshalTypeError) string {
	if e.Type == nil {
		return "another type"
	}
	switch e.Type.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int:
		return "an integer"
	case reflect.Slice:
		return "an array of strings"
	}
	return "a " + e.Type.String()
}
