package openai

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var chunkSeeds = []string{
	`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"c1","choices":[{"index":0,"delta":{"content":"Hello \"world\"\n\u00e9"},"finish_reason":null}]}`,
	`{"choices":[{"index":0,"delta":{},"finish_reason":"length"}],"usage":null}`,
	`{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16,"prompt_tokens_details":null}}`,
	`{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`,
	`{"choices":[{"index":0,"text":" tok","finish_reason":null}]}`,
	`{"choices":[{"delta":{"reasoning_content":"think","content":null}},{"delta":{"content":"b"},"finish_reason":"stop"}]}`,
	`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":2}}}`,
	`{"type":"response.output_text.delta","delta":"hi"}`,
	`{"object":"error","message":"boom"}`,
	`{"error":{"message":"bad"}}`,
	`{"choices":[{"delta":{"content":"a"}}],"extra":[1,2.5e3,true,false,null,{"k":"v"}]}`,
	`{"choices":[{"delta":{"content":"\q"}}]}`,
	`[1,2]`, `{`, `{"choices":[1]}`, `{"usage":{"prompt_tokens":1.5}}`,
	`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}`,
	`{"choices":[{"index":0,"delta":{"tool_calls":[ ]}},{"delta":{"tool_calls":null,"content":"a"}}]}`,
	`{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"{\"a\""}`,
	// an escaped error marker, and invalid UTF-8 (decoded to U+FFFD on both paths)
	`{"object":"\u0065rror","choices":[]}`,
	"{\"choices\":[{\"delta\":{\"content\":\"a\xffb\"},\"finish_reason\":\"st\xfeop\"}]}",
}

func TestParseChunkToolCalls(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{
		{`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":"}}]}}]}`, true},
		{`{"choices":[{"delta":{"content":"a"}},{"delta":{"tool_calls":[{"index":0}]}}]}`, true},
		{`{"choices":[{"index":0,"delta":{"tool_calls":[]}}]}`, false},
		{`{"choices":[{"index":0,"delta":{"tool_calls":null,"content":"x"}}]}`, false},
		{`{"choices":[{"index":0,"delta":{"content":"x"}}]}`, false},
		{`{"type":"response.function_call_arguments.delta","delta":"{\"a\":1"}`, true},
		{`{"type":"response.function_call_arguments.delta","delta":""}`, false},
		{`{"type":"response.output_text.delta","delta":"x"}`, false},
	} {
		got, err := ParseChunk([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		slow, err := parseChunkSlow([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if got.ToolCall != c.want || slow.ToolCall != c.want {
			t.Errorf("%s: ToolCall %v (encoding/json %v), want %v", c.in, got.ToolCall, slow.ToolCall, c.want)
		}
	}
	// The common tool-call chunk stays on the fast path.
	if _, ok := fastChunk([]byte(`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"x"}}]},"finish_reason":null}]}`)); !ok {
		t.Error("fast path refused a tool-call delta")
	}
}

func TestFastChunkCommonShapesTakeTheFastPath(t *testing.T) {
	for _, s := range chunkSeeds[:8] {
		c, ok := fastChunk([]byte(s))
		if !ok && !strings.Contains(s, "cached_tokens") {
			t.Errorf("fast path refused a common shape: %s", s)
			continue
		}
		slow, err := parseChunkSlow([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if ok && !reflect.DeepEqual(c, slow) {
			t.Errorf("%s:\n fast %+v\n slow %+v", s, c, slow)
		}
	}
	if c, _ := ParseChunk([]byte(chunkSeeds[1])); c.Content != "Hello \"world\"\né" {
		t.Errorf("content %q", c.Content)
	}
}

func BenchmarkParseChunk(b *testing.B) {
	data := []byte(`{"id":"chatcmpl-abc","object":"chat.completion.chunk","created":1700000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = ParseChunk(data)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = parseChunkSlow(data)
		}
	})
}

// uniqueExactKeys reports whether every object in the JSON text has unique
// keys, none of which differs only in case from a key the parser reads:
// there encoding/json merges or case-folds, and the two decoders may
// legitimately disagree on input no server sends.
func uniqueExactKeys(data []byte) bool {
	known := []string{"choices", "text", "finish_reason", "delta", "content", "reasoning_content", "reasoning", "tool_calls",
		"usage", "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "prompt_tokens_details",
		"input_tokens_details", "cached_tokens", "type", "response", "error", "object", "message", "status", "output"}
	var v any
	if json.Unmarshal(data, &v) != nil {
		return true // both must fail or the fast path must refuse
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	type frame struct {
		obj  bool
		keys map[string]bool
		key  bool // next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return true
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		k, isString := tok.(string)
		if top != nil && top.obj && top.key && isString {
			if top.keys[k] {
				return false
			}
			top.keys[k] = true
			for _, kn := range known {
				if strings.EqualFold(k, kn) && k != kn {
					return false
				}
			}
			top.key = false
			continue
		}
		switch d := tok.(type) {
		case json.Delim:
			switch d {
			case '{':
				stack = append(stack, &frame{obj: true, keys: map[string]bool{}, key: true})
				continue
			case '[':
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].key = true
		}
	}
}

// FuzzFastChunk: whenever the fast path accepts an input, it must agree
// with encoding/json, to the byte (invalid UTF-8 included: both decode it
// to U+FFFD).
func FuzzFastChunk(f *testing.F) {
	for _, s := range chunkSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		agreesWithSlow(t, fastChunk, data)
	})
}

// agreesWithSlow fails t when fast accepts data but parseChunkSlow
// rejects it or decodes another Chunk. Inputs on which the two may
// legitimately differ (see uniqueExactKeys) are passed over.
func agreesWithSlow(t *testing.T, fast func([]byte) (Chunk, bool), data []byte) {
	t.Helper()
	got, ok := fast(data)
	if !ok || !uniqueExactKeys(data) {
		return
	}
	slow, err := parseChunkSlow(data)
	if err != nil {
		t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", err, data)
	}
	if !reflect.DeepEqual(got, slow) {
		t.Fatalf("input %q:\n fast %+v\n slow %+v", data, got, slow)
	}
}
