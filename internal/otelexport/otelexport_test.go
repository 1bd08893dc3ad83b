package otelexport

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/workload"
	"github.com/reprise-llm/reprise/internal/workload/workloadtest"
)

func warningsOf(src workload.Source) string {
	if w, ok := src.(interface{ Warnings() []string }); ok {
		return strings.Join(w.Warnings(), "\n")
	}
	return ""
}

func ptr[T any](v T) *T { return &v }

// testCapture is a capture with what export must carry: two sessions (one
// of three turns with think times, one of two), content in some records
// (chat messages with a tool call and its result, a completion's prompt)
// and shape only in others (prefix-block hash ids), sampling parameters,
// cached tokens, time to first token, and a request that failed.
func testCapture(t *testing.T) string {
	ms := int64(time.Millisecond)
	wall := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	rec := func(id string, at int64, session string, e2e int64, prompt, output int) capture.Record {
		return capture.Record{
			ID: id, T: at * ms, Wall: wall.Add(time.Duration(at * ms)), Session: session,
			Path: "/v1/chat/completions", Model: "llama-3-8b", Stream: true, MaxTokens: output,
			Status: 200, FinishReason: "stop", PromptTokens: prompt, OutputTokens: output,
			TokensSource: capture.TokensUsage, TTFBNs: 20 * ms, TTFTNs: 35 * ms, E2ENs: e2e * ms,
		}
	}
	toolMsgs := `[{"role":"system","content":"You are terse."},{"role":"user","content":"List files"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"ls","arguments":"{\"path\": \".\"}"}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"a.go\nb.go"}]`
	recs := []capture.Record{
		rec("r1", 0, "s1", 800, 120, 30),
		rec("r2", 150, "", 400, 60, 12),
		rec("r3", 2000, "s1", 900, 160, 25), // s1's second turn: 1.2 s after r1 ended
		rec("r4", 2100, "s2", 300, 40, 8),
		rec("r5", 2500, "", 1000, 500, 64),
		rec("r6", 2600, "", 50, 20, 0), // failed
		rec("r7", 6000, "s1", 700, 180, 20),
		rec("r8", 6100, "s2", 200, 50, 9),
	}
	recs[0].Temperature, recs[0].TopP, recs[0].CachedTokens = ptr(0.7), ptr(0.9), 64
	recs[0].PromptChars, recs[0].HashIDs, recs[0].Block = 480, []uint32{0, 1, 2}, 160
	recs[2].PromptChars, recs[2].HashIDs, recs[2].Block = 640, []uint32{0, 1, 2, 3}, 160
	recs[1].Messages = []byte(toolMsgs)
	recs[3].Messages = []byte(`[{"role":"user","content":"Hello there"}]`)
	recs[4].Path, recs[4].Prompt = "/v1/completions", "def fib(n):\n    "
	recs[5].Status, recs[5].Error = 503, "upstream overloaded"
	recs[6].Stream = false
	return capturetest.Write(t, recs)
}

