package campaign

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

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

// JobID is the id of the job made from a campaign's row: "<campaign>:<row>", row
// counting the file's records from 1 after the header (a record that spans lines
// is one row). The same file published under the same name always gives the same
// ids, which is what lets a re-run publish nothing twice. A name holds no ':', so
// the id parses back with ParseJobID.
func JobID(campaign string, row int) string {
	return campaign + ":" + strconv.Itoa(row)
}

// ParseJobID splits a campaign job's id into its campaign and row. ok is false for
// an id JobID does not make (a job published to the campaign's subject by other
// means).
func ParseJobID(id string) (campaign string, row int, ok bool) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 || i == len(id)-1 {
		return "", 0, false
	}
	digits := id[i+1:]
	if digits[0] == '0' || len(digits) > 12 {
		return "", 0, false
	}
	n := 0
	for j := 0; j < len(digits); j++ {
		c := digits[j]
		if c < '0' || c > '9' {
			return "", 0, false
		}
		n = n*10 + int(c-'0')
	}
	if ValidateName(id[:i]) != nil {
		return "", 0, false
	}
	return id[:i], n, true
}
