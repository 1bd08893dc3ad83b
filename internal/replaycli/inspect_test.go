package replaycli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/inspect/inspecttest"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

func inspect(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = Run(context.Background(), append([]string{"inspect"}, args...), &out, &errb)
	return out.String(), errb.String(), err
}

// TestInspectHTML checks --html: the page is written where it names, with
// the transforms the flags set, and said so on stdout; a file that cannot
// be created is an error naming --html.
func TestInspectHTML(t *testing.T) {
	trace := tracestest.Write(t, "t.jsonl", `{"timestamp":0,"input_length":10,"output_length":2}
{"timestamp":1500,"input_length":20,"output_length":2}
`)
	html := filepath.Join(t.TempDir(), "w.html")
	out, errs, err := inspect(t, "mooncake:"+trace, "--html", html, "--rate", "2")
	if err != nil {
		t.Fatalf("%v\n%s", err, errs)
	}
	if !strings.HasSuffix(out, "\nHTML summary in "+html+"\n") {
		t.Errorf("stdout does not name the page:\n%s", out)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<h1>Reprise workload summary</h1>", "Transforms: trace_rate=2", "Arrival rate over time", "<svg"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the page lacks %q", want)
		}
	}
	_, _, err = inspect(t, "mooncake:"+trace, "--html", filepath.Join(t.TempDir(), "missing", "w.html"))
	if err == nil || !strings.Contains(err.Error(), "--html") {
		t.Errorf("an uncreatable page: %v, want an error naming --html", err)
	}
}

