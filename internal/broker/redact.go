package broker

import (
	"strings"

	"github.com/jetsms/jetsms/internal/redact"
)

// redactURL hides the credentials of every URL in a comma-separated list, so a
// URL with credentials can be logged or put in an error.
func redactURL(list string) string { return redact.URL(list) }

// hideURL returns err with every URL of list in its text redacted: nats.go's
// errors may quote a URL it could not parse, password and all. errors.Is and
// errors.As still reach err.
func hideURL(err error, list string) error {
	msg := err.Error()
	hidden := msg
	for _, part := range strings.Split(list, ",") {
		if part = strings.TrimSpace(part); part != "" {
			hidden = strings.ReplaceAll(hidden, part, redact.URL(part))
		}
	}
	if hidden == msg {
		return err
	}
	return &redactedError{msg: hidden, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
