package openai

import (
	"encoding/json"
	"strconv"
)

// fastChunk decodes the common shapes of a streamed chat or completions
// chunk without reflection: it walks the JSON once, reading choices[].text,
// choices[].delta.{content,reasoning_content,reasoning},
// choices[].finish_reason and usage, and skipping everything else. Any shape
// it does not fully understand (Responses API events, error objects,
// malformed input) returns ok=false and the caller falls back to
// encoding/json, so both paths give the same Chunk (FuzzFastChunk checks).
// It exists because the proxy and the replay client parse every SSE event
// of every stream on the request path.
func fastChunk(b []byte) (c Chunk, ok bool) {
	p := chunkParser{s: scanner{b: b}}
	if !p.top() {
		return Chunk{}, false
	}
	p.s.ws()
	if p.s.i != len(p.s.b) {
		return Chunk{}, false
	}
	c = p.c
	if len(p.content) > 0 {
		c.Content = string(p.content)
	}
	if p.haveUsage {
		c.Usage = &Usage{PromptTokens: p.prompt + p.input, CompletionTokens: p.completion + p.output}
	}
	return c, true
}

// chunkParser holds fastChunk's state. Its walk is written as loops over
// the scanner's object and array steps rather than with callbacks: closures
// would escape to the heap, and this runs for every event of every stream.
type chunkParser struct {
	s         scanner
	c         Chunk
	content   []byte // concatenated content, unescaped; may alias the input (capacity capped)
	haveUsage bool

	prompt, input, completion, output int
}

// top walks the chunk object.
func (p *chunkParser) top() bool {
	s := &p.s
	empty, ok := s.objStart()
	if !ok || empty {
		return ok
	}
	for {
		key, ok := s.objKey()
		if !ok {
			return false
		}
		switch string(key) {
		case "choices":
			// encoding/json keeps the last of duplicate keys; so does this.
			p.content, p.c.FinishReason, p.c.ToolCall = p.content[:0], "", false
			if !p.choices() {
				return false
			}
		case "usage":
			isNull, ok := s.null()
			if !ok {
				return false
			}
			if isNull {
				p.haveUsage = false
				break
			}
			if p.haveUsage {
				return false // merged duplicate usage objects: leave to encoding/json
			}
			p.haveUsage = true
			if !p.usage() {
				return false
			}
		case "object":
			v, _, ok := s.rawStringOrNull()
			if !ok || string(v) == "error" {
				return false // vLLM's old error shape: the full decoder
			}
		case "type", "delta", "response", "error", "message":
			return false // shapes the full decoder handles
		default:
			if !s.skip() {
				return false
			}
		}
		more, ok := s.objNext()
		if !ok || !more {
			return ok
		}
	}
}

// choices walks the choices array (or null).
func (p *chunkParser) choices() bool {
	s := &p.s
	if isNull, ok := s.null(); isNull {
		return ok
	}
	empty, ok := s.arrStart()
	if !ok || empty {
		return ok
	}
	for {
		if !p.choice() {
			return false
		}
		more, ok := s.arrNext()
		if !ok || !more {
			return ok
		}
	}
}

// field is a string value as found: raw bytes between the quotes, and
// whether they hold escapes. A zero field is an absent or null string.
type field struct {
	raw []byte
	esc bool
}

// appendTo appends the field's decoded text to dst.
func (f field) appendTo(dst []byte) ([]byte, bool) {
	if !f.esc {
		return append(dst, f.raw...), true
	}
	var v string
	// raw sits between quotes in the input, so the quoted form is raw's
	// surroundings; rebuild it to decode the escapes.
	q := make([]byte, 0, len(f.raw)+2)
	q = append(append(append(q, '"'), f.raw...), '"')
	if json.Unmarshal(q, &v) != nil {
		return dst, false
	}
	return append(dst, v...), true
}

