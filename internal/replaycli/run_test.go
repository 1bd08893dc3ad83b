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

func TestRunWritesResultsAgainstTheSimulator(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.TTFTBase, cfg.ITLBase, cfg.ITLPerSeq = 2*time.Millisecond, time.Millisecond, 0
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err = Run(context.Background(), []string{"run", "--target", srv.URL, "--workload", "synthetic:prompt_tokens=30,output_tokens=5,samples=20",
		"--profile", "poisson", "--rate", "200", "--output-dir", dir, "--label", "gpu=none", "--api-key", "sk-secret-xyz"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, f := range []string{"benchmarks.json", "benchmarks.csv", "report.html"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	fh, _ := os.Open(filepath.Join(dir, "benchmarks.json"))
	defer fh.Close()
	file, err := report.ReadJSON(fh)
	if err != nil {
		t.Fatal(err)
	}
	m := file.Benchmarks[0].Metrics
	if len(file.Benchmarks) != 1 || m.Requests.Successful != 20 || m.OutputTokens.Mean != 5 || m.PromptTokens.Mean != 30 || file.Labels["gpu"] != "none" {
		t.Fatalf("benchmarks: %+v", file.Benchmarks[0].Metrics.Requests)
	}
	all, _ := os.ReadFile(filepath.Join(dir, "benchmarks.json"))
	if bytes.Contains(all, []byte("sk-secret-xyz")) || strings.Contains(out.String()+errb.String(), "sk-secret-xyz") {
		t.Fatal("the API key reached the results or the console")
	}
	if !strings.Contains(out.String(), "TTFT p99") {
		t.Errorf("no summary table:\n%s", out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	var out bytes.Buffer
	for _, args := range [][]string{nil, {"nope"}, {"run", "--bogus"}, {"run", "--target", "x"}, {"run", "--target", "http://h", "--workload", "synthetic:prompt_tokens=1,output_tokens=1", "--profile", "poisson"}} {
		if err := Run(context.Background(), args, &out, &out); !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%v: err = %v, want a usage error", args, err)
		}
	}
	out.Reset()
	if err := Run(context.Background(), []string{"run", "--help"}, &out, &out); err != nil || !strings.Contains(out.String(), "REPRISE_TARGET") {
		t.Errorf("help: %v\n%s", err, out.String())
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
