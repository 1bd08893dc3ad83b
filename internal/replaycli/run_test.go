package replaycli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
)

// runCLI runs the command args with --quiet into a new output directory
// and returns the results it wrote, what it printed (stdout, then stderr)
// and its error. A command that wrote no results fails the test.
func runCLI(t *testing.T, args ...string) (*report.File, string, error) {
	t.Helper()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := Run(context.Background(), append(args, "--output-dir", dir, "--quiet"), &out, &errb)
	printed := out.String() + errb.String()
	if _, serr := os.Stat(filepath.Join(dir, report.JSONFile)); serr != nil {
		t.Fatalf("replay %s wrote no results (%v): %v\n%s", strings.Join(args, " "), serr, err, printed)
	}
	return reporttest.Read(t, dir), printed, err
}

func TestRunWritesResultsAgainstTheSimulator(t *testing.T) {
	url := quickSim(t)
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"run", "--target", url, "--workload", "synthetic:prompt_tokens=30,output_tokens=5,samples=20",
		"--profile", "poisson", "--rate", "200", "--output-dir", dir, "--label", "gpu=none", "--api-key", "sk-secret-xyz"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, f := range []string{"benchmarks.json", "benchmarks.csv", "report.html"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	file := reporttest.Read(t, dir)
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
