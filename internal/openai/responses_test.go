package openai

import (
	"reflect"
	"testing"
)

// responseEventSeeds are Responses API stream events as the API sends them
// (shapes from openai-go's ResponseStreamEventUnion), and near misses.
var responseEventSeeds = []string{
	`{"type":"response.created","response":{"id":"resp_1","object":"response","created_at":1741290958,"status":"in_progress","error":null,"model":"gpt-4.1","output":[],"usage":null,"metadata":{}},"sequence_number":0}`,
	`{"type":"response.output_item.added","output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]},"sequence_number":2}`,
	`{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi \"there\"\n","logprobs":[],"obfuscation":"ab","sequence_number":4}`,
	`{"type":"response.reasoning_text.delta","item_id":"rs_1","output_index":0,"content_index":0,"delta":"think","sequence_number":3}`,
	`{"type":"response.refusal.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"no","sequence_number":3}`,
	`{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"{\"a\":","sequence_number":5}`,
	`{"type":"response.output_text.done","item_id":"msg_1","output_index":0,"content_index":0,"text":"Hi","logprobs":[],"sequence_number":6}`,
	`{"type":"response.completed","response":{"id":"resp_1","object":"response","status":"completed","error":null,"output":[{"type":"message","content":[{"type":"output_text","text":"Hi"}]}],"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}},"sequence_number":9}`,
	`{"type":"response.incomplete","response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":5,"output_tokens":16}},"sequence_number":9}`,
	`{"type":"response.completed","response":{"usage":{"prompt_tokens":2,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":1},"input_tokens_details":null}}}`,
	`{"type":"response.completed","response":{"usage":{"input_tokens_details":{"cached_tokens":3},"prompt_tokens_details":{"cached_tokens":1}}}}`,
	`{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"overloaded"}},"sequence_number":3}`,
	`{"type":"error","code":"rate_limit","message":"slow down","param":null,"sequence_number":1}`,
	`{"type":"response.output_text.delta","delta":"x","choices":[]}`,
	`{"type":"response.output_text.delta","delta":null}`,
	`{"type":"response.output_text.delta","delta":5}`,
	`{"type":5}`, `{"delta":"x"}`, `{"type":"response.completed","response":"x"}`, `{"type":"response.completed","response":null}`,
}

func TestFastResponseEventAgreesWithEncodingJSON(t *testing.T) {
	for i, s := range responseEventSeeds {
		fast, ok := fastResponseEvent([]byte(s))
		if i < 11 && !ok {
			t.Errorf("fast path refused a common event: %s", s)
			continue
		}
		slow, err := parseChunkSlow([]byte(s))
		if ok && (err != nil || !reflect.DeepEqual(fast, slow)) {
			t.Errorf("%s:\n fast %+v\n slow %+v %v", s, fast, slow, err)
		}
	}
}

func TestResponsesEventsThroughParseChunk(t *testing.T) {
	for _, tc := range []struct {
		data                   string
		content, finish, errTx string
		prompt, output, cached int
	}{
		{data: responseEventSeeds[2], content: "Hi \"there\"\n"},
		{data: responseEventSeeds[3], content: "think"},
		{data: responseEventSeeds[4], content: "no"},
		{data: responseEventSeeds[5]},
		{data: responseEventSeeds[7], finish: "stop", prompt: 12, output: 3, cached: 4},
		{data: responseEventSeeds[8], finish: "length", prompt: 5, output: 16},
		{data: responseEventSeeds[11], errTx: "overloaded"},
		{data: responseEventSeeds[12], errTx: "slow down"},
	} {
		c, err := ParseChunk([]byte(tc.data))
		if err != nil || c.Content != tc.content || c.FinishReason != tc.finish || c.Error != tc.errTx {
			t.Errorf("%s: %+v %v", tc.data, c, err)
			continue
		}
		if tc.prompt > 0 && (c.Usage == nil || *c.Usage != (Usage{tc.prompt, tc.output, tc.cached})) {
			t.Errorf("%s: usage %+v", tc.data, c.Usage)
		}
	}
}

// FuzzFastResponseEvent: whenever the fast path accepts an input, it must
// agree with encoding/json, to the byte.
func FuzzFastResponseEvent(f *testing.F) {
	for _, s := range responseEventSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		agreesWithSlow(t, fastResponseEvent, data)
	})
}

func TestCountTokenIDs(t *testing.T) {
	for in, want := range map[string]int{
		`[1,2,3]`: 3, ` [ [1,2] , [3] ,[] ] `: 3, `[[1],4]`: 2, `[]`: 0, `"text"`: 0, `["a","b"]`: 0,
		`[1,"a"]`: 0, `[[1,"a"]]`: 0, `[1.5]`: 0, `[[[1]]]`: 0, `[1,2`: 0, `null`: 0,
	} {
		if got := countTokenIDs([]byte(in)); got != want {
			t.Errorf("countTokenIDs(%s) = %d, want %d", in, got, want)
		}
	}
	info, err := ParseRequest("/v1/embeddings", []byte(`{"model":"e","input":[[1,2,3],[4,5]]}`))
	if err != nil || info.PromptTokenIDs != 5 {
		t.Errorf("embeddings token ids: %d %v", info.PromptTokenIDs, err)
	}
	info, err = ParseRequest("/v1/completions", []byte(`{"model":"m","prompt":[7,8,9,10]}`))
	if err != nil || info.PromptTokenIDs != 4 {
		t.Errorf("completions token ids: %d %v", info.PromptTokenIDs, err)
	}
}

func BenchmarkParseResponseEvent(b *testing.B) {
	for name, data := range map[string][]byte{
		"delta":     []byte(responseEventSeeds[2]),
		"completed": []byte(responseEventSeeds[7]),
	} {
		b.Run(name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = ParseChunk(data)
			}
		})
		b.Run(name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = parseChunkSlow(data)
			}
		})
	}
}
