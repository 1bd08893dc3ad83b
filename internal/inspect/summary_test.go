package inspect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/reprise-llm/reprise/internal/report"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/inspect/inspecttest"
	"github.com/reprise-llm/reprise/internal/tracestest"
	"github.com/reprise-llm/reprise/internal/workload"
)

// writeFile writes data to a file name in a fresh directory and returns
// its path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// summarise opens spec with the transforms tr as replay inspect does (the
// default tokenizer measures verbatim prompts), reads it, and returns the
// printed summary, the summary, and every warning the source gave.
func summarise(t *testing.T, spec string, tr workload.Transforms) (string, *Summary, []string) {
	t.Helper()
	var warns []string
	src, err := workload.OpenTransformed(spec, workload.OpenOptions{Warn: func(msg string) { warns = append(warns, msg) }}, tr)
	if err != nil {
		t.Fatalf("opening %s: %v", spec, err)
	}
	s, err := Read(context.Background(), src, Options{Spec: spec, Tokenizer: "cl100k_base"})
	if c, ok := src.(interface{ Close() error }); ok {
		c.Close()
	}
	if err != nil {
		t.Fatalf("reading %s: %v", spec, err)
	}
	var out bytes.Buffer
	if err := s.Print(&out); err != nil {
		t.Fatal(err)
	}
	return out.String(), s, append(warns, s.warnings...)
}

