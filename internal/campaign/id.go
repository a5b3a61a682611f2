package campaign

import (
	"strconv"
	"strings"

	"github.com/jetsms/jetsms/internal/campaignstate"
)

// NameMaxLen is the longest campaign name (campaignstate.NameMaxLen).
const NameMaxLen = campaignstate.NameMaxLen

// ErrInvalidName is the family of the errors ValidateName returns.
var ErrInvalidName = campaignstate.ErrInvalidName

// ValidateName says what is wrong with name as a campaign name, or returns nil
// (campaignstate.ValidateName: the worker checks job subjects with it too).
func ValidateName(name string) error { return campaignstate.ValidateName(name) }

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
