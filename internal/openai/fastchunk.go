package openai

import "github.com/reprise-llm/reprise/internal/jsonscan"

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
	p := chunkParser{s: jsonscan.New(b)}
	if !p.top() || !p.s.End() {
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
	s         jsonscan.Scanner
	c         Chunk
	content   []byte // concatenated content, decoded; may alias the input (capacity capped)
	haveUsage bool

	prompt, input, completion, output int
}

// top walks the chunk object.
func (p *chunkParser) top() bool {
	s := &p.s
	empty, ok := s.OpenObject()
	if !ok || empty {
		return ok
	}
	for {
		key, ok := plainKey(s)
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
			isNull, ok := s.Null()
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
			v, ok := s.StrOrNull()
			if !ok || v.Escaped() || string(v.Raw()) == "error" {
				return false // vLLM's old error shape (or an escaped one): the full decoder
			}
		case "type", "delta", "response", "error", "message":
			return false // shapes the full decoder handles
		default:
			if !s.Skip() {
				return false
			}
		}
		more, ok := s.NextMember()
		if !ok || !more {
			return ok
		}
	}
}

// choices walks the choices array (or null).
func (p *chunkParser) choices() bool {
	s := &p.s
	if isNull, ok := s.Null(); isNull {
		return ok
	}
	empty, ok := s.OpenArray()
	if !ok || empty {
		return ok
	}
	for {
		if !p.choice() {
			return false
		}
		more, ok := s.NextElement()
		if !ok || !more {
			return ok
		}
	}
}

// plainKey reads a member's key for the fast paths, declining one with
// escapes: those are left to encoding/json.
func plainKey(s *jsonscan.Scanner) ([]byte, bool) {
	k, ok := s.Key()
	if !ok || k.Escaped() {
		return nil, false
	}
	return k.Raw(), true
}

// intOrNull reads an integer, or null as 0 (encoding/json leaves a field
// it reads null into as it was).
func intOrNull(s *jsonscan.Scanner) (int, bool) {
	if isNull, ok := s.Null(); isNull {
		return 0, ok
	}
	return s.Int()
}

// choice walks one element of choices. Per choice, the full decoder
// concatenates text, content, reasoning_content and reasoning in that order.
func (p *chunkParser) choice() bool {
	s := &p.s
	var text, dContent, dRC, dR jsonscan.String
	empty, ok := s.OpenObject()
	if !ok {
		return false
	}
	for !empty {
		key, ok := plainKey(s)
		if !ok {
			return false
		}
		switch string(key) {
		case "text":
			if text, ok = s.StrOrNull(); !ok {
				return false
			}
		case "finish_reason":
			v, ok := s.StrOrNull()
			if !ok {
				return false
			}
			if len(v.Raw()) > 0 {
				p.c.FinishReason = v.String()
			}
		case "delta":
			dContent, dRC, dR = jsonscan.String{}, jsonscan.String{}, jsonscan.String{}
			tools := false
			if !p.delta(&dContent, &dRC, &dR, &tools) {
				return false
			}
			if tools {
				p.c.ToolCall = true
			}
		default:
			if !s.Skip() {
				return false
			}
		}
		more, ok := s.NextMember()
		if !ok {
			return false
		}
		empty = !more
	}
	for _, f := range [...]jsonscan.String{text, dContent, dRC, dR} {
		if len(f.Raw()) == 0 {
			continue
		}
		if len(p.content) == 0 && f.Plain() {
			// The common case, one plain string: no copy until string().
			// Raw's capacity is capped, so a later append copies rather
			// than writes into the input.
			p.content = f.Raw()
			continue
		}
		p.content = f.AppendTo(p.content)
	}
	return true
}

// delta walks choices[].delta (or null).
func (p *chunkParser) delta(content, rc, r *jsonscan.String, tools *bool) bool {
	s := &p.s
	if isNull, ok := s.Null(); isNull {
		return ok
	}
	empty, ok := s.OpenObject()
	if !ok || empty {
		return ok
	}
	for {
		key, ok := plainKey(s)
		if !ok {
			return false
		}
		switch string(key) {
		case "content":
			*content, ok = s.StrOrNull()
		case "reasoning_content":
			*rc, ok = s.StrOrNull()
		case "reasoning":
			*r, ok = s.StrOrNull()
		case "tool_calls":
			var raw []byte
			if raw, ok = s.Value(); ok {
				*tools = hasToolCalls(raw)
			}
		default:
			ok = s.Skip()
		}
		if !ok {
			return false
		}
		more, ok := s.NextMember()
		if !ok || !more {
			return ok
		}
	}
}

// usage walks a non-null usage object.
func (p *chunkParser) usage() bool {
	s := &p.s
	empty, ok := s.OpenObject()
	if !ok || empty {
		return ok
	}
	for {
		key, ok := plainKey(s)
		if !ok {
			return false
		}
		switch string(key) {
		case "prompt_tokens":
			p.prompt, ok = intOrNull(s)
		case "input_tokens":
			p.input, ok = intOrNull(s)
		case "completion_tokens":
			p.completion, ok = intOrNull(s)
		case "output_tokens":
			p.output, ok = intOrNull(s)
		case "prompt_tokens_details", "input_tokens_details":
			isNull, nok := s.Null()
			if !isNull {
				return false // cached tokens: the full decoder's precedence rules apply
			}
			ok = nok
		default:
			ok = s.Skip()
		}
		if !ok {
			return false
		}
		more, ok := s.NextMember()
		if !ok || !more {
			return ok
		}
	}
}
