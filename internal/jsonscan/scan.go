// Package jsonscan is the reflection-free JSON tokenizer behind Reprise's
// hot parsers: every SSE event and request body the proxy and the replay
// client see (internal/openai), and every line of a Mooncake trace
// (internal/workload). Callers walk the text themselves — open an object,
// read a key, read or skip its value, step to the next member — and keep
// only what they need, so a chunk costs one small allocation where
// encoding/json's reflection costs fourteen.
//
// It is strict where it reads: whatever it accepts, encoding/json accepts
// too, with the same values (FuzzDecode, FuzzValid, FuzzString and
// FuzzNumbers hold it to encoding/json). Numbers are validated by JSON's
// grammar, strings by its escapes, and nesting is bounded as
// encoding/json bounds it (MaxDepth).
//
// It was kept over libraries after measuring them on the same inputs,
// decoding the same fields (CPU time per op, medians of 7 interleaved
// runs, 2 shared cores): on a chat chunk, valyala/fastjson v1.6.10 took 1.5
// times as long as this package (a reused parser; 1.55 from a ParserPool)
// and go-json-experiment's jsontext 2.6 times; on the Mooncake trace's
// lines, 2.1 times each. Nor do they accept what encoding/json accepts,
// which the fast paths' fallbacks rely on: fastjson's parser takes numbers
// such as 1-2 or nan, and raw control characters and unknown escapes in
// strings; jsontext refuses invalid UTF-8, which encoding/json replaces.
//
// Every read returns ok=false on input it cannot take, leaving a record of
// why; Err describes the last such failure with its offset. The hot paths
// that fall back to encoding/json never build that error, so a refusal
// costs nothing.
package jsonscan

import (
	"fmt"
	"strconv"
)

// MaxDepth bounds the nesting of objects and arrays as encoding/json does
// (it refuses deeper input), so hostile input cannot make Skip recurse
// without limit.
const MaxDepth = 10000

// Scanner reads JSON text from a byte slice, one token at a time. The zero
// Scanner reads empty input; New and NewLine make one over b. A Scanner is
// a small value meant to live on the stack of one parse.
type Scanner struct {
	b     []byte
	i     int    // offset of the next byte to read
	depth int    // objects and arrays open at i
	unit  string // what b is, in errors: "input" when empty

	// The last failure, for Err: the offending text spans failAt to
	// failEnd (one byte when failEnd <= failAt+1), and failMsg says what
	// was wanted instead.
	failAt, failEnd int
	failMsg         string
}

// New returns a Scanner over b.
func New(b []byte) Scanner { return Scanner{b: b} }

// NewLine returns a Scanner over one line of a JSON Lines file: errors
// call the end of b the end of the line.
func NewLine(b []byte) Scanner { return Scanner{b: b, unit: "line"} }

// SyntaxError is a failure to read the text as the caller asked.
type SyntaxError struct {
	Offset int    // byte offset of the offending text in the input
	Msg    string // what was found, and what was wanted instead
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.Offset, e.Msg) }

// Err describes why the last read that returned ok=false failed, or is nil
// if none did. Reads that failed and were followed by a successful
// fallback (Uint, then Number) leave their record behind: ask Err only
// right after a failure.
func (s *Scanner) Err() error {
	if s.failMsg == "" {
		return nil
	}
	return &SyntaxError{Offset: s.failAt, Msg: "unexpected " + s.found() + ", " + s.failMsg}
}

// fail records a failure (see Scanner's fields) and returns false, for
// callers to return.
func (s *Scanner) fail(at, end int, msg string) bool {
	s.failAt, s.failEnd, s.failMsg = at, end, msg
	return false
}

// found quotes the text a failure is about, at most 20 bytes of it.
func (s *Scanner) found() string {
	at := s.failAt
	if at >= len(s.b) {
		if s.unit == "" {
			return "end of input"
		}
		return "end of " + s.unit
	}
	end := min(s.failEnd, at+20, len(s.b))
	if end <= at+1 {
		if c := s.b[at]; c >= 0x80 {
			return fmt.Sprintf("byte 0x%02x", c)
		}
		return strconv.QuoteRune(rune(s.b[at]))
	}
	return strconv.Quote(string(s.b[at:end]))
}

// Pos returns the offset of the next byte to read. After Peek, that is the
// next token's first byte; after a value, the byte just past it.
func (s *Scanner) Pos() int { return s.i }

func (s *Scanner) skipSpace() {
	for ; s.i < len(s.b); s.i++ {
		// Most tokens are not preceded by space: one comparison decides.
		if c := s.b[s.i]; c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return
		}
	}
}

