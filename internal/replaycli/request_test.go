package replaycli

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/sim"
)

func fastSim(t *testing.T) *httptest.Server {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.TTFTBase, cfg.ITLBase, cfg.ITLPerSeq, cfg.NaturalOutputMean = time.Millisecond, 50*time.Microsecond, 0, 4
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

func readRunResults(t *testing.T, dir string) *report.File {
	t.Helper()
	fh, err := os.Open(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	file, err := report.ReadJSON(fh)
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// --ignore-eos off sends max_tokens alone; the simulator then stops early
// (natural lengths of mean 4 against 60 forced) and the run says so after
// the table. With the default (on) the lengths are met and nothing is said.
func TestIgnoreEOSOffReportsShortfall(t *testing.T) {
	srv := fastSim(t)
	for _, mode := range []string{"auto", "off"} {
		dir := t.TempDir()
		var out, errb bytes.Buffer
		err := Run(context.Background(), []string{"run", "--target", srv.URL, "--workload", "synthetic:prompt_tokens=20,output_tokens=60,samples=10",
			"--profile", "synchronous", "--output-dir", dir, "--quiet", "--ignore-eos", mode}, &out, &errb)
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, errb.String())
		}
		said := strings.Contains(out.String(), "output shortfall")
		if said != (mode == "off") {
			t.Errorf("--ignore-eos %s: shortfall line printed %v:\n%s", mode, said, out.String())
		}
		m := readRunResults(t, dir).Benchmarks[0].Metrics.OutputTokenMismatch
		if m == nil || (mode == "off") != (m.MeanDiff < 0) {
			t.Errorf("--ignore-eos %s: output mismatch %+v", mode, m)
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"run", "--target", srv.URL, "--workload", "synthetic:prompt_tokens=1,output_tokens=1", "--ignore-eos", "maybe"}, &out, &out); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("--ignore-eos maybe: %v, want a usage error", err)
	}
}

// --start-at waits for its instant, records it, and refuses one that passed.
func TestStartAt(t *testing.T) {
	srv := fastSim(t)
	args := func(dir, at string) []string {
		return []string{"run", "--target", srv.URL, "--workload", "synthetic:prompt_tokens=5,output_tokens=2,samples=3",
			"--profile", "synchronous", "--output-dir", dir, "--quiet", "--start-at", at}
	}
	var out bytes.Buffer
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if err := Run(context.Background(), args(t.TempDir(), past), &out, &out); err == nil || !strings.Contains(err.Error(), "in the past") {
		t.Errorf("a past --start-at: %v", err)
	}
	if err := Run(context.Background(), args(t.TempDir(), "tomorrow"), &out, &out); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("--start-at tomorrow: %v, want a usage error", err)
	}
	at := time.Now().Add(300 * time.Millisecond).UTC()
	dir := t.TempDir()
	if err := Run(context.Background(), args(dir, at.Format(time.RFC3339Nano)), &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	b := readRunResults(t, dir).Benchmarks[0]
	if b.Config["start_at"] != at.Format(time.RFC3339Nano) {
		t.Errorf("config start_at %v, want %s", b.Config["start_at"], at.Format(time.RFC3339Nano))
	}
	if b.Start.Before(at) {
		t.Errorf("the run started at %s, before --start-at %s", b.Start, at)
	}
}

// inspect measures verbatim prompts with the embedded tokenizer instead of
// calling their lengths unknown.
func TestInspectMeasuresVerbatimPrompts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.jsonl")
	data := `{"prompt":"hello world"}` + "\n" + // 2 tokens in cl100k_base
		`{"messages":[{"role":"system","content":"hello world"},{"role":"user","content":[{"type":"text","text":"hello world"}]}]}` + "\n"
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
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