// TestRoundTripCapture exports a capture as OTel spans in both layouts and
// reads them back as otel:PATH: the same requests in the same order, at
// the same offsets, with the same lengths, content, prefix blocks, stream
// flags, sessions, turns and think times. The failed request comes back
// dropped, as the OTel reader drops spans with status ERROR (GuideLLM's
// rule), and is counted.
func TestRoundTripCapture(t *testing.T) {
	dir := testCapture(t)
	for _, layout := range []Layout{OTLP, Spans} {
		src, err := workload.OpenCapture(dir, workload.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "export.jsonl")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Workload(f, src, Options{Layout: layout, BatchSpans: 3})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		orig, err := workload.OpenCapture(dir, workload.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := workloadtest.Drain(t, orig)
		if n != len(want) {
			t.Fatalf("layout %d: %d spans for %d requests", layout, n, len(want))
		}
		back, err := workload.Open("otel:"+path, workload.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got := workloadtest.Drain(t, back)
		if w := warningsOf(back); !strings.Contains(w, "1 spans with status ERROR left out") {
			t.Errorf("layout %d: warnings %q", layout, w)
		}
		var kept []workload.Request
		for _, r := range want {
			if r.Recorded.Status < 400 {
				kept = append(kept, r)
			}
		}
		compareRequests(t, layout, got, kept)
	}
}

func compareRequests(t *testing.T, layout Layout, got, want []workload.Request) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("layout %d: %d requests back, want %d", layout, len(got), len(want))
	}
	sessions := map[string]string{} // original session → the one read back
	for i := range want {
		g, w := got[i], want[i]
		name := w.ID
		if g.Offset != w.Offset-want[0].Offset {
			t.Errorf("layout %d %s: offset %v, want %v", layout, name, g.Offset, w.Offset-want[0].Offset)
		}
		if g.Endpoint != w.Endpoint || g.Stream != w.Stream || g.PromptTokens != w.PromptTokens || g.OutputTokens != w.OutputTokens {
			t.Errorf("layout %d %s: %s stream=%v %d→%d tokens, want %s stream=%v %d→%d", layout, name,
				g.Endpoint, g.Stream, g.PromptTokens, g.OutputTokens, w.Endpoint, w.Stream, w.PromptTokens, w.OutputTokens)
		}
		if g.Prompt != w.Prompt || !sameMessages(t, g.Messages, w.Messages) {
			t.Errorf("layout %d %s: prompt %q messages %s, want %q %s", layout, name, g.Prompt, g.Messages, w.Prompt, w.Messages)
		}
		if !reflect.DeepEqual(g.HashIDs, w.HashIDs) || g.BlockTokens != w.BlockTokens {
			t.Errorf("layout %d %s: blocks %v×%d, want %v×%d", layout, name, g.HashIDs, g.BlockTokens, w.HashIDs, w.BlockTokens)
		}
		if g.TraceModel != w.Model {
			t.Errorf("layout %d %s: model %q, want %q", layout, name, g.TraceModel, w.Model)
		}
		// Sessions: the same partition (a request without one comes back
		// as a session of one turn), the same turns and think times.
		if w.Session == "" {
			if g.Turn != 0 || g.Delay != 0 {
				t.Errorf("layout %d %s: turn %d delay %v for a request without a session", layout, name, g.Turn, g.Delay)
			}
			continue
		}
		if s, ok := sessions[w.Session]; ok && s != g.Session {
			t.Errorf("layout %d %s: session %q, its earlier turns came back in %q", layout, name, g.Session, s)
		}
		sessions[w.Session] = g.Session
		if g.Turn != w.Turn || g.Delay != w.Delay {
			t.Errorf("layout %d %s: turn %d after %v, want turn %d after %v", layout, name, g.Turn, g.Delay, w.Turn, w.Delay)
		}
	}
	if len(sessions) != 2 {
		t.Errorf("layout %d: %d sessions compared", layout, len(sessions))
	}
}

// sameMessages compares chat messages as JSON values; a tool call's
// arguments are the same string both ways.
func sameMessages(t *testing.T, a, b []byte) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		t.Fatalf("messages %s / %s", a, b)
	}
	// The reader writes OpenAI's shape with every tool call typed.
	return reflect.DeepEqual(va, vb)
}

