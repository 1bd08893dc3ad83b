package openai

import (
	"strings"

	"github.com/reprise-llm/reprise/internal/jsonscan"
)

// The Responses API (POST /v1/responses) streams typed events instead of
// chat chunks (openai-go's ResponseStreamEventUnion): response.created and
// response.in_progress carry the response object with "usage": null; text
// arrives in response.output_text.delta {"delta": "..."}; the stream ends
// with response.completed (or .incomplete / .failed) carrying the whole
// response and its usage {input_tokens, output_tokens,
// input_tokens_details.cached_tokens}. There is no [DONE]. Embeddings
// (POST /v1/embeddings) answer one JSON body whose usage has prompt_tokens
// only; their input may be text or token ids.

// textDeltaTypes are the Responses stream events whose "delta" is generated
// text, counted as content like a chat delta's content or
// reasoning_content: the answer, a refusal, and reasoning (vLLM serves
// gpt-oss reasoning as reasoning_text). Tool-call argument deltas
// (toolCallDeltaType) are not text; they set Chunk.ToolCall instead, as a
// chat delta's tool_calls does.
var textDeltaTypes = [...]string{
	"response.output_text.delta",
	"response.refusal.delta",
	"response.reasoning_text.delta",
	"response.reasoning_summary_text.delta",
}

// toolCallDeltaType is the Responses stream event whose "delta" is part
// of a function call's arguments.
const toolCallDeltaType = "response.function_call_arguments.delta"

// isTextDelta reports whether a Responses event type carries text.
func isTextDelta(typ string) bool {
	for _, t := range textDeltaTypes {
		if typ == t {
			return true
		}
	}
	return false
}

// finishForEvent is the finish reason a terminal Responses event implies.
func finishForEvent(typ string) string {
	switch typ {
	case "response.completed":
		return "stop"
	case "response.incomplete":
		return "length"
	}
	return ""
}

// fastResponseEvent decodes the common Responses stream events without
// reflection, reading "type", "delta" and the response's usage and skipping
// the rest (response.completed repeats the whole output, so this matters
// once per stream; the deltas, once per token). Anything else it declines
// (ok=false): error objects, chat-shaped members, escaped keys; the caller
// then uses encoding/json, and FuzzFastResponseEvent holds both to the
// same answer.
func fastResponseEvent(b []byte) (c Chunk, ok bool) {
	s := jsonscan.New(b)
	empty, ok := s.OpenObject()
	if !ok || empty {
		return Chunk{}, false
	}
	var typ, delta jsonscan.String
	var haveType, haveResp bool
	var u *Usage
	for {
		key, ok := plainKey(&s)
		if !ok {
			return Chunk{}, false
		}
		switch string(key) {
		case "type":
			if haveType {
				return Chunk{}, false
			}
			haveType = true
			if typ, ok = s.StrOrNull(); !ok || typ.Escaped() {
				return Chunk{}, false
			}
		case "delta":
			if delta.Raw() != nil {
				return Chunk{}, false
			}
			if delta, ok = s.StrOrNull(); !ok {
				return Chunk{}, false
			}
		case "response":
			if haveResp {
				return Chunk{}, false
			}
			isNull, nok := s.Null()
			if !nok {
				return Chunk{}, false
			}
			if !isNull {
				haveResp = true
				if u, ok = responseObject(&s); !ok {
					return Chunk{}, false
				}
			}
		case "choices", "usage", "error", "message", "object":
			return Chunk{}, false // chat chunks and error shapes: encoding/json
		default:
			if !s.Skip() {
				return Chunk{}, false
			}
		}
		more, ok := s.NextMember()
		if !ok {
			return Chunk{}, false
		}
		if !more {
			break
		}
	}
	if !s.End() || !haveType {
		return Chunk{}, false
	}
	t := string(typ.Raw())
	if t == "error" || !strings.HasPrefix(t, "response.") {
		return Chunk{}, false
	}
	if isTextDelta(t) && delta.Raw() != nil {
		c.Content = delta.String()
	}
	if t == toolCallDeltaType && len(delta.Raw()) > 0 {
		c.ToolCall = true
	}
	if haveResp {
		c.Usage = u
		c.FinishReason = finishForEvent(t)
	}
	return c, true
}

// responseObject walks an event's "response" object for its usage,
// declining one that carries an error (response.failed).
func responseObject(s *jsonscan.Scanner) (u *Usage, ok bool) {
	empty, ok := s.OpenObject()
	if !ok || empty {
		return nil, ok
	}
	haveUsage := false
	for {
		key, ok := plainKey(s)
		if !ok {
			return nil, false
		}
		switch string(key) {
		case "usage":
			if haveUsage {
				return nil, false
			}
			haveUsage = true
			isNull, nok := s.Null()
			if !nok {
				return nil, false
			}
			if !isNull {
				if u, ok = usageObject(s); !ok {
					return nil, false
				}
			}
		case "error":
			isNull, nok := s.Null()
			if !isNull || !nok {
				return nil, false // response.failed: encoding/json
			}
		case "status", "object", "message":
			// Strings in responseWire: other types fail encoding/json.
			_, ok = s.StrOrNull()
		case "output":
			ok = outputArray(s)
		case "choices", "data":
			return nil, false // chat or embeddings shapes: encoding/json
		default:
			ok = s.Skip()
		}
		if !ok {
			return nil, false
		}
		more, ok := s.NextMember()
		if !ok {
			return nil, false
		}
		if !more {
			return u, true
		}
	}
}

