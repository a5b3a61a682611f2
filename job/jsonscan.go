package job

import (
	"bytes"
	"encoding/json"
)

// This file holds a JSON object scanner that checks the syntax of a job and finds its
// members in one pass, without allocating. It accepts exactly what json.Valid
// accepts (FuzzDecode holds it to that), so encoding/json can still be used on any
// value it returns. It does not check UTF-8: Decode does that first.

// maxDepth is the deepest nesting json.Valid accepts; the top-level object is depth 1.
const maxDepth = 10000

// members walks the members of the JSON object at data[i], checking its syntax.
// next reports false after the last member or at the first syntax error; bad tells
// which. After the last member, i is the offset just after the object.
type members struct {
	data  []byte
	i     int
	depth int // of this object; 0 counts as 1

	key    []byte // the member's key as raw JSON, quotes included
	val    []byte // the member's value as raw JSON
	valOff int    // offset of val in data

	started, done, bad bool
}

// next moves to the next member.
func (m *members) next() bool {
	if m.done || m.bad {
		return false
	}
	d := m.data
	i := skipSpace(d, m.i)
	if !m.started {
		m.started = true
		if i >= len(d) || d[i] != '{' {
			return m.fail()
		}
		if m.depth == 0 {
			m.depth = 1
		}
		i = skipSpace(d, i+1)
		if i < len(d) && d[i] == '}' {
			m.i, m.done = i+1, true
			return false
		}
	} else {
		switch {
		case i >= len(d):
			return m.fail()
		case d[i] == ',':
			i = skipSpace(d, i+1)
		case d[i] == '}':
			m.i, m.done = i+1, true
			return false
		default:
			return m.fail()
		}
	}

	end, ok := scanString(d, i)
	if !ok {
		return m.fail()
	}
	m.key = d[i:end]
	i = skipSpace(d, end)
	if i >= len(d) || d[i] != ':' {
		return m.fail()
	}
	i = skipSpace(d, i+1)
	end, ok = scanValue(d, i, m.depth)
	if !ok {
		return m.fail()
	}
	m.val, m.valOff, m.i = d[i:end], i, end
	return true
}

func (m *members) fail() bool {
	m.bad = true
	return false
}

// field returns the index of the known field the current member's key names, or -1.
func (m *members) field() int {
	body := m.key[1 : len(m.key)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return fieldIndex(body)
	}
	// A key with escapes (rare): compare its text, as encoding/json does.
	var k string
	if json.Unmarshal(m.key, &k) != nil {
		return -1
	}
	return fieldIndex([]byte(k))
}

// scanValue checks the JSON value at d[i], found inside a container at depth, and
// returns the offset just after it.
func scanValue(d []byte, i, depth int) (int, bool) {
	if i >= len(d) {
		return i, false
	}
	switch c := d[i]; {
	case c == '"':
		return scanString(d, i)
	case c == '{':
		if depth >= maxDepth {
			return i, false
		}
		m := members{data: d, i: i, depth: depth + 1}
		for m.next() {
		}
		return m.i, !m.bad
	case c == '[':
		if depth >= maxDepth {
			return i, false
		}
		i = skipSpace(d, i+1)
		if i < len(d) && d[i] == ']' {
			return i + 1, true
		}
		for {
			end, ok := scanValue(d, i, depth+1)
			if !ok {
				return end, false
			}
			i = skipSpace(d, end)
			if i >= len(d) {
				return i, false
			}
			switch d[i] {
			case ',':
				i = skipSpace(d, i+1)
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == 't':
		return scanLiteral(d, i, "true")
	case c == 'f':
		return scanLiteral(d, i, "false")
	case c == 'n':
		return scanLiteral(d, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(d, i)
	}
	return i, false
}

// scanString checks the JSON string at d[i] and returns the offset just after it.
// Bytes of 0x80 and up pass unchecked, as in json.Valid.
func scanString(d []byte, i int) (int, bool) {
	if i >= len(d) || d[i] != '"' {
		return i, false
	}
	for i++; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i >= len(d) {
				return i, false
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(d) {
					return i, false
				}
				for k := 1; k <= 4; k++ {
					if !isHex(d[i+k]) {
						return i + k, false
					}
				}
				i += 4
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		}
	}
	return i, false
}

// scanNumber checks the JSON number at d[i] and returns the offset just after it.
func scanNumber(d []byte, i int) (int, bool) {
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i = skipDigits(d, i+1)
	default:
		return i, false
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || !isDigit(d[i]) {
			return i, false
		}
		i = skipDigits(d, i)
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			return i, false
		}
		i = skipDigits(d, i)
	}
	return i, true
}

func scanLiteral(d []byte, i int, lit string) (int, bool) {
	if len(d)-i < len(lit) || string(d[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

func skipDigits(d []byte, i int) int {
	for i < len(d) && isDigit(d[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}
