package gwsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/uuid"
)

// MOOperatorDefault is the operator of an MO sent without one.
const MOOperatorDefault = "gwsim"

// EncodingBase64 is the MO encoding of binary content, which then travels as
// base64.
const EncodingBase64 = "base64"

var (
	// ErrInvalidMO is wrapped by SendMO's errors for an MO it refuses to send; the
	// error names the field and the rule.
	ErrInvalidMO = errors.New("gwsim: invalid MO")
	// ErrNoMOURL is returned by SendMO when Config.MOURL is empty.
	ErrNoMOURL = errors.New("gwsim: no MO callback URL configured (Config.MOURL)")
)

// MO is an inbound message from a handset, as SendMO sends it to Config.MOURL.
type MO struct {
	Source      string // the handset's number; required
	Destination string // the short code or number it was sent to; required
	Content     string // the text, or base64 of binary content; required
	// ReplyTo is the id of the MT message it answers, a UUID (REST v1: a
	// decimal integer); "" when none.
	ReplyTo string
	// Reference is that MT message's reference. When it is "" and ReplyTo names a
	// message the simulator still keeps, that message's reference is used.
	Reference string
	// Operator is the handset's operator; "" means MOOperatorDefault.
	Operator string
	// Encoding is "" for text and EncodingBase64 for binary content, which Content
	// then holds in standard base64.
	Encoding string
}

