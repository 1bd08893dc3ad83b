package replaycli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/compare"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// compareSim starts a simulator whose time to first token is ttft ± 20%
// (no prefill cost, fast decoding) and returns its URL.
func compareSim(t *testing.T, ttft time.Duration, seed int64) string {
	t.Helper()
	url, _ := simtest.Start(t, func(c *sim.Config) {
		c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq = ttft, 0, time.Millisecond, 0
		c.Jitter, c.Seed, c.Slots = 0.2, seed, 64
	})
	return url
}

func compRow(t *testing.T, f *report.File, cand, metric, stat string) report.ComparisonRow {
	t.Helper()
	if f.Comparison == nil {
		t.Fatal("no comparison section")
	}
	for _, r := range f.Comparison.Rows {
		if r.Candidate == cand && r.Metric == metric && r.Stat == stat {
			return r
		}
	}
	t.Fatalf("no row %s %s %s", cand, metric, stat)
	return report.ComparisonRow{}
}

const compareWorkload = "synthetic:prompt_tokens=30,output_tokens=6,samples=150"

// TestCompareRanksAKnownTTFTPenalty drives two simulators at once, the
// candidate 30 ms slower to its first token: TTFT is worse with 30 ms
// inside the intervals, the gate on it fails (exit 1, naming it), the gate
// on errors passes; the saved results compare again to the same answer.
func TestCompareRanksAKnownTTFTPenalty(t *testing.T) {
	base, cand := compareSim(t, 20*time.Millisecond, 1), compareSim(t, 50*time.Millisecond, 2)
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"compare", "--target", "base=" + base, "--target", "cand=" + cand,
		"--workload", compareWorkload, "--profile", "constant", "--rate", "60", "--mode", "parallel", "--save-requests",
		"--output-dir", dir, "--label", "gpu=sim", "--quiet", "--fail-if", "ttft_p50>+20ms, error_rate>50%"}, &out, &errb)
	if !errors.Is(err, ErrGateFailed) || errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "ttft_p50>+20ms for cand") || strings.Contains(err.Error(), "error_rate") {
		t.Fatalf("err = %v, want the ttft gate to fail\n%s\n%s", err, out.String(), errb.String())
	}
	f := reporttest.Read(t, dir)
	for _, stat := range []string{compare.StatP50, compare.StatMean} {
		r := compRow(t, f, "cand", compare.TTFT, stat)
		if r.Verdict != report.VerdictWorse || r.CILowAbs > 30 || r.CIHighAbs < 30 || r.Baseline != "base" || r.CandidateN != 150 {
			t.Errorf("ttft %s: %s, delta %.2f ms [%.2f, %.2f], n %d; want worse with 30 ms inside", stat, r.Verdict, r.DeltaAbs, r.CILowAbs, r.CIHighAbs, r.CandidateN)
		}
	}
	if r := compRow(t, f, "cand", compare.TTFT, compare.StatP99); r.Verdict != report.VerdictInsufficient {
		t.Errorf("p99 of 150 requests: %s, want insufficient data", r.Verdict)
	}
	if len(f.Benchmarks) != 2 || !f.Benchmarks[0].Baseline || f.Labels["gpu"] != "sim" || f.Comparison.Mode != "parallel" || len(f.Benchmarks[1].Requests) != 150 {
		t.Errorf("file: %d benchmarks, labels %v, mode %s", len(f.Benchmarks), f.Labels, f.Comparison.Mode)
	}
	if g := f.Comparison.Gates; len(g) != 2 || g[0].Status != report.GateFail || g[1].Status != report.GatePass {
		t.Errorf("gates: %+v", g)
	}
	html, _ := os.ReadFile(filepath.Join(dir, report.HTMLFile))
	if !bytes.Contains(html, []byte(`<h3>cand vs base</h3>`)) || !bytes.Contains(html, []byte("fails ttft_p50&gt;&#43;20ms")) {
		t.Error("report.html lacks the comparison table and the failed gate")
	}
	csv, _ := os.ReadFile(filepath.Join(dir, report.CSVFile))
	if !bytes.Contains(csv, []byte("\ncand,")) {
		t.Errorf("benchmarks.csv lacks the candidate:\n%s", csv)
	}
	for _, want := range []string{"cand vs base", "time_to_first_token_ms", "gate ttft_p50>+20ms (cand): FAIL", "gate error_rate>50% (cand): PASS"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("console lacks %q:\n%s", want, out.String())
		}
	}

	// The same comparison from the saved results, and with the roles swapped.
	dir2 := t.TempDir()
	out.Reset()
	err = Run(context.Background(), []string{"compare", "--output-dir", dir2, "--fail-if", "ttft_p50>+20ms", dir}, &out, &errb)
	if !errors.Is(err, ErrGateFailed) {
		t.Fatalf("saved: err = %v\n%s", err, out.String())
	}
	f2 := reporttest.Read(t, dir2)
	if r := compRow(t, f2, "cand", compare.TTFT, compare.StatP50); r.Verdict != report.VerdictWorse || f2.Comparison.Mode != "saved" || f2.Labels["gpu"] != "sim" {
		t.Errorf("saved: %s, mode %s, labels %v", r.Verdict, f2.Comparison.Mode, f2.Labels)
	}
	err = Run(context.Background(), []string{"compare", "--output-dir", dir2, "--baseline", "cand", "--fail-if", "ttft_p50>+20ms", dir}, &out, &errb)
	if err != nil {
		t.Fatalf("swapped: %v", err)
	}
	if r := compRow(t, reporttest.Read(t, dir2), "base", compare.TTFT, compare.StatP50); r.Verdict != report.VerdictBetter {
		t.Errorf("swapped: base is %s, want better", r.Verdict)
	}
}

