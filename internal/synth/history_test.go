package synth

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
	"github.com/reprise-llm/reprise/internal/workload"
)

// exchange is one request body the simulator received and the reply text
// it sent.
type exchange struct {
	body  []byte
	reply string
}

// teeWriter keeps a copy of what the handler writes.
type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (t *teeWriter) Write(p []byte) (int, error) { t.buf.Write(p); return t.ResponseWriter.Write(p) }
func (t *teeWriter) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// recordingSim is the in-process simulator with every exchange recorded in
// arrival order.
func recordingSim(t *testing.T) (*httptest.Server, func() []exchange) {
	t.Helper()
	s := simtest.New(t, func(c *sim.Config) {
		c.TTFTBase, c.ITLBase, c.ITLPerSeq, c.Jitter = time.Millisecond, 100*time.Microsecond, 0, 0
	})
	var mu sync.Mutex
	var got []exchange
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		tw := &teeWriter{ResponseWriter: w}
		s.ServeHTTP(tw, r)
		mu.Lock()
		got = append(got, exchange{body: body, reply: replyText(t, tw.buf.Bytes())})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv, func() []exchange { mu.Lock(); defer mu.Unlock(); return append([]exchange(nil), got...) }
}

// replyText extracts the content of a JSON response or an SSE stream.
func replyText(t *testing.T, b []byte) string {
	if r, err := openai.ParseResponse(b); err == nil && r.Content != "" {
		return r.Content
	}
	var dec openai.Decoder
	dec.Feed(b)
	var sb strings.Builder
	for {
		ev, ok := dec.Next()
		if !ok {
			break
		}
		if ch, err := openai.ParseChunk(ev.Data); err == nil {
			sb.WriteString(ch.Content)
		}
	}
	return sb.String()
}

// An AIPerf session's turn 2 is sent after turn 1's prompt and the reply
// the target actually gave, as chat messages, streamed or not.
func TestSessionTurnsCarryHistoryAndLiveReplies(t *testing.T) {
	for _, tc := range []struct {
		stream bool
		cfg    engine.Config
	}{
		{false, engine.Config{Profile: engine.ProfileTrace}},
		{true, engine.Config{Profile: engine.ProfileTrace}},
		{true, engine.Config{Profile: engine.ProfileConcurrent, Concurrency: 3}},
	} {
		stream := tc.stream
		srv, exchanges := recordingSim(t)
		path := filepath.Join(t.TempDir(), "aiperf.jsonl")
		rows := `{"session_id":"s1","text_input":"first question","output_length":6}
{"session_id":"s1","delay":1,"text_input":"second question","output_length":4}
{"session_id":"s2","input_length":20,"output_length":3}
{"session_id":"s1","delay":1,"input_length":12,"output_length":2}
`
		if err := os.WriteFile(path, []byte(rows), 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := workload.Open(path, workload.OpenOptions{Stream: &stream})
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(Options{})
		if err != nil {
			t.Fatal(err)
		}
		cfg := tc.cfg
		cfg.Target = srv.URL
		run, err := engine.Execute(context.Background(), cfg, src, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range run.Results {
			if !r.OK() {
				t.Fatalf("request %d failed: %s", r.Index, r.Err)
			}
		}
		ex := exchanges()
		if len(ex) != 4 {
			t.Fatalf("%d requests reached the simulator, want 4", len(ex))
		}
		var s1 []exchange
		for _, e := range ex {
			if !bytes.Contains(e.body, []byte(`"content":"first question"`)) {
				continue
			}
			s1 = append(s1, e)
		}
		if len(s1) != 3 {
			t.Fatalf("%s stream=%v: %d requests carry turn 1's prompt, want 3 (turn 1 and both later turns of s1)", tc.cfg.Profile, stream, len(s1))
		}
		type msg struct{ Role, Content string }
		var body struct{ Messages []msg }
		for i, e := range s1 {
			if err := json.Unmarshal(e.body, &body); err != nil {
				t.Fatal(err)
			}
			if len(body.Messages) != 2*i+1 {
				t.Fatalf("stream=%v: turn %d has %d messages, want %d: %s", stream, i+1, len(body.Messages), 2*i+1, e.body)
			}
			for j := 0; j < i; j++ {
				prev := s1[j]
				if m := body.Messages[2*j+1]; m.Role != "assistant" || m.Content != prev.reply || prev.reply == "" {
					t.Errorf("stream=%v: turn %d message %d is %+v, want the simulator's reply to turn %d %q", stream, i+1, 2*j+1, m, j+1, prev.reply)
				}
			}
		}
		if body.Messages[2].Content != "second question" {
			t.Errorf("turn 3's history: %+v", body.Messages)
		}
		// s2 is a conversation of its own: no history from s1
		for _, e := range ex {
			if !bytes.Contains(e.body, []byte("first question")) && bytes.Count(e.body, []byte(`"role"`)) != 1 {
				t.Errorf("a request of s2 carries another session's history: %s", e.body)
			}
		}
	}
}

// A failed turn is left out of the history: the next turn follows the last
// completed exchange, so roles still alternate.
func TestFailedTurnLeftOutOfHistory(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	turn := func(n int, text string) *workload.Request {
		return &workload.Request{Index: n, Session: "s", Turn: n, History: true, Prompt: text, Endpoint: openai.Chat}
	}
	for i, reply := range []string{"one", "", "three"} {
		r := turn(i, "q"+string(rune('a'+i)))
		if _, err := b.Body(r, "m"); err != nil {
			t.Fatal(err)
		}
		b.ObserveReply(r, reply)
	}
	body, err := b.Body(turn(3, "qd"), "m")
	if err != nil {
		t.Fatal(err)
	}
	want := `"messages":[{"role":"user","content":"qa"},{"role":"assistant","content":"one"},{"role":"user","content":"qc"},{"role":"assistant","content":"three"},{"role":"user","content":"qd"}]`
	if !bytes.Contains(body, []byte(want)) {
		t.Errorf("body %s\nwant %s", body, want)
	}
	// completions: one prompt continuing the earlier prompts and replies
	c := &workload.Request{Index: 9, Session: "c", History: true, Prompt: "Once", Endpoint: openai.Completions}
	if _, err := b.Body(c, "m"); err != nil {
		t.Fatal(err)
	}
	b.ObserveReply(c, " upon a time")
	c2 := &workload.Request{Index: 10, Session: "c", Turn: 1, History: true, Prompt: ". The end", Endpoint: openai.Completions}
	body, err = b.Body(c2, "m")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte(`"prompt":"Once upon a time. The end"`)) {
		t.Errorf("completions body %s", body)
	}
}

// --ignore-eos off: max_tokens without ignore_eos.
func TestOmitIgnoreEOS(t *testing.T) {
	req := &workload.Request{PromptTokens: 5, OutputTokens: 7, Endpoint: openai.Chat}
	for _, omit := range []bool{false, true} {
		b, err := New(Options{OmitIgnoreEOS: omit})
		if err != nil {
			t.Fatal(err)
		}
		body, err := b.Body(req, "m")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(body, []byte(`"max_tokens":7`)) || bytes.Contains(body, []byte("ignore_eos")) != !omit {
			t.Errorf("omit=%v: %s", omit, body)
		}
		if !json.Valid(body) {
			t.Errorf("invalid JSON %s", body)
		}
	}
}
