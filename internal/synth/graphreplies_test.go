package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Issue 14: an agentic trace replays closed-loop on the target's replies
// where it holds text. In the OTel fixture, call a4 quotes a3's recorded
// reply ("There are two files: main.go and go.mod.") and b4 quotes b1's
// ("Paris."): each is sent with the simulator's own reply to that call in
// its place, the rest of the recorded messages as they were, in the open
// loop and in a closed one.
func TestGraphCallsQuoteTheTargetsReplies(t *testing.T) {
	for _, cfg := range []engine.Config{
		{Profile: engine.ProfileTrace, TimeScale: 0.01},
		{Profile: engine.ProfileConcurrent, Concurrency: 4, TimeScale: 0.01}, // think times scaled too
	} {
		srv, exchanges := recordingSim(t)
		src, err := workload.Open("otel:../workload/testdata/otel/spans.jsonl", workload.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Target = srv.URL
		run, err := engine.Execute(context.Background(), cfg, src, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range run.Results {
			if !r.OK() {
				t.Fatalf("%s: request %d failed: %s", cfg.Profile, r.Index, r.Err)
			}
		}
		ex := exchanges()
		// find returns the exchange whose last message's content is last.
		find := func(last string) exchange {
			t.Helper()
			for _, e := range ex {
				var body struct {
					Messages []struct{ Role, Content string }
				}
				if json.Unmarshal(e.body, &body) == nil && len(body.Messages) > 0 && body.Messages[len(body.Messages)-1].Content == last {
					return e
				}
			}
			t.Fatalf("%s: no request ends with %q", cfg.Profile, last)
			return exchange{}
		}
		for _, tc := range []struct{ quoting, quoted, recorded string }{
			{"Open main.go and explain it.", "main.go\ngo.mod", "There are two files: main.go and go.mod."},
			{"And of Italy?", "What is the capital of France?", "Paris."},
		} {
			quoting, quoted := find(tc.quoting), find(tc.quoted)
			if quoted.reply == "" || quoted.reply == tc.recorded {
				t.Fatalf("%s: the simulator's reply to %q is %q", cfg.Profile, tc.quoted, quoted.reply)
			}
			if got := contents(t, quoting.body); !slices.Contains(got, quoted.reply) {
				t.Errorf("%s: the call after %q does not quote the simulator's reply %q:\n%s", cfg.Profile, tc.quoted, quoted.reply, quoting.body)
			}
			if bytes.Contains(quoting.body, []byte(tc.recorded)) {
				t.Errorf("%s: the call after %q still sends the recorded reply %q", cfg.Profile, tc.quoted, tc.recorded)
			}
			if !bytes.Contains(quoting.body, []byte(`"tool_calls":[`)) && tc.quoted == "main.go\ngo.mod" {
				t.Errorf("%s: the recorded tool call was not kept: %s", cfg.Profile, quoting.body)
			}
		}
	}
}

// A call whose reply failed or had no text leaves the recorded reply in
// the calls that quote it; a reply with quotes and markup is escaped as
// recorded messages are, the message's other members keep their order,
// and a call of another conversation quoting the same text is left alone.
func TestGraphReplyFallsBackToTheRecordedOne(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := agentCall("c", "", "n1", "Paris.", `[{"role":"user","content":"Q"}]`)
	later := `[{"role":"user","content":"Q"},{"role":"assistant","content":"Paris.","name":"geo"},{"role":"user","content":"And?"}]`
	if _, err := b.Body(first, "m"); err != nil {
		t.Fatal(err)
	}
	b.ObserveReply(first, "") // failed
	body, err := b.Body(agentCall("c", "", "n2", "", later, "n1"), "m")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte(later)) {
		t.Errorf("after a failed reply the recorded messages should go as they were: %s", body)
	}
	b.ObserveReply(first, `Lyon, <"vraiment">`)
	body, err = b.Body(agentCall("c", "", "n3", "", later, "n1"), "m")
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"role":"user","content":"Q"},{"role":"assistant","content":"Lyon, \u003c\"vraiment\"\u003e","name":"geo"},{"role":"user","content":"And?"}]`
	if !bytes.Contains(body, []byte(want)) {
		t.Errorf("body %s\nwant messages %s", body, want)
	}
	if got := contents(t, body); got[1] != `Lyon, <"vraiment">` {
		t.Errorf("the reply does not read back: %q", got)
	}
	if body, _ = b.Body(agentCall("other", "", "n2", "", later, "n1"), "m"); !bytes.Contains(body, []byte(later)) {
		t.Errorf("another conversation's call was rewritten: %s", body)
	}
}

// Equal recorded replies are told apart: an agent that said "OK." twice
// gets each of its replies back in place, in order; a sub-agent's "OK." is
// its own, not its parent's; a parallel branch's is never taken.
func TestGraphRepliesWithEqualRecordedText(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	send := func(r *workload.Request, reply string) []string {
		t.Helper()
		body, err := b.Body(r, "m")
		if err != nil {
			t.Fatal(err)
		}
		b.ObserveReply(r, reply)
		return contents(t, body)
	}
	u := func(s string) string { return `{"role":"user","content":"` + s + `"}` }
	ok := `{"role":"assistant","content":"OK."}`
	send(agentCall("c", "", "m1", "OK.", "["+u("a")+"]"), "MAIN-1")
	got := send(agentCall("c", "", "m2", "OK.", "["+u("a")+","+ok+","+u("b")+"]", "m1"), "MAIN-2")
	if got[1] != "MAIN-1" {
		t.Errorf("m2 quotes %q, want MAIN-1", got)
	}
	// a sub-agent spawned by m2, and a parallel one
	send(agentCall("c", "sa", "s1", "OK.", "["+u("task")+"]", "m2"), "SUB-1")
	send(agentCall("c", "sb", "p1", "OK.", "["+u("other task")+"]", "m2"), "PAR-1")
	if got = send(agentCall("c", "sa", "s2", "", "["+u("task")+","+ok+","+u("go on")+"]", "s1"), ""); got[1] != "SUB-1" {
		t.Errorf("the sub-agent's second call quotes %q, want its own SUB-1", got)
	}
	// the main agent after the join: its own two replies, in order
	got = send(agentCall("c", "", "m3", "", "["+u("a")+","+ok+","+u("b")+","+ok+","+u("c")+"]", "m2", "s2", "p1"), "")
	if got[1] != "MAIN-1" || got[3] != "MAIN-2" {
		t.Errorf("m3 quotes %q, want MAIN-1 then MAIN-2", got)
	}
}

// The ancestry runs through every graph call, a text completion's too: a
// chat call after a completion after a chat call still quotes the first
// one's reply. A node named twice keeps its first call's reply.
func TestGraphRepliesThroughOtherCalls(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := agentCall("c", "", "a", "Paris.", `[{"role":"user","content":"Q"}]`)
	if _, err := b.Body(a, "m"); err != nil {
		t.Fatal(err)
	}
	b.ObserveReply(a, "LIVE")
	mid := &workload.Request{Index: 2, Endpoint: openai.Completions, Prompt: "p", OutputTokens: 2,
		Graph: &workload.GraphNode{Conversation: "c", Node: "b", After: []string{"a"}}}
	if _, err := b.Body(mid, "m"); err != nil {
		t.Fatal(err)
	}
	twin := agentCall("c", "", "a", "Paris.", `[{"role":"user","content":"Q"}]`) // the same node name, another request
	twin.Index = 3
	if _, err := b.Body(twin, "m"); err != nil {
		t.Fatal(err)
	}
	b.ObserveReply(twin, "TWIN")
	body, err := b.Body(agentCall("c", "", "c", "", `[{"role":"user","content":"Q"},{"role":"assistant","content":"Paris."},{"role":"user","content":"and?"}]`, "b"), "m")
	if err != nil {
		t.Fatal(err)
	}
	if got := contents(t, body); got[1] != "LIVE" {
		t.Errorf("the call after a completion quotes %q, want the first call's own reply LIVE", got)
	}
}

// agentCall is a chat call of conversation conv by agent, quoting
// recorded messages msgs, after the nodes after.
func agentCall(conv, agent, node, reply, msgs string, after ...string) *workload.Request {
	return &workload.Request{Index: 1, Messages: []byte(msgs), OutputTokens: 2,
		Graph: &workload.GraphNode{Conversation: conv, Agent: agent, Node: node, Reply: reply, After: after}}
}

// contents is a chat body's messages' contents.
func contents(t *testing.T, body []byte) []string {
	t.Helper()
	var v struct{ Messages []struct{ Content string } }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var out []string
	for _, m := range v.Messages {
		out = append(out, m.Content)
	}
	return out
}

// BenchmarkGraphQuotingBody: the body of a call 40 turns into an agent's
// conversation (about 40 KB of messages), sent as recorded (verbatim) and
// with its 20 quoted replies replaced by the target's; the second is
// built when the call is sent, so its cost is send lag.
func BenchmarkGraphQuotingBody(b *testing.B) {
	bl, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	para := strings.Repeat("the quick brown fox jumps over the lazy dog ", 20)
	msgs := "["
	var prev []string
	for i := range 20 {
		node := fmt.Sprintf("n%d", i)
		reply := fmt.Sprintf("reply %d: %s", i, para)
		r := agentCall("c", "", node, reply, msgs+`{"role":"user","content":"go"}]`, prev...)
		if _, err := bl.Body(r, "m"); err != nil {
			b.Fatal(err)
		}
		bl.ObserveReply(r, "target "+reply)
		msgs += `{"role":"user","content":"` + para + `"},{"role":"assistant","content":` + string(must(json.Marshal(reply))) + `},`
		prev = []string{node}
	}
	msgs += `{"role":"user","content":"last"}]`
	quoting := agentCall("c", "", "n20", "", msgs, prev...)
	plain := &workload.Request{Index: 1, Messages: []byte(msgs), OutputTokens: 2}
	for _, tc := range []struct {
		name string
		req  *workload.Request
	}{{"recorded", plain}, {"quoting", quoting}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(msgs)))
			for b.Loop() {
				if _, err := bl.Body(tc.req, "m"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// FuzzAssistantTexts holds the one-pass reader of a messages array to
// encoding/json: on any input encoding/json reads as an array of
// messages, it finds the same assistant texts, in order, and each span it
// gives is that text's JSON string; input it refuses, encoding/json
// refuses too.
func FuzzAssistantTexts(f *testing.F) {
	for _, seed := range []string{
		`[{"role":"user","content":"Q"},{"role":"assistant","content":"Paris.","name":"geo"}]`,
		`[{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]},{"role":"tool","content":"x"}]`,
		`[{"content":"a\u00e9\"b","role":"assistant"}, {"role":"assistant","content":["part"]}]`,
		`[]`, `[1, "x", null]`, `[{"role":"assistant","content":"x"`, `{"role":"assistant"}`,
		`[{"role":"assistant","role":"user","content":"dup"}]`,
		`[{"role":"assistant","content":"x","content":"x"}]`, `[{"role":"assistant","content":"x","content":null}]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := assistantTexts(b)
		var arr []json.RawMessage
		jerr := json.Unmarshal(b, &arr)
		if err != nil {
			if jerr == nil {
				t.Fatalf("refused what encoding/json reads: %v: %q", err, b)
			}
			return
		}
		if jerr != nil {
			t.Fatalf("read what encoding/json refuses (%v): %q", jerr, b)
		}
		var want []string
		for _, raw := range arr {
			var m map[string]json.RawMessage // member names exactly, the last of equal ones
			var role, text string
			if json.Unmarshal(raw, &m) == nil && json.Unmarshal(m["role"], &role) == nil && role == "assistant" &&
				json.Unmarshal(m["content"], &text) == nil && text != "" {
				want = append(want, text)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d texts, encoding/json %d: %q", len(got), len(want), b)
		}
		for i, q := range got {
			var text string
			if q.text != want[i] || json.Unmarshal(b[q.start:q.end], &text) != nil || text != q.text {
				t.Fatalf("text %d: %q at [%d:%d], encoding/json %q: %q", i, q.text, q.start, q.end, want[i], b)
			}
		}
		// The spans are the members in effect: a marker spliced into each
		// is what encoding/json then reads as those messages' content, and
		// every other member reads as before.
		const marker = `"@@marker@@"`
		var spliced []byte
		last := 0
		for _, q := range got {
			spliced = append(append(spliced, b[last:q.start]...), marker...)
			last = q.end
		}
		spliced = append(spliced, b[last:]...)
		var after []json.RawMessage
		if err := json.Unmarshal(spliced, &after); err != nil || len(after) != len(arr) {
			t.Fatalf("spliced %q: %v", spliced, err)
		}
		for k := range arr {
			var m0, m1 map[string]json.RawMessage
			e0, e1 := json.Unmarshal(arr[k], &m0), json.Unmarshal(after[k], &m1)
			var role, text string
			quoted := e0 == nil && json.Unmarshal(m0["role"], &role) == nil && role == "assistant" &&
				json.Unmarshal(m0["content"], &text) == nil && text != ""
			if quoted {
				if string(m1["content"]) != marker {
					t.Fatalf("message %d: content %s after the splice, want the marker: %q", k, m1["content"], b)
				}
				delete(m0, "content")
				delete(m1, "content")
			}
			if (e0 == nil) != (e1 == nil) || len(m0) != len(m1) {
				t.Fatalf("message %d changed: %s → %s", k, arr[k], after[k])
			}
			for key, v := range m0 {
				if !bytes.Equal(v, m1[key]) {
					t.Fatalf("message %d member %q changed: %s → %s", k, key, v, m1[key])
				}
			}
			if e0 != nil && !bytes.Equal(arr[k], after[k]) {
				t.Fatalf("message %d changed: %s → %s", k, arr[k], after[k])
			}
		}
	})
}