// TestCompareIdenticalSimulators: two simulators with one configuration
// show no significant difference in TTFT, and the p99 of 100 requests is
// called insufficient data rather than guessed.
func TestCompareIdenticalSimulators(t *testing.T) {
	a, b := compareSim(t, 20*time.Millisecond, 3), compareSim(t, 20*time.Millisecond, 4)
	f, out, err := runCLI(t, "compare", "--target", "a="+a, "--target", "b="+b,
		"--workload", "synthetic:prompt_tokens=30,output_tokens=6,samples=100", "--profile", "constant", "--rate", "60",
		"--mode", "parallel", "--fail-if", "ttft_p50>+10%")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, stat := range []string{compare.StatP50, compare.StatMean} {
		if r := compRow(t, f, "b", compare.TTFT, stat); r.Verdict != report.VerdictNoDifference {
			t.Errorf("identical ttft %s: %s, delta %.2f [%.2f, %.2f]", stat, r.Verdict, r.DeltaAbs, r.CILowAbs, r.CIHighAbs)
		}
	}
	if r := compRow(t, f, "b", compare.TTFT, compare.StatP99); r.Verdict != report.VerdictInsufficient || !strings.Contains(r.Note, "300") {
		t.Errorf("p99: %s %q", r.Verdict, r.Note)
	}
	if len(f.Benchmarks[0].Requests) != 0 {
		t.Error("per-request records saved without --save-requests")
	}
}

// TestCompareSequentialAlternatesOrder: with two repetitions the second
// runs the targets in the opposite order; results are pooled per target.
func TestCompareSequentialAlternatesOrder(t *testing.T) {
	base, cand := compareSim(t, 10*time.Millisecond, 5), compareSim(t, 40*time.Millisecond, 6)
	f, out, err := runCLI(t, "compare", "--target", "base="+base, "--target", "cand="+cand,
		"--workload", "synthetic:prompt_tokens=30,output_tokens=4,samples=25", "--profile", "constant", "--rate", "100",
		"--repetitions", "2", "--fail-if", "ttft_mean>+50%")
	if !errors.Is(err, ErrGateFailed) || !strings.Contains(err.Error(), "ttft_mean>+50%") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	var names []string
	for _, b := range f.Benchmarks {
		names = append(names, b.Name)
	}
	if strings.Join(names, " ") != "base#1 base#2 cand#1 cand#2" {
		t.Fatalf("benchmarks %v", names)
	}
	b1, b2, c1, c2 := f.Benchmarks[0].Start, f.Benchmarks[1].Start, f.Benchmarks[2].Start, f.Benchmarks[3].Start
	if !b1.Before(c1) || !c2.Before(b2) || !c1.Before(c2) {
		t.Errorf("order: base#1 %v cand#1 %v cand#2 %v base#2 %v", b1, c1, c2, b2)
	}
	if r := compRow(t, f, "cand", compare.TTFT, compare.StatMean); r.BaselineN != 50 || r.CandidateN != 50 || r.Verdict != report.VerdictWorse {
		t.Errorf("pooled: n %d/%d, %s", r.BaselineN, r.CandidateN, r.Verdict)
	}
	if f.Comparison.Repetitions != 2 || f.Comparison.Mode != "sequential" {
		t.Errorf("comparison: %+v", f.Comparison)
	}
}

