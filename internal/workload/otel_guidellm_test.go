package workload

import (
	"bytes"
	"encoding/json"
	"github.com/reprise-llm/reprise/internal/testenv"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// guidellmTraceScript loads a trace file with GuideLLM's own reader (its
// trace deserializer, kind "otel" or "weka") and prints every conversation
// it builds, one JSON line each: the turns in GuideLLM's order with their
// node ids, parents, lengths, relative timestamps, durations, turn types,
// recorded messages and tool responses. WEKA needs a tokenizer (GuideLLM
// synthesises prompts from it); their text is dropped, only lengths count.
const guidellmTraceScript = `
import json, sys
from guidellm.data.deserializers import DatasetDeserializerFactory
from guidellm.schemas.data.deserializers import OTELTraceFormatArgs, WEKATraceFormatArgs
from guidellm.schemas.data.deserializers.file import FileDataArgs
kind, path, tokenizer = sys.argv[1], sys.argv[2], sys.argv[3]
source = FileDataArgs(kind="json_file", path=path)
if kind == "otel":
    cfg, processor = OTELTraceFormatArgs(source=source), None
else:
    from transformers import PreTrainedTokenizerFast
    cfg, processor = WEKATraceFormatArgs(source=source), PreTrainedTokenizerFast(tokenizer_file=tokenizer)
ds = DatasetDeserializerFactory.deserialize(config=cfg, processor_factory=lambda: processor, random_seed=42)
def first(c, k):
    v = c.get(k)
    return v[0] if v else None
for row in ds:
    g = json.loads(row["conversation_turns"])
    out = []
    for t in g["turns"]:
        c = t["columns"]
        out.append({
            "node": t["node_id"], "agent": t["agent_id"],
            "parents": [[p["parent_node_id"], p["history_context"]] for p in t["parents"]],
            "prompt_tokens": first(c, "prompt_tokens_count_column"),
            "output_tokens": first(c, "output_tokens_count_column"),
            "ts": first(c, "relative_timestamp_column"),
            "duration": first(c, "request_duration_column"),
            "type": first(c, "turn_type_column"),
            "messages": first(c, "raw_messages_column"),
            "tool_responses": c.get("tool_response_column"),
        })
    print(json.dumps(out))
`

// guidellmTurn is one turn as GuideLLM builds it.
type guidellmTurn struct {
	Node          string     `json:"node"`
	Agent         string     `json:"agent"`
	Parents       [][]string `json:"parents"`
	PromptTokens  *int       `json:"prompt_tokens"`
	OutputTokens  *int       `json:"output_tokens"`
	TS            *float64   `json:"ts"`
	Duration      *float64   `json:"duration"`
	Type          *string    `json:"type"`
	Messages      json.RawMessage
	ToolResponses []string `json:"tool_responses"`
}

// guidellmConversations runs GuideLLM's reader (kind "otel" or "weka") on
// path. It skips when REPRISE_GUIDELLM is not set (make test sets it;
// CI fails instead), as the other GuideLLM checks do.
func guidellmConversations(t *testing.T, kind, path string) [][]guidellmTurn {
	t.Helper()
	exe := testenv.Need(t, "REPRISE_GUIDELLM", "`make test` installs GuideLLM and sets it")
	python := filepath.Join(filepath.Dir(exe), "python")
	tokenizer := ""
	if kind == "weka" {
		dir := os.Getenv("REPRISE_TOKENIZERS")
		if dir == "" {
			t.Fatal("REPRISE_TOKENIZERS is not set: GuideLLM's WEKA reader needs a tokenizer (make test sets it)")
		}
		tokenizer = filepath.Join(dir, "llama3", "tokenizer.json")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", guidellmTraceScript, kind, abs, tokenizer)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1", "HF_DATASETS_CACHE="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GuideLLM's %s reader on %s: %v\n%s", kind, path, err, stderr.String())
	}
	var convs [][]guidellmTurn
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		var turns []guidellmTurn
		if err := json.Unmarshal(line, &turns); err != nil {
			t.Fatalf("GuideLLM output %q: %v", line, err)
		}
		convs = append(convs, turns)
	}
	return convs
}