// TestExportOTLPShape checks the OTLP lines against the protocol's JSON
// mapping: hex ids of 16 and 8 bytes, times as decimal strings, CLIENT
// spans, attributes as key/value lists, the failed request with status
// code 2 and error.type; and that shape-only records carry no content.
func TestExportOTLPShape(t *testing.T) {
	src, err := workload.OpenCapture(testCapture(t), workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := Workload(&buf, src, Options{Layout: OTLP}); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("%d lines, want one batch", len(lines))
	}
	var req struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []kvJSON `json:"attributes"`
			} `json:"resource"`
			ScopeSpans []struct {
				Spans []struct {
					TraceID, SpanID, Name string
					Kind                  int
					Start                 string `json:"startTimeUnixNano"`
					End                   string `json:"endTimeUnixNano"`
					Attributes            []kvJSON
					Status                struct{ Code int }
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	if err := json.Unmarshal(lines[0], &req); err != nil {
		t.Fatal(err)
	}
	spans := req.ResourceSpans[0].ScopeSpans[0].Spans
	if len(spans) != 8 {
		t.Fatalf("%d spans", len(spans))
	}
	failed := 0
	for _, s := range spans {
		start, err1 := strconv.ParseInt(s.Start, 10, 64)
		end, err2 := strconv.ParseInt(s.End, 10, 64)
		if len(s.TraceID) != 32 || len(s.SpanID) != 16 || s.Kind != 3 || err1 != nil || err2 != nil || end < start {
			t.Errorf("span %+v", s)
		}
		attrs := map[string]kvJSON{}
		for _, a := range s.Attributes {
			attrs[a.Key] = a
		}
		if attrs["gen_ai.operation.name"].Value["stringValue"] == nil || attrs["gen_ai.usage.input_tokens"].Value["intValue"] == nil {
			t.Errorf("span %s: attributes %v", s.Name, attrs)
		}
		if s.Status.Code == 2 {
			failed++
			if attrs["error.type"].Value["stringValue"] != "503" {
				t.Errorf("failed span's error.type %v", attrs["error.type"])
			}
		}
		_, content := attrs["gen_ai.input.messages"]
		_, blocks := attrs["reprise.prompt.hash_ids"]
		if content && blocks {
			t.Errorf("span %s has content and block ids", s.Name)
		}
	}
	if failed != 1 {
		t.Errorf("%d failed spans, want 1", failed)
	}
	if !strings.Contains(buf.String(), `"gen_ai.input.messages"`) || strings.Contains(strings.ToLower(buf.String()), "authorization") {
		t.Error("content or credentials are not as captured")
	}
}

type kvJSON struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

// TestExportResults exports a real run's per-request records (the report
// package's v1 fixture) and reads them back: one call per record that
// succeeded, at its send time from the first, with its lengths.
func TestExportResults(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "report", "testdata", "v1-poisson.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, err := report.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	recs := file.Benchmarks[0].Requests
	if len(recs) == 0 {
		t.Fatal("the fixture has no per-request records")
	}
	path := filepath.Join(t.TempDir(), "results.otlp.jsonl")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Results(out, file, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out.Close()
	if n != len(recs) {
		t.Fatalf("%d spans for %d records", n, len(recs))
	}
	back, err := workload.Open("otel:"+path, workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := workloadtest.Drain(t, back)
	var ok []report.RequestRecord
	for _, r := range recs {
		if r.Error == "" && r.Status < 400 && r.Status != 0 {
			ok = append(ok, r)
		}
	}
	if len(got) != len(ok) {
		t.Fatalf("%d requests back, %d records succeeded", len(got), len(ok))
	}
	// Sent times may tie or cross the record order; compare as sets keyed
	// by offset and lengths.
	type key struct {
		at      time.Duration
		in, out int
	}
	want := map[key]int{}
	first := ok[0].SentMs
	for _, r := range ok {
		first = min(first, r.SentMs)
	}
	for _, r := range ok {
		at := time.Duration(r.SentMs*float64(time.Millisecond)) - time.Duration(first*float64(time.Millisecond))
		want[key{at, r.PromptTokens, max(r.OutputTokens, 1)}]++
	}
	for _, g := range got {
		k := key{g.Offset, g.PromptTokens, g.OutputTokens}
		if want[k] == 0 {
			t.Errorf("request at %v with %d→%d tokens is not among the records", g.Offset, g.PromptTokens, g.OutputTokens)
		}
		want[k]--
	}
	if _, err := Results(io.Discard, &report.File{Benchmarks: []report.Benchmark{{Name: "x"}}}, Options{}); err == nil || !strings.Contains(err.Error(), "per-request") {
		t.Errorf("results without records: %v", err)
	}
}

func TestParseLayout(t *testing.T) {
	for in, want := range map[string]Layout{"otel": OTLP, "otlp": OTLP, "otel-spans": Spans} {
		if got, err := ParseLayout(in); err != nil || got != want {
			t.Errorf("ParseLayout(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseLayout("jaeger"); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("ParseLayout(jaeger): %v", err)
	}
}