// TestInspectWarnings checks the unit-mistake warnings and --skip-invalid.
func TestInspectWarnings(t *testing.T) {
	var sb strings.Builder
	for i := range 300 {
		fmt.Fprintf(&sb, `{"timestamp":%.3f,"input_length":100,"output_length":10}`+"\n", float64(i)*0.37) // seconds
	}
	secs := tracestest.Write(t, "s.jsonl", sb.String())
	_, errs, err := inspect(t, "mooncake:"+secs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, "warning: mooncake") || !strings.Contains(errs, "look like seconds") || strings.Count(errs, "look like seconds") != 1 {
		t.Errorf("no single seconds warning:\n%s", errs)
	}

	azure := tracestest.Write(t, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"+
		"2023-11-16 18:17:03.0000000,10,5\n2023-11-16 18:17:05.0000000,10,5\n2023-11-16 18:17:04.0000000,10,5\n")
	_, errs, err = inspect(t, azure)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, "go backwards 1 times") || !strings.Contains(errs, "line 4") {
		t.Errorf("no backwards warning:\n%s", errs)
	}

	bad := tracestest.Write(t, "b.jsonl", `{"timestamp":0,"input_length":10,"output_length":1}
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
	if inspecttest.Field(t, out, "requests") != "2 (2 streamed)" || inspecttest.Field(t, out, "skipped") != "1 invalid lines (--skip-invalid)" || !strings.Contains(errs, "skipped 1 invalid") {
		t.Errorf("--skip-invalid:\n%s\n%s", out, errs)
	}
}

// TestInspectTransforms checks that the transform flags reach the source:
// flags after the spec, a rescale to a mean rate, a loop and a shard.
func TestInspectTransforms(t *testing.T) {
	path := filepath.Join(tracestest.Dir(t), tracestest.Azure)
	out, _, err := inspect(t, "azure:"+path, "--window", "1m:11m", "--rate", "4", "--loop", "2", "--shard", "1/2",
		"--max-output-tokens", "50", "--model-map", "*=small")
	if err != nil {
		t.Fatal(err)
	}
	windowed, _, err := inspect(t, "azure:"+path, "--window", "1m:11m")
	if err != nil {
		t.Fatal(err)
	}
	pass, _ := strconv.Atoi(strings.Fields(inspecttest.Field(t, windowed, "requests"))[0])
	n, _ := strconv.Atoi(strings.Fields(inspecttest.Field(t, out, "requests"))[0])
	// two passes, one shard of two: as many requests as one pass
	if n != pass || pass < 1000 {
		t.Errorf("%d requests, want %d (the window's)", n, pass)
	}
	// 4 req/s split in two: 2 req/s over the two passes' span
	var mean float64
	fmt.Sscanf(inspecttest.Field(t, out, "rate per second"), "mean %g", &mean)
	if mean < 1.9 || mean > 2.1 {
		t.Errorf("rate %q, want a mean of 2 (4 split in two)", inspecttest.Field(t, out, "rate per second"))
	}
	if got := inspecttest.Field(t, out, "output tokens"); !strings.HasSuffix(got, "max 50") {
		t.Errorf("output %q: the cap is 50", got)
	}
	if got := inspecttest.Field(t, out, "models"); got != "small "+strconv.Itoa(n) {
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
	url, _ := simtest.Start(t, func(c *sim.Config) { c.TTFTBase, c.ITLBase, c.ITLPerSeq = time.Millisecond, 100*time.Microsecond, 0 })
	// 40 rows over 39 s; at --rate 40 the replay takes about a second.
	var sb strings.Builder
	for i := range 40 {
		fmt.Fprintf(&sb, `{"timestamp":%d,"input_length":2000,"output_length":300,"hash_ids":[%d,%d,%d,%d]}`+"\n", i*1000, i%3, 10+i, 100+i, 200+i)
	}
	trace := tracestest.Write(t, "t.jsonl", sb.String())
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"run", "--target", url, "--workload", "mooncake:" + trace, "--profile", "trace",
		"--rate", "40", "--shard", "0/2", "--max-prompt-tokens", "600", "--max-output-tokens", "4", "--model-map", "*=tiny",
		"--output-dir", dir, "--quiet"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	file := reporttest.Read(t, dir)
	b := file.Benchmarks[len(file.Benchmarks)-1]
	if b.Metrics.Requests.Successful != 20 || b.Metrics.OutputTokens.Max != 4 || b.Metrics.PromptTokens.Max > 600 {
		t.Errorf("requests %+v, output max %v, prompt max %v", b.Metrics.Requests, b.Metrics.OutputTokens.Max, b.Metrics.PromptTokens.Max)
	}
	tr := b.Config.Transforms
	if tr == nil || tr.TraceRate != 40 || b.Config.Shard != "0/2" { // --shard splits the run (bench.Shard), not the workload
		t.Errorf("config %+v, transforms %+v", b.Config, tr)
	}
	var errs bytes.Buffer
	err = Run(context.Background(), []string{"run", "--target", url, "--workload", "mooncake:" + trace,
		"--rate", "40", "--time-scale", "0.5", "--output-dir", dir}, &out, &errs)
	if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "--time-scale") {
		t.Errorf("--rate with --time-scale: %v", err)
	}
}

func TestInspectSynthetic(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"inspect", "synthetic:prompt_tokens=100,output_tokens=7,samples=50"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"50 (50 streamed)", "p50 100", "p50 7"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out.String())
		}
	}
}

// inspect measures verbatim prompts with the embedded tokenizer instead of
// calling their lengths unknown.
func TestInspectMeasuresVerbatimPrompts(t *testing.T) {
	p := tracestest.Write(t, "p.jsonl", `{"prompt":"hello world"}`+"\n"+ // 2 tokens in cl100k_base
		`{"messages":[{"role":"system","content":"hello world"},{"role":"user","content":[{"type":"text","text":"hello world"}]}]}`+"\n")
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"inspect", p}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"min 2", "max 4", "2 verbatim prompts measured with cl100k_base"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "unknown length") {
		t.Errorf("prompts still of unknown length:\n%s", out.String())
	}
	// An unknown or unusable tokenizer is a usage error, before reading.
	for _, spec := range []string{"nope_base", "server", "hf:" + filepath.Join(t.TempDir(), "missing.json")} {
		out.Reset()
		err := Run(context.Background(), []string{"inspect", "--tokenizer", spec, p}, &out, &out)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "--tokenizer") {
			t.Errorf("--tokenizer %s: %v, want a usage error naming --tokenizer", spec, err)
		}
	}
}
