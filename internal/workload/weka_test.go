package workload

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func openWEKA(t *testing.T, path string, opts OpenOptions) (*WEKA, []Request) {
	t.Helper()
	src, err := OpenWEKA(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src, drain(t, src)
}

// TestWEKADocumentAndLines: the pretty-printed document (as the format's
// own sample is written) reads as the same conversation as its JSONL line.
func TestWEKADocumentAndLines(t *testing.T) {
	_, lines := openWEKA(t, filepath.Join("testdata", "weka", "agentic.jsonl"), OpenOptions{})
	_, doc := openWEKA(t, filepath.Join("testdata", "weka", "single.json"), OpenOptions{})
	var first []Request
	for _, r := range lines {
		if r.Graph.Conversation == "8712b46f-04e" {
			first = append(first, r)
		}
	}
	if len(doc) != len(first) || len(doc) == 0 {
		t.Fatalf("%d requests from the document, %d from its line", len(doc), len(first))
	}
	for i := range doc {
		d, l := doc[i], first[i]
		d.Index, l.Index = 0, 0
		if !reflect.DeepEqual(d, l) {
			t.Errorf("request %d:\n%+v\n%+v", i, d, l)
		}
	}
	arr := write(t, "arr.json", "[\n"+strings.Join(strings.Split(strings.TrimSpace(readFile(t, filepath.Join("testdata", "weka", "agentic.jsonl"))), "\n"), ",\n")+"\n]\n")
	_, fromArray := openWEKA(t, arr, OpenOptions{})
	if len(fromArray) != len(lines) {
		t.Errorf("an array of the conversations: %d requests, %d from the lines", len(fromArray), len(lines))
	}
}

// TestWEKARequests checks what requests are made of: whole-context rows of
// their lengths and block ids, think times from api_time or think_time,
// and block ids scoped per conversation when the trace says local.
func TestWEKARequests(t *testing.T) {
	path := write(t, "w.jsonl", strings.Join([]string{
		`{"id":"g1","requests":[{"t":0,"in":130,"out":3,"hash_ids":[1,2],"api_time":1.5},{"t":4,"in":200,"out":4,"hash_ids":[1,2,3],"think_time":0.25},{"t":9,"in":64,"out":5,"hash_ids":[1]},{"t":12,"in":64,"out":5,"hash_ids":[1],"think_time":1}]}`,
		`{"id":"l1","hash_id_scope":"local","block_size":32,"requests":[{"t":1,"in":64,"out":1,"hash_ids":[1,2]}]}`,
		`{"id":"l2","hash_id_scope":"local","requests":[{"t":2,"in":64,"out":1,"hash_ids":[1]}]}`,
		`{"id":"g2","requests":[{"t":3,"in":64,"out":1,"hash_ids":[1]}]}`,
	}, "\n")+"\n")
	_, got := openWEKA(t, path, OpenOptions{})
	by := map[string]Request{}
	for _, r := range got {
		by[r.ID] = r
	}
	g0, g1, g2, g3 := by["g1/main_0"], by["g1/main_1"], by["g1/main_2"], by["g1/main_3"]
	if g0.Convention != ConventionWhole || g0.History || g0.BlockTokens != 64 || g0.PromptTokens != 130 || g0.Session != "g1" {
		t.Errorf("first row: %+v", g0)
	}
	// 4 - (0 + 1.5) from api_time; 9 - 4 with neither; think_time when the
	// previous row has no api_time.
	if g1.Delay != 2500*time.Millisecond || g2.Delay != 5*time.Second || g3.Delay != time.Second {
		t.Errorf("delays %v %v %v", g1.Delay, g2.Delay, g3.Delay)
	}
	l1, l2, gl := by["l1/main_0"], by["l2/main_0"], by["g2/main_0"]
	if l1.BlockTokens != 32 || l1.HashIDs[0] == l2.HashIDs[0] || l1.HashIDs[0]%2 != 1 || l2.HashIDs[0]%2 != 1 {
		t.Errorf("local ids: %v %v", l1.HashIDs, l2.HashIDs)
	}
	if gl.HashIDs[0] != g0.HashIDs[0] || gl.HashIDs[0]%2 != 0 {
		t.Errorf("global ids: %v %v", gl.HashIDs, g0.HashIDs)
	}
	if !reflect.DeepEqual(g1.HashIDs[:2], g0.HashIDs) {
		t.Errorf("a growing context keeps its leading ids: %v %v", g0.HashIDs, g1.HashIDs)
	}
}

// TestWEKAErrorsNameFileAndLine: a bad request stops the reading with the
// file, the conversation's line, the request's place and the reason; with
// SkipInvalid its conversation is counted instead.
func TestWEKAErrorsNameFileAndLine(t *testing.T) {
	good := `{"id":"ok","requests":[{"t":0,"in":64,"out":1,"hash_ids":[1]}]}`
	for _, c := range []struct{ bad, reason string }{
		{`{"id":"x","requests":[{"t":0,"in":64,"out":1}]}`, "requests[0]: no hash_ids"},
		{`{"id":"x","requests":[{"t":0,"in":640,"out":1,"hash_ids":[1]}]}`, "requests[0]: 1 hash_ids for in 640: want 10 full blocks of 64 tokens"},
		{`{"id":"x","requests":[{"t":0,"in":-1,"out":1,"hash_ids":[]}]}`, "in -1: want a token count >= 0"},
		{`{"id":"x","requests":[{"in":64,"out":1,"hash_ids":[1]}]}`, "t: missing"},
		{`{"id":"x","requests":[{"t":0,"in":64,"out":1,"hash_ids":[-4]}]}`, "hash_ids[0] -4: want an id in [0, 2^31)"},
		{`{"id":"x","requests":[{"t":0,"in":64,"out":1,"hash_ids":[1]},{"type":"subagent","t":1,"requests":[{"t":0,"in":64,"hash_ids":[1]}]}]}`, "requests[1].requests[0]: no out"},
		{`{"id":"x","hash_id_scope":"team","requests":[]}`, `hash_id_scope "team"`},
		{`{"id":"x"}`, "no requests list"},
		{`{"id":"x","requests":[`, "not JSON"},
		{`["not a conversation"]`, "want a conversation object"},
	} {
		path := write(t, "bad.jsonl", good+"\n\n"+c.bad+"\n"+good+"\n")
		src, err := OpenWEKA(path, OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = Measure(src)
		if want := fmt.Sprintf("weka %s line 3: ", path); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s:\n got %v\nwant %s…%s", c.bad, err, want, c.reason)
		}
		src, _ = OpenWEKA(path, OpenOptions{SkipInvalid: true})
		if n, _, err := Measure(src); err != nil || n != 2 || src.Skipped() != 1 {
			t.Errorf("%s with SkipInvalid: %d requests, %d skipped, %v", c.bad, n, src.Skipped(), err)
		}
	}
	path := write(t, "doc.json", "{\n  \"id\": \"x\",\n  \"requests\": [\n    {\"t\": 0, \"in\": 64, \"out\": 1}\n  ]\n}\n")
	src, _ := OpenWEKA(path, OpenOptions{})
	if _, _, err := Measure(src); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("weka %s line 1: requests[0]: no hash_ids", path)) {
		t.Errorf("pretty document: %v", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A parent row whose t is earlier than the last call of a sub-agent it
// joins (a skewed trace) comes out after that call, never before: the
// engine waits for the nodes it has seen, so each must be seen first.
func TestWEKAJoinComesAfterItsSubAgent(t *testing.T) {
	conv := `{"id":"c1","requests":[` +
		`{"t":0,"type":"s","in":100,"out":10,"api_time":1,"hash_ids":[1,2]},` +
		`{"t":1,"type":"subagent","agent_id":"a1","requests":[{"t":10,"type":"s","in":50,"out":5,"api_time":1,"hash_ids":[3]},{"t":20,"type":"s","in":120,"out":5,"api_time":1,"hash_ids":[3,4]}]},` +
		`{"t":15,"type":"s","in":190,"out":10,"api_time":1,"hash_ids":[1,2,5]}]}`
	path := filepath.Join(t.TempDir(), "skewed.jsonl")
	if err := os.WriteFile(path, []byte(conv+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := Open("weka:"+path, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, src)
	seen := map[string]bool{}
	for _, r := range got {
		for _, a := range r.Graph.After {
			if !seen[a] {
				t.Errorf("%s came out before %s, which it comes after (order %v)", r.Graph.Node, a, nodes(got))
			}
		}
		seen[r.Graph.Node] = true
	}
}

func nodes(rs []Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Graph.Node)
	}
	return out
}
