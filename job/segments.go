package job

// Segment sizes of 3GPP TS 23.040: a message that fits one segment is sent without
// a user data header; a longer one is split into parts that each give up room to a
// concatenation header (6 octets: 7 septets or 3 UTF-16 code units).
const (
	gsm7Single = 160 // septets in a message of one segment
	gsm7Part   = 153 // septets in each part of a concatenated message
	ucs2Single = 70  // UTF-16 code units in a message of one segment
	ucs2Part   = 67  // UTF-16 code units in each part of a concatenated message
)

// gsmASCII gives, for each ASCII code point, the septets it takes in GSM-7: 1 for
// the default alphabet, 2 for the extension table (escape + code), 0 when GSM-7
// cannot encode it (control characters other than LF and CR, and the backtick).
var gsmASCII = [128]uint8{
	'\n': 1, '\r': 1,
	'\f': 2, // form feed: extension table 0x0A

	' ': 1, '!': 1, '"': 1, '#': 1, '$': 1, '%': 1, '&': 1, '\'': 1,
	'(': 1, ')': 1, '*': 1, '+': 1, ',': 1, '-': 1, '.': 1, '/': 1,
	'0': 1, '1': 1, '2': 1, '3': 1, '4': 1, '5': 1, '6': 1, '7': 1, '8': 1, '9': 1,
	':': 1, ';': 1, '<': 1, '=': 1, '>': 1, '?': 1, '@': 1,
	'A': 1, 'B': 1, 'C': 1, 'D': 1, 'E': 1, 'F': 1, 'G': 1, 'H': 1, 'I': 1,
	'J': 1, 'K': 1, 'L': 1, 'M': 1, 'N': 1, 'O': 1, 'P': 1, 'Q': 1, 'R': 1,
	'S': 1, 'T': 1, 'U': 1, 'V': 1, 'W': 1, 'X': 1, 'Y': 1, 'Z': 1,
	'_': 1,
	'a': 1, 'b': 1, 'c': 1, 'd': 1, 'e': 1, 'f': 1, 'g': 1, 'h': 1, 'i': 1,
	'j': 1, 'k': 1, 'l': 1, 'm': 1, 'n': 1, 'o': 1, 'p': 1, 'q': 1, 'r': 1,
	's': 1, 't': 1, 'u': 1, 'v': 1, 'w': 1, 'x': 1, 'y': 1, 'z': 1,

	// The extension table's printable characters.
	'^': 2, '{': 2, '}': 2, '\\': 2, '[': 2, '~': 2, ']': 2, '|': 2,
}

// gsmSeptets returns the septets r takes in GSM-7, or 0 when GSM-7 cannot encode it.
func gsmSeptets(r rune) int {
	if r < 0x80 {
		return int(gsmASCII[r])
	}
	switch r {
	// Default alphabet, outside ASCII (GSM 03.38 code in the comment).
	case '£', // 0x01
		'¥',                // 0x03
		'è', 'é', 'ù', 'ì', // 0x04-0x07
		'ò',      // 0x08
		'Ç',      // 0x09: capital C cedilla, as the standard's Unicode mapping has it
		'Ø', 'ø', // 0x0B, 0x0C
		'Å', 'å', // 0x0E, 0x0F
		'Δ',           // 0x10
		'Φ', 'Γ', 'Λ', // 0x12-0x14
		'Ω', 'Π', 'Ψ', // 0x15-0x17
		'Σ', 'Θ', 'Ξ', // 0x18-0x1A
		'Æ', 'æ', 'ß', 'É', // 0x1C-0x1F
		'¤',                     // 0x24
		'¡',                     // 0x40
		'Ä', 'Ö', 'Ñ', 'Ü', '§', // 0x5B-0x5F
		'¿',                     // 0x60
		'ä', 'ö', 'ñ', 'ü', 'à': // 0x7B-0x7F
		return 1
	case '€': // extension table 0x65
		return 2
	}
	return 0
}

// Segments returns how many SMS parts content takes and the encoding it needs.
// GSM-7: 160 septets alone, 153 per part when concatenated; characters of the GSM
// extension table ( ^ { } \ [ ~ ] | € and form feed) take two septets, and an escape
// pair is never split across parts. UCS-2 (any character outside the GSM-7 default
// alphabet and its extension): 70 UTF-16 code units alone, 67 per part; a surrogate
// pair (e.g. an emoji) takes two units and is never split across parts.
// Empty content is 0 segments in GSM7. Bytes that are not valid UTF-8 count as
// U+FFFD, which needs UCS-2.
func Segments(content string) (n int, enc Encoding) {
	if content == "" {
		return 0, GSM7
	}
	if n, ok := gsmSegments(content); ok {
		return n, GSM7
	}
	return ucs2Segments(content), UCS2
}

// gsmSegments counts the GSM-7 segments of content, or reports false when GSM-7
// cannot encode it.
func gsmSegments(content string) (int, bool) {
	total, parts, fill := 0, 1, 0
	for _, r := range content {
		w := gsmSeptets(r)
		if w == 0 {
			return 0, false
		}
		total += w
		if fill+w > gsm7Part { // an escape pair moves whole to the next part
			parts++
			fill = 0
		}
		fill += w
	}
	if total <= gsm7Single {
		return 1, true
	}
	return parts, true
}

// ucs2Segments counts the UCS-2 segments of content.
func ucs2Segments(content string) int {
	total, parts, fill := 0, 1, 0
	for _, r := range content {
		w := 1
		if r >= 0x10000 {
			w = 2 // a surrogate pair moves whole to the next part
		}
		total += w
		if fill+w > ucs2Part {
			parts++
			fill = 0
		}
		fill += w
	}
	if total <= ucs2Single {
		return 1
	}
	return parts
}

// Characters returns the length of content in enc's units: septets for GSM7 (a
// character of the extension table counts two; one GSM-7 cannot encode counts one,
// as the replacement it would be sent as), UTF-16 code units for UCS2 (a character
// outside the Basic Multilingual Plane counts two). Any other enc counts runes.
func Characters(content string, enc Encoding) int {
	n := 0
	switch enc {
	case GSM7:
		for _, r := range content {
			n += max(gsmSeptets(r), 1)
		}
	case UCS2:
		for _, r := range content {
			if r >= 0x10000 {
				n += 2
			} else {
				n++
			}
		}
	default:
		for range content {
			n++
		}
	}
	return n
}