// byConversation groups requests by Graph.Conversation, conversations in
// the order of their first request, each in the order read.
func byConversation(t *testing.T, reqs []Request) [][]Request {
	t.Helper()
	var order []string
	groups := map[string][]Request{}
	for _, r := range reqs {
		if r.Graph == nil {
			t.Fatalf("request %d has no Graph", r.Index)
		}
		c := r.Graph.Conversation
		if _, ok := groups[c]; !ok {
			order = append(order, c)
		}
		groups[c] = append(groups[c], r)
	}
	out := make([][]Request, len(order))
	for i, c := range order {
		out[i] = groups[c]
	}
	return out
}

// sameSeconds reports whether a duration equals GuideLLM's seconds, which
// pass through float32 columns (about 0.1 µs of noise).
func sameSeconds(d time.Duration, s float64) bool {
	return math.Abs(d.Seconds()-s) < 1e-6
}

// sameJSON compares two JSON values semantically; tool-call arguments,
// which both tools carry as JSON text but write with different spacing,
// are compared as the values they hold.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(normArgs(va), normArgs(vb))
}

func normArgs(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "arguments" {
				var parsed any
				if json.Unmarshal([]byte(s), &parsed) == nil {
					x[k] = parsed
					continue
				}
			}
			x[k] = normArgs(e)
		}
	case []any:
		for i := range x {
			x[i] = normArgs(x[i])
		}
	}
	return v
}

// TestOTelAgainstGuideLLM reads the same OTel files with GuideLLM 0.8.1's
// reader and Reprise's and compares them turn by turn: the same calls in
// the same order, lengths, messages, times from the conversation's start,
// durations and gaps (Delay against GuideLLM's idle gap). Where the tools
// differ by design the test checks the documented difference:
//   - GuideLLM leaves a tool-call turn's output length to the model (it
//     asks for tool calls with tool_choice=required); Reprise forces the
//     recorded length, so only Reprise has one;
//   - GuideLLM builds a tool-result turn from the live reply and the
//     recorded tool results; Reprise sends the recorded input, whose
//     trailing tool messages are those results;
//   - GuideLLM starts every conversation at 0; Reprise keeps them on the
//     file's timeline (compared here from each conversation's start);
//   - a nested agent's calls are a session of their own in Reprise, so
//     their gaps are checked against their own agent's previous call;
//   - GuideLLM sends a placeholder tool result after a tool call that no
//     recorded call answers; Reprise sends only recorded calls.
func TestOTelAgainstGuideLLM(t *testing.T) {
	for _, name := range []string{"spans.jsonl", "sessions.jsonl"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", "otel", name)
			want := guidellmConversations(t, "otel", path)
			src, err := OpenOTel(path, OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			reqs := drain(t, src)
			got := byConversation(t, reqs)
			if len(got) != len(want) {
				t.Fatalf("%d conversations, GuideLLM %d", len(got), len(want))
			}
			compared := 0
			for c := range want {
				compared += compareOTelConversation(t, got[c], want[c])
			}
			if compared == 0 || compared != len(reqs) {
				t.Fatalf("%d turns compared of %d requests", compared, len(reqs))
			}
		})
	}
}

