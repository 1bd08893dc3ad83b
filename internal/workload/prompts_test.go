package workload

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/openai"
)

func TestPromptsJSONL(t *testing.T) {
	p := write(t, "p.jsonl", `{"prompt":"What is 2+2?","output_tokens":12,"model":"m1"}`+"\n"+
		`{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi, \"there\""}],"max_tokens":5}`+"\n"+
		"\n"+
		`"a bare string prompt"`+"\r\n"+
		`{"instruction":"summarise","system_prompt":"you are terse","prompt_tokens_count":3,"ignored":[1,2]}`+"\n")
	src, err := Open(p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.(*Prompts); !ok {
		t.Fatalf("opened as %T", src)
	}
	reqs := drain(t, src)
	if len(reqs) != 4 {
		t.Fatalf("%d requests", len(reqs))
	}
	if r := reqs[0]; r.Prompt != "What is 2+2?" || r.OutputTokens != 12 || r.Model != "m1" || r.Offset != 0 || r.Endpoint != openai.Chat || !r.Stream || r.Messages != nil {
		t.Errorf("%+v", r)
	}
	if r := reqs[1]; string(r.Messages) != `[{"role":"system","content":"be brief"},{"role":"user","content":"hi, \"there\""}]` || r.OutputTokens != 5 || r.Index != 1 {
		t.Errorf("%+v", r)
	}
	if r := reqs[2]; r.Prompt != "a bare string prompt" {
		t.Errorf("%+v", r)
	}
	r := reqs[3]
	var msgs []map[string]string
	if err := json.Unmarshal(r.Messages, &msgs); err != nil || len(msgs) != 2 || msgs[0]["role"] != "system" || msgs[0]["content"] != "you are terse" ||
		msgs[1]["content"] != "summarise" || r.PromptTokens != 3 || r.Prompt != "you are terse\n\nsummarise" {
		t.Errorf("%+v %v", r, err)
	}
}

func TestPromptsCSVAndTXT(t *testing.T) {
	p := write(t, "p.csv", "\ufeffid,Question,output_tokens_count,messages\n"+
		"1,\"Hello, world\",7,\n"+
		"2,\"a \"\"quoted\"\"\nmulti-line prompt\",,\n"+
		"3,,4,\"[{\"\"role\"\":\"\"user\"\",\"\"content\"\":\"\"x\"\"}]\"\n")
	reqs := drain(t, mustOpen(t, "prompts:"+p))
	if len(reqs) != 3 || reqs[0].Prompt != "Hello, world" || reqs[0].OutputTokens != 7 ||
		reqs[1].Prompt != "a \"quoted\"\nmulti-line prompt" || reqs[1].OutputTokens != 0 ||
		string(reqs[2].Messages) != `[{"role":"user","content":"x"}]` || reqs[2].OutputTokens != 4 {
		t.Fatalf("%+v", reqs)
	}
	p = write(t, "p.txt", "first prompt\n\n  \nsecond, with a comma\r\n")
	reqs = drain(t, mustOpen(t, p))
	if len(reqs) != 2 || reqs[0].Prompt != "first prompt" || reqs[1].Prompt != "second, with a comma" || reqs[1].Index != 1 {
		t.Fatalf("%+v", reqs)
	}
}

func mustOpen(t *testing.T, spec string) Source {
	t.Helper()
	src, err := Open(spec, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSource(src) })
	return src
}

