package jsonscan

import (
	"unicode/utf16"
	"unicode/utf8"
)

// String is a string token as found in the input: its bytes between the
// quotes, checked (every escape is one JSON allows, no raw control
// character) but not decoded. The zero String stands for null or an absent
// string; "" is an empty, non-nil Raw.
type String struct {
	raw     []byte
	escaped bool
}

// Raw returns the bytes between the quotes, nil for null. They alias the
// input with their capacity capped, so appending to them copies rather
// than writes into the input.
func (t String) Raw() []byte { return t.raw }

// Escaped reports whether Raw holds backslash escapes.
func (t String) Escaped() bool { return t.escaped }

// Plain reports whether Raw is the decoded text as it is: no escapes and
// valid UTF-8 (encoding/json replaces each invalid byte with U+FFFD).
func (t String) Plain() bool { return !t.escaped && utf8.Valid(t.raw) }

// String returns the decoded text, as encoding/json decodes the token into
// a string.
func (t String) String() string {
	if t.Plain() {
		return string(t.raw)
	}
	return string(t.AppendTo(nil))
}

// AppendTo appends the decoded text to dst, as encoding/json decodes the
// token: escapes resolved, a \u escape of half a surrogate pair and each
// byte of invalid UTF-8 replaced with U+FFFD.
func (t String) AppendTo(dst []byte) []byte {
	if t.Plain() {
		return append(dst, t.raw...)
	}
	raw := t.raw
	for i := 0; i < len(raw); {
		start := i
		for i < len(raw) && raw[i] != '\\' && raw[i] < utf8.RuneSelf {
			i++
		}
		dst = append(dst, raw[start:i]...)
		if i == len(raw) {
			break
		}
		if c := raw[i]; c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, raw[i:i+size]...)
			}
			i += size
			continue
		}
		// An escape: Str checked that it is complete and one JSON allows.
		switch e := raw[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				// A pair decodes to one rune; anything else, as in
				// encoding/json, to U+FFFD, and what follows is read
				// on its own.
				if len(raw)-i >= 6 && raw[i] == '\\' && raw[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(raw[i+2:i+6])); pair != utf8.RuneError {
						dst = utf8.AppendRune(dst, pair)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}

// hex4 decodes four hex digits that Str checked.
func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

func isHex(c byte) bool {
	return c-'0' <= 9 || (c|0x20)-'a' <= 5
}

// badEscape is the failure message for a backslash JSON does not allow.
const badEscape = `want an escape: \" \\ \/ \b \f \n \r \t or \uXXXX`

// Str reads a string.
func (s *Scanner) Str() (String, bool) {
	if s.Peek() != '"' {
		return String{}, s.fail(s.i, s.i, "want a string")
	}
	b := s.b
	start := s.i + 1
	// A plain string (no escape, no control character) is this one tight
	// loop; the rest continues below from the first special byte.
	for j := start; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			s.i = j + 1
			return String{raw: b[start:j:j]}, true
		}
		if c == '\\' || c < 0x20 {
			return s.strRest(start, j)
		}
	}
	return String{}, s.fail(len(b), len(b), `want '"'`)
}

// strRest finishes a string that begins at start (just past the quote)
// and has a backslash or a control character at j.
func (s *Scanner) strRest(start, j int) (String, bool) {
	b := s.b
	escaped := false
	for ; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s.i = j + 1
			return String{raw: b[start:j:j], escaped: escaped}, true
		case c == '\\':
			escaped = true
			if j+1 >= len(b) {
				return String{}, s.fail(len(b), len(b), badEscape)
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
			case 'u':
				if len(b)-j < 6 || !isHex(b[j+2]) || !isHex(b[j+3]) || !isHex(b[j+4]) || !isHex(b[j+5]) {
					return String{}, s.fail(j, j+6, badEscape)
				}
				j += 5
			default:
				return String{}, s.fail(j, j+2, badEscape)
			}
		case c < 0x20:
			return String{}, s.fail(j, j, "want control characters escaped")
		}
	}
	return String{}, s.fail(len(b), len(b), `want '"'`)
}

// StrOrNull reads a string, or null as the zero String.
func (s *Scanner) StrOrNull() (String, bool) {
	if isNull, ok := s.Null(); isNull {
		return String{}, ok
	}
	return s.Str()
}
