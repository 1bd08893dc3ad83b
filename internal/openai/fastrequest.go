package openai

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// fastRequest fills rb from a request body without reflection, for the
// shapes clients send: unique lowercase keys, values of the declared types.
// Anything else — a duplicate key, a key differing only in case from a
// field (encoding/json folds case), a type mismatch, invalid UTF-8 in a
// string it keeps (encoding/json replaces it), malformed JSON — returns
// ok=false and ParseRequest falls back to encoding/json, so both paths give
// the same RequestInfo (FuzzFastRequest checks). Raw fields alias body.
func fastRequest(body []byte) (rb requestBody, ok bool) {
	s := &scanner{b: body}
	empty, ok := s.objStart()
	if !ok {
		return rb, false
	}
	var seen uint32
	for !empty {
		key, ok := s.objKey()
		if !ok {
			return rb, false
		}
		bit, known := requestKeys[string(key)]
		if !known {
			if foldsToRequestKey(key) {
				return rb, false
			}
			if !s.skip() {
				return rb, false
			}
		} else {
			if seen&bit != 0 {
				return rb, false
			}
			seen |= bit
			if !fastRequestField(s, &rb, string(key)) {
				return rb, false
			}
		}
		more, ok := s.objNext()
		if !ok {
			return rb, false
		}
		empty = !more
	}
	s.ws()
	return rb, s.i == len(s.b)
}

// requestKeys are requestBody's JSON names, each with its own bit.
var requestKeys = func() map[string]uint32 {
	m := map[string]uint32{}
	for i, k := range []string{"model", "stream", "stream_options", "max_tokens", "max_completion_tokens",
		"max_output_tokens", "ignore_eos", "temperature", "top_p", "n", "user", "messages", "prompt", "input", "instructions"} {
		m[k] = 1 << i
	}
	return m
}()

func foldsToRequestKey(key []byte) bool {
	for k := range requestKeys {
		if len(k) == len(key) && strings.EqualFold(k, string(key)) {
			return true
		}
	}
	return false
}

func fastRequestField(s *scanner, rb *requestBody, key string) bool {
	var ok bool
	switch key {
	case "model":
		rb.Model, ok = s.plainString()
	case "user":
		rb.User, ok = s.plainString()
	case "instructions":
		rb.Instructions, ok = s.plainString()
	case "stream":
		rb.Stream, ok = s.boolean()
	case "ignore_eos":
		rb.IgnoreEOS, ok = s.boolean()
	case "max_tokens":
		rb.MaxTokens, ok = s.intPtr()
	case "max_completion_tokens":
		rb.MaxCompletionTokens, ok = s.intPtr()
	case "max_output_tokens":
		rb.MaxOutputTokens, ok = s.intPtr()
	case "n":
		rb.N, ok = s.intPtr()
	case "temperature":
		rb.Temperature, ok = s.floatPtr()
	case "top_p":
		rb.TopP, ok = s.floatPtr()
	case "stream_options":
		rb.StreamOptions, ok = s.streamOptions()
	case "messages", "prompt", "input":
		s.ws()
		start := s.i
		if !s.skip() {
			return false
		}
		// encoding/json copies a RawMessage; so does this, since
		// RequestInfo.Messages outlives the body buffer (pooled by callers).
		raw := s.b[start:s.i]
		if key != "prompt" {
			raw = append([]byte(nil), raw...)
		}
		switch key {
		case "messages":
			rb.Messages = raw
		case "prompt":
			rb.Prompt = raw
		default:
			rb.Input = raw
		}
		ok = true
	}
	return ok
}

// plainString reads a string (or null, as "") holding valid UTF-8.
func (s *scanner) plainString() (string, bool) {
	f, ok := s.stringField()
	if !ok {
		return "", false
	}
	if !f.esc {
		if !utf8.Valid(f.raw) {
			return "", false
		}
		return string(f.raw), true
	}
	b, ok := f.appendTo(nil)
	return string(b), ok && utf8.Valid(f.raw)
}

