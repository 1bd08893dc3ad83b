package synth

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/reprise-llm/reprise/internal/workload"
)

// Verbatim prompts from a prompts file get a requested token count: the
// prompt's, or the sum of the messages' contents (no chat template).
func TestMeasuredVerbatimPrompts(t *testing.T) {
	b := newBuilder(t)
	path := filepath.Join(t.TempDir(), "prompts.jsonl")
	data := `{"prompt":"The quick brown fox jumps over the lazy dog."}
{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":[{"type":"text","text":"Say hello to the world"}]}]}
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := workload.Open(path, workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := Measured(src, b)
	defer func() { _ = m.(io.Closer).Close() }()
	want := []int{
		b.CountTokens("The quick brown fox jumps over the lazy dog."),
		b.CountTokens("You are terse.") + b.CountTokens("Say hello to the world"),
	}
	for i, w := range want {
		req, err := m.Next()
		if err != nil {
			t.Fatal(err)
		}
		if w == 0 || req.PromptTokens != w {
			t.Errorf("request %d: %d prompt tokens, want %d", i, req.PromptTokens, w)
		}
	}
	if _, err := m.Next(); err != io.EOF {
		t.Errorf("after the last request: %v, want EOF", err)
	}
}

// A request with a count keeps it; one with unparseable messages stays
// unmeasured with an error naming the request.
func TestMeasurePromptKeepsCountsAndNamesErrors(t *testing.T) {
	b := newBuilder(t)
	req := workload.Request{Index: 3, Prompt: "hello there", PromptTokens: 77}
	if err := b.MeasurePrompt(&req); err != nil || req.PromptTokens != 77 {
		t.Errorf("recorded count replaced: %d, %v", req.PromptTokens, err)
	}
	bad := workload.Request{Index: 4, Messages: []byte(`[{"role":"user","content":5}]`)}
	if err := b.MeasurePrompt(&bad); err == nil || bad.PromptTokens != 0 {
		t.Errorf("content 5 measured: %d tokens, err %v", bad.PromptTokens, err)
	}
}
