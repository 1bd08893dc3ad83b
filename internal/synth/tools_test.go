package synth

import (
	"encoding/json"
	"testing"

	"github.com/reprise-llm/reprise/internal/tokenizer"
	"github.com/reprise-llm/reprise/internal/workload"
)

// A call of an agentic trace that offered tools sends them, in OpenAI's
// shape whatever shape OTel recorded them in, and a tool-call turn asks
// the target for a tool call (tool_choice required), as GuideLLM does; a
// call without recorded tools, or with definitions that do not read,
// sends none.
func TestRecordedToolsAreSent(t *testing.T) {
	tok, err := tokenizer.Open("cl100k_base", tokenizer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Tokenizer: tok, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	otel := `[{"type":"function","name":"get_weather","description":"weather","parameters":{"type":"object"}},{"type":"function","function":{"name":"search"}}]`
	for _, c := range []struct {
		tools  string
		kind   workload.TurnKind
		want   int
		choice string
	}{
		{otel, workload.TurnToolCall, 2, "required"},
		{otel, workload.TurnToolResult, 2, ""},
		{"", workload.TurnPlain, 0, ""},
		{`{"not":"a list"}`, workload.TurnToolCall, 0, ""},
	} {
		req := &workload.Request{Index: 1, PromptTokens: 20, OutputTokens: 4, Graph: &workload.GraphNode{Conversation: "c", Node: "n", Kind: c.kind, Tools: []byte(c.tools)}}
		body, err := b.Body(req, "m")
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Tools []struct {
				Type     string `json:"type"`
				Function struct {
					Name       string          `json:"name"`
					Parameters json.RawMessage `json:"parameters"`
				} `json:"function"`
			} `json:"tools"`
			ToolChoice string `json:"tool_choice"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if len(got.Tools) != c.want || got.ToolChoice != c.choice {
			t.Errorf("%s: %d tools, tool_choice %q; want %d, %q", body, len(got.Tools), got.ToolChoice, c.want, c.choice)
		}
		if c.want == 2 && (got.Tools[0].Type != "function" || got.Tools[0].Function.Name != "get_weather" || string(got.Tools[0].Function.Parameters) != `{"type":"object"}` || got.Tools[1].Function.Name != "search") {
			t.Errorf("tools %+v", got.Tools)
		}
	}
}
