package report

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/saturation"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/stats"
)

// sweepFile is three constant-rate benchmarks of one target with SLO
// verdicts; the last is over-saturated.
func sweepFile(t *testing.T) *File {
	t.Helper()
	f := smallSweep(t)
	spec, err := slo.Parse("ttft_p99<=150ms,itl_p99<=20ms")
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.Benchmarks {
		b := &f.Benchmarks[i]
		b.SLO = &slo.Report{Spec: spec.Text, Pass: i == 0}
		for _, term := range spec.Terms {
			b.SLO.Terms = append(b.SLO.Terms, slo.Result{Term: term, ValueMs: 100 * float64(i+1), Count: 39, Pass: i == 0})
		}
		b.Saturation = &saturation.Report{Mode: "monitor"}
	}
	last := f.Benchmarks[len(f.Benchmarks)-1].Saturation
	last.Detected, last.Signal, last.DetectedAtS = true, "backlog", 4.5
	last.Fired = []saturation.Firing{{Signal: "backlog", AtS: 4.5}}
	return f
}

func TestHTMLSweep(t *testing.T) {
	f := sweepFile(t)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, f); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if err := wellFormed(page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"<figcaption>Time to first token vs rate</figcaption>",
		"<figcaption>SLO attainment vs rate</figcaption>",
		`<line class="mark slo"`, `<line class="mark sat"`,
		"over-saturated: constant@8", "over-saturated at 4.5 s", "backlog (4.5 s)",
		"SLO ttft_p99&lt;=150ms", `<td class="fail">FAIL</td>`, `<td class="pass">PASS</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// A tooltip on every point: the benchmark, its rate and the figure.
	if !strings.Contains(page, "<title>constant@2: ") {
		t.Error("points carry no tooltip")
	}
	// Console: the SLO verdict and the saturation state per benchmark.
	buf.Reset()
	if err := WriteTable(&buf, f); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"SLO", "FAIL", "over-saturated", "yes, 4.5s"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("console table lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestSweepGroups(t *testing.T) {
	f := sweepFile(t)
	// A captured baseline and a lone second target are no sweep.
	f.Benchmarks = append(f.Benchmarks,
		Benchmark{Name: "prod", Target: "http://sim:8000", Profile: "captured", Metrics: stats.Metrics{RequestsPerSecond: 5}},
		Benchmark{Name: "other", Target: "http://other", Profile: "constant", Metrics: stats.Metrics{RequestsPerSecond: 5}})
	g := sweepGroups(f.Benchmarks)
	if len(g) != 1 || len(g[0].Idx) != 3 || g[0].Target != "http://sim:8000" {
		t.Fatalf("groups %+v", g)
	}
	for i := 1; i < len(g[0].Idx); i++ {
		if f.Benchmarks[g[0].Idx[i-1]].Metrics.RequestsPerSecond > f.Benchmarks[g[0].Idx[i]].Metrics.RequestsPerSecond {
			t.Error("sweep not in rate order")
		}
	}
	if g := sweepGroups(fixtureFile().Benchmarks); len(g) != 0 {
		t.Errorf("a comparison of two targets taken for a sweep: %+v", g)
	}
}

func TestDownsampling(t *testing.T) {
	var pts []xy
	for i := range 1800 {
		pts = append(pts, xy{float64(i), float64(i % 10)})
	}
	avg := average(pts, maxLinePoints)
	if len(avg) > maxLinePoints || len(avg) < maxLinePoints/2 {
		t.Errorf("%d points after averaging", len(avg))
	}
	var sum float64
	for _, p := range avg {
		sum += p.Y
	}
	if mean := sum / float64(len(avg)); math.Abs(mean-4.5) > 0.01 {
		t.Errorf("averaging moved the mean to %v", mean)
	}
	th := thin(pts, 100)
	if len(th) != 100 || th[0] != pts[0] || th[99] != pts[len(pts)-1] {
		t.Errorf("thin kept %d points, ends %v %v", len(th), th[0], th[len(th)-1])
	}
	if got := average(pts[:10], 100); len(got) != 10 {
		t.Error("a short series was changed")
	}
}

func TestComparisonViews(t *testing.T) {
	rows := []ComparisonRow{
		{Baseline: "prod", Candidate: "cand", Metric: "time_to_first_token_ms", Stat: "p99", BaselineValue: 100, CandidateValue: 125,
			DeltaPct: 25, CILowPct: 18, CIHighPct: 31, Confidence: 0.95, PValue: 0.0001, Verdict: VerdictWorse, Gate: "ttft_p99>+10%"},
		{Baseline: "prod", Candidate: "cand", Metric: "inter_token_latency_ms", Stat: "p50", BaselineValue: 10, CandidateValue: 10.1,
			DeltaPct: 1, CILowPct: -2, CIHighPct: 4, Confidence: 0.95, PValue: 0.6, Verdict: VerdictNoDifference},
		{Baseline: "prod", Candidate: "cand", Metric: "error_rate", Stat: "value", BaselineValue: 0.01, CandidateValue: 0, DeltaPct: -100, PValue: -1, Verdict: VerdictBetter},
	}
	p := buildPage(fixtureFile())
	p.Comparisons = comparisonTables(rows)
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, p); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if err := wellFormed(page); err != nil {
		t.Fatal(err)
	}
	// html/template writes "+" as "&#43;".
	for _, want := range []string{"<h3>cand vs prod</h3>", "&#43;25.0%", "95% [&#43;18.0%, &#43;31.0%]", `class="txt fail">worse — fails ttft_p99&gt;&#43;10%`, `class="txt same">no significant difference`, `class="txt pass">better`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	buf.Reset()
	if err := WriteComparisonTable(&buf, rows); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"cand vs prod", "time_to_first_token_ms  p99", "+25.0%", "worse (fails ttft_p99>+10%)", "no significant difference"} {
		if !strings.Contains(out, want) {
			t.Errorf("console comparison lacks %q:\n%s", want, out)
		}
	}
}
