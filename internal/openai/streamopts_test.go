package openai

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestEnsureIncludeUsage(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		changed        bool
	}{
		{"absent", `{"model":"m","stream":true}`, `{"stream_options":{"include_usage":true},"model":"m","stream":true}`, true},
		{"spaced", ` { "stream" : true } `, ` {"stream_options":{"include_usage":true}, "stream" : true } `, true},
		{"null", `{"stream":true,"stream_options":null}`, `{"stream":true,"stream_options":{"include_usage":true}}`, true},
		{"empty", `{"stream":true,"stream_options":{ }}`, `{"stream":true,"stream_options":{"include_usage":true }}`, true},
		{"other option", `{"stream":true,"stream_options":{"continuous_usage_stats":true}}`,
			`{"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, true},
		{"false", `{"stream":true,"stream_options":{"include_usage": false}}`, `{"stream":true,"stream_options":{"include_usage": true}}`, true},
		{"already", `{"stream":true,"stream_options":{"include_usage":true}}`, `{"stream":true,"stream_options":{"include_usage":true}}`, false},
		{"duplicate keeps last", `{"stream_options":{"include_usage":true},"stream_options":{}}`,
			`{"stream_options":{"include_usage":true},"stream_options":{"include_usage":true}}`, true},
		{"not an object", `[1]`, `[1]`, false},
		{"wrong type", `{"stream_options":"x"}`, `{"stream_options":"x"}`, false},
		{"escaped key", `{"str\u0065am":true}`, `{"str\u0065am":true}`, false},
		{"trailing garbage", `{"stream":true}x`, `{"stream":true}x`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, changed := EnsureIncludeUsage([]byte(tc.in))
			if string(got) != tc.want || changed != tc.changed {
				t.Fatalf("got %s %v, want %s %v", got, changed, tc.want, tc.changed)
			}
		})
	}
}

func TestIsUsageOnlyChunk(t *testing.T) {
	for in, want := range map[string]bool{
		`{"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}`: true,
		` {"choices":[ ],"usage":{}} `:                                              true,
		`{"id":"c","choices":[{"index":0,"delta":{}}],"usage":{"prompt_tokens":3}}`: false, // vLLM continuous usage
		`{"id":"c","choices":[],"usage":null}`:                                      false,
		`{"choices":[{"index":0,"delta":{"content":"\"usage\""}}]}`:                 false,
		`{"choices":5,"usage":{}}`:                                                  false,
		`{"usage":{}}`:                                                              false,
		`[DONE]`:                                                                    false,
		`{"type":"response.completed","response":{"usage":{"input_tokens":1}},"usage":{"x":1}} broken`: false,
	} {
		if got := IsUsageOnlyChunk([]byte(in)); got != want {
			t.Errorf("IsUsageOnlyChunk(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestStripNullUsage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"id":"c","choices":[],"usage":null}`, `{"id":"c","choices":[]}`},
		{`{"id":"c","usage":null,"choices":[]}`, `{"id":"c","choices":[]}`},
		{`{"usage":null,"id":"c"}`, `{"id":"c"}`},
		{`{"usage":null}`, `{}`},
		{`{"id": "c", "usage": null}`, `{"id": "c"}`},
		{` {"id":"c","usage":null}` + "\r", ` {"id":"c"}` + "\r"},
		{`{"id":"c","usage":{"prompt_tokens":1}}`, `{"id":"c","usage":{"prompt_tokens":1}}`},
		{`{"choices":[{"delta":{"content":"\"usage\":null"}}]}`, `{"choices":[{"delta":{"content":"\"usage\":null"}}]}`},
		{`{"x":{"usage":null}}`, `{"x":{"usage":null}}`},
	} {
		got, changed := StripNullUsage([]byte(tc.in))
		if string(got) != tc.want || changed != (tc.in != tc.want) {
			t.Errorf("StripNullUsage(%s) = %s %v, want %s", tc.in, got, changed, tc.want)
		}
	}
}

// FuzzStreamOptions holds the editors to encoding/json: whatever they
// change still decodes, to the value the edit promises.
func FuzzStreamOptions(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","stream":true}`, `{"stream":true,"stream_options":null}`,
		`{"stream_options":{"include_usage":false,"x":[1,{"y":null}]}}`, `{}`,
		`{"id":"c","choices":[],"usage":null}`, `{"usage":null,"a":"\u00e9"}`, `{"a":1,"usage":null,"usage":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var before map[string]any
		validObject := json.Unmarshal(b, &before) == nil && before != nil
		if out, changed := EnsureIncludeUsage(b); changed {
			if !validObject {
				t.Fatalf("edited a body encoding/json rejects: %q", b)
			}
			var after map[string]any
			if err := json.Unmarshal(out, &after); err != nil {
				t.Fatalf("edit broke the JSON: %q -> %q: %v", b, out, err)
			}
			so, _ := after["stream_options"].(map[string]any)
			if so == nil || so["include_usage"] != true {
				t.Fatalf("no include_usage after edit: %q", out)
			}
			delete(after, "stream_options")
			orig, _ := before["stream_options"].(map[string]any)
			delete(before, "stream_options")
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("edit changed other members: %q -> %q", b, out)
			}
			delete(so, "include_usage")
			delete(orig, "include_usage")
			if len(so) != len(orig) {
				t.Fatalf("edit changed other stream options: %q -> %q", b, out)
			}
		}
		if out, changed := StripNullUsage(b); changed {
			if !validObject {
				t.Fatalf("edited data encoding/json rejects: %q", b)
			}
			if u, present := before["usage"]; !present || u != nil {
				t.Fatalf("stripped a usage that was not null: %q", b)
			}
			var after map[string]any
			if err := json.Unmarshal(out, &after); err != nil {
				t.Fatalf("strip broke the JSON: %q -> %q: %v", b, out, err)
			}
			if _, present := after["usage"]; present && !hasDuplicateUsage(b) {
				t.Fatalf("usage still present: %q", out)
			}
		}
		if IsUsageOnlyChunk(b) {
			ch, _ := before["choices"].([]any)
			if !validObject || ch == nil || len(ch) != 0 {
				t.Fatalf("usage-only chunk without empty choices: %q", b)
			}
			if _, ok := before["usage"].(map[string]any); !ok {
				t.Fatalf("usage-only chunk without a usage object: %q", b)
			}
		}
	})
}

// hasDuplicateUsage: {"usage":null,"usage":null} keeps one after a strip.
func hasDuplicateUsage(b []byte) bool {
	ms, ok := topMembers(b)
	if !ok {
		return false
	}
	n := 0
	for _, m := range ms {
		if string(m.key) == "usage" {
			n++
		}
	}
	return n > 1
}