// boolean reads true, false or null (false).
func (s *scanner) boolean() (bool, bool) {
	switch s.peek() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	case 'n':
		_, ok := s.null()
		return false, ok
	}
	return false, false
}

// intPtr reads an integer, or null as nil.
func (s *scanner) intPtr() (*int, bool) {
	if isNull, ok := s.null(); isNull {
		return nil, ok
	}
	n, ok := s.int()
	if !ok {
		return nil, false
	}
	return &n, true
}

// floatPtr reads a number, or null as nil.
func (s *scanner) floatPtr() (*float64, bool) {
	if isNull, ok := s.null(); isNull {
		return nil, ok
	}
	num, ok := s.number()
	if !ok {
		return nil, false
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil {
		return nil, false
	}
	return &f, true
}

// streamOptions reads {"include_usage": bool, ...} or null.
func (s *scanner) streamOptions() (*streamOptions, bool) {
	if isNull, ok := s.null(); isNull {
		return nil, ok
	}
	o := &streamOptions{}
	empty, ok := s.objStart()
	if !ok {
		return nil, false
	}
	seen := false
	for !empty {
		key, ok := s.objKey()
		if !ok {
			return nil, false
		}
		switch {
		case string(key) == "include_usage":
			if seen {
				return nil, false
			}
			seen = true
			if o.IncludeUsage, ok = s.boolean(); !ok {
				return nil, false
			}
		case strings.EqualFold(string(key), "include_usage"):
			return nil, false
		default:
			if !s.skip() {
				return nil, false
			}
		}
		more, ok := s.objNext()
		if !ok {
			return nil, false
		}
		empty = !more
	}
	return o, true
}

// fastMessages appends chat messages as appendMessages does, for arrays of
// objects whose content is a string or null; ok=false leaves sb untouched
// and the caller falls back.
func fastMessages(sb *strings.Builder, raw []byte) (n int, ok bool) {
	s := &scanner{b: raw}
	if isNull, ok := s.null(); isNull {
		s.ws()
		return 0, ok && s.i == len(s.b)
	}
	empty, ok := s.arrStart()
	if !ok {
		return 0, false
	}
	type msg struct{ role, content field }
	var msgs [16]msg
	list := msgs[:0]
	for !empty {
		var m msg
		e, ok := s.objStart()
		if !ok {
			return 0, false
		}
		var seenRole, seenContent bool
		for !e {
			key, ok := s.objKey()
			if !ok {
				return 0, false
			}
			switch {
			case string(key) == "role" && !seenRole:
				seenRole = true
				if m.role, ok = s.stringField(); !ok {
					return 0, false
				}
			case string(key) == "content" && !seenContent:
				seenContent = true
				if s.peek() != '"' && s.peek() != 'n' {
					return 0, false // content parts: the full decoder
				}
				if m.content, ok = s.stringField(); !ok {
					return 0, false
				}
			case strings.EqualFold(string(key), "role") || strings.EqualFold(string(key), "content"):
				return 0, false
			default:
				if !s.skip() {
					return 0, false
				}
			}
			more, ok := s.objNext()
			if !ok {
				return 0, false
			}
			e = !more
		}
		if !utf8.Valid(m.role.raw) || !utf8.Valid(m.content.raw) {
			return 0, false
		}
		list = append(list, m)
		more, ok := s.arrNext()
		if !ok {
			return 0, false
		}
		empty = !more
	}
	s.ws()
	if s.i != len(s.b) {
		return 0, false
	}
	var buf []byte
	for _, m := range list {
		var ok bool
		buf, ok = m.role.appendTo(buf)
		if !ok {
			return 0, false
		}
		buf = append(buf, '\x1f')
		if len(m.content.raw) > 0 {
			if buf, ok = m.content.appendTo(buf); !ok {
				return 0, false
			}
		}
		buf = append(buf, '\x1e')
	}
	sb.Write(buf)
	return len(list), true
}
