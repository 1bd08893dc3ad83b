package workload_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/otelexport"
	"github.com/reprise-llm/reprise/internal/workload"
)

// TestGuideLLMReadsExport exports a capture taken with content as OTel
// spans in GuideLLM's span-per-line layout (replay export --format
// otel-spans) and has GuideLLM 0.8.1's reader load it: the same
// conversations, turns, lengths, messages and timings as Reprise's own
// reading of the capture. (GuideLLM's OTel reader needs every call's
// messages, so a capture without content is for tracing backends and
// Reprise only.)
func TestGuideLLMReadsExport(t *testing.T) {
	ms := int64(time.Millisecond)
	wall := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	rec := func(id string, at int64, session, msgs string, e2e int64, in, out int) capture.Record {
		return capture.Record{ID: id, T: at * ms, Wall: wall.Add(time.Duration(at * ms)), Session: session,
			Path: "/v1/chat/completions", Model: "m", Stream: true, Status: 200, FinishReason: "stop",
			PromptTokens: in, OutputTokens: out, TokensSource: capture.TokensUsage, E2ENs: e2e * ms, Messages: []byte(msgs)}
	}
	dir := capturetest.Write(t, []capture.Record{
		rec("a1", 0, "alice", `[{"role":"user","content":"Plan a trip to Lyon."}]`, 900, 9, 40),
		rec("b1", 300, "bob", `[{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"}]`, 200, 12, 2),
		rec("a2", 3000, "alice", `[{"role":"user","content":"Plan a trip to Lyon."},{"role":"assistant","content":"Day 1: old town."},{"role":"user","content":"And day 2?"}]`, 1100, 30, 50),
		rec("b2", 3500, "bob", `[{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"},{"role":"user","content":"3+3?"}]`, 150, 20, 2),
	})
	src, err := workload.OpenCapture(dir, workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "export.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otelexport.Workload(f, src, otelexport.Options{Layout: otelexport.Spans}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	convs := workload.GuideLLMConversations(t, "otel", path)
	orig, err := workload.OpenCapture(dir, workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bySession := map[string][]workload.Request{}
	var order []string
	for {
		r, err := orig.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := bySession[r.Session]; !ok {
			order = append(order, r.Session)
		}
		bySession[r.Session] = append(bySession[r.Session], r)
	}
	if len(convs) != len(order) {
		t.Fatalf("GuideLLM read %d conversations, the capture has %d sessions", len(convs), len(order))
	}
	for c, turns := range convs {
		want := bySession[order[c]]
		if len(turns) != len(want) {
			t.Fatalf("session %s: GuideLLM %d turns, capture %d", order[c], len(turns), len(want))
		}
		for i, g := range turns {
			w := want[i]
			rel := (w.Offset - want[0].Offset).Seconds()
			e2e := time.Duration(w.Recorded.E2ENs).Seconds()
			if *g.PromptTokens != w.PromptTokens || *g.OutputTokens != w.OutputTokens ||
				abs(*g.TS-rel) > 1e-6 || abs(*g.Duration-e2e) > 1e-6 {
				t.Errorf("%s: GuideLLM %d→%d tokens at %v s for %v s, capture %d→%d at %v s for %v s", w.ID,
					*g.PromptTokens, *g.OutputTokens, *g.TS, *g.Duration, w.PromptTokens, w.OutputTokens, rel, e2e)
			}
			var gm, wm any
			if json.Unmarshal(g.Messages, &gm) != nil || json.Unmarshal(w.Messages, &wm) != nil || !reflect.DeepEqual(gm, wm) {
				t.Errorf("%s: GuideLLM sends %s, the capture recorded %s", w.ID, g.Messages, w.Messages)
			}
		}
	}
}

func abs(f float64) float64 { return max(f, -f) }
