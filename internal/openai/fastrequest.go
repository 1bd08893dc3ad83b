package openai

import (
	"strings"

	"github.com/reprise-llm/reprise/internal/jsonscan"
)

// fastRequest fills rb from a request body without reflection, for the
// shapes clients send: unique lowercase keys, values of the declared types.
// Anything else — a duplicate key, a key differing only in case from a
// field (encoding/json folds case), an escaped key, a type mismatch,
// malformed JSON — returns ok=false and ParseRequest falls back to
// encoding/json, so both paths give the same RequestInfo (FuzzFastRequest
// checks). Raw fields alias body.
func fastRequest(body []byte) (rb requestBody, ok bool) {
	scan := jsonscan.New(body)
	s := &scan
	empty, ok := s.OpenObject()
	if !ok {
		return rb, false
	}
	var seen uint32
	for !empty {
		key, ok := plainKey(s)
		if !ok {
			return rb, false
		}
		bit, known := requestKeys[string(key)]
		if !known {
			if foldsToRequestKey(key) {
				return rb, false
			}
			if !s.Skip() {
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
		more, ok := s.NextMember()
		if !ok {
			return rb, false
		}
		empty = !more
	}
	return rb, s.End()
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

func fastRequestField(s *jsonscan.Scanner, rb *requestBody, key string) bool {
	var ok bool
	switch key {
	case "model":
		rb.Model, ok = stringOrNull(s)
	case "user":
		rb.User, ok = stringOrNull(s)
	case "instructions":
		rb.Instructions, ok = stringOrNull(s)
	case "stream":
		rb.Stream, ok = boolOrNull(s)
	case "ignore_eos":
		rb.IgnoreEOS, ok = boolOrNull(s)
	case "max_tokens":
		rb.MaxTokens, ok = intPtr(s)
	case "max_completion_tokens":
		rb.MaxCompletionTokens, ok = intPtr(s)
	case "max_output_tokens":
		rb.MaxOutputTokens, ok = intPtr(s)
	case "n":
		rb.N, ok = intPtr(s)
	case "temperature":
		rb.Temperature, ok = floatPtr(s)
	case "top_p":
		rb.TopP, ok = floatPtr(s)
	case "stream_options":
		rb.StreamOptions, ok = readStreamOptions(s)
	case "messages", "prompt", "input":
		raw, vok := s.Value()
		if !vok {
			return false
		}
		// encoding/json copies a RawMessage; so does this, since
		// RequestInfo.Messages outlives the body buffer (pooled by callers).
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

// stringOrNull reads a string, or null as "", decoded as encoding/json
// decodes it.
func stringOrNull(s *jsonscan.Scanner) (string, bool) {
	f, ok := s.StrOrNull()
	return f.String(), ok
}

// boolOrNull reads true, false or null (false).
func boolOrNull(s *jsonscan.Scanner) (bool, bool) {
	if isNull, ok := s.Null(); isNull {
		return false, ok
	}
	return s.Bool()
}

// intPtr reads an integer, or null as nil.
func intPtr(s *jsonscan.Scanner) (*int, bool) {
	if isNull, ok := s.Null(); isNull {
		return nil, ok
	}
	n, ok := s.Int()
	if !ok {
		return nil, false
	}
	return &n, true
}

// floatPtr reads a number, or null as nil.
func floatPtr(s *jsonscan.Scanner) (*float64, bool) {
	if isNull, ok := s.Null(); isNull {
		return nil, ok
	}
	num, ok := s.Number()
	if !ok {
		return nil, false
	}
	f, ok := jsonscan.ParseFloat(num)
	if !ok {
		return nil, false
	}
	return &f, true
}

// readStreamOptions reads {"include_usage": bool, ...} or null.
func readStreamOptions(s *jsonscan.Scanner) (*streamOptions, bool) {
	if isNull, ok := s.Null(); isNull {
		return nil, ok
	}
	o := &streamOptions{}
	empty, ok := s.OpenObject()
	if !ok {
		return nil, false
	}
	seen := false
	for !empty {
		key, ok := plainKey(s)
		if !ok {
			return nil, false
		}
		switch {
		case string(key) == "include_usage":
			if seen {
				return nil, false
			}
			seen = true
			if o.IncludeUsage, ok = boolOrNull(s); !ok {
				return nil, false
			}
		case strings.EqualFold(string(key), "include_usage"):
			return nil, false
		default:
			if !s.Skip() {
				return nil, false
			}
		}
		more, ok := s.NextMember()
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
	scan := jsonscan.New(raw)
	s := &scan
	if isNull, ok := s.Null(); isNull {
		return 0, ok && s.End()
	}
	empty, ok := s.OpenArray()
	if !ok {
		return 0, false
	}
	type msg struct{ role, content jsonscan.String }
	var msgs [16]msg
	list := msgs[:0]
	for !empty {
		var m msg
		e, ok := s.OpenObject()
		if !ok {
			return 0, false
		}
		var seenRole, seenContent bool
		for !e {
			key, ok := plainKey(s)
			if !ok {
				return 0, false
			}
			switch {
			case string(key) == "role" && !seenRole:
				seenRole = true
				if m.role, ok = s.StrOrNull(); !ok {
					return 0, false
				}
			case string(key) == "content" && !seenContent:
				seenContent = true
				if c := s.Peek(); c != '"' && c != 'n' {
					return 0, false // content parts: the full decoder
				}
				if m.content, ok = s.StrOrNull(); !ok {
					return 0, false
				}
			case strings.EqualFold(string(key), "role") || strings.EqualFold(string(key), "content"):
				return 0, false
			default:
				if !s.Skip() {
					return 0, false
				}
			}
			more, ok := s.NextMember()
			if !ok {
				return 0, false
			}
			e = !more
		}
		list = append(list, m)
		more, ok := s.NextElement()
		if !ok {
			return 0, false
		}
		empty = !more
	}
	if !s.End() {
		return 0, false
	}
	var buf []byte
	for _, m := range list {
		buf = m.role.AppendTo(buf)
		buf = append(buf, '\x1f')
		buf = m.content.AppendTo(buf)
		buf = append(buf, '\x1e')
	}
	sb.Write(buf)
	return len(list), true
}
