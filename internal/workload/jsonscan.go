package workload

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// scanner reads one JSON object a line without reflection: trace lines are
// flat objects of numbers, strings and arrays of integers, and
// encoding/json's reflection made Mooncake parsing three times slower than
// the 500,000 records/s a replay of a large trace needs. It is strict: what
// it accepts, encoding/json accepts with the same values (FuzzMooncake
// checks this against encoding/json).
type scanner struct {
	b []byte
	i int
}

// maxDepth bounds nesting in skipped values, as encoding/json does.
const maxDepth = 10000

var errEnd = errors.New("unexpected end of line")

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) expect(c byte) error {
	s.ws()
	if s.i >= len(s.b) {
		return errEnd
	}
	if s.b[s.i] != c {
		return fmt.Errorf("offset %d: want %q, found %q", s.i, c, s.b[s.i])
	}
	s.i++
	return nil
}

// object scans a whole-line object, calling field with the scanner at each
// value; field must consume the value.
func (s *scanner) object(field func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
	} else {
		for {
			s.ws()
			key, err := s.key()
			if err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			s.ws()
			if err := field(key); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			s.ws()
			if s.i >= len(s.b) {
				return errEnd
			}
			c := s.b[s.i]
			s.i++
			if c == '}' {
				break
			}
			if c != ',' {
				return fmt.Errorf("offset %d: want ',' or '}', found %q", s.i-1, c)
			}
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return fmt.Errorf("offset %d: text after the object", s.i)
	}
	return nil
}

// null consumes a null value and reports whether there was one.
func (s *scanner) null() bool {
	if len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// numberText consumes a JSON number and returns its text.
func (s *scanner) numberText() ([]byte, error) {
	start, b := s.i, s.b
	i := s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, fmt.Errorf("offset %d: want a number", start)
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, fmt.Errorf("offset %d: want a digit after '.'", i)
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, fmt.Errorf("offset %d: want an exponent", i)
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	s.i = i
	return b[start:i], nil
}

// number consumes a number as float64.
func (s *scanner) number() (float64, error) {
	text, err := s.numberText()
	if err != nil {
		return 0, err
	}
	if v, ok := smallInt(text); ok {
		return float64(v), nil
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil {
		return 0, fmt.Errorf("number %s out of range", text)
	}
	return f, nil
}

// integer consumes a number that must be a whole number (12, 12.0, 1.2e1).
func (s *scanner) integer() (int64, error) {
	text, err := s.numberText()
	if err != nil {
		return 0, err
	}
	if v, ok := smallInt(text); ok {
		return v, nil
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s: want a whole number", text)
	}
	return int64(f), nil
}

// smallInt parses up to 18 plain digits without allocating.
func smallInt(text []byte) (int64, bool) {
	neg := len(text) > 0 && text[0] == '-'
	digits := text
	if neg {
		digits = text[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// uint32s consumes an array of whole numbers in [0, 2^32), appending to dst.
func (s *scanner) uint32s(dst []uint32) ([]uint32, error) {
	if err := s.expect('['); err != nil {
		return dst, err
	}
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return dst, nil
	}
	for {
		s.ws()
		v, ok := s.plainUint32()
		if !ok {
			w, err := s.integer()
			if err != nil {
				return dst, err
			}
			if w < 0 || w > math.MaxUint32 {
				return dst, fmt.Errorf("%d: want an id in [0, 2^32)", w)
			}
			v = uint32(w)
		}
		dst = append(dst, v)
		s.ws()
		if s.i >= len(s.b) {
			return dst, errEnd
		}
		c := s.b[s.i]
		s.i++
		if c == ']' {
			return dst, nil
		}
		if c != ',' {
			return dst, fmt.Errorf("offset %d: want ',' or ']', found %q", s.i-1, c)
		}
	}
}

// plainUint32 consumes the common case of an id — 1 to 10 digits, no
// leading zero, no fraction or exponent, below 2^32 — in one pass; for
// anything else it consumes nothing and reports false, and the general
// number path decides (hash ids are most of a Mooncake line).
func (s *scanner) plainUint32() (uint32, bool) {
	b, i := s.b, s.i
	var v uint64
	for i < len(b) && i-s.i <= 10 && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + uint64(b[i]-'0')
		i++
	}
	n := i - s.i
	if n == 0 || n > 10 || (n > 1 && b[s.i] == '0') || v > math.MaxUint32 ||
		(i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E' || (b[i] >= '0' && b[i] <= '9'))) {
		return 0, false
	}
	s.i = i
	return uint32(v), true
}

// str consumes a string. Plain strings are sliced; escapes and invalid
// UTF-8 are decoded by encoding/json, so both agree exactly.
func (s *scanner) str() (string, error) {
	raw, plain, err := s.stringText()
	if err != nil {
		return "", err
	}
	if plain {
		return string(raw[1 : len(raw)-1]), nil
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", err
	}
	return out, nil
}

// key consumes a string without copying it when it is plain.
func (s *scanner) key() ([]byte, error) {
	raw, plain, err := s.stringText()
	if err != nil {
		return nil, err
	}
	if plain {
		return raw[1 : len(raw)-1], nil
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	return []byte(out), nil
}

// stringText consumes a string and returns it with its quotes; plain says
// it has no escapes and is valid UTF-8.
func (s *scanner) stringText() (raw []byte, plain bool, err error) {
	start, b := s.i, s.b
	if start >= len(b) || b[start] != '"' {
		return nil, false, fmt.Errorf("offset %d: want a string", start)
	}
	plain = true
	ascii := true
	for i := start + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			raw = b[start:s.i]
			if !ascii && !utf8.Valid(raw) {
				plain = false
			}
			return raw, plain, nil
		case c == '\\':
			plain = false
			i++
			if i >= len(b) {
				return nil, false, errEnd
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return nil, false, fmt.Errorf("offset %d: bad \\u escape", i)
				}
				i += 4
			default:
				return nil, false, fmt.Errorf("offset %d: bad escape \\%c", i, b[i])
			}
		case c < 0x20:
			return nil, false, fmt.Errorf("offset %d: control character in a string", i)
		case c >= 0x80:
			ascii = false
		}
	}
	return nil, false, errEnd
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skip consumes any value and returns its text.
func (s *scanner) skip() ([]byte, error) {
	start := s.i
	if err := s.value(0); err != nil {
		return nil, err
	}
	return s.b[start:s.i], nil
}

func (s *scanner) value(depth int) error {
	if depth > maxDepth {
		return errors.New("nested too deeply")
	}
	s.ws()
	if s.i >= len(s.b) {
		return errEnd
	}
	switch c := s.b[s.i]; {
	case c == '"':
		_, _, err := s.stringText()
		return err
	case c == '{' || c == '[':
		return s.container(c, depth)
	case c == '-' || c >= '0' && c <= '9':
		_, err := s.numberText()
		return err
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
				s.i += len(lit)
				return nil
			}
		}
		return fmt.Errorf("offset %d: unexpected %q", s.i, c)
	}
}

func (s *scanner) container(open byte, depth int) error {
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == closer {
		s.i++
		return nil
	}
	for {
		if open == '{' {
			s.ws()
			if _, _, err := s.stringText(); err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
		}
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return errEnd
		}
		c := s.b[s.i]
		s.i++
		if c == closer {
			return nil
		}
		if c != ',' {
			return fmt.Errorf("offset %d: want ',' or %q, found %q", s.i-1, closer, c)
		}
	}
}
