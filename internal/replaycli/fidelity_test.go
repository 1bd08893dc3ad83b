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
	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/stats"
)

// TestTraceProfileWithAnUntimedWorkloadIsAUsageError: --profile trace (the
// default) with a workload that has no arrival times sent every request
// at once, without a word (issue 17). Now it is a usage error naming the
// workload and the profiles to use, before any request is sent (the
// target here accepts no connection).
func TestTraceProfileWithAnUntimedWorkloadIsAUsageError(t *testing.T) {
	dir := t.TempDir()
	txt := filepath.Join(dir, "prompts.txt")
	trace := filepath.Join(dir, "trace.jsonl")
	if err := os.WriteFile(txt, []byte("hello\nworld\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trace, []byte(`{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const synthetic = "synthetic:prompt_tokens=10,output_tokens=5,samples=20"
	for _, args := range [][]string{
		{"run", "--target", "http://127.0.0.1:1", "--workload", synthetic},
		{"run", "--target", "http://127.0.0.1:1", "--workload", txt, "--profile", "trace"},
		{"run", "--target", "http://127.0.0.1:1", "--workload", "prompts:" + txt, "--profile", "trace", "--rate", "5"},
		{"compare", "--target", "a=http://127.0.0.1:1", "--target", "b=http://127.0.0.1:1", "--workload", synthetic},
	} {
		var out bytes.Buffer
		err := Run(context.Background(), args, &out, &out)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "--profile trace") || !strings.Contains(err.Error(), "--profile poisson --rate R") {
			t.Errorf("%v: %v, want a usage error suggesting a rate profile", args, err)
			continue
		}
		if wl := args[slicesIndex(args, "--workload")+1]; !strings.Contains(err.Error(), wl) {
			t.Errorf("%v: %v does not name the workload", args, err)
		}
	}
	for _, tt := range []struct{ profile, spec string }{
		{engine.ProfileTrace, trace},                   // timed
		{engine.ProfileTrace, "mooncake:" + trace},     // timed, prefixed
		{engine.ProfilePoisson, synthetic},             // a rate profile
		{engine.ProfileConcurrent, txt},                // a closed loop
		{engine.ProfileTrace, filepath.Join(dir, "x")}, // does not open: its own error comes later
	} {
		if err := untimedTrace(tt.profile, tt.spec); err != nil {
			t.Errorf("%s with %s: %v", tt.profile, tt.spec, err)
		}
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestSpinWarning(t *testing.T) {
	cfg := func(profile, target string, spin time.Duration) engine.Config {
		return engine.Config{Profile: profile, Target: target, Spin: spin}
	}
	for _, tt := range []struct {
		cfg   engine.Config
		cores int
		warn  bool
	}{
		{cfg("poisson", "http://gpu-node:8000", time.Millisecond), 2, true},
		{cfg("poisson", "http://gpu-node:8000", time.Millisecond), 3, false},
		{cfg("poisson", "http://127.0.0.1:8000", time.Millisecond), 3, true}, // the target shares the host
		{cfg("trace", "http://localhost:8000", time.Millisecond), 3, true},
		{cfg("constant", "http://[::1]:8000", time.Millisecond), 4, false},
		{cfg("poisson", "http://gpu-node:8000", 0), 1, false},                   // no spinning
		{cfg("concurrent", "http://gpu-node:8000", time.Millisecond), 1, false}, // closed loops do not spin
	} {
		msg := spinWarning(tt.cfg, tt.cores)
		if (msg != "") != tt.warn {
			t.Errorf("%s --spin %v against %s on %d cores: warning %q, want one: %v", tt.cfg.Profile, tt.cfg.Spin, tt.cfg.Target, tt.cores, msg, tt.warn)
		}
		if tt.warn && (!strings.Contains(msg, "--spin 1ms") || !strings.Contains(msg, "this host has "+string(rune('0'+tt.cores)))) {
			t.Errorf("warning %q does not say what it found", msg)
		}
	}
	// Printed once per invocation, however many benchmarks.
	var w bytes.Buffer
	warn := newWarnings(&w)
	for range 3 {
		if msg := spinWarning(cfg("poisson", "http://127.0.0.1:1", time.Millisecond), 2); msg != "" {
			warn.print(msg)
		}
	}
	if n := strings.Count(w.String(), "warning: --spin"); n != 1 {
		t.Errorf("%d warnings:\n%s", n, w.String())
	}
}

func TestDegradedWarningNamesTheCriteria(t *testing.T) {
	b := report.Benchmark{Name: "cand", Metrics: stats.Metrics{
		Degraded: true, DegradedBy: []string{stats.DegradedArrivalKS, stats.DegradedCompressedGaps}, LagThresholdMs: 10,
		ArrivalShape: &stats.ArrivalShape{Gaps: 9999, KSDistance: 0.15, KSCritical1Pct: 0.023, SpacedGaps: 6000, CompressedGaps: 660, CompressedGapFraction: 0.11},
	}}
	b.Metrics.ClientLag.P99 = 1.24
	var w bytes.Buffer
	degradedWarning(&w, &b)
	got := w.String()
	for _, want := range []string{"warning: cand: degraded: ", "KS distance 0.150", "critical value of 0.023", "degraded above 0.073", "11.0% of the gaps", "660 of 6000", "--spin"} {
		if !strings.Contains(got, want) {
			t.Errorf("warning lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "send lag p99") || strings.Count(got, "\n") != 1 {
		t.Errorf("one line, naming only the criteria that fired:\n%s", got)
	}
	b.Metrics.DegradedBy = []string{stats.DegradedClientLag}
	b.Metrics.ClientLag.P99 = 23.4
	w.Reset()
	degradedWarning(&w, &b)
	if got := w.String(); !strings.Contains(got, "send lag p99 is 23.4 ms") || strings.Contains(got, "KS") {
		t.Errorf("client lag alone: %q", got)
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

// TestRunReportsTheArrivalShape runs a small open loop and a small closed
// loop against the simulator: the open loop's metrics carry the arrival
// shape of its measured requests, the closed loop's none; the console
// table shows it, the send rate and both inter-token conventions.
func TestRunReportsTheArrivalShape(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.TTFTBase, cfg.ITLBase, cfg.ITLPerSeq = 2*time.Millisecond, time.Millisecond, 0
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, tt := range []struct {
		profile []string
		shape   bool
	}{
		{[]string{"--profile", "poisson", "--rate", "300"}, true},
		{[]string{"--profile", "synchronous"}, false},
	} {
		dir := t.TempDir()
		var out, errb bytes.Buffer
		args := append([]string{"run", "--target", srv.URL, "--workload", "synthetic:prompt_tokens=10,output_tokens=4,samples=30", "--quiet", "--output-dir", dir}, tt.profile...)
		if err := Run(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", tt.profile, err, errb.String())
		}
		m := readRunResults(t, dir).Benchmarks[0].Metrics
		if !tt.shape {
			if m.ArrivalShape != nil || strings.Contains(out.String(), "arrival gap KS") {
				t.Errorf("%v: a closed loop has an arrival shape %+v", tt.profile, m.ArrivalShape)
			}
			continue
		}
		if s := m.ArrivalShape; s == nil || s.Gaps != 29 || s.KSCritical1Pct <= 0 {
			t.Fatalf("%v: arrival shape %+v, want 29 gaps", tt.profile, s)
		}
		for _, row := range []string{"arrival gap KS (1% critical value)", "achieved send rate (req/s)", "successful req/s (window incl. drain)", "ICL p50 (ms, per chunk; vLLM ITL)", "ITL p50 (ms, per request; vLLM TPOT)"} {
			if !strings.Contains(out.String(), row) {
				t.Errorf("%v: console table lacks %q:\n%s", tt.profile, row, out.String())
			}
		}
		// 29 gaps are below stats.MinArrivalGaps: the shape decides nothing.
		if m.Degraded && !strings.Contains(strings.Join(m.DegradedBy, ","), stats.DegradedClientLag) {
			t.Errorf("%v: degraded by %v on %d gaps", tt.profile, m.DegradedBy, m.ArrivalShape.Gaps)
		}
	}
}
