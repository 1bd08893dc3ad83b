package stats

import (
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

func TestTokenMismatch(t *testing.T) {
	ok := func(reqP, gotP, reqO, gotO int, usage bool) engine.Result {
		return engine.Result{Status: 200, Sent: time.Millisecond, FirstToken: 2 * time.Millisecond, End: 3 * time.Millisecond,
			RequestedPromptTokens: reqP, PromptTokens: gotP, RequestedOutputTokens: reqO, OutputTokens: gotO, TokensFromUsage: usage}
	}
	results := []engine.Result{
		ok(100, 100, 10, 10, true),
		ok(100, 107, 10, 4, true), // a chat template's 7 tokens; an early stop
		ok(50, 48, 10, 10, true),
		ok(100, 130, 10, 1, false), // estimated: not compared
		ok(0, 30, 0, 5, true),      // verbatim prompt, free output: nothing requested
	}
	m := Summarize(results, Options{})
	p, o := m.PromptTokenMismatch, m.OutputTokenMismatch
	if p == nil || o == nil {
		t.Fatalf("mismatch missing: %+v %+v", p, o)
	}
	if p.Compared != 3 || p.Exact != 1 || p.MinDiff != -2 || p.MaxDiff != 7 || p.MeanDiff != 5.0/3 || p.AbsDiff.Max != 7 {
		t.Errorf("prompt mismatch = %+v", p)
	}
	if o.Compared != 3 || o.Exact != 2 || o.MinDiff != -6 || o.MaxDiff != 0 || o.MeanDiff != -2 {
		t.Errorf("output mismatch = %+v", o)
	}
	// Merging per-worker recorders gives the same figures.
	a, b := NewRecorder(Options{}), NewRecorder(Options{})
	for i := range results {
		if i%2 == 0 {
			a.Record(&results[i])
		} else {
			b.Record(&results[i])
		}
	}
	a.Merge(b)
	if got := a.Metrics().PromptTokenMismatch; *got != *p {
		t.Errorf("merged = %+v, want %+v", got, p)
	}
	if Summarize(results[3:4], Options{}).PromptTokenMismatch != nil {
		t.Error("no comparable request: want nil")
	}
}