// choice walks one element of choices. Per choice, the full decoder
// concatenates text, content, reasoning_content and reasoning in that order.
func (p *chunkParser) choice() bool {
	s := &p.s
	var text, dContent, dRC, dR field
	empty, ok := s.objStart()
	if !ok {
		return false
	}
	for !empty {
		key, ok := s.objKey()
		if !ok {
			return false
		}
		switch string(key) {
		case "text":
			if text, ok = s.stringField(); !ok {
				return false
			}
		case "finish_reason":
			v, isNull, ok := s.stringOrNull()
			if !ok {
				return false
			}
			if !isNull && len(v) > 0 {
				p.c.FinishReason = v
			}
		case "delta":
			dContent, dRC, dR = field{}, field{}, field{}
			tools := false
			if !p.delta(&dContent, &dRC, &dR, &tools) {
				return false
			}
			if tools {
				p.c.ToolCall = true
			}
		default:
			if !s.skip() {
				return false
			}
		}
		more, ok := s.objNext()
		if !ok {
			return false
		}
		empty = !more
	}
	for _, f := range [...]field{text, dContent, dRC, dR} {
		if len(f.raw) > 0 && !f.esc && len(p.content) == 0 {
			// The common case, one plain string: no copy until string().
			// The capacity cap makes a later append copy, never write
			// into the input.
			p.content = f.raw[:len(f.raw):len(f.raw)]
			continue
		}
		if len(f.raw) > 0 {
			if p.content, ok = f.appendTo(p.content); !ok {
				return false
			}
		}
	}
	return true
}

// delta walks choices[].delta (or null).
func (p *chunkParser) delta(content, rc, r *field, tools *bool) bool {
	s := &p.s
	if isNull, ok := s.null(); isNull {
		return ok
	}
	empty, ok := s.objStart()
	if !ok || empty {
		return ok
	}
	for {
		key, ok := s.objKey()
		if !ok {
			return false
		}
		switch string(key) {
		case "content":
			*content, ok = s.stringField()
		case "reasoning_content":
			*rc, ok = s.stringField()
		case "reasoning":
			*r, ok = s.stringField()
		case "tool_calls":
			start := s.i
			if ok = s.skip(); ok {
				*tools = hasToolCalls(s.b[start:s.i])
			}
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
		more, ok := s.objNext()
		if !ok || !more {
			return ok
		}
	}
}

// usage walks a non-null usage object.
func (p *chunkParser) usage() bool {
	s := &p.s
	empty, ok := s.objStart()
	if !ok || empty {
		return ok
	}
	for {
		key, ok := s.objKey()
		if !ok {
			return false
		}
		switch string(key) {
		case "prompt_tokens":
			p.prompt, ok = s.int()
		case "input_tokens":
			p.input, ok = s.int()
		case "completion_tokens":
			p.completion, ok = s.int()
		case "output_tokens":
			p.output, ok = s.int()
		case "prompt_tokens_details", "input_tokens_details":
			isNull, nok := s.null()
			if !isNull {
				return false // cached tokens: the full decoder's precedence rules apply
			}
			ok = nok
		default:
			ok = s.skip()
		}
		if !ok {
			return false
		}
		more, ok := s.objNext()
		if !ok || !more {
			return ok
		}
	}
}

// scanner is a minimal JSON walker over a byte slice.
type scanner struct {
	b     []byte
	i     int
	depth int // nesting of skip, bounded by maxDepth
}

// maxDepth bounds nesting as encoding/json does (it refuses deeper input),
// so hostile input cannot make skip recurse without limit.
const maxDepth = 10000

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// open consumes a container's opening delimiter ('{' or '['), and its
// closing one when the container is empty.
func (s *scanner) open(start, end byte) (empty, ok bool) {
	if s.peek() != start {
		return false, false
	}
	s.i++
	if s.peek() == end {
		s.i++
		return true, true
	}
	return false, true
}

// next consumes the ',' before another member or element, or the closing
// delimiter end.
func (s *scanner) next(end byte) (more, ok bool) {
	switch s.peek() {
	case ',':
		s.i++
		return true, true
	case end:
		s.i++
		return false, true
	}
	return false, false
}

func (s *scanner) objStart() (empty, ok bool) { return s.open('{', '}') }
func (s *scanner) objNext() (more, ok bool)   { return s.next('}') }
func (s *scanner) arrStart() (empty, ok bool) { return s.open('[', ']') }
func (s *scanner) arrNext() (more, ok bool)   { return s.next(']') }

// objKey reads a member's key and its ':', leaving the scanner at the
// value. Keys with escapes are left to encoding/json.
func (s *scanner) objKey() ([]byte, bool) {
	key, esc, ok := s.rawString()
	if !ok || esc || s.peek() != ':' {
		return nil, false
	}
	s.i++
	return key, true
}

func (s *scanner) null() (isNull, ok bool) {
	if s.peek() == 'n' {
		if s.i+4 <= len(s.b) && string(s.b[s.i:s.i+4]) == "null" {
			s.i += 4
			return true, true
		}
		return true, false
	}
	return false, true
}

// rawString reads a string token, returning its bytes between the quotes
// and whether it contains escapes.
func (s *scanner) rawString() (raw []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	start := s.i + 1
	// Fast path: a plain string (no escape, no control character) is one
	// tight loop; anything else is rescanned by the full loop below.
	for j := start; j < len(s.b); j++ {
		c := s.b[j]
		if c == '"' {
			s.i = j + 1
			return s.b[start:j], false, true
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return s.b[start:j], escaped, true
		case c == '\\':
			escaped = true
			j++
			if j >= len(s.b) {
				return nil, false, false
			}
			switch s.b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s.b) {
					return nil, false, false
				}
				for _, h := range s.b[j+1 : j+5] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, false, false
					}
				}
				j += 4
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		}
	}
	return nil, false, false
}

