package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/reprise-llm/reprise/internal/engine"
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
			want, _ := json.Marshal(quoted.reply)
			if !bytes.Contains(quoting.body, append([]byte(`{"role":"assistant","content":`), want...)) {
				t.Errorf("%s: the call after %q does not quote the simulator's reply %s:\n%s", cfg.Profile, tc.quoted, want, quoting.body)
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
// the calls that quote it; a reply with quotes and markup is escaped once,
// the message's other members keep their order, and a call of another
// conversation quoting the same text is left alone.
func TestGraphReplyFallsBackToTheRecordedOne(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	call := func(conv, node string, reply string, msgs string) *workload.Request {
		return &workload.Request{Index: 1, Messages: []byte(msgs), OutputTokens: 2,
			Graph: &workload.GraphNode{Conversation: conv, Node: node, Reply: reply}}
	}
	first := call("c", "n1", "Paris.", `[{"role":"user","content":"Q"}]`)
	later := `[{"role":"user","content":"Q"},{"role":"assistant","content":"Paris.","name":"geo"},{"role":"user","content":"And?"}]`
	if _, err := b.Body(first, "m"); err != nil {
		t.Fatal(err)
	}
	b.ObserveReply(first, "") // failed
	body, err := b.Body(call("c", "n2", "", later), "m")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte(later)) {
		t.Errorf("after a failed reply the recorded messages should go as they were: %s", body)
	}
	b.ObserveReply(first, `Lyon, <"vraiment">`)
	body, err = b.Body(call("c", "n2", "", later), "m")
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"role":"user","content":"Q"},{"role":"assistant","content":"Lyon, \u003c\"vraiment\"\u003e","name":"geo"},{"role":"user","content":"And?"}]`
	if !bytes.Contains(body, []byte(want)) {
		t.Errorf("body %s\nwant messages %s", body, want)
	}
	var v struct{ Messages []struct{ Content string } }
	if err := json.Unmarshal(body, &v); err != nil || v.Messages[1].Content != `Lyon, <"vraiment">` {
		t.Errorf("the reply does not read back: %v %+v", err, v)
	}
	if body, _ = b.Body(call("other", "n2", "", later), "m"); !bytes.Contains(body, []byte(later)) {
		t.Errorf("another conversation's call was rewritten: %s", body)
	}
}
