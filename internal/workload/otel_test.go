package workload

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

func openOTel(t *testing.T, path string, opts OpenOptions) (*OTel, []Request) {
	t.Helper()
	src, err := OpenOTel(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src, drain(t, src)
}

// TestOTelLayoutsAgree reads the same spans from the three layouts (the
// OTLP file holds the span-per-line file's spans in export order, batched
// and interleaved; the session file holds them too, as structured values,
// before two more conversations): the same calls, in the same order, with
// the same lengths, content, timing and tool-turn kinds.
func TestOTelLayoutsAgree(t *testing.T) {
	_, spans := openOTel(t, filepath.Join("testdata", "otel", "spans.jsonl"), OpenOptions{})
	_, otlp := openOTel(t, filepath.Join("testdata", "otel", "otlp.json"), OpenOptions{})
	_, sessions := openOTel(t, filepath.Join("testdata", "otel", "sessions.jsonl"), OpenOptions{})
	if len(spans) != 6 || len(otlp) != len(spans) || len(sessions) < len(spans) {
		t.Fatalf("%d, %d and %d calls", len(spans), len(otlp), len(sessions))
	}
	for name, other := range map[string][]Request{"otlp": otlp, "sessions": sessions[:len(spans)]} {
		for i, want := range spans {
			got := other[i]
			if got.Offset != want.Offset || got.Delay != want.Delay || got.Turn != want.Turn || got.Session != want.Session ||
				got.Endpoint != want.Endpoint || got.PromptTokens != want.PromptTokens || got.OutputTokens != want.OutputTokens ||
				got.Prompt != want.Prompt || got.TraceModel != want.TraceModel || got.Graph.Kind != want.Graph.Kind ||
				got.Graph.Duration != want.Graph.Duration || !reflect.DeepEqual(got.Graph.Tools, want.Graph.Tools) {
				t.Errorf("%s call %d:\n got %+v\nwant %+v", name, i, got, want)
			}
			var g, w any
			if json.Unmarshal(got.Messages, &g) != nil || json.Unmarshal(want.Messages, &w) != nil {
				if got.Prompt == "" {
					t.Errorf("%s call %d: messages %q / %q", name, i, got.Messages, want.Messages)
				}
			} else if !reflect.DeepEqual(g, w) {
				t.Errorf("%s call %d: messages\n%s\nwant\n%s", name, i, got.Messages, want.Messages)
			}
		}
	}
}

// TestOTelReadsTheConventions checks what one call is made of, span by
// span, on a file written here: messages in the parts shape with system
// instructions given apart, tool calls and results, a text completion,
// content-less calls, what is dropped and what is warned about.
func TestOTelReadsTheConventions(t *testing.T) {
	line := func(id, start string, attrs map[string]any, extra string) string {
		a, _ := json.Marshal(attrs)
		return fmt.Sprintf(`{"trace_id":"t-%s","span_id":%q,"start_time":%q,"duration":0.5%s,"attributes":%s}`, id, id, start, extra, a)
	}
	msgs := `[{"role":"user","parts":[{"type":"text","content":"Look at "},{"type":"text","content":"this"},{"type":"blob","mime_type":"image/png","content":"aGk="}]},` +
		`{"role":"assistant","parts":[{"type":"tool_call","id":"c1","name":"open","arguments":{"f":"a.txt"}}]},` +
		`{"role":"tool","parts":[{"type":"tool_call_response","id":"c1","result":{"ok":true}}]}]`
	path := write(t, "conv.jsonl", strings.Join([]string{
		line("a", "2025-05-01T08:00:00Z", map[string]any{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 50, "gen_ai.usage.output_tokens": 7,
			"gen_ai.input.messages": msgs, "gen_ai.system_instructions": `[{"type":"text","content":"Be careful."}]`, "gen_ai.request.model": "m1"}, ""),
		line("b", "2025-05-01T08:00:01.25Z", map[string]any{"gen_ai.operation.name": "text_completion", "gen_ai.usage.prompt_tokens": "4", "gen_ai.usage.completion_tokens": 0,
			"gen_ai.input.messages": `[{"role":"user","parts":[{"type":"text","content":"def f():"}]}]`}, ""),
		line("c", "2025-05-01 08:00:02", map[string]any{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 300}, ""),
		line("d", "2025-05-01T08:00:03Z", map[string]any{"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2, "gen_ai.response.finish_reasons": `["tool_use"]`}, ""),
		line("e", "2025-05-01T08:00:04Z", map[string]any{"gen_ai.operation.name": "chat"}, ""),
		line("f", "2025-05-01T08:00:05Z", map[string]any{"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1}, `,"status":{"code":2}`),
		line("g", "2025-05-01T08:00:06Z", map[string]any{"gen_ai.operation.name": "embeddings", "gen_ai.usage.input_tokens": 1, "gen_ai.usage.output_tokens": 1}, ""),
		line("h", "2025-05-01T10:00:07+02:00", map[string]any{"gen_ai.operation.name": "generate_content", "gen_ai.input.messages": `[{"role":"user","content":"hi"}]`}, ""),
	}, "\n")+"\n")
	src, got := openOTel(t, path, OpenOptions{})
	if len(got) != 5 {
		t.Fatalf("%d calls: %+v", len(got), got)
	}
	// h starts at 08:00:07 UTC (its zone is +02:00): last.
	a, b, c, d, h := got[0], got[1], got[2], got[3], got[4]
	if h.ID != "h" || h.OutputTokens != 0 || string(h.Messages) != `[{"role":"user","content":"hi"}]` || h.Offset != 7*time.Second {
		t.Errorf("generate_content without usage: %+v", h)
	}
	want := `[{"role":"system","content":"Be careful."},{"role":"user","content":"Look at this"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"open","arguments":"{\"f\":\"a.txt\"}"}}]},` +
		`{"role":"tool","content":"{\"ok\":true}","tool_call_id":"c1"}]`
	if string(a.Messages) != want || a.PromptTokens != 50 || a.OutputTokens != 7 || a.TraceModel != "m1" || a.Model != "" ||
		a.Graph.Kind != TurnToolResult || a.Endpoint != openai.Chat || !a.Stream {
		t.Errorf("chat: %+v\nmessages %s\nwant     %s", a, a.Messages, want)
	}
	if b.Endpoint != openai.Completions || b.Prompt != "def f():" || b.Messages != nil || b.PromptTokens != 4 || b.OutputTokens != 1 {
		t.Errorf("text completion: %+v", b)
	}
	if c.Messages != nil || c.Prompt != "" || c.PromptTokens != 300 || c.OutputTokens != 0 {
		t.Errorf("content-less chat: %+v", c)
	}
	if d.Graph.Kind != TurnToolCall || d.PromptTokens != 10 {
		t.Errorf("a call known by its usage, finishing for tools: %+v", d.Graph)
	}
	if off := b.Offset - a.Offset; off != 1250*time.Millisecond {
		t.Errorf("b starts %v after a", off)
	}
	w := strings.Join(src.Warnings(), "\n")
	for _, s := range []string{"1 spans with status ERROR", "1 LLM spans record neither", "2 LLM calls record no gen_ai.usage.output_tokens",
		"1 rows record gen_ai.usage.output_tokens 0", "1 message parts of types other than"} {
		if !strings.Contains(w, s) {
			t.Errorf("no warning %q in\n%s", s, w)
		}
	}
}

// TestOTelErrorsNameFileAndLine: every malformed span stops the reading
// with the file, the line (in an OTLP document, the span's own line) and
// the reason; with SkipInvalid it is counted instead.
func TestOTelErrorsNameFileAndLine(t *testing.T) {
	good := `{"trace_id":"t","start_time":"2025-01-01T00:00:00Z","attributes":{"gen_ai.operation.name":"chat","gen_ai.usage.input_tokens":5}}`
	for _, c := range []struct{ bad, reason string }{
		{`{"trace_id":"t",`, "not JSON"},
		{`{"trace_id":"t","start_time":"yesterday","attributes":{}}`, `start_time "yesterday": want an ISO 8601 time`},
		{`{"trace_id":"t","start_time":1700000000,"attributes":{}}`, "start_time 1700000000: want an ISO 8601 time"},
		{`{"trace_id":"t","attributes":{}}`, "no start time"},
		{`{"trace_id":"t","start_time":"2025-01-01T00:00:00Z","end_time":"2024-01-01T00:00:00Z"}`, "before it starts"},
		{`{"trace_id":"t","start_time":"2025-01-01T00:00:00Z","duration":-1}`, "duration -1: want seconds >= 0"},
		{`{"start_time":"2025-01-01T00:00:00Z","attributes":{"gen_ai.operation.name":"chat","gen_ai.usage.input_tokens":-3}}`, "gen_ai.usage.input_tokens -3: want a token count"},
		{`{"start_time":"2025-01-01T00:00:00Z","attributes":{"gen_ai.operation.name":"chat","gen_ai.usage.input_tokens":2.5}}`, "want a whole number of tokens"},
		{`{"start_time":"2025-01-01T00:00:00Z","attributes":{"gen_ai.operation.name":"chat","gen_ai.input.messages":"[{\"role\""}}`, "gen_ai.input.messages: a string that is not JSON"},
		{`{"start_time":"2025-01-01T00:00:00Z","attributes":{"gen_ai.operation.name":"chat","gen_ai.input.messages":{"role":"user"}}}`, "gen_ai.input.messages: want a JSON array"},
		{`{"start_time":"2025-01-01T00:00:00Z","attributes":{"gen_ai.operation.name":"chat","gen_ai.input.messages":["hi"]}}`, "message 0: want an object"},
		{`{"start_time":"2025-01-01T00:00:00Z","attributes":"chat"}`, "attributes: want an object or a list"},
		{`{"spans":[{"start_time":"2025-01-01T00:00:00Z","attributes":{}},{"start_time":"x"}]}`, `spans[1]: start_time "x"`},
		{`{"resourceSpans":[]}`, "an OTLP export request, but the file's first line is a span"},
	} {
		path := write(t, "bad.jsonl", good+"\n\n"+c.bad+"\n"+good+"\n")
		src, err := OpenOTel(path, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = Measure(src)
		if want := fmt.Sprintf("otel %s line 3: ", path); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s:\n got %v\nwant %s…%s", c.bad, err, want, c.reason)
		}
		src, _ = OpenOTel(path, OpenOptions{SkipInvalid: true})
		if n, _, err := Measure(src); err != nil || n != 2 || src.Skipped() != 1 {
			t.Errorf("%s with SkipInvalid: %d calls, %d skipped, %v", c.bad, n, src.Skipped(), err)
		}
	}
	// OTLP: the line of the bad span inside the document, and where.
	doc := "{\"resourceSpans\": [\n {\"scopeSpans\": [\n  {\"spans\": [\n   {\"traceId\": \"a\", \"startTimeUnixNano\": \"5\"},\n   {\"traceId\": \"a\", \"startTimeUnixNano\": \"-5\"}\n  ]}\n ]}\n]}\n"
	path := write(t, "bad.json", doc)
	src, err := OpenOTel(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Measure(src)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("otel %s line 5: resourceSpans[0].scopeSpans[0].spans[1]: startTimeUnixNano", path)) {
		t.Errorf("OTLP: %v", err)
	}
	path = write(t, "cut.json", doc[:len(doc)-20])
	src, _ = OpenOTel(path, OpenOptions{SkipInvalid: true})
	if _, _, err = Measure(src); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("otel %s line 5: ", path)) {
		t.Errorf("cut OTLP document: %v", err)
	}
}

// TestOTelOrder: conversations that overlap come out merged in start
// order; a file whose conversations are not in start order is read, and
// its late calls are warned about.
func TestOTelOrder(t *testing.T) {
	conv := func(id string, starts ...int) string {
		var spans []string
		for i, s := range starts {
			spans = append(spans, fmt.Sprintf(`{"trace_id":%q,"span_id":"%s%d","start_time":"2025-01-01T00:00:%02dZ","duration":1,"attributes":{"gen_ai.operation.name":"chat","gen_ai.usage.input_tokens":1,"gen_ai.usage.output_tokens":1}}`, id, id, i, s))
		}
		return `{"spans":[` + strings.Join(spans, ",") + "]}\n"
	}
	_, got := openOTel(t, write(t, "s.jsonl", conv("a", 0, 10, 20)+conv("b", 5, 12)+conv("c", 30)), OpenOptions{})
	var order []string
	for _, r := range got {
		order = append(order, r.ID)
	}
	if strings.Join(order, " ") != "a0 b0 a1 b1 a2 c0" {
		t.Errorf("order %v", order)
	}
	if got[2].Delay != 9*time.Second || got[2].Turn != 1 || got[3].Delay != 6*time.Second {
		t.Errorf("delays %v %v", got[2].Delay, got[3].Delay)
	}
	src, got := openOTel(t, write(t, "u.jsonl", conv("a", 20)+conv("b", 5)), OpenOptions{})
	if len(got) != 2 || !strings.Contains(strings.Join(src.Warnings(), "\n"), "1 calls start before calls read earlier") {
		t.Errorf("unsorted: %d calls, warnings %q", len(got), src.Warnings())
	}
}

// TestOpenDetectsOTelAndWEKA: bare paths are told apart by their first
// line, before Mooncake (a WEKA line holds hash_ids too).
func TestOpenDetectsOTelAndWEKA(t *testing.T) {
	for path, want := range map[string]string{
		filepath.Join("testdata", "otel", "spans.jsonl"):    "*workload.OTel",
		filepath.Join("testdata", "otel", "sessions.jsonl"): "*workload.OTel",
		filepath.Join("testdata", "weka", "agentic.jsonl"):  "*workload.WEKA",
		write(t, "otlp.jsonl", `{"resourceSpans":[]}`+"\n"): "*workload.OTel",
	} {
		src, err := Open(path, OpenOptions{})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if got := fmt.Sprintf("%T", src); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
		closeSource(src)
	}
	if _, err := Open("nosuch:x", OpenOptions{}); err == nil || !strings.Contains(err.Error(), "otel:") || !strings.Contains(err.Error(), "weka:") {
		t.Errorf("unknown kind: %v", err)
	}
}
