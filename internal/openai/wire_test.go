package openai

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestEndpointForPath(t *testing.T) {
	tests := map[string]Endpoint{
		"/v1/chat/completions":        Chat,
		"/v1/chat/completions/":       Chat,
		"/openai/v1/chat/completions": Chat,
		"/v1/completions":             Completions,
		"/v1/responses":               Responses,
		"/v1/embeddings":              Embeddings,
		"/v1/models":                  Other,
		"/healthz":                    Other,
		"":                            Other,
	}
	for path, want := range tests {
		if got := EndpointForPath(path); got != want {
			t.Errorf("EndpointForPath(%q) = %q, want %q", path, got, want)
		}
		if want != Other && EndpointForPath(PathFor(want)) != want {
			t.Errorf("PathFor(%q) does not classify back", want)
		}
	}
	if PathFor(Other) != "" {
		t.Error("PathFor(Other) should be empty")
	}
}

func TestParseRequestChatString(t *testing.T) {
	body := `{"model":"llama","stream":true,"stream_options":{"include_usage":true},"max_tokens":64,
		"temperature":0.7,"top_p":0.9,"n":2,"user":"alice","ignore_eos":true,
		"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"héllo"}]}`
	info, err := ParseRequest("/v1/chat/completions", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if info.Endpoint != Chat || info.Model != "llama" || !info.Stream || !info.IncludeUsage || info.MaxTokens != 64 ||
		info.N != 2 || info.User != "alice" || !info.IgnoreEOS || info.NMessages != 2 {
		t.Errorf("fields wrong: %+v", info)
	}
	if info.Temperature == nil || *info.Temperature != 0.7 || info.TopP == nil || *info.TopP != 0.9 {
		t.Errorf("sampling wrong: %v %v", info.Temperature, info.TopP)
	}
	if want := "system\x1fbe brief\x1euser\x1fhéllo\x1e"; info.Prompt != want {
		t.Errorf("prompt %q, want %q", info.Prompt, want)
	}
	if info.PromptChars != len([]rune("systembe briefuserhéllo")) {
		t.Errorf("prompt chars %d", info.PromptChars)
	}
	var msgs []map[string]any
	if err := json.Unmarshal(info.Messages, &msgs); err != nil || len(msgs) != 2 {
		t.Errorf("raw messages not kept: %s (%v)", info.Messages, err)
	}
}

func TestParseRequestChatParts(t *testing.T) {
	body := `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"describe "},
		{"type":"image_url","image_url":{"url":"data:..."}},{"type":"text","text":"this"}]},
		{"role":"assistant","content":null},{"role":"tool","content":"42"}],"max_completion_tokens":10,"max_tokens":99}`
	info, err := ParseRequest("/v1/chat/completions", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if want := "user\x1fdescribe <image_url>this\x1eassistant\x1f\x1etool\x1f42\x1e"; info.Prompt != want {
		t.Errorf("prompt %q, want %q", info.Prompt, want)
	}
	if info.MaxTokens != 10 {
		t.Errorf("max_completion_tokens should win over max_tokens: %d", info.MaxTokens)
	}
	if info.NMessages != 3 || info.Stream || info.Temperature != nil {
		t.Errorf("fields wrong: %+v", info)
	}
}

func TestParseRequestCompletions(t *testing.T) {
	tests := []struct {
		name, body, prompt string
	}{
		{"string", `{"model":"m","prompt":"once upon","max_tokens":5}`, "once upon"},
		{"array of strings", `{"model":"m","prompt":["a","b c"]}`, "a\x1eb c"},
		{"token ids", `{"model":"m","prompt":[1,2,3]}`, "1\x1e2\x1e3"},
		{"batch of token ids", `{"model":"m","prompt":[[1,2],[3]]}`, "[1,2]\x1e[3]"},
		{"absent", `{"model":"m"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseRequest("/v1/completions", []byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if info.Endpoint != Completions || info.Prompt != tt.prompt || info.Model != "m" {
				t.Errorf("got %+v, want prompt %q", info, tt.prompt)
			}
		})
	}
}

func TestParseRequestResponses(t *testing.T) {
	info, err := ParseRequest("/v1/responses", []byte(`{"model":"gpt","instructions":"sys","input":"hi there","max_output_tokens":7,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if info.Endpoint != Responses || info.Prompt != "system\x1fsys\x1ehi there" || info.NMessages != 1 || info.MaxTokens != 7 || !info.Stream {
		t.Errorf("string input: %+v", info)
	}
	info, err = ParseRequest("/v1/responses", []byte(`{"model":"gpt","input":[{"role":"user","content":[{"type":"input_text","text":"q1"}]},{"role":"assistant","content":"a1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if info.Prompt != "user\x1fq1\x1eassistant\x1fa1\x1e" || info.NMessages != 2 || len(info.Messages) == 0 {
		t.Errorf("item input: %+v", info)
	}
}

func TestParseRequestEmbeddings(t *testing.T) {
	info, err := ParseRequest("/v1/embeddings", []byte(`{"model":"e5","input":["x","yy"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if info.Endpoint != Embeddings || info.Prompt != "x\x1eyy" || info.PromptChars != 3 {
		t.Errorf("got %+v", info)
	}
}

func TestParseRequestOtherPathIgnoresBody(t *testing.T) {
	info, err := ParseRequest("/v1/models", []byte("not json at all"))
	if err != nil || info.Endpoint != Other || info.Model != "" {
		t.Errorf("got %+v, %v", info, err)
	}
}

func TestParseRequestErrors(t *testing.T) {
	tests := []struct{ name, path, body, want string }{
		{"not json", "/v1/chat/completions", `{"model":`, "parsing chat request body"},
		{"empty", "/v1/chat/completions", ``, "want a JSON object"},
		{"null", "/v1/completions", `null`, "want a JSON object"},
		{"array", "/v1/chat/completions", `[1]`, "want a JSON object"},
		{"model wrong type", "/v1/chat/completions", `{"model":5}`, "parsing chat request body"},
		{"messages not array", "/v1/chat/completions", `{"messages":"hi"}`, "messages"},
		{"content wrong type", "/v1/chat/completions", `{"messages":[{"role":"user","content":5}]}`, "message content"},
		{"prompt object", "/v1/completions", `{"prompt":{"a":1}}`, "want a string or an array"},
		{"prompt number", "/v1/completions", `{"prompt":5}`, "want a string or an array"},
		{"bad input item", "/v1/embeddings", `{"input":[{"role":5}]}`, "input[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRequest(tt.path, []byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestParseChunk(t *testing.T) {
	tests := []struct {
		name string
		data string
		want Chunk
		cum  int // completion_tokens of Usage, -1 for no usage
	}{
		{"role only", `{"choices":[{"index":0,"delta":{"role":"assistant"}}]}`, Chunk{}, -1},
		{"empty content", `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`, Chunk{}, -1},
		{"chat delta", `{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`, Chunk{Content: "Hel"}, -1},
		{"reasoning delta", `{"choices":[{"index":0,"delta":{"reasoning_content":"think"}}]}`, Chunk{Content: "think"}, -1},
		{"two choices", `{"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]}`, Chunk{Content: "ab"}, -1},
		{"completions text", `{"object":"text_completion","choices":[{"index":0,"text":" world","finish_reason":null}]}`, Chunk{Content: " world"}, -1},
		{"finish", `{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`, Chunk{FinishReason: "length"}, -1},
		{"done", ` [DONE] `, Chunk{Done: true}, -1},
		{"usage chunk", `{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":8}}}`, Chunk{}, 5},
		{"vllm continuous usage", `{"choices":[{"index":0,"delta":{"content":"x"}}],"usage":{"prompt_tokens":11,"completion_tokens":3,"total_tokens":14}}`, Chunk{Content: "x"}, 3},
		{"in-stream error", `{"error":{"message":"boom","type":"InternalServerError","code":500}}`, Chunk{Error: "boom"}, -1},
		{"vllm old error form", `{"object":"error","message":"too long","type":"BadRequestError","code":400}`, Chunk{Error: "too long"}, -1},
		{"responses text delta", `{"type":"response.output_text.delta","item_id":"m","output_index":0,"content_index":0,"delta":"Hi"}`, Chunk{Content: "Hi"}, -1},
		{"responses tool-call delta is not text", `{"type":"response.function_call_arguments.delta","delta":"{\"a\""}`, Chunk{ToolCall: true}, -1},
		{"responses other delta ignored", `{"type":"response.audio_transcript.delta","delta":"x"}`, Chunk{}, -1},
		{"responses created", `{"type":"response.created","response":{"id":"r","status":"in_progress","usage":null}}`, Chunk{}, -1},
		{"responses completed", `{"type":"response.completed","response":{"status":"completed","output":[],"usage":{"input_tokens":20,"output_tokens":4,"input_tokens_details":{"cached_tokens":16}}}}`, Chunk{FinishReason: "stop"}, 4},
		{"responses incomplete", `{"type":"response.incomplete","response":{"status":"incomplete"}}`, Chunk{FinishReason: "length"}, -1},
		{"responses failed", `{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"overloaded"}}}`, Chunk{Error: "overloaded"}, -1},
		{"responses error event", `{"type":"error","code":"rate_limit","message":"slow down","param":null}`, Chunk{Error: "slow down"}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseChunk([]byte(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			u := c.Usage
			c.Usage = nil
			if c != tt.want {
				t.Errorf("got %+v, want %+v", c, tt.want)
			}
			switch {
			case tt.cum < 0 && u != nil:
				t.Errorf("unexpected usage %+v", *u)
			case tt.cum >= 0 && (u == nil || u.CompletionTokens != tt.cum):
				t.Errorf("usage %+v, want completion_tokens %d", u, tt.cum)
			}
		})
	}
}

func TestParseChunkUsageFields(t *testing.T) {
	c, err := ParseChunk([]byte(`{"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":8}}}`))
	if err != nil || c.Usage == nil || *c.Usage != (Usage{PromptTokens: 11, CompletionTokens: 5, CachedTokens: 8}) {
		t.Fatalf("chat usage: %+v %v", c.Usage, err)
	}
	c, err = ParseChunk([]byte(`{"type":"response.completed","response":{"usage":{"input_tokens":20,"output_tokens":4,"input_tokens_details":{"cached_tokens":16}}}}`))
	if err != nil || c.Usage == nil || *c.Usage != (Usage{PromptTokens: 20, CompletionTokens: 4, CachedTokens: 16}) {
		t.Fatalf("responses usage: %+v %v", c.Usage, err)
	}
}

func TestParseChunkErrors(t *testing.T) {
	for _, data := range []string{``, `{`, `nope`, `{"choices":5}`, `{"choices":[{"delta":{"content":7}}]}`} {
		if _, err := ParseChunk([]byte(data)); err == nil {
			t.Errorf("ParseChunk(%q) should fail", data)
		}
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name, body    string
		content, fin  string
		prompt, compl int
		errText       string
	}{
		{"chat", `{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":3}}`,
			"Hi there", "stop", 9, 3, ""},
		{"completions", `{"choices":[{"text":"abc","finish_reason":"length"}],"usage":{"prompt_tokens":2,"completion_tokens":1}}`,
			"abc", "length", 2, 1, ""},
		{"responses", `{"object":"response","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"yo"}]}],"usage":{"input_tokens":5,"output_tokens":1}}`,
			"yo", "stop", 5, 1, ""},
		{"responses incomplete", `{"object":"response","status":"incomplete","output":[]}`, "", "length", 0, 0, ""},
		{"embeddings", `{"object":"list","data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":4,"total_tokens":4}}`, "", "", 4, 0, ""},
		{"openai error", `{"error":{"message":"model not found","type":"invalid_request_error"}}`, "", "", 0, 0, "model not found"},
		{"string error", `{"error":"bad thing"}`, "", "", 0, 0, "bad thing"},
		{"vllm old error form", `{"object":"error","message":"context too long","type":"BadRequestError","code":400}`, "", "", 0, 0, "context too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseResponse([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if r.Content != tt.content || r.FinishReason != tt.fin || r.Error != tt.errText {
				t.Errorf("got %+v", r)
			}
			if tt.prompt+tt.compl > 0 && (r.Usage == nil || r.Usage.PromptTokens != tt.prompt || r.Usage.CompletionTokens != tt.compl) {
				t.Errorf("usage %+v", r.Usage)
			}
		})
	}
	if _, err := ParseResponse([]byte("<html>502</html>")); err == nil {
		t.Error("non-JSON response should fail")
	}
}

func TestEstimateTokens(t *testing.T) {
	tests := map[string]int{"": 0, "a": 1, "abcd": 1, "abcde": 2, "\x1f\x1e": 1, strings.Repeat("x", 400): 100}
	for in, want := range tests {
		if got := EstimateTokens(in); got != want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", in, got, want)
		}
	}
}

func FuzzParseChunk(f *testing.F) {
	for _, s := range []string{
		`{"choices":[{"index":0,"delta":{"content":"Hel"}}]}`,
		`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1}}}`,
		`[DONE]`,
		`{"type":"response.output_text.delta","delta":"x"}`,
		`{"type":"response.completed","response":{"usage":{"input_tokens":1}}}`,
		`{"error":{"message":"m"}}`,
		`{"object":"error","message":"m"}`,
		`{"choices":[{"text":"t","finish_reason":"stop"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseChunk(data)
		if err != nil && (c.Content != "" || c.Usage != nil || c.Done) {
			t.Fatalf("error %v with a non-empty chunk %+v", err, c)
		}
		_, _ = ParseResponse(data)
	})
}

func FuzzParseRequest(f *testing.F) {
	seeds := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`},
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url"}]}]}`},
		{"/v1/completions", `{"prompt":["a",[1,2],3],"n":2,"temperature":0}`},
		{"/v1/responses", `{"input":[{"role":"user","content":"x"}],"instructions":"s"}`},
		{"/v1/responses", `{"input":"x"}`},
		{"/v1/embeddings", `{"input":"x"}`},
		{"/v1/models", `x`},
	}
	for _, s := range seeds {
		f.Add(s.path, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		info, err := ParseRequest(path, body)
		if err == nil && info.PromptChars != contentChars(info.Prompt) {
			t.Fatalf("PromptChars %d does not match prompt %q", info.PromptChars, info.Prompt)
		}
		if info.Endpoint != EndpointForPath(path) {
			t.Fatalf("endpoint %q for path %q", info.Endpoint, path)
		}
	})
}

// requestSeeds are request bodies of every shape ParseRequest meets.
var requestSeeds = []struct{ path, body string }{
	{"/v1/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":128,"temperature":0.7,"top_p":1,"n":1,"user":"u1","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi \"there\"\n","name":"x"}]}`},
	{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}}]}]}`},
	{"/v1/chat/completions", `{"Model":"m","messages":[]}`},
	{"/v1/chat/completions", `{"model":"m","model":"n","messages":null}`},
	{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":null},{"role":"assistant","tool_calls":[{"id":"1"}]}]}`},
	{"/v1/chat/completions", "{\"model\":\"m\xff\",\"messages\":[{\"role\":\"user\",\"content\":\"\xfe\"}]}"},
	{"/v1/chat/completions", `{"model":"m","max_tokens":1.0,"messages":[]}`},
	{"/v1/chat/completions", `{"model":"m","max_completion_tokens":99999999999999999999,"messages":[]}`},
	{"/v1/chat/completions", `{"model":"m","stream":"yes"}`},
	{"/v1/chat/completions", `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true},"ignore_eos":true} `},
	{"/v1/chat/completions", `{"model":"m"} trailing`},
	{"/v1/chat/completions", `[[[[[[[[`},
	{"/v1/completions", `{"model":"m","prompt":["a","b"],"max_tokens":5,"temperature":null}`},
	{"/v1/completions", `{"model":"m","prompt":[1,2,3]}`},
	{"/v1/responses", `{"model":"m","instructions":"sys","input":[{"role":"user","content":[{"type":"input_text","text":"q"}]}],"max_output_tokens":7}`},
	{"/v1/responses", `{"model":"m","input":"hello"}`},
	{"/v1/embeddings", `{"model":"e","input":["x","y"]}`},
}

// TestFastRequestMatchesEncodingJSON holds the reflection-free request path
// to encoding/json's on every seed.
func TestFastRequestMatchesEncodingJSON(t *testing.T) {
	for _, s := range requestSeeds {
		checkFastRequest(t, s.path, []byte(s.body))
	}
	// The common chat body takes the fast path.
	if _, ok := fastRequest([]byte(requestSeeds[0].body)); !ok {
		t.Error("fastRequest refused a plain chat body")
	}
	var sb strings.Builder
	if _, ok := fastMessages(&sb, []byte(`[{"role":"user","content":"x"}]`)); !ok {
		t.Error("fastMessages refused plain string messages")
	}
}

func checkFastRequest(t *testing.T, path string, body []byte) {
	t.Helper()
	fast, ferr := parseRequest(path, body, true)
	slow, serr := parseRequest(path, body, false)
	if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
		t.Fatalf("%s %q: errors differ:\n fast %v\n slow %v", path, body, ferr, serr)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%s %q:\n fast %+v\n slow %+v", path, body, fast, slow)
	}
}

func FuzzFastRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(s.path, s.body)
	}
	f.Fuzz(func(t *testing.T, path, body string) {
		checkFastRequest(t, path, []byte(body))
	})
}

func BenchmarkParseRequest(b *testing.B) {
	body := []byte(`{"model":"m","stream":true,"max_tokens":128,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are a helpful assistant that answers briefly."},{"role":"user","content":"Summarise the plot of a long novel in one paragraph, please, with names."}]}`)
	for _, fast := range []bool{true, false} {
		name := map[bool]string{true: "fast", false: "encoding-json"}[fast]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = parseRequest("/v1/chat/completions", body, fast)
			}
		})
	}
}