func compareOTelConversation(t *testing.T, got []Request, all []guidellmTurn) int {
	t.Helper()
	// Reprise's calls of a conversation in start order, as GuideLLM's chain.
	sort.SliceStable(got, func(i, j int) bool { return got[i].Offset < got[j].Offset })
	// GuideLLM answers a tool call that no recorded call answers with a
	// request of its own (a placeholder tool result, no output length),
	// which was never recorded: Reprise does not send it.
	var want []guidellmTurn
	for i, w := range all {
		if w.Type != nil && *w.Type == "tool_response_injection" && w.OutputTokens == nil {
			k := len(want) // the Reprise call before it
			if k == 0 || got[k-1].Graph.Kind != TurnToolCall || (k < len(got) && got[k].Graph.Kind == TurnToolResult) {
				t.Errorf("GuideLLM's placeholder %s does not follow an unanswered tool call", w.Node)
			}
			if i+1 < len(all) { // the next turn hangs off the placeholder
				all[i+1].Parents = [][]string{{want[k-1].Node, "full"}}
			}
			continue
		}
		want = append(want, w)
	}
	if len(got) != len(want) {
		t.Fatalf("conversation %s: %d calls, GuideLLM %d turns", got[0].Graph.Conversation, len(got), len(want))
	}
	start := got[0].Offset
	for i, w := range want {
		r := got[i]
		name := r.Graph.Conversation + "/" + r.Graph.Node
		if w.TS == nil || !sameSeconds(r.Offset-start, *w.TS) {
			t.Errorf("%s: at %v from the conversation's start, GuideLLM %v s", name, r.Offset-start, w.TS)
		}
		if w.Duration == nil || !sameSeconds(r.Graph.Duration, *w.Duration) {
			t.Errorf("%s: duration %v, GuideLLM %v s", name, r.Graph.Duration, w.Duration)
		}
		typ := ""
		if w.Type != nil {
			typ = *w.Type
		}
		switch typ {
		case "client_tool_call":
			if r.Graph.Kind != TurnToolCall || w.OutputTokens != nil {
				t.Errorf("%s: kind %v, GuideLLM %s with output %v", name, r.Graph.Kind, typ, w.OutputTokens)
			}
		case "tool_response_injection":
			if r.Graph.Kind != TurnToolResult {
				t.Errorf("%s: kind %v, GuideLLM %s", name, r.Graph.Kind, typ)
			}
			var msgs []map[string]any
			if err := json.Unmarshal(r.Messages, &msgs); err != nil {
				t.Fatal(err)
			}
			tail := msgs[len(msgs)-len(w.ToolResponses):]
			for k, resp := range w.ToolResponses {
				if tail[k]["role"] != "tool" || tail[k]["content"] != resp {
					t.Errorf("%s: tool result %d is %v, GuideLLM %q", name, k, tail[k], resp)
				}
			}
		case "":
			if r.Graph.Kind != TurnPlain {
				t.Errorf("%s: kind %v, GuideLLM a plain turn", name, r.Graph.Kind)
			}
		default:
			t.Errorf("%s: GuideLLM turn type %q", name, typ)
		}
		if w.PromptTokens != nil && *w.PromptTokens != r.PromptTokens {
			t.Errorf("%s: prompt %d tokens, GuideLLM %d", name, r.PromptTokens, *w.PromptTokens)
		}
		if w.OutputTokens != nil && *w.OutputTokens != r.OutputTokens {
			t.Errorf("%s: output %d tokens, GuideLLM %d", name, r.OutputTokens, *w.OutputTokens)
		}
		if w.Messages != nil && string(w.Messages) != "null" {
			switch r.Endpoint {
			case "completions":
				var msgs []struct{ Content string }
				if err := json.Unmarshal(w.Messages, &msgs); err != nil {
					t.Fatal(err)
				}
				var texts []string
				for _, m := range msgs {
					texts = append(texts, m.Content)
				}
				if strings.Join(texts, "\n") != r.Prompt {
					t.Errorf("%s: prompt %q, GuideLLM's messages %s", name, r.Prompt, w.Messages)
				}
			default:
				if !sameJSON(t, r.Messages, w.Messages) {
					t.Errorf("%s: messages\n%s\nGuideLLM\n%s", name, r.Messages, w.Messages)
				}
			}
		}
		// GuideLLM chains every turn to the one before it and waits its
		// recorded idle gap: start - (previous start + previous duration).
		if i > 0 {
			prev := got[i-1]
			if len(w.Parents) != 1 || w.Parents[0][0] != want[i-1].Node {
				t.Errorf("%s: GuideLLM parents %v", name, w.Parents)
			}
			if prev.Session == r.Session {
				gap := *w.TS - *want[i-1].TS - *want[i-1].Duration
				if !sameSeconds(r.Delay, max(gap, 0)) || r.Turn != prev.Turn+1 {
					t.Errorf("%s: turn %d after %v, GuideLLM's gap %v s", name, r.Turn, r.Delay, gap)
				}
				if len(r.Graph.After) == 0 || r.Graph.After[0] != prev.Graph.Node {
					t.Errorf("%s: after %v, want %s first", name, r.Graph.After, prev.Graph.Node)
				}
			}
		}
	}
	return len(want)
}