// TestMooncakeTrace summarises the public Mooncake trace and checks the
// figures against an independent count of the file, and the HTML page for
// self-containment and its charts.
func TestMooncakeTrace(t *testing.T) {
	path := filepath.Join(tracestest.Dir(t), tracestest.Mooncake)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Count(data, []byte("\n"))
	lastTS := regexp.MustCompile(`"timestamp":\s*(\d+)`).FindAllSubmatch(data, -1)
	last, _ := strconv.Atoi(string(lastTS[len(lastTS)-1][1]))

	out, s, warns := summarise(t, "mooncake:"+path, workload.Transforms{})
	if got := inspecttest.Field(t, out, "requests"); got != fmt.Sprintf("%d (%d streamed)", lines, lines) {
		t.Errorf("requests %q, the file has %d lines", got, lines)
	}
	if got, want := inspecttest.Field(t, out, "span"), (time.Duration(last) * time.Millisecond).String(); got != want {
		t.Errorf("span %q, the last timestamp is %s", got, want)
	}
	mean := float64(lines) / (float64(last) / 1000)
	if got := inspecttest.Field(t, out, "rate per second"); !strings.HasPrefix(got, fmt.Sprintf("mean %.3g, peak ", mean)) {
		t.Errorf("rate %q, want a mean of %.3g", got, mean)
	}
	// Length figures are exact, not a histogram's 3 significant digits.
	maxIn := 0
	for _, m := range regexp.MustCompile(`"input_length":\s*(\d+)`).FindAllSubmatch(data, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		maxIn = max(maxIn, n)
	}
	if got := inspecttest.Field(t, out, "prompt tokens"); !strings.HasSuffix(got, fmt.Sprintf("max %d", maxIn)) || strings.Contains(got, "≈") {
		t.Errorf("prompt tokens %q, want the exact max %d", got, maxIn)
	}
	for _, l := range []string{"rate per minute", "prompt tokens", "output tokens", "prefix blocks", "prefix reuse", "sessions", "models"} {
		if inspecttest.Field(t, out, l) == "" {
			t.Errorf("empty %s", l)
		}
	}
	var page bytes.Buffer
	if err := s.WriteHTML(&page, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Arrival rate over time", "Prompt tokens", "Output tokens", "<svg", "prefix reuse"} {
		if !bytes.Contains(page.Bytes(), []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://", "<link"} {
		if bytes.Contains(page.Bytes(), []byte(bad)) {
			t.Errorf("the page is not self-contained: it has %q", bad)
		}
	}
	if len(warns) > 0 || s.CountErr() != nil || s.skipped > 0 {
		t.Errorf("warnings for a clean trace: %q, tokenizer %v, %d skipped", warns, s.CountErr(), s.skipped)
	}
}

// TestCounts checks every figure on a small hand-made trace.
func TestCounts(t *testing.T) {
	// 4 requests at 0, 0.5, 0.7 and 61 s; blocks: request 2 repeats
	// request 1's two blocks, request 3 repeats block 1 after a new one.
	path := writeFile(t, "t.jsonl", `{"timestamp":0,"input_length":1024,"output_length":10,"hash_ids":[1,2]}
{"timestamp":500,"input_length":1100,"output_length":20,"hash_ids":[1,2,3]}
{"timestamp":700,"input_length":1024,"output_length":30,"hash_ids":[4,1]}
{"timestamp":61000,"input_length":100,"output_length":40}
`)
	out, _, _ := summarise(t, path, workload.Transforms{})
	for label, want := range map[string]string{
		"requests":        "4 (4 streamed)",
		"span":            "1m1s",
		"rate per second": "mean 0.0645, peak 3 (per whole second: mean over the 62 seconds from 0 through the last arrival, peak the busiest)",
		"rate per minute": "mean 2, peak 3 (per whole minute: mean over the 2 minutes from 0 through the last arrival, peak the busiest)",
		"prompt tokens":   "mean 812  min 100  p10 100  p50 1024  p90 1100  p99 1100  max 1100",
		"output tokens":   "mean 25  min 10  p10 10  p50 20  p90 40  p99 40  max 40",
		"prefix blocks":   "7, of which 3 (42.9%) repeat an earlier request's; 4 distinct",
		// leading runs: 0, 1024 of 1100, 0 (4 is new), 0 — of 3248 tokens
		"prefix reuse": "31.5% of prompt tokens are in a leading run of earlier blocks (an unbounded prefix cache's hit ratio)",
		"sessions":     "none (every request stands alone)",
	} {
		if got := inspecttest.Field(t, out, label); got != want {
			t.Errorf("%s: %q, want %q", label, got, want)
		}
	}
}

// TestSessionsModelsAndErrors reads a capture: sessions and turns, models
// and production's answers.
func TestSessionsModelsAndErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	w, err := capture.NewWriter(dir, capture.WriterOptions{Manifest: capture.Manifest{Format: capture.FormatName, Version: capture.FormatVersion, Start: time.Now(), Block: 512}})
	if err != nil {
		t.Fatal(err)
	}
	recs := []capture.Record{
		{ID: "1", T: 0, Path: "/v1/chat/completions", Model: "llama", PromptTokens: 10, OutputTokens: 5, Session: "a", Status: 200},
		{ID: "2", T: 1e9, Path: "/v1/chat/completions", Model: "llama", PromptTokens: 30, OutputTokens: 5, Session: "a", Status: 200},
		{ID: "3", T: 2e9, Path: "/v1/chat/completions", Model: "qwen", PromptTokens: 10, OutputTokens: 5, Session: "b", Status: 503},
		{ID: "4", T: 3e9, Path: "/v1/completions", Model: "llama", PromptTokens: 10, OutputTokens: 5, Status: 200, Aborted: true},
	}
	for i := range recs {
		if !w.Write(&recs[i]) {
			t.Fatal("write refused")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, _, _ := summarise(t, dir, workload.Transforms{})
	for label, want := range map[string]string{
		"sessions":           "2 holding 3 requests: 1.50 turns on average, at most 2; 1 requests without a session",
		"models":             "llama 3, qwen 1",
		"endpoints":          "chat 3, completions 1",
		"production answers": "200 2, aborted 1, http 503 1 (50.0% errors or aborts)",
	} {
		if got := inspecttest.Field(t, out, label); got != want {
			t.Errorf("%s: %q, want %q", label, got, want)
		}
	}
	// the status filter (--filter-status error) sees the same records
	out, _, _ = summarise(t, dir, workload.Transforms{Statuses: []string{"error"}})
	if got := inspecttest.Field(t, out, "requests"); got != "1 (0 streamed)" {
		t.Errorf("the status filter error kept %q", got)
	}
}

// The page draws its charts with the report's chart code: one bar per
// non-empty bin with the bin's tooltip, the mean rate as a dashed line, the
// report's stylesheet, the source's warnings and the transforms.
func TestPageCharts(t *testing.T) {
	// 3 requests in second 0, none in 1, 1 in 2: the rate chart has two
	// bars of one-second bins and a mean of 4/3 per second.
	path := writeFile(t, "t.jsonl", `{"timestamp":0,"input_length":10,"output_length":2}
{"timestamp":100,"input_length":10,"output_length":2}
{"timestamp":200,"input_length":30,"output_length":2}
{"timestamp":2500,"input_length":30,"output_length":2}
`)
	_, s, _ := summarise(t, "mooncake:"+path, workload.Transforms{})
	s.warnings = []string{"a <warning> of the source"}
	var page bytes.Buffer
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := s.WriteHTML(&page, &report.TransformsConfig{Shard: "0/2"}, created); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	for _, want := range []string{
		"inspected 2026-01-02T03:04:05Z", "Transforms: shard=0/2", `<li class="warn">a &lt;warning&gt; of the source</li>`,
		"<title>offset (s) 0–1: 3</title>", "<title>offset (s) 2–3: 1</title>", ">mean 1.33</text>",
		"<title>prompt tokens 10–11: 2</title>", "<title>prompt tokens 30–31: 2</title>", "<title>output tokens 2–3: 4</title>",
		"svg.chart { width: 100%;", // the report's stylesheet
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// rate: 2 non-empty seconds; prompt lengths: 2 bins; output: 1 bin
	if n := strings.Count(html, `<rect class="bar s0"`); n != 5 {
		t.Errorf("%d bars, want 5 (2 rate, 2 prompt, 1 output)", n)
	}
	if n := strings.Count(html, "<figure>"); n != 3 {
		t.Errorf("%d figures, want 3", n)
	}
	// Without arrival times there is no rate chart, and without requests
	// no chart at all.
	_, s, _ = summarise(t, "synthetic:prompt_tokens=64,output_tokens=8,samples=5", workload.Transforms{})
	page.Reset()
	if err := s.WriteHTML(&page, nil, created); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page.String(), "Arrival rate") || strings.Count(page.String(), "<figure>") != 2 {
		t.Errorf("a workload without arrival times: want the two length charts only:\n%s", page.String())
	}
}

// Read stops with the context's error when it ends, before reading on.
func TestReadStopsWhenContextEnds(t *testing.T) {
	src, err := workload.Open("synthetic:prompt_tokens=64,output_tokens=8,samples=100", workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s, err := Read(ctx, src, Options{}); !errors.Is(err, context.Canceled) || s != nil {
		t.Errorf("a cancelled read: %v, %v; want context.Canceled", s, err)
	}
}