// outputArray checks the shape responseWire.Output decodes without
// error: null, or an array of null or objects whose "content" is null or
// an array of null or objects whose "text" is a string or null.
func outputArray(s *jsonscan.Scanner) bool {
	return nullOrArray(s, func() bool {
		return nullOrObject(s, func(key []byte) bool {
			if string(key) != "content" {
				return s.Skip()
			}
			return nullOrArray(s, func() bool {
				return nullOrObject(s, func(key []byte) bool {
					if string(key) != "text" {
						return s.Skip()
					}
					_, ok := s.StrOrNull()
					return ok
				})
			})
		})
	})
}

// nullOrArray reads null or an array whose elements elem reads.
func nullOrArray(s *jsonscan.Scanner, elem func() bool) bool {
	if isNull, ok := s.Null(); isNull {
		return ok
	}
	empty, ok := s.OpenArray()
	for ok && !empty {
		if !elem() {
			return false
		}
		var more bool
		more, ok = s.NextElement()
		empty = !more
	}
	return ok
}

// nullOrObject reads null or an object whose member values member reads.
func nullOrObject(s *jsonscan.Scanner, member func(key []byte) bool) bool {
	if isNull, ok := s.Null(); isNull {
		return ok
	}
	empty, ok := s.OpenObject()
	for ok && !empty {
		key, kok := plainKey(s)
		if !kok || !member(key) {
			return false
		}
		var more bool
		more, ok = s.NextMember()
		empty = !more
	}
	return ok
}

// usageObject reads a usage object in either naming (Responses'
// input/output_tokens or chat's prompt/completion_tokens; usageWire adds
// them) with its cached tokens.
func usageObject(s *jsonscan.Scanner) (*Usage, bool) {
	u := &Usage{}
	empty, ok := s.OpenObject()
	if !ok || empty {
		return u, ok
	}
	var seen [6]bool
	for {
		key, ok := plainKey(s)
		if !ok {
			return nil, false
		}
		var n, idx int
		switch string(key) {
		case "prompt_tokens":
			idx = 0
		case "input_tokens":
			idx = 1
		case "completion_tokens":
			idx = 2
		case "output_tokens":
			idx = 3
		case "prompt_tokens_details":
			idx = 4
		case "input_tokens_details":
			idx = 5
		default:
			idx = -1
		}
		switch {
		case idx < 0:
			ok = s.Skip()
		case seen[idx]:
			return nil, false
		case idx < 4:
			if n, ok = intOrNull(s); ok {
				if idx < 2 {
					u.PromptTokens += n
				} else {
					u.CompletionTokens += n
				}
			}
		default:
			var cached int
			var present bool
			if cached, present, ok = cachedTokens(s); ok && present && (idx == 5 || !seen[5]) {
				// input_tokens_details wins over prompt_tokens_details,
				// wherever each appears (usageWire.usage's rule).
				u.CachedTokens = cached
			}
		}
		if !ok {
			return nil, false
		}
		if idx >= 0 {
			seen[idx] = true
		}
		more, ok := s.NextMember()
		if !ok {
			return nil, false
		}
		if !more {
			return u, true
		}
	}
}

// cachedTokens reads a *_tokens_details object (or null): its
// cached_tokens, and whether the object was present.
func cachedTokens(s *jsonscan.Scanner) (cached int, present, ok bool) {
	isNull, ok := s.Null()
	if isNull || !ok {
		return 0, false, ok
	}
	empty, ok := s.OpenObject()
	if !ok || empty {
		return 0, ok, ok
	}
	seen := false
	for {
		key, ok := plainKey(s)
		if !ok {
			return 0, false, false
		}
		if string(key) == "cached_tokens" {
			if seen {
				return 0, false, false
			}
			seen = true
			if cached, ok = intOrNull(s); !ok {
				return 0, false, false
			}
		} else if !s.Skip() {
			return 0, false, false
		}
		more, ok := s.NextMember()
		if !ok {
			return 0, false, false
		}
		if !more {
			return cached, true, true
		}
	}
}

// countTokenIDs returns how many token ids a prompt or embeddings input
// holds when it is given as ids (an array of integers, or an array of such
// arrays), else 0. Those are exact prompt token counts where a server sends
// no usage; text is estimated instead.
func countTokenIDs(raw []byte) int {
	s := jsonscan.New(raw)
	empty, ok := s.OpenArray()
	if !ok || empty {
		return 0
	}
	n := 0
	for {
		switch c := s.Peek(); {
		case c == '[':
			m, ok := intArray(&s)
			if !ok {
				return 0
			}
			n += m
		case c == '-' || (c >= '0' && c <= '9'):
			if _, ok := s.Int(); !ok {
				return 0
			}
			n++
		default:
			return 0
		}
		more, ok := s.NextElement()
		if !ok {
			return 0
		}
		if !more {
			return n
		}
	}
}

// intArray reads an array of integers, returning its length.
func intArray(s *jsonscan.Scanner) (int, bool) {
	empty, ok := s.OpenArray()
	if !ok || empty {
		return 0, ok
	}
	n := 0
	for {
		if c := s.Peek(); c != '-' && (c < '0' || c > '9') {
			return 0, false
		}
		if _, ok := s.Int(); !ok {
			return 0, false
		}
		n++
		more, ok := s.NextElement()
		if !ok {
			return 0, false
		}
		if !more {
			return n, true
		}
	}
}