// stringField reads a string value or null (a zero field).
func (s *scanner) stringField() (field, bool) {
	if isNull, ok := s.null(); isNull {
		return field{}, ok
	}
	raw, esc, ok := s.rawString()
	return field{raw: raw, esc: esc}, ok
}

// rawStringOrNull reads a string value's raw bytes, or null.
func (s *scanner) rawStringOrNull() (raw []byte, isNull, ok bool) {
	if isNull, ok := s.null(); isNull {
		return nil, true, ok
	}
	raw, _, ok = s.rawString()
	return raw, false, ok
}

func (s *scanner) stringOrNull() (v string, isNull, ok bool) {
	f, ok := s.stringField()
	if !ok {
		return "", false, false
	}
	if f.raw == nil {
		return "", true, true
	}
	b, ok := f.appendTo(nil)
	return string(b), false, ok
}

// int reads a JSON number that must be an integer (or null, read as 0).
func (s *scanner) int() (int, bool) {
	if isNull, ok := s.null(); isNull {
		return 0, ok
	}
	s.ws()
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || (s.b[s.i] >= '0' && s.b[s.i] <= '9')) {
		s.i++
	}
	digits := s.b[start:s.i]
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false // JSON has no leading zeros
	}
	n, err := strconv.Atoi(string(s.b[start:s.i]))
	if err != nil || (s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E')) {
		return 0, false
	}
	return n, true
}

// skip consumes any JSON value.
func (s *scanner) skip() bool {
	if s.depth >= maxDepth {
		return false
	}
	s.depth++
	defer func() { s.depth-- }()
	switch c := s.peek(); {
	case c == '{':
		empty, ok := s.objStart()
		for ok && !empty {
			if _, ok = s.objKey(); !ok || !s.skip() {
				return false
			}
			var more bool
			more, ok = s.objNext()
			empty = !more
		}
		return ok
	case c == '[':
		empty, ok := s.arrStart()
		for ok && !empty {
			if !s.skip() {
				return false
			}
			var more bool
			more, ok = s.arrNext()
			empty = !more
		}
		return ok
	case c == '"':
		_, _, ok := s.rawString()
		return ok
	case c == 'n':
		_, ok := s.null()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == '-' || (c >= '0' && c <= '9'):
		_, ok := s.number()
		return ok
	}
	return false
}

// literal consumes lit (true, false) at the scanner's position.
func (s *scanner) literal(lit string) bool {
	if s.i+len(lit) <= len(s.b) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// number consumes a JSON number and returns its text.
func (s *scanner) number() ([]byte, bool) {
	s.ws()
	start := s.i
	for s.i < len(s.b) {
		d := s.b[s.i]
		if d == '-' || d == '+' || d == '.' || d == 'e' || d == 'E' || (d >= '0' && d <= '9') {
			s.i++
			continue
		}
		break
	}
	return s.b[start:s.i], validNumber(s.b[start:s.i])
}

// validNumber reports whether b is a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}
