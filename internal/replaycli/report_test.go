package replaycli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
)

func savedResults(t *testing.T) string {
	t.Helper()
	f, err := reporttest.Sweep(reporttest.SweepOptions{Points: 4, Requests: 2000, Seed: 3, SaveRequests: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := report.WriteAll(dir, f); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReportRerenders(t *testing.T) {
	dir := savedResults(t)
	before, err := os.ReadFile(filepath.Join(dir, report.JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{report.HTMLFile, report.CSVFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"report", dir}, &out, &out); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(dir, report.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "Time to first token vs rate") {
		t.Error("re-rendered report lacks the sweep charts")
	}
	if _, err := os.Stat(filepath.Join(dir, report.CSVFile)); err != nil {
		t.Error(err)
	}
	if !strings.Contains(out.String(), "TTFT p99 (ms)") || !strings.Contains(out.String(), "constant@") {
		t.Errorf("no console table:\n%s", out.String())
	}
	after, _ := os.ReadFile(filepath.Join(dir, report.JSONFile))
	if !bytes.Equal(before, after) {
		t.Error("replay report rewrote benchmarks.json")
	}

	// Another output directory, the JSON named directly, flags after it.
	other := filepath.Join(t.TempDir(), "views")
	out.Reset()
	if err := Run(context.Background(), []string{"report", filepath.Join(dir, report.JSONFile), "--output-dir", other, "--quiet"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(other, report.HTMLFile)); err != nil {
		t.Error(err)
	}
	if strings.Contains(out.String(), "TTFT") {
		t.Error("--quiet printed the table")
	}
}

func TestReportErrors(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := Run(ctx, []string{"report"}, &out, &out); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("no argument: %v", err)
	}
	if err := Run(ctx, []string{"report", filepath.Join(t.TempDir(), "missing")}, &out, &out); err == nil {
		t.Error("missing directory accepted")
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, report.JSONFile), []byte(`{"format":"guidellm"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Run(ctx, []string{"report", bad}, &out, &out); !errors.Is(err, report.ErrFormat) {
		t.Errorf("foreign file: %v", err)
	}
	if err := Run(ctx, []string{"export", "--format", "vegeta", bad}, &out, &out); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("unknown format: %v", err)
	}
}

func TestExportGuideLLM(t *testing.T) {
	dir := savedResults(t)
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"export", "--format", "guidellm", dir}, &out, &out); err != nil {
		t.Fatal(err)
	}
	def := filepath.Join(dir, "guidellm-benchmarks.json")
	path := filepath.Join(t.TempDir(), "g.json")
	if err := Run(context.Background(), []string{"export", dir, "-o", path}, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{def, path} {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Metadata   struct{ Version int }
			Benchmarks []struct {
				Metrics struct {
					TTFT struct {
						Successful struct{ Percentiles struct{ P99 float64 } }
					} `json:"time_to_first_token_ms"`
				}
			}
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if doc.Metadata.Version != 2 || len(doc.Benchmarks) != 4 || doc.Benchmarks[0].Metrics.TTFT.Successful.Percentiles.P99 <= 0 {
			t.Errorf("%s: version %d, %d benchmarks", p, doc.Metadata.Version, len(doc.Benchmarks))
		}
	}
	out.Reset()
	if err := Run(context.Background(), []string{"export", "-o", "-", dir}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !json.Valid(out.Bytes()) {
		t.Error("-o - did not write JSON to standard output")
	}
}

func TestExportHelpShowsTheFileFlagAsItsUsageDoes(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"export", "--help"}, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "[-o FILE]") || !strings.Contains(out.String(), "\n  -o FILE\n") || strings.Contains(out.String(), "--o ") {
		t.Errorf("export --help:\n%s", out.String())
	}
}
