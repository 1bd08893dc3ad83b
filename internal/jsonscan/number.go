package jsonscan

import (
	"math"
	"strconv"
)

// Number reads a number and returns its text, checked against JSON's
// grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *Scanner) Number() ([]byte, bool) {
	s.skipSpace()
	b, start := s.b, s.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i]-'1' <= 8:
		i = digits(b, i+1)
	case i == start:
		return nil, s.fail(i, i, "want a number")
	default:
		return nil, s.fail(i, i, "want a digit")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i]-'0' > 9 {
			return nil, s.fail(i, i, "want a digit after '.'")
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i]-'0' > 9 {
			return nil, s.fail(i, i, "want an exponent's digits")
		}
		i = digits(b, i)
	}
	s.i = i
	return b[start:i], true
}

// digits returns the offset of the first non-digit in b at or after i.
func digits(b []byte, i int) int {
	for i < len(b) && b[i]-'0' <= 9 {
		i++
	}
	return i
}

// Int reads a number written as an integer — no fraction, no exponent —
// that fits in an int, as encoding/json decodes one into an int. On
// failure nothing is consumed.
func (s *Scanner) Int() (int, bool) {
	s.skipSpace()
	start := s.i
	text, ok := s.Number()
	if !ok {
		return 0, false
	}
	v, ok := ParseInt(text)
	if ok && int64(int(v)) == v {
		return int(v), true
	}
	s.i = start
	if !isInteger(text) {
		return 0, s.fail(start, start+len(text), "want an integer")
	}
	return 0, s.fail(start, start+len(text), "want an integer in int's range")
}

// Uint reads a number written as digits alone — no sign, fraction or
// exponent — that fits in a uint64, as encoding/json decodes one into a
// uint64. On failure nothing is consumed, so a caller with a wider rule
// (12.0 as a whole number) can read the same text with Number.
func (s *Scanner) Uint() (uint64, bool) {
	s.skipSpace()
	b, start := s.b, s.i
	i := start
	var v uint64
	for i < len(b) && b[i]-'0' <= 9 {
		if i-start < 19 { // 19 digits cannot overflow
			v = v*10 + uint64(b[i]-'0')
		}
		i++
	}
	n := i - start
	if n == 0 || (n > 1 && b[start] == '0') || (i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E')) {
		return 0, s.fail(start, max(i, start+1), "want an unsigned integer")
	}
	if n > 19 {
		var err error
		if v, err = strconv.ParseUint(string(b[start:i]), 10, 64); err != nil {
			return 0, s.fail(start, i, "want an integer in uint64's range")
		}
	}
	s.i = i
	return v, true
}

// ParseFloat converts a number's text, as Number returned it, to float64
// as encoding/json does; ok is false when it is out of float64's range.
func ParseFloat(text []byte) (v float64, ok bool) {
	// Integers, most numbers in traces, skip strconv and its string copy.
	// Converting an int64 rounds to the nearest float64, as ParseFloat
	// does; only a negative zero needs its sign back.
	if n, ok := ParseInt(text); ok {
		if n == 0 && text[0] == '-' {
			return math.Copysign(0, -1), true
		}
		return float64(n), true
	}
	f, err := strconv.ParseFloat(string(text), 64)
	return f, err == nil
}

// ParseInt converts an integer's text — an optional '-' and decimal
// digits, as Number returns an integer (and as CSV traces write one) — to
// int64; ok is false for any other text and out of int64's range.
func ParseInt(text []byte) (int64, bool) {
	digits := text
	if len(text) > 0 && text[0] == '-' {
		digits = text[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return parseLongInt(text)
	}
	// Up to 18 digits cannot overflow: no check, no allocation.
	var v int64
	for _, c := range digits {
		if c-'0' > 9 {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if len(digits) < len(text) {
		v = -v
	}
	return v, true
}

// parseLongInt is ParseInt for texts of more than 18 digits (or none).
func parseLongInt(text []byte) (int64, bool) {
	if len(text) == 0 || text[0] == '+' { // strconv takes a '+'; JSON does not
		return 0, false
	}
	v, err := strconv.ParseInt(string(text), 10, 64)
	return v, err == nil
}

// isInteger reports whether a number's text has no fraction or exponent.
func isInteger(text []byte) bool {
	for _, c := range text {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}