// Peek skips whitespace and returns the next byte without consuming it,
// or 0 at the end of the input.
func (s *Scanner) Peek() byte {
	s.skipSpace()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// End skips whitespace and reports whether the input is exhausted; text
// left over is a failure.
func (s *Scanner) End() bool {
	s.skipSpace()
	if s.i == len(s.b) {
		return true
	}
	return s.fail(s.i, len(s.b), "text after the value")
}

// OpenObject consumes '{', and '}' too when the object is empty.
func (s *Scanner) OpenObject() (empty, ok bool) { return s.open('{', '}', "want '{'") }

// NextMember consumes the ',' before another member (more) or the '}'
// that ends the object. After OpenObject or a true more, read the member
// with Key and then its value.
func (s *Scanner) NextMember() (more, ok bool) {
	// A comma straight after the value is the common case: no call.
	if s.i < len(s.b) && s.b[s.i] == ',' {
		s.i++
		return true, true
	}
	return s.next('}', "want ',' or '}'")
}

// OpenArray consumes '[', and ']' too when the array is empty.
func (s *Scanner) OpenArray() (empty, ok bool) { return s.open('[', ']', "want '['") }

// NextElement consumes the ',' before another element (more) or the ']'
// that ends the array.
func (s *Scanner) NextElement() (more, ok bool) {
	if s.i < len(s.b) && s.b[s.i] == ',' { // as in NextMember
		s.i++
		return true, true
	}
	return s.next(']', "want ',' or ']'")
}

func (s *Scanner) open(start, end byte, want string) (empty, ok bool) {
	if s.Peek() != start {
		return false, s.fail(s.i, s.i, want)
	}
	// Checked before the empty case: encoding/json counts an empty
	// container's level too.
	if s.depth >= MaxDepth {
		return false, s.fail(s.i, s.i, "nested deeper than 10000 levels")
	}
	s.i++
	if s.Peek() == end {
		s.i++
		return true, true
	}
	s.depth++
	return false, true
}

func (s *Scanner) next(end byte, want string) (more, ok bool) {
	switch s.Peek() {
	case ',':
		s.i++
		return true, true
	case end:
		s.i++
		s.depth--
		return false, true
	}
	return false, s.fail(s.i, s.i, want)
}

// Key reads a member's name and the ':' after it, leaving the scanner at
// the value.
func (s *Scanner) Key() (String, bool) {
	k, ok := s.Str()
	if !ok {
		return String{}, false
	}
	if s.Peek() != ':' {
		return String{}, s.fail(s.i, s.i, "want ':'")
	}
	s.i++
	return k, true
}

// Null consumes null if it comes next. isNull says whether the next token
// starts like null; ok is false only when it does but is not null.
func (s *Scanner) Null() (isNull, ok bool) {
	if s.Peek() != 'n' {
		return false, true
	}
	return true, s.literal("null", "want null")
}

// Bool reads true or false.
func (s *Scanner) Bool() (v, ok bool) {
	switch s.Peek() {
	case 't':
		return true, s.literal("true", "want true")
	case 'f':
		return false, s.literal("false", "want false")
	}
	return false, s.fail(s.i, s.i, "want true or false")
}

// literal consumes lit (true, false, null) at the scanner's position.
func (s *Scanner) literal(lit, want string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return s.fail(s.i, s.i+len(lit), want)
}

// Skip consumes any value, checking it as encoding/json would.
func (s *Scanner) Skip() bool {
	switch c := s.Peek(); {
	case c == '"':
		_, ok := s.Str()
		return ok
	case c == '{':
		empty, ok := s.OpenObject()
		for ok && !empty {
			if _, ok = s.Key(); !ok || !s.Skip() {
				return false
			}
			var more bool
			more, ok = s.NextMember()
			empty = !more
		}
		return ok
	case c == '[':
		empty, ok := s.OpenArray()
		for ok && !empty {
			if !s.Skip() {
				return false
			}
			var more bool
			more, ok = s.NextElement()
			empty = !more
		}
		return ok
	case c == 't':
		return s.literal("true", "want true")
	case c == 'f':
		return s.literal("false", "want false")
	case c == 'n':
		return s.literal("null", "want null")
	case c == '-' || c-'0' <= 9:
		_, ok := s.Number()
		return ok
	}
	return s.fail(s.i, s.i, "want a JSON value")
}

// Value consumes any value, as Skip does, and returns its text (without
// the whitespace around it). The text aliases the input.
func (s *Scanner) Value() ([]byte, bool) {
	s.skipSpace()
	start := s.i
	if !s.Skip() {
		return nil, false
	}
	return s.b[start:s.i], true
}