func TestPromptsMalformed(t *testing.T) {
	for line, reason := range map[string]string{
		`{"prompt":7}`:                          "prompt: want a string",
		`{"output_tokens":3}`:                   "no prompt",
		`{"prompt":"x","output_tokens":-1}`:     "non-negative whole number",
		`{"prompt":"x","output_tokens":"many"}`: "non-negative whole number",
		`{"messages":"hi"}`:                     "messages: want",
		`{"messages":[]}`:                       "messages: want",
		`{"messages":[{"content":"no role"}]}`:  "string role",
		`{"messages":[{"role":"user"}]}`:        "a user message without content",
		`{"messages":[{"role":"tool","tool_call_id":"c1","content":null}]}`: "a tool message without content",
		`{"messages":[{"role":"user","content":7}]}`:                        "content: want a string or an array",
		`{"messages":[{"role":"assistant"}]}`:                               "only an assistant message with tool_calls",
		`{"prompt":"x"`:                                                     "unexpected end",
		`[1,2]`:                                                             "cannot unmarshal",
		`null`:                                                              "want a JSON object or string",
	} {
		p := write(t, "p.jsonl", `{"prompt":"ok"}`+"\n\n"+line+"\n"+`{"prompt":"also ok"}`+"\n")
		src, err := OpenPrompts(p, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Next(); err != nil {
			t.Fatal(err)
		}
		if _, err := src.Next(); err == nil || !strings.Contains(err.Error(), "prompts "+p+" line 3: ") || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: err = %v, want line 3 and %q", line, err, reason)
		}
		src.Close()
		skip, _ := OpenPrompts(p, OpenOptions{SkipInvalid: true})
		if got := drain(t, skip); len(got) != 2 || skip.Skipped() != 1 {
			t.Errorf("%s: skip-invalid gave %d requests, %d skipped", line, len(got), skip.Skipped())
		}
		skip.Close()
	}
	for data, reason := range map[string]string{
		"prompt,n\n\"unterminated,1\n":            `line 2`,
		"prompt,n\nx,1,2\n":                       "wrong number of fields",
		"prompt,output_tokens\nx,2.5\n":           "non-negative whole number",
		"prompt,output_tokens\n,3\n":              "no prompt",
		"prompt,messages\n,\"[{\"\"a\"\":1}]\"\n": "messages",
	} {
		p := write(t, "p.csv", data)
		src, err := OpenPrompts(p, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := src.Next(); err == nil || !strings.Contains(err.Error(), "prompts "+p+" line ") || !strings.Contains(err.Error(), reason) {
			t.Errorf("%q: err = %v, want %q", data, err, reason)
		}
		src.Close()
	}
	p := write(t, "skip.csv", "prompt,output_tokens\nok,1\nbad,-3\nalso ok,2\n")
	skip, _ := OpenPrompts(p, OpenOptions{SkipInvalid: true})
	if got := drain(t, skip); len(got) != 2 || skip.Skipped() != 1 {
		t.Errorf("csv skip-invalid gave %d, skipped %d", len(got), skip.Skipped())
	}
	for name, data := range map[string]string{"h.csv": "id,answer\n1,2\n", "e.csv": ""} {
		if _, err := OpenPrompts(write(t, name, data), OpenOptions{}); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := OpenPrompts(write(t, "x.parquet", ""), OpenOptions{}); err == nil || !strings.Contains(err.Error(), ".jsonl, .csv or .txt") {
		t.Errorf("parquet: %v", err)
	}
}

// FuzzPrompts reads arbitrary prompt files of each kind: never a panic;
// every request carries a prompt or valid messages; errors name the file.
func FuzzPrompts(f *testing.F) {
	f.Add([]byte(`{"prompt":"hi","output_tokens":3}`+"\n"+`"plain"`+"\n"+`{"messages":[{"role":"user","content":"x"}],"system":"s"}`), uint8(0))
	f.Add([]byte("prompt,output_tokens,system\n\"a,b\",3,sys\n\"multi\nline\",,\n"), uint8(1))
	f.Add([]byte("one\ntwo\r\n\n"), uint8(2))
	f.Add([]byte("messages\n\"[{\"\"role\"\":\"\"user\"\"}]\"\n"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, kind uint8) {
		name := []string{"f.jsonl", "f.csv", "f.txt"}[kind%3]
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, skip := range []bool{false, true} {
			src, err := OpenPrompts(p, OpenOptions{SkipInvalid: skip})
			if err != nil {
				if !strings.Contains(err.Error(), p) {
					t.Fatalf("error without the file: %v", err)
				}
				continue
			}
			for i := 0; ; i++ {
				r, err := src.Next()
				if err != nil {
					if err.Error() != "EOF" && !strings.Contains(err.Error(), p) {
						t.Fatalf("error without the file: %v", err)
					}
					break
				}
				if r.Index != i || (r.Prompt == "" && len(r.Messages) == 0) || r.OutputTokens < 0 || r.PromptTokens < 0 ||
					(len(r.Messages) > 0 && !json.Valid(r.Messages)) {
					t.Fatalf("bad request %+v", r)
				}
			}
			src.Close()
		}
	})
}

// An assistant message that calls tools may omit its content, as in
// OpenAI's chat API.
func TestMessagesAssistantToolCallWithoutContent(t *testing.T) {
	p := write(t, "p.jsonl", `{"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"w","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c1","content":"sunny"}]}`+"\n")
	src, err := Open(p, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, src); len(got) != 1 || len(got[0].Messages) == 0 {
		t.Fatalf("got %+v", got)
	}
}
