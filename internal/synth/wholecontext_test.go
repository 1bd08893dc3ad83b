package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Issue 16, defect 3: a Mooncake-style session whose rows count the whole
// context (hash_ids or input_length growing turn by turn) is sent at
// exactly each row's input_length, without history on top, its shared
// blocks byte-identical (the simulator's prefix cache hits them), each turn
// after the previous one ended; an AIPerf-style delta session in the same
// trace still gets the conversation before each turn. Rows are told apart
// by their output length (max_tokens).
func TestWholeContextSessionsSentAtTheirLength(t *testing.T) {
	srv, exchanges := recordingSim(t)
	rows := `{"session_id":"ids","timestamp":0,"input_length":1300,"output_length":5,"hash_ids":[1,2,3]}
{"session_id":"len","timestamp":0,"input_length":40,"output_length":8}
{"session_id":"delta","timestamp":0,"input_length":30,"output_length":11}
{"session_id":"ids","timestamp":0,"input_length":1900,"output_length":6,"hash_ids":[1,2,4,5]}
{"session_id":"len","timestamp":0,"input_length":60,"output_length":9}
{"session_id":"delta","timestamp":0,"input_length":20,"output_length":12}
{"session_id":"ids","timestamp":0,"input_length":2600,"output_length":7,"hash_ids":[1,2,4,5,6,7]}
{"session_id":"len","timestamp":0,"input_length":90,"output_length":10}
`
	path := filepath.Join(t.TempDir(), "whole.jsonl")
	if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := workload.Open(path, workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	run, err := engine.Execute(context.Background(), engine.Config{Target: srv.URL, Profile: engine.ProfileTrace}, src, b)
	if err != nil {
		t.Fatal(err)
	}
	// what each row sent, by its max_tokens
	type msg struct{ Role, Content string }
	sent := map[int][]msg{}
	for _, e := range exchanges() {
		var body struct {
			MaxTokens int `json:"max_tokens"`
			Messages  []msg
		}
		if err := json.Unmarshal(e.body, &body); err != nil {
			t.Fatal(err)
		}
		sent[body.MaxTokens] = body.Messages
	}
	if len(run.Results) != 8 || len(sent) != 8 {
		t.Fatalf("%d results, %d distinct bodies, want 8", len(run.Results), len(sent))
	}
	byIndex := map[int]engine.Result{}
	for _, r := range run.Results {
		if !r.OK() {
			t.Fatalf("request %d failed: %s", r.Index, r.Err)
		}
		byIndex[r.Index] = r
	}
	for _, s := range []struct {
		name    string
		rows    []int // indices, in turn order
		shared  []int // prompt tokens each turn shares with the one before
		cached  []int // the simulator's cached tokens (its blocks are 16 tokens)
		history bool
	}{
		// turn 1 repeats turn 0's two whole blocks (its third, partial,
		// is re-hashed), turn 2 the whole of turn 1 (its partial block
		// is a prefix of the full one with the same ids)
		{"ids", []int{0, 3, 6}, []int{0, 1024, 1900}, []int{0, 1024, 1888}, false},
		// no ids: the session's own word stream, each turn a prefix of the next
		{"len", []int{1, 4, 7}, []int{0, 40, 60}, []int{0, 32, 48}, false},
		{"delta", []int{2, 5}, nil, nil, true},
	} {
		var prev string
		for turn, i := range s.rows {
			r := byIndex[i]
			if turn > 0 && r.Sent < byIndex[s.rows[turn-1]].End {
				t.Errorf("%s turn %d sent at %v, before turn %d ended at %v", s.name, turn, r.Sent, turn-1, byIndex[s.rows[turn-1]].End)
			}
			msgs := sent[r.RequestedOutputTokens]
			if s.history {
				if turn > 0 && (len(msgs) != 3 || r.PromptTokens <= r.RequestedPromptTokens) {
					t.Errorf("delta turn %d: %d messages, %d prompt tokens for %d requested: want the conversation before it", turn, len(msgs), r.PromptTokens, r.RequestedPromptTokens)
				}
				continue
			}
			if len(msgs) != 1 || r.PromptTokens != r.RequestedPromptTokens || !r.TokensFromUsage {
				t.Errorf("%s turn %d: %d messages, %d prompt tokens sent for %d requested: want one message of exactly the row's length", s.name, turn, len(msgs), r.PromptTokens, r.RequestedPromptTokens)
				continue
			}
			text := msgs[0].Content
			if got := commonWords(prev, text); turn > 0 && got != s.shared[turn] {
				t.Errorf("%s turn %d shares its first %d words (tokens) with turn %d, want %d", s.name, turn, got, turn-1, s.shared[turn])
			}
			if r.CachedTokens != s.cached[turn] {
				t.Errorf("%s turn %d: %d cached tokens, want %d", s.name, turn, r.CachedTokens, s.cached[turn])
			}
			prev = text
		}
	}
}

// commonWords is how many leading words two synthesised prompts share
// (each word one token).
func commonWords(a, b string) int {
	wa, wb := strings.Fields(a), strings.Fields(b)
	n := 0
	for n < len(wa) && n < len(wb) && wa[n] == wb[n] {
		n++
	}
	return n
}

// A whole-context session keeps no history: its first turn (sent with
// History, before the convention was known) is dropped when a whole-context
// row of the session is built, and a reply arriving after that is not kept.
func TestWholeContextSessionKeepsNoHistory(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	kept := func(session string) int {
		b.history.mu.Lock()
		defer b.history.mu.Unlock()
		c := b.history.convs[session]
		if c == nil {
			return 0
		}
		n := len(c.msgs) + len(c.text)
		if c.pending != nil {
			n++
		}
		return n
	}
	for _, replyFirst := range []bool{true, false} {
		session := fmt.Sprint("reply first ", replyFirst)
		first := &workload.Request{Index: 0, Session: session, History: true, PromptTokens: 50, Endpoint: "chat"}
		later := &workload.Request{Index: 1, Session: session, Turn: 1, Convention: workload.ConventionWhole, PromptTokens: 80, Endpoint: "chat"}
		if _, err := b.Body(first, "m"); err != nil {
			t.Fatal(err)
		}
		if replyFirst {
			b.ObserveReply(first, "a reply")
		}
		body, err := b.Body(later, "m")
		if err != nil {
			t.Fatal(err)
		}
		if !replyFirst {
			b.ObserveReply(first, "a late reply")
		}
		if n := kept(session); n != 0 || bytes.Contains(body, []byte("reply")) {
			t.Errorf("reply first %v: %d history items kept; body %.120s", replyFirst, n, body)
		}
	}
}
