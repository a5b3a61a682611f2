package gwsim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// ErrInvalidMix is wrapped by every error of ParseMix and Mix.Validate.
var ErrInvalidMix = errors.New("gwsim: invalid fault mix")

// Fault is one way a POST /messages (or REST v1 POST /messages/broadcast) request
// can go wrong. Inject queues faults for the next requests; Mix draws them at
// random. Each constant's comment says what the client sees and whether the
// message is accepted.
type Fault int

// The faults. Unless a comment says otherwise, a faulted message is not accepted: it
// is not stored, OnAccept is not called and Stats.Accepted does not move.
const (
	// FaultNone answers the request normally. Injected, it spends one place in the
	// queue without a fault and without a draw from the random mix.
	FaultNone Fault = iota
	// Fault500 answers 500 with a plain-text body, before credentials or body are
	// checked.
	Fault500
	// Fault503 answers 503 with Retry-After and an error body of the gateway's own
	// (the OpenAPI page's shape, {"message","statusCode":503,"error"}), before
	// credentials or body are checked. The documents show no 503; the body says
	// the gateway itself refused the request (a guess of the simulator's).
	Fault503
	// Fault429 answers 429 {"message":"Too Many Requests"} with Retry-After, before
	// credentials or body are checked.
	Fault429
	// FaultSendFailed answers 400 {"error":"send_failed",...} (the gateway's own
	// failure to queue) to a request that passed authentication and validation; an
	// invalid request gets its validation error instead.
	FaultSendFailed
	// FaultTimeout reads the request, then holds it without answering until
	// Config.HangFor passes, the client goes away or Close is called, and then
	// closes the connection.
	FaultTimeout
	// FaultReset reads the request and then resets the connection (TCP RST where the
	// connection allows it) without answering.
	FaultReset
	// FaultInvalidAttrib answers 400 {"error":"invalid_attrib",...} to a request
	// that passed authentication and validation.
	FaultInvalidAttrib
	// FaultUnauthorized answers 401 whatever the credentials. It is counted under
	// Stats.Faults, not Stats.Unauthorized.
	FaultUnauthorized
	// FaultOpenAPIError answers 500 with the body the OpenAPI page documents:
	// {"message":...,"statusCode":500,"error":...}.
	FaultOpenAPIError
	// FaultAcceptThenReset accepts a valid message (stores it, calls OnAccept, counts
	// it) and then resets the connection without answering: the client cannot tell
	// this from FaultReset. An invalid request gets its validation error instead.
	FaultAcceptThenReset
	// FaultAcceptThenHang accepts a valid message and then holds the request like
	// FaultTimeout. An invalid request gets its validation error instead.
	FaultAcceptThenHang
	// Fault502 answers 502 with an HTML body, as a proxy in front of the gateway
	// does when the gateway does not answer it, without accepting the message.
	// Only injected; not part of a Mix.
	Fault502
	// Fault504 accepts a valid message and then answers 504 with an HTML body, as
	// a proxy in front of the gateway does when the gateway took too long: the
	// message went through, and the client cannot tell. An invalid request gets
	// its validation error instead. Only injected; not part of a Mix.
	Fault504

	numFaults // keep last
)

var faultNames = [numFaults]string{
	FaultNone:            "none",
	Fault500:             "500",
	Fault503:             "503",
	Fault429:             "429",
	FaultSendFailed:      "send_failed",
	FaultTimeout:         "timeout",
	FaultReset:           "reset",
	FaultInvalidAttrib:   "invalid_attrib",
	FaultUnauthorized:    "401",
	FaultOpenAPIError:    "openapi_500",
	FaultAcceptThenReset: "accept_then_reset",
	FaultAcceptThenHang:  "accept_then_hang",
	Fault502:             "502",
	Fault504:             "504",
}

// String returns the fault's name, which for the faults a Mix holds is also its
// ParseMix key ("503", "send_failed", ...). Unknown values print as Fault(n).
func (f Fault) String() string {
	if f >= 0 && f < numFaults {
		return faultNames[f]
	}
	return "Fault(" + strconv.Itoa(int(f)) + ")"
}

func (f Fault) valid() bool { return f >= 0 && f < numFaults }

// Mix is the chance, from 0 to 1, that a POST /messages request gets each fault when
// no injected fault is queued. The chances must add up to at most 1; the rest of the
// requests get no fault. The zero Mix never faults.
type Mix struct {
	Status500       float64 // Fault500, key "500"
	Status503       float64 // Fault503, key "503"
	Status429       float64 // Fault429, key "429"
	SendFailed      float64 // FaultSendFailed, key "send_failed"
	Timeout         float64 // FaultTimeout, key "timeout"
	Reset           float64 // FaultReset, key "reset"
	OpenAPIError    float64 // FaultOpenAPIError, key "openapi_500"
	AcceptThenReset float64 // FaultAcceptThenReset, key "accept_then_reset"
	AcceptThenHang  float64 // FaultAcceptThenHang, key "accept_then_hang"
}

// mixField ties a field of a mix (Mix or DLRMix) to what a draw yields, its
// ParseMix-style key and its name in errors.
type mixField[M, V any] struct {
	value V
	key   string
	field string
	get   func(*M) *float64
}

