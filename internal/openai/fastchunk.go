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
	s := scanner{b: b}
	var content []byte // concatenated raw content, unescaped
	var usage Usage
	haveUsage := false
	var prompt, input, completion, output int
	okObj := s.object(func(key []byte) bool {
		switch string(key) {
		case "choices":
			// encoding/json keeps the last of duplicate keys; so does this.
			content, c.FinishReason = content[:0], ""
			return s.array(func() bool {
				// Per choice, the full decoder concatenates text, content,
				// reasoning_content and reasoning in that order.
				var text, dContent, dRC, dR []byte
				ok := s.object(func(key []byte) bool {
					switch string(key) {
					case "text":
						text = text[:0]
						return s.appendString(&text)
					case "finish_reason":
						v, isNull, ok := s.stringOrNull()
						if ok && !isNull && len(v) > 0 {
							c.FinishReason = v
						}
						return ok
					case "delta":
						dContent, dRC, dR = dContent[:0], dRC[:0], dR[:0]
						return s.objectOrNull(func(key []byte) bool {
							switch string(key) {
							case "content":
								dContent = dContent[:0]
								return s.appendString(&dContent)
							case "reasoning_content":
								dRC = dRC[:0]
								return s.appendString(&dRC)
							case "reasoning":
								dR = dR[:0]
								return s.appendString(&dR)
							}
							return s.skip()
						})
					}
					return s.skip()
				})
				content = append(append(append(append(content, text...), dContent...), dRC...), dR...)
				return ok
			})
		case "usage":
			isNull, ok := s.null()
			if isNull {
				haveUsage = false
				return ok
			}
			if haveUsage {
				return false // merged duplicate usage objects: leave to encoding/json
			}
			haveUsage = true
			return s.object(func(key []byte) bool {
				var ok bool
				switch string(key) {
				case "prompt_tokens":
					prompt, ok = s.int()
				case "input_tokens":
					input, ok = s.int()
				case "completion_tokens":
					completion, ok = s.int()
				case "output_tokens":
					output, ok = s.int()
				case "prompt_tokens_details", "input_tokens_details":
					if isNull, ok := s.null(); isNull {
						return ok
					}
					return false // cached tokens: the full decoder's precedence rules apply
				default:
					return s.skip()
				}
				return ok
			})
		case "object":
			v, _, ok := s.stringOrNull()
			return ok && v != "error" // vLLM's old error shape: the full decoder
		case "type", "delta", "response", "error", "message":
			return false // shapes the full decoder handles
		}
		return s.skip()
	})
	usage = Usage{PromptTokens: prompt + input, CompletionTokens: completion + output}
	if !okObj {
		return Chunk{}, false
	}
	s.ws()
	if s.i != len(s.b) {
		return Chunk{}, false
	}
	if len(content) > 0 {
		c.Content = string(content)
	}
	if haveUsage {
		c.Usage = &usage
	}
	return c, true
}

// scanner is a minimal JSON walker over a byte slice.
type scanner struct {
	b []byte
	i int
}

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

// object walks {"k": v, ...}, calling field for each key with the scanner
// positioned at the value; field must consume the value.
func (s *scanner) object(field func(key []byte) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		key, esc, ok := s.rawString()
		if !ok || esc {
			return false
		}
		if s.peek() != ':' {
			return false
		}
		s.i++
		if !field(key) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

func (s *scanner) objectOrNull(field func(key []byte) bool) bool {
	if isNull, ok := s.null(); isNull {
		return ok
	}
	return s.object(field)
}

func (s *scanner) array(elem func() bool) bool {
	if isNull, ok := s.null(); isNull {
		return ok
	}
	if s.peek() != '[' {
		return false
	}
	s.i++
	if s.peek() == ']' {
		s.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
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

// appendString appends a string value (or nothing for null) to dst.
func (s *scanner) appendString(dst *[]byte) bool {
	if isNull, ok := s.null(); isNull {
		return ok
	}
	start := s.i
	raw, esc, ok := s.rawString()
	if !ok {
		return false
	}
	if !esc {
		*dst = append(*dst, raw...)
		return true
	}
	var v string
	if json.Unmarshal(s.b[start:s.i], &v) != nil {
		return false
	}
	*dst = append(*dst, v...)
	return true
}

func (s *scanner) stringOrNull() (v string, isNull, ok bool) {
	if isNull, ok := s.null(); isNull {
		return "", true, ok
	}
	var b []byte
	if !s.appendString(&b) {
		return "", false, false
	}
	return string(b), false, true
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
	switch c := s.peek(); {
	case c == '{':
		return s.object(func([]byte) bool { return s.skip() })
	case c == '[':
		return s.array(s.skip)
	case c == '"':
		_, _, ok := s.rawString()
		return ok
	case c == 'n':
		_, ok := s.null()
		return ok
	case c == 't':
		if s.i+4 <= len(s.b) && string(s.b[s.i:s.i+4]) == "true" {
			s.i += 4
			return true
		}
		return false
	case c == 'f':
		if s.i+5 <= len(s.b) && string(s.b[s.i:s.i+5]) == "false" {
			s.i += 5
			return true
		}
		return false
	case c == '-' || (c >= '0' && c <= '9'):
		start := s.i
		for s.i < len(s.b) {
			d := s.b[s.i]
			if d == '-' || d == '+' || d == '.' || d == 'e' || d == 'E' || (d >= '0' && d <= '9') {
				s.i++
				continue
			}
			break
		}
		return json.Valid(s.b[start:s.i])
	}
	return false
}
