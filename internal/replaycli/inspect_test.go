package replaycli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/sim"
)

// publicTraces returns ../shared/traces beside the repository, or
// $REPRISE_TRACES.
func publicTraces(t testing.TB) string {
	dir := os.Getenv("REPRISE_TRACES")
	if dir == "" {
		dir = "../../../shared/traces"
	}
	if _, err := os.Stat(filepath.Join(dir, "mooncake-conversation.jsonl")); err != nil {
		t.Fatalf("public traces not found in %s (set REPRISE_TRACES): %v", dir, err)
	}
	return dir
}

func inspect(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = Run(context.Background(), append([]string{"inspect"}, args...), &out, &errb)
	return out.String(), errb.String(), err
}

// field returns the value of a summary line.
func field(t *testing.T, out, label string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `\s{2,}(.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in:\n%s", label, out)
	}
	return m[1]
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestInspectMooncakeTrace summarises the public Mooncake trace and checks
// the figures against an independent count of the file, and the HTML page
// for self-containment and its charts.
func TestInspectMooncakeTrace(t *testing.T) {
	path := filepath.Join(publicTraces(t), "mooncake-conversation.jsonl")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Count(data, []byte("\n"))
	lastTS := regexp.MustCompile(`"timestamp":\s*(\d+)`).FindAllSubmatch(data, -1)
	last, _ := strconv.Atoi(string(lastTS[len(lastTS)-1][1]))

	html := filepath.Join(t.TempDir(), "w.html")
	out, errs, err := inspect(t, "mooncake:"+path, "--html", html)
	if err != nil {
		t.Fatalf("%v\n%s", err, errs)
	}
	if got := field(t, out, "requests"); got != fmt.Sprintf("%d (%d streamed)", lines, lines) {
		t.Errorf("requests %q, the file has %d lines", got, lines)
	}
	if got, want := field(t, out, "span"), (time.Duration(last) * time.Millisecond).String(); got != want {
		t.Errorf("span %q, the last timestamp is %s", got, want)
	}
	mean := float64(lines) / (float64(last) / 1000)
	if got := field(t, out, "rate per second"); !strings.HasPrefix(got, fmt.Sprintf("mean %.3g, peak ", mean)) {
		t.Errorf("rate %q, want a mean of %.3g", got, mean)
	}
	// Length figures are exact, not a histogram's 3 significant digits.
	maxIn := 0
	for _, m := range regexp.MustCompile(`"input_length":\s*(\d+)`).FindAllSubmatch(data, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		maxIn = max(maxIn, n)
	}
	if got := field(t, out, "prompt tokens"); !strings.HasSuffix(got, fmt.Sprintf("max %d", maxIn)) || strings.Contains(got, "≈") {
		t.Errorf("prompt tokens %q, want the exact max %d", got, maxIn)
	}
	for _, l := range []string{"rate per minute", "prompt tokens", "output tokens", "prefix blocks", "prefix reuse", "sessions", "models"} {
		if field(t, out, l) == "" {
			t.Errorf("empty %s", l)
		}
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Arrival rate over time", "Prompt tokens", "Output tokens", "<svg", "prefix reuse"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://", "<link"} {
		if bytes.Contains(page, []byte(bad)) {
			t.Errorf("the page is not self-contained: it has %q", bad)
		}
	}
	if errs != "" {
		t.Errorf("warnings for a clean trace: %s", errs)
	}
}

// TestInspectCounts checks every figure on a small hand-made trace.
func TestInspectCounts(t *testing.T) {
	// 4 requests at 0, 0.5, 0.7 and 61 s; blocks: request 2 repeats
	// request 1's two blocks, request 3 repeats block 1 after a new one.
	path := writeFile(t, "t.jsonl", `{"timestamp":0,"input_length":1024,"output_length":10,"hash_ids":[1,2]}
{"timestamp":500,"input_length":1100,"output_length":20,"hash_ids":[1,2,3]}
{"timestamp":700,"input_length":1024,"output_length":30,"hash_ids":[4,1]}
{"timestamp":61000,"input_length":100,"output_length":40}
`)
	out, _, err := inspect(t, path)
	if err != nil {
		t.Fatal(err)
	}
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
		if got := field(t, out, label); got != want {
			t.Errorf("%s: %q, want %q", label, got, want)
		}
	}
}

// TestInspectSessionsModelsAndErrors reads a capture: sessions and turns,
// models and production's answers.
func TestInspectSessionsModelsAndErrors(t *testing.T) {
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
	out, _, err := inspect(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	for label, want := range map[string]string{
		"sessions":           "2 holding 3 requests: 1.50 turns on average, at most 2; 1 requests without a session",
		"models":             "llama 3, qwen 1",
		"endpoints":          "chat 3, completions 1",
		"production answers": "200 2, aborted 1, http 503 1 (50.0% errors or aborts)",
	} {
		if got := field(t, out, label); got != want {
			t.Errorf("%s: %q, want %q", label, got, want)
		}
	}
	// the filter sees the same records
	out, _, err = inspect(t, "--filter-status", "error", dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := field(t, out, "requests"); got != "1 (0 streamed)" {
		t.Errorf("--filter-status error kept %q", got)
	}
}

// TestInspectWarnings checks the unit-mistake warnings and --skip-invalid.
func TestInspectWarnings(t *testing.T) {
	var sb strings.Builder
	for i := range 300 {
		fmt.Fprintf(&sb, `{"timestamp":%.3f,"input_length":100,"output_length":10}`+"\n", float64(i)*0.37) // seconds
	}
	secs := writeFile(t, "s.jsonl", sb.String())
	_, errs, err := inspect(t, "mooncake:"+secs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, "warning: mooncake") || !strings.Contains(errs, "look like seconds") || strings.Count(errs, "look like seconds") != 1 {
		t.Errorf("no single seconds warning:\n%s", errs)
	}

	azure := writeFile(t, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"+
		"2023-11-16 18:17:03.0000000,10,5\n2023-11-16 18:17:05.0000000,10,5\n2023-11-16 18:17:04.0000000,10,5\n")
	_, errs, err = inspect(t, azure)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, "go backwards 1 times") || !strings.Contains(errs, "line 4") {
		t.Errorf("no backwards warning:\n%s", errs)
	}

	bad := writeFile(t, "b.jsonl", `{"timestamp":0,"input_length":10,"output_length":1}
{"timestamp":"x","input_length":10}
{"timestamp":5,"input_length":10,"output_length":1}
`)
	if _, _, err := inspect(t, "mooncake:"+bad); err == nil || !strings.Contains(err.Error(), "b.jsonl line 2") {
		t.Errorf("a malformed line: %v", err)
	}
	out, errs, err := inspect(t, "--skip-invalid", "mooncake:"+bad)
	if err != nil {
		t.Fatal(err)
	}
	if field(t, out, "requests") != "2 (2 streamed)" || field(t, out, "skipped") != "1 invalid lines (--skip-invalid)" || !strings.Contains(errs, "skipped 1 invalid") {
		t.Errorf("--skip-invalid:\n%s\n%s", out, errs)
	}
}

// TestInspectTransforms checks that the transform flags reach the source:
// flags after the spec, a rescale to a mean rate, a loop and a shard.
func TestInspectTransforms(t *testing.T) {
	path := filepath.Join(publicTraces(t), "azure-2023-code.csv")
	out, _, err := inspect(t, "azure:"+path, "--window", "1m:11m", "--rate", "4", "--loop", "2", "--shard", "1/2",
		"--max-output-tokens", "50", "--model-map", "*=small")
	if err != nil {
		t.Fatal(err)
	}
	windowed, _, err := inspect(t, "azure:"+path, "--window", "1m:11m")
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := strconv.Atoi(strings.Fields(field(t, windowed, "requests"))[0])
	n, _ := strconv.Atoi(strings.Fields(field(t, out, "requests"))[0])
	// two passes, one shard of two: as many requests as one pass
	if n != pass || pass < 1000 {
		t.Errorf("%d requests, want %d (the window's)", n, pass)
	}
	// 4 req/s split in two: 2 req/s over the two passes' span
	var mean float64
	fmt.Sscanf(field(t, out, "rate per second"), "mean %g", &mean)
	if mean < 1.9 || mean > 2.1 {
		t.Errorf("rate %q, want a mean of 2 (4 split in two)", field(t, out, "rate per second"))
	}
	if got := field(t, out, "output tokens"); !strings.HasSuffix(got, "max 50") {
		t.Errorf("output %q: the cap is 50", got)
	}
	if got := field(t, out, "models"); got != "small "+strconv.Itoa(n) {
		t.Errorf("models %q", got)
	}
	for _, bad := range [][]string{
		{"--shard", "2/2", path}, {"--window", "5m:1m", path}, {"--sample", "1.5", path}, {"--model-map", "a", path},
		{"--rate", "2", "--time-scale", "2", path}, {path, path}, {},
	} {
		if _, _, err := inspect(t, bad...); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", bad, err)
		}
	}
}

// TestRunTransformsAgainstTheSimulator replays a trace with --profile trace
// --rate (a rescale) and the transform flags against the simulator, and
// checks the results count and record them.
func TestRunTransformsAgainstTheSimulator(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.TTFTBase, cfg.ITLBase, cfg.ITLPerSeq = time.Millisecond, 100*time.Microsecond, 0
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	// 40 rows over 39 s; at --rate 40 the replay takes about a second.
	var sb strings.Builder
	for i := range 40 {
		fmt.Fprintf(&sb, `{"timestamp":%d,"input_length":2000,"output_length":300,"hash_ids":[%d,%d,%d,%d]}`+"\n", i*1000, i%3, 10+i, 100+i, 200+i)
	}
	trace := writeFile(t, "t.jsonl", sb.String())
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err = Run(context.Background(), []string{"run", "--target", srv.URL, "--workload", "mooncake:" + trace, "--profile", "trace",
		"--rate", "40", "--shard", "0/2", "--max-prompt-tokens", "600", "--max-output-tokens", "4", "--model-map", "*=tiny",
		"--output-dir", dir, "--quiet"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	fh, err := os.Open(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	file, err := report.ReadJSON(fh)
	if err != nil {
		t.Fatal(err)
	}
	b := file.Benchmarks[len(file.Benchmarks)-1]
	if b.Metrics.Requests.Successful != 20 || b.Metrics.OutputTokens.Max != 4 || b.Metrics.PromptTokens.Max > 600 {
		t.Errorf("requests %+v, output max %v, prompt max %v", b.Metrics.Requests, b.Metrics.OutputTokens.Max, b.Metrics.PromptTokens.Max)
	}
	tr, ok := b.Config["workload_transforms"].(map[string]any)
	if !ok || tr["trace_rate"] != 40.0 || tr["shard"] != "0/2" {
		t.Errorf("config %v", b.Config)
	}
	var errs bytes.Buffer
	err = Run(context.Background(), []string{"run", "--target", srv.URL, "--workload", "mooncake:" + trace,
		"--rate", "40", "--time-scale", "0.5", "--output-dir", dir}, &out, &errs)
	if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "--time-scale") {
		t.Errorf("--rate with --time-scale: %v", err)
	}
}