// mixFields lists the Mix fields in the order String prints them and draws use.
var mixFields = []mixField[Mix, Fault]{
	{Fault500, Fault500.String(), "Status500", func(m *Mix) *float64 { return &m.Status500 }},
	{Fault503, Fault503.String(), "Status503", func(m *Mix) *float64 { return &m.Status503 }},
	{Fault429, Fault429.String(), "Status429", func(m *Mix) *float64 { return &m.Status429 }},
	{FaultSendFailed, FaultSendFailed.String(), "SendFailed", func(m *Mix) *float64 { return &m.SendFailed }},
	{FaultTimeout, FaultTimeout.String(), "Timeout", func(m *Mix) *float64 { return &m.Timeout }},
	{FaultReset, FaultReset.String(), "Reset", func(m *Mix) *float64 { return &m.Reset }},
	{FaultOpenAPIError, FaultOpenAPIError.String(), "OpenAPIError", func(m *Mix) *float64 { return &m.OpenAPIError }},
	{FaultAcceptThenReset, FaultAcceptThenReset.String(), "AcceptThenReset", func(m *Mix) *float64 { return &m.AcceptThenReset }},
	{FaultAcceptThenHang, FaultAcceptThenHang.String(), "AcceptThenHang", func(m *Mix) *float64 { return &m.AcceptThenHang }},
}

// mixSlack absorbs rounding when decimal chances such as 0.7+0.2+0.1 are added.
const mixSlack = 1e-9

// ParseMix reads a mix written as comma-separated key=chance pairs, for example
// "500=0.01,503=0.02,429=0.01,send_failed=0.01,timeout=0.001,reset=0.001". The keys
// are those of the Mix field comments. Spaces around keys and values and empty
// pairs are ignored; an empty string is the zero Mix. Errors wrap ErrInvalidMix and
// name the bad key or value: an unknown or repeated key, a pair without '=', a
// chance that is not a number from 0 to 1, or chances adding up to more than 1.
func ParseMix(s string) (Mix, error) {
	return parseMix(s, mixFields, ErrInvalidMix, "503=0.02")
}

// Validate reports whether every chance is a number from 0 to 1 and the chances
// add up to at most 1. The error wraps ErrInvalidMix and names the field and its key.
func (m Mix) Validate() error { return validateMix(m, mixFields, ErrInvalidMix) }

// String writes m in the form ParseMix reads, leaving out zero chances; the zero
// Mix prints as "".
func (m Mix) String() string { return formatMix(m, mixFields) }

// thresholds returns the cumulative chances of the non-zero faults of a valid m.
func (m Mix) thresholds() []threshold[Fault] { return thresholds(m, mixFields) }

// parseMix is ParseMix for any mix: fields name its keys, errors wrap sentinel, and
// example shows a well-formed pair.
func parseMix[M, V any](s string, fields []mixField[M, V], sentinel error, example string) (M, error) {
	var m, zero M
	if strings.TrimSpace(s) == "" {
		return m, nil
	}
	seen := make(map[string]bool, len(fields))
	for pair := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue // tolerate "503=0.1," and "503=0.1,,500=0.1"
		}
		key, value, ok := strings.Cut(pair, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok {
			return zero, fmt.Errorf("%w: %q: want key=chance, e.g. %s", sentinel, strings.TrimSpace(pair), example)
		}
		var mf *mixField[M, V]
		for i := range fields {
			if fields[i].key == key {
				mf = &fields[i]
				break
			}
		}
		if mf == nil {
			return zero, fmt.Errorf("%w: unknown key %q; known keys: %s", sentinel, key, mixKeys(fields))
		}
		if seen[key] {
			return zero, fmt.Errorf("%w: key %q given twice", sentinel, key)
		}
		seen[key] = true
		p, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return zero, fmt.Errorf("%w: %s=%q: chance is not a number", sentinel, key, value)
		}
		*mf.get(&m) = p
	}
	if err := validateMix(m, fields, sentinel); err != nil {
		return zero, err
	}
	return m, nil
}

func mixKeys[M, V any](fields []mixField[M, V]) string {
	keys := make([]string, len(fields))
	for i, mf := range fields {
		keys[i] = mf.key
	}
	return strings.Join(keys, ", ")
}

func validateMix[M, V any](m M, fields []mixField[M, V], sentinel error) error {
	sum := 0.0
	for _, mf := range fields {
		p := *mf.get(&m)
		if math.IsNaN(p) || p < 0 || p > 1 {
			return fmt.Errorf("%w: %s (key %s) = %v: chance must be from 0 to 1",
				sentinel, mf.field, mf.key, p)
		}
		sum += p
	}
	if sum > 1+mixSlack {
		return fmt.Errorf("%w: chances add up to %v: the sum must be at most 1", sentinel, sum)
	}
	return nil
}

func formatMix[M, V any](m M, fields []mixField[M, V]) string {
	var b strings.Builder
	for _, mf := range fields {
		p := *mf.get(&m)
		if p == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(mf.key)
		b.WriteByte('=')
		b.WriteString(strconv.FormatFloat(p, 'g', -1, 64))
	}
	return b.String()
}

// threshold is one step of the cumulative distribution a draw walks.
type threshold[V any] struct {
	upTo  float64
	value V
}

// thresholds returns the cumulative chances of the non-zero fields of a valid m.
func thresholds[M, V any](m M, fields []mixField[M, V]) []threshold[V] {
	var ts []threshold[V]
	sum := 0.0
	for _, mf := range fields {
		if p := *mf.get(&m); p > 0 {
			sum += p
			ts = append(ts, threshold[V]{upTo: sum, value: mf.value})
		}
	}
	return ts
}

// draw walks ts with one uniform draw and returns what it lands on, or otherwise
// when it lands past the last threshold.
func draw[V any](ts []threshold[V], otherwise V) V {
	if len(ts) == 0 {
		return otherwise
	}
	x := rand.Float64()
	for _, t := range ts {
		if x < t.upTo {
			return t.value
		}
	}
	return otherwise
}
