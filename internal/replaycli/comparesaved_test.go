package replaycli

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/compare"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
)

// TestCompareSavedSweepsPointByPoint compares two result directories of
// the same benchmark names point by point, each side labelled from its own
// file (B5, labels): a vs a shows nothing, b vs b the 30 ms penalty.
func TestCompareSavedSweepsPointByPoint(t *testing.T) {
	fast1, fast2, fast3, slow := compareSim(t, 10*time.Millisecond, 21), compareSim(t, 10*time.Millisecond, 22),
		compareSim(t, 10*time.Millisecond, 23), compareSim(t, 40*time.Millisecond, 24)
	runDir := func(gpu, a, b string) string {
		dir := filepath.Join(t.TempDir(), gpu)
		var out bytes.Buffer
		err := Run(context.Background(), []string{"compare", "--target", "a=" + a, "--target", "b=" + b,
			"--workload", "synthetic:prompt_tokens=20,output_tokens=4,samples=60", "--profile", "constant", "--rate", "60",
			"--mode", "parallel", "--save-requests", "--label", "gpu=" + gpu, "--label", "team=x", "--output-dir", dir, "--quiet"}, &out, &out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return dir
	}
	d1 := runDir("A100", fast1, fast2)
	d2 := runDir("H100", fast3, slow)
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if err := Run(context.Background(), []string{"compare", "--output-dir", dir, d1, d2}, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	f := reporttest.Read(t, dir)
	// The a runs are identical sims measured at different moments of a
	// shared 2-core machine: their delta must be small (the 30 ms penalty
	// is not there), but a millisecond of load drift may be "significant",
	// so the verdict is checked only for the b pair.
	var pairs []string
	for _, r := range f.Comparison.Rows {
		if r.Metric == compare.TTFT && r.Stat == compare.StatP50 {
			verdict := r.Verdict
			if r.Candidate == "H100/a" {
				if !(r.CILowAbs >= -10 && r.CIHighAbs <= 10) { // also false for a missing (NaN) interval
					t.Errorf("H100/a vs A100/a: ttft p50 interval %.2f … %.2f ms, want within ±10 ms of no change", r.CILowAbs, r.CIHighAbs)
				}
				verdict = "checked by interval"
			}
			pairs = append(pairs, r.Candidate+" vs "+r.Baseline+": "+verdict)
			t.Logf("%s vs %s: ttft p50 %.2f vs %.2f ms, [%.2f, %.2f] %s", r.Candidate, r.Baseline, r.CandidateValue, r.BaselineValue, r.CILowAbs, r.CIHighAbs, r.Verdict)
		}
	}
	want := []string{"H100/a vs A100/a: checked by interval", "H100/b vs A100/b: " + report.VerdictWorse}
	if !slices.Equal(pairs, want) {
		t.Errorf("pairs %q, want %q", pairs, want)
	}
	if f.Labels["team"] != "x" || f.Labels["gpu"] != "" {
		t.Errorf("file labels %v, want only the shared team=x", f.Labels)
	}
	for _, b := range f.Benchmarks {
		if wantGPU := strings.Split(b.Name, "/")[0]; b.Labels["gpu"] != wantGPU {
			t.Errorf("%s: labels %v, want gpu=%s", b.Name, b.Labels, wantGPU)
		}
	}
	// benchmarks.csv and comparison.csv take each row's labels.
	rows := readCSV(t, filepath.Join(dir, report.CSVFile))
	name, gpu := slices.Index(rows[0], "name"), slices.Index(rows[0], "label_gpu")
	for _, r := range rows[1:] {
		if !strings.HasPrefix(r[name], r[gpu]+"/") {
			t.Errorf("benchmarks.csv: %s has label_gpu %q", r[name], r[gpu])
		}
	}
	rows = readCSV(t, filepath.Join(dir, report.ComparisonCSVFile))
	cand, cg, bg := slices.Index(rows[0], "candidate"), slices.Index(rows[0], "label_gpu"), slices.Index(rows[0], "baseline_label_gpu")
	for _, r := range rows[1:] {
		if !strings.HasPrefix(r[cand], "H100/") || r[cg] != "H100" || r[bg] != "A100" {
			t.Fatalf("comparison.csv row %v: candidate labels %q, baseline %q", r[:4], r[cg], r[bg])
		}
	}
	if !strings.Contains(out.String(), "labels: team=x") || !regexp.MustCompile(`gpu +A100 +H100 +A100 +H100`).MatchString(out.String()) {
		t.Errorf("console table lacks the labels:\n%s", out.String())
	}
	html, _ := os.ReadFile(filepath.Join(dir, report.HTMLFile))
	if !bytes.Contains(html, []byte(`<span class="label">gpu=H100</span>`)) {
		t.Error("report.html does not label the benchmarks")
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("%s: %v (%d rows)", path, err, len(rows))
	}
	return rows
}

// TestCompareSavedSweepsPairByPlace: two saved sweeps whose rate points
// carry different names (each sweep's rates follow its own target's
// throughput) are paired by place — synchronous with synchronous, the i-th
// rate with the i-th — and sweeps of different shapes are refused.
func TestCompareSavedSweepsPairByPlace(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, rates ...float64) string {
		f := &report.File{Tool: "reprise"}
		reqs := func(ttft float64) []report.RequestRecord {
			var out []report.RequestRecord
			for i := range 40 {
				v := ttft + float64(i%7)
				sent := float64(i) * 100
				out = append(out, report.RequestRecord{Index: i, Stream: true, Status: 200, SentMs: sent, IntendedMs: sent,
					FirstTokenMs: sent + v, LastTokenMs: sent + v + 50, EndMs: sent + v + 50, TTFTMs: v, LatencyMs: v + 50,
					Chunks: 10, Events: 10, OutputTokens: 10, PromptTokens: 20})
			}
			return out
		}
		f.Benchmarks = append(f.Benchmarks,
			report.Benchmark{Name: "synchronous", Profile: "synchronous", Requests: reqs(10)},
			report.Benchmark{Name: "throughput", Profile: "throughput", Requests: reqs(50)})
		for _, r := range rates {
			f.Benchmarks = append(f.Benchmarks, report.Benchmark{Name: fmt.Sprintf("constant@%.1f", r), Profile: "constant", Requests: reqs(20 + r)})
		}
		d := filepath.Join(dir, name)
		if err := report.WriteAll(d, f); err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b, c := mk("a", 32.9, 54.8), mk("b", 24.1, 40.8), mk("c", 30)
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"compare", a, b, "--output-dir", filepath.Join(dir, "out")}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out.String(), errb.String())
	}
	for _, want := range []string{"b/synchronous vs a/synchronous", "b/constant@24.1 vs a/constant@32.9", "b/constant@40.8 vs a/constant@54.8"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "throughput vs synchronous") {
		t.Errorf("a sweep point was compared with another point of the same sweep:\n%s", out.String())
	}
	err = Run(context.Background(), []string{"compare", a, c, "--output-dir", filepath.Join(dir, "out2")}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "sweeps of different points") {
		t.Errorf("sweeps of different shapes: %v, want a refusal naming them", err)
	}
}
