package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/stats"
)

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
		msg := SpinWarning(tt.cfg, tt.cores)
		if (msg != "") != tt.warn {
			t.Errorf("%s --spin %v against %s on %d cores: warning %q, want one: %v", tt.cfg.Profile, tt.cfg.Spin, tt.cfg.Target, tt.cores, msg, tt.warn)
		}
		if tt.warn && (!strings.Contains(msg, "--spin 1ms") || !strings.Contains(msg, "this host has "+string(rune('0'+tt.cores)))) {
			t.Errorf("warning %q does not say what it found", msg)
		}
	}
	// Printed once per invocation, however many benchmarks.
	var w bytes.Buffer
	warn := NewWarnings(&w)
	for range 3 {
		if msg := SpinWarning(cfg("poisson", "http://127.0.0.1:1", time.Millisecond), 2); msg != "" {
			warn.Print(msg)
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

func TestDegradedWarning(t *testing.T) {
	var w bytes.Buffer
	b := report.Benchmark{Name: "cand"}
	degradedWarning(&w, &b)
	if w.Len() != 0 {
		t.Fatalf("warning for a healthy benchmark: %q", w.String())
	}
	b.Metrics.Degraded, b.Metrics.ClientLag.P99, b.Metrics.LagThresholdMs = true, 23.4, 10
	degradedWarning(&w, &b)
	if got := w.String(); !strings.HasPrefix(got, "warning: cand: degraded") || !strings.Contains(got, "23.4 ms") {
		t.Errorf("warning %q", got)
	}
}

// A filter that leaves a conversation's sub-agent calls out leaves the
// join's waits for them unresolved: the benchmark counts them and says so.
// The same workload unfiltered resolves every wait.
func TestUnresolvedGraphWaitsAreReportedAndWarned(t *testing.T) {
	url := cachedSim(t, func(c *sim.Config) { c.PrefillPerToken, c.ITLBase = 10*time.Microsecond, 100*time.Microsecond })
	for _, tc := range []struct {
		models     []string
		unresolved bool
	}{{nil, false}, {[]string{"claude-sonnet-4-20250514"}, true}} {
		plan := testPlan(url, "weka:../workload/testdata/weka/agentic.jsonl", func(p *Plan) {
			p.Engine.Profile, p.Engine.TimeScale, p.Engine.MaxRequests, p.Engine.Rate = engine.ProfileTrace, 0.01, 0, 0
			p.Transforms.Models = tc.models
		})
		var warned bytes.Buffer
		r, err := NewRunner(plan, &warned)
		if err != nil {
			t.Fatal(err)
		}
		o, err := r.Run(context.Background(), plan.Engine, "weka", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		n := o.Benchmark.Config.GraphUnresolvedAfter
		if got := n > 0; got != tc.unresolved || o.Run.UnresolvedAfter != n {
			t.Fatalf("models %v: %d unresolved waits (run: %d)", tc.models, n, o.Run.UnresolvedAfter)
		}
		if warn := strings.Contains(warned.String(), "conversation-graph waits were skipped"); warn != tc.unresolved {
			t.Errorf("models %v: warning printed %v:\n%s", tc.models, warn, warned.String())
		}
	}
}