// TestWEKAAgainstGuideLLM reads the same WEKA file with GuideLLM 0.8.1's
// reader and Reprise's: the same nodes in each chain's order, agents,
// parents (Reprise's Graph.After), lengths, relative times and tool-turn
// kinds. Documented differences, checked as such: an "out" of 0 is sent as
// 1; and a sub-agent nested in a sub-agent whose times are relative to its
// spawn is placed by Reprise on the conversation's timeline, while
// GuideLLM leaves it relative to the enclosing sub-agent's spawn (earlier).
func TestWEKAAgainstGuideLLM(t *testing.T) {
	path := filepath.Join("testdata", "weka", "agentic.jsonl")
	want := guidellmConversations(t, "weka", path)
	src, err := OpenWEKA(path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	reqs := drain(t, src)
	nodes := map[string]Request{}
	for _, r := range reqs {
		nodes[r.Graph.Conversation+"/"+r.Graph.Node] = r
	}
	got := byConversation(t, reqs)
	if len(got) != len(want) {
		t.Fatalf("%d conversations, GuideLLM %d", len(got), len(want))
	}
	nested := 0
	nestedChains := map[string]bool{}
	for c, turns := range want {
		conv := got[c][0].Graph.Conversation
		if len(got[c]) != len(turns) {
			t.Errorf("conversation %s: %d requests, GuideLLM %d", conv, len(got[c]), len(turns))
		}
		chainPos := map[string]int{} // Reprise's read order of each node
		for _, r := range got[c] {
			chainPos[r.Graph.Node] = r.Index
		}
		for i, w := range turns {
			name := conv + "/" + w.Node
			r, ok := nodes[name]
			if !ok {
				t.Errorf("%s: GuideLLM's node is not in Reprise's reading", name)
				continue
			}
			wantAgent := w.Agent
			if wantAgent == "default" {
				wantAgent = ""
			}
			if r.Graph.Agent != wantAgent {
				t.Errorf("%s: agent %q, GuideLLM %q", name, r.Graph.Agent, w.Agent)
			}
			var parents []string
			for _, p := range w.Parents {
				parents = append(parents, p[0])
			}
			if !reflect.DeepEqual(r.Graph.After, parents) {
				t.Errorf("%s: after %v, GuideLLM parents %v", name, r.Graph.After, parents)
			}
			if r.PromptTokens != *w.PromptTokens {
				t.Errorf("%s: prompt %d, GuideLLM %d", name, r.PromptTokens, *w.PromptTokens)
			}
			if wantOut := max(*w.OutputTokens, 1); r.OutputTokens != wantOut {
				t.Errorf("%s: output %d, GuideLLM %d (0 is sent as 1)", name, r.OutputTokens, *w.OutputTokens)
			}
			kind := TurnPlain
			if w.Type != nil {
				kind = map[string]TurnKind{"client_tool_call": TurnToolCall, "tool_response_injection": TurnToolResult}[*w.Type]
			}
			if r.Graph.Kind != kind {
				t.Errorf("%s: kind %v, GuideLLM %v", name, r.Graph.Kind, w.Type)
			}
			// In a chain, GuideLLM's order is the file's: so is Reprise's
			// node numbering, and a later node of the same agent never
			// comes out before an earlier one.
			if i > 0 && turns[i-1].Agent == w.Agent && chainPos[turns[i-1].Node] > chainPos[w.Node] {
				t.Errorf("%s comes out before %s", name, turns[i-1].Node)
			}
			// A chain spawned from another sub-agent's node is nested.
			if chain := chainOf(w.Node); strings.HasPrefix(chain, "sa_") && len(parents) > 0 &&
				strings.HasPrefix(parents[0], "sa_") && chainOf(parents[0]) != chain {
				nestedChains[chain] = true
			}
			if nestedChains[chainOf(w.Node)] {
				nested++
				if !(*w.TS < r.Offset.Seconds()) {
					t.Errorf("%s: a nested sub-agent at %v s, GuideLLM %v s: GuideLLM does not add the enclosing spawn", name, r.Offset.Seconds(), *w.TS)
				}
				continue
			}
			if !sameSeconds(r.Offset, *w.TS) {
				t.Errorf("%s: offset %v, GuideLLM %v s", name, r.Offset, *w.TS)
			}
		}
	}
	if nested == 0 {
		t.Error("the file's nested sub-agent was not found")
	}
}

// chainOf is the chain a GuideLLM node id belongs to: "sa_1" for "sa_1_0".
func chainOf(node string) string {
	if i := strings.LastIndexByte(node, '_'); i > 0 {
		return node[:i]
	}
	return node
}

// GuideLLMConversations runs GuideLLM's trace reader for the external
// tests (otel_export_test.go checks that GuideLLM reads Reprise's exports).
var GuideLLMConversations = guidellmConversations