// moBody is the MO callback body. ID is a string (a UUID) under REST v2 and an
// integer under REST v1; reply_to is a string under both, as the pages show it.
type moBody struct {
	ID          any    `json:"id"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Content     string `json:"content"`
	Operator    string `json:"operator"`
	ReplyTo     string `json:"reply_to,omitempty"`
	Reference   string `json:"reference,omitempty"`
	Encoding    string `json:"encoding,omitempty"`
}

func (mo MO) validate(v1 bool) error {
	for _, f := range []struct{ name, v string }{
		{"source", mo.Source}, {"destination", mo.Destination}, {"content", mo.Content},
	} {
		if f.v == "" {
			return fmt.Errorf("%w: %s is required", ErrInvalidMO, f.name)
		}
	}
	switch mo.Encoding {
	case "":
	case EncodingBase64:
		if _, err := base64.StdEncoding.DecodeString(mo.Content); err != nil {
			return fmt.Errorf("%w: content is not standard base64, as encoding %q requires: %w", ErrInvalidMO, EncodingBase64, err)
		}
	default:
		return fmt.Errorf("%w: encoding %q: must be empty or %q", ErrInvalidMO, mo.Encoding, EncodingBase64)
	}
	if mo.Reference != "" && mo.ReplyTo == "" {
		// The pages add "reference" only to an MO that has "reply_to".
		return fmt.Errorf("%w: reference: only an MO in reply to an MT message (reply_to) carries one", ErrInvalidMO)
	}
	if mo.ReplyTo != "" {
		if v1 {
			if _, ok := v1Key(mo.ReplyTo); !ok {
				return fmt.Errorf("%w: reply_to %q: must be a REST v1 message id (a positive integer)", ErrInvalidMO, mo.ReplyTo)
			}
		} else if _, err := uuid.Parse(mo.ReplyTo); err != nil {
			return fmt.Errorf("%w: reply_to %q: must be a message id (UUID)", ErrInvalidMO, mo.ReplyTo)
		}
	}
	return nil
}

// SendMO posts mo to Config.MOURL as the gateway's MO callback, with a new id (a
// UUID; under REST v1 an integer, sent as a JSON number and returned in decimal),
// and returns once the receiver has answered 2xx. A failed attempt (an
// answer that is not 2xx, or no answer) is retried like a receipt, with backoff,
// until Config.CallbackGiveUp passes; the MO waits in the callback queue and is
// posted by the same senders as receipts.
//
// Errors: ErrNoMOURL; ErrInvalidMO naming the field; ErrQueueFull or ErrClosed
// when it could not be queued (id is then ""); ErrGaveUp wrapping the last
// attempt's error; ErrClosed when Close came first; ctx's error when ctx ends first.
// With the last three the receiver may have got the MO, so id is returned with the
// error.
func (s *Simulator) SendMO(ctx context.Context, mo MO) (id string, err error) {
	c := s.cb
	if c == nil || c.mo == nil {
		return "", ErrNoMOURL
	}
	if err := mo.validate(s.v1); err != nil {
		return "", err
	}
	if mo.ReplyTo != "" && mo.Reference == "" {
		if m, ok := s.Message(mo.ReplyTo); ok {
			mo.Reference = m.Reference
		}
	}
	if mo.Operator == "" {
		mo.Operator = MOOperatorDefault
	}
	k := s.newKey()
	id = k.String()
	var bodyID any = id
	if s.v1 {
		bodyID = k.num
	}
	// Marshalling strings and integers cannot fail; invalid UTF-8 comes out as
	// U+FFFD.
	body, _ := json.Marshal(moBody{
		ID:          bodyID,
		Source:      mo.Source,
		Destination: mo.Destination,
		Content:     mo.Content,
		Operator:    mo.Operator,
		ReplyTo:     mo.ReplyTo,
		Reference:   mo.Reference,
		Encoding:    mo.Encoding,
	})
	cb := &callback{mo: true, ctx: ctx, result: make(chan error, 1), body: body, due: time.Now()}
	if err := c.admit(cb); err != nil {
		c.moDropped.Add(1)
		return "", fmt.Errorf("send MO: %w", err)
	}
	select {
	case err := <-cb.result:
		if err != nil {
			return id, fmt.Errorf("send MO %s: %w", id, err)
		}
		return id, nil
	case <-ctx.Done():
		return id, fmt.Errorf("send MO %s: %w", id, context.Cause(ctx))
	}
}

// simMORequest is the POST /sim/mo body: the MO callback's attributes but the id.
type simMORequest struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Content     string `json:"content"`
	ReplyTo     string `json:"reply_to"`
	Reference   string `json:"reference"`
	Operator    string `json:"operator"`
	Encoding    string `json:"encoding"`
}

// simAnswer is the POST /sim/mo answer: the id, an error in the gateway's shape, or
// both when the MO may have reached the receiver.
type simAnswer struct {
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
	Desc  string `json:"error-desc,omitempty"`
}

// Error codes of POST /sim/mo beyond the gateway's own.
const (
	codeNoMOURL        = "no_mo_url"
	codeCallbackFailed = "callback_failed"
	codeUnavailable    = "unavailable"
)

// simMO serves POST /sim/mo: it sends the MO in the body with SendMO and answers
// when SendMO returns.
func (s *Simulator) simMO(w http.ResponseWriter, r *http.Request) {
	if !s.authorized(r) {
		s.unauthorized.Add(1)
		s.writeUnauthorized(w)
		return
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, MaxBodyBytes+1)); err != nil {
		return // the client went away mid-body
	}
	if buf.Len() > MaxBodyBytes {
		write(w, http.StatusRequestEntityTooLarge, headerJSON, body413)
		return
	}
	var req simMORequest
	if err := json.Unmarshal(buf.Bytes(), &req); err != nil {
		writeSim(w, http.StatusBadRequest, simAnswer{Error: codeInvalidJSON, Desc: descInvalidJSON + ": " + err.Error()})
		return
	}
	id, err := s.SendMO(r.Context(), MO(req))
	switch {
	case err == nil:
		writeSim(w, http.StatusOK, simAnswer{ID: id})
	case r.Context().Err() != nil:
		// The client went away; there is no one to answer.
	case errors.Is(err, ErrInvalidMO):
		writeSim(w, http.StatusBadRequest, simAnswer{Error: codeInvalidAttrib, Desc: err.Error()})
	case errors.Is(err, ErrNoMOURL):
		writeSim(w, http.StatusConflict, simAnswer{Error: codeNoMOURL, Desc: err.Error()})
	case errors.Is(err, ErrQueueFull), errors.Is(err, ErrClosed):
		w.Header()["Retry-After"] = s.retryAfter
		writeSim(w, http.StatusServiceUnavailable, simAnswer{ID: id, Error: codeUnavailable, Desc: err.Error()})
	default: // ErrGaveUp
		writeSim(w, http.StatusBadGateway, simAnswer{ID: id, Error: codeCallbackFailed, Desc: err.Error()})
	}
}

func writeSim(w http.ResponseWriter, status int, a simAnswer) {
	body, _ := json.Marshal(a) // only strings
	write(w, status, headerJSON, body)
}
