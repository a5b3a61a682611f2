package campaignstate

import (
	"errors"
	"fmt"

	"github.com/jetsms/jetsms/internal/redact"
)

// NameMaxLen is the longest campaign name: with ":" and a row number of up to 12
// digits, a job id stays well inside the contract's 128 characters.
const NameMaxLen = 64

// ErrInvalidName is the family of the errors ValidateName returns.
var ErrInvalidName = errors.New("invalid campaign name")

// ValidateName says what is wrong with name as a campaign name, or returns nil. A
// name is 1 to NameMaxLen letters, digits, '-' and '_': it is a token of the jobs'
// subject (sms.send.<lane>.<campaign>), a key of the campaign bucket and the start
// of every job id.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: must not be empty", ErrInvalidName)
	}
	if len(name) > NameMaxLen {
		return fmt.Errorf("%w: %s is %d characters; at most %d are allowed", ErrInvalidName, redact.Quote(name), len(name), NameMaxLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			continue
		}
		return fmt.Errorf("%w: %s has %q at byte offset %d; use only letters, digits, '-' and '_'", ErrInvalidName, redact.Quote(name), rune(c), i)
	}
	return nil
}