// TestCompareLeavesWarmupOut: with --warmup 20 of 40 requests, only the 20
// measured requests a side are compared, and the throughput is theirs over
// the measured window, not 40 requests over it (issue 6, B1).
func TestCompareLeavesWarmupOut(t *testing.T) {
	a, b := compareSim(t, 10*time.Millisecond, 11), compareSim(t, 10*time.Millisecond, 12)
	f, out, err := runCLI(t, "compare", "--target", "a="+a, "--target", "b="+b,
		"--workload", "synthetic:prompt_tokens=20,output_tokens=4,samples=40", "--profile", "constant", "--rate", "40",
		"--warmup", "20", "--mode", "parallel", "--save-requests")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	warm := 0
	for _, r := range f.Benchmarks[1].Requests {
		if r.Phase == "warmup" {
			warm++
		}
	}
	if len(f.Benchmarks[1].Requests) != 40 || warm != 20 {
		t.Fatalf("saved records: %d, %d in warmup; want 40 and 20", len(f.Benchmarks[1].Requests), warm)
	}
	if r := compRow(t, f, "b", compare.TTFT, compare.StatP50); r.BaselineN != 20 || r.CandidateN != 20 {
		t.Errorf("ttft rows compare n = %d/%d, want the 20 measured requests a side", r.BaselineN, r.CandidateN)
	}
	r := compRow(t, f, "b", compare.RequestsPerSecond, compare.StatValue)
	want := f.Benchmarks[0].Metrics.RequestsPerSecond
	if diff := r.BaselineValue - want; diff > 1e-9 || diff < -1e-9 {
		t.Errorf("baseline req/s in the comparison %.3f, the benchmark's metrics say %.3f", r.BaselineValue, want)
	}
	if r.NoInterval != (r.Verdict == report.VerdictInsufficient) {
		t.Errorf("throughput row: verdict %s with NoInterval %v", r.Verdict, r.NoInterval)
	}
}

func TestCompareUsageAndRecordErrors(t *testing.T) {
	var out bytes.Buffer
	for args, want := range map[string]string{
		"--workload " + compareWorkload:                                                   "need at least two --target",
		"--target a=http://h:1 --target b=ftp://h --workload x":                           `--target "b=ftp://h"`,
		"--target http://h:1 --target b=http://h:2 --workload x":                          "want NAME=URL",
		"--target a=http://h:1 --target a=http://h:2 --workload x":                        "is taken",
		"--target a=http://h:1 --target b=http://h:2 --workload x --fail-if ttft_p99>10%": `--fail-if term "ttft_p99>10%"`,
		"--target a=http://h:1 --workload " + compareWorkload + " --baseline captured":    "needs a capture workload",
		"--target a=http://h:1 --target b=http://h:2 --workload x --mode both":            `"both" for flag --mode: want sequential or parallel`,
		"--target a=http://h:1 --target b=http://h:2 --workload x --baseline c":           `--baseline "c"`,
		"--target a=http://h:1 --target b=http://h:2 --workload x --profile sweep":        "sweep is not supported",
		"--target a=http://h:1 some/dir":                                                  "not both",
		"--confidence 2 some/dir":                                                         "confidence 2",
	} {
		err := Run(context.Background(), append([]string{"compare"}, strings.Fields(args)...), &out, &out)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want a usage error containing %q", args, err, want)
		}
	}
	// Saved results without per-request records.
	dir := t.TempDir()
	f := &report.File{Benchmarks: []report.Benchmark{{Name: "x", Profile: "constant"}, {Name: "y", Profile: "constant"}}}
	if err := report.WriteAll(dir, f); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), []string{"compare", "--output-dir", t.TempDir(), dir}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--save-requests") || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("records missing: %v", err)
	}
	out.Reset()
	if err := Run(context.Background(), []string{"compare", "--help"}, &out, &out); err != nil || !strings.Contains(out.String(), "REPRISE_FAIL_IF") || !strings.Contains(out.String(), "--max-requests") {
		t.Errorf("help: %v\n%s", err, out.String())
	}
}
