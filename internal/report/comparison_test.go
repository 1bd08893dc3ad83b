package report

import (
	"bytes"
	"strings"
	"testing"
)

// TestComparisonUnitsAndRoundTrip: rows with units show absolute deltas,
// percentage points for proportions and the absolute interval when no
// relative one exists; the comparison section survives benchmarks.json
// and reaches report.html.
func TestComparisonUnitsAndRoundTrip(t *testing.T) {
	rows := []ComparisonRow{
		{Baseline: "prod", Candidate: "cand", Metric: "request_latency_ms", Stat: "p50", Unit: "ms", LowerIsBetter: true,
			BaselineN: 500, CandidateN: 500, BaselineValue: 200, CandidateValue: 230, DeltaAbs: 30, CILowAbs: 22, CIHighAbs: 38,
			DeltaPct: 15, CILowPct: 11, CIHighPct: 19, Confidence: 0.9875, PValue: 0.001, Verdict: VerdictWorse},
		{Baseline: "prod", Candidate: "cand", Metric: "error_rate", Stat: "value", Unit: "fraction", LowerIsBetter: true,
			BaselineN: 500, CandidateN: 500, BaselineValue: 0.002, CandidateValue: 0.012, DeltaAbs: 0.01, CILowAbs: 0.001, CIHighAbs: 0.02,
			DeltaPct: 500, RelativeUndefined: true, Confidence: 0.95, PValue: 0.03, Verdict: VerdictWorse, Gate: "error_rate>+0.5%"},
		{Baseline: "prod", Candidate: "cand", Metric: "requests_per_second", Stat: "value", Unit: "req/s",
			BaselineN: 5, CandidateN: 5, BaselineValue: 10, CandidateValue: 10.1, DeltaAbs: 0.1, RelativeUndefined: true, PValue: -1,
			Verdict: VerdictInsufficient, Note: "needs at least 20 one-second buckets"},
	}
	tables := comparisonTables(rows)
	if len(tables) != 1 || len(tables[0].Rows) != 3 {
		t.Fatalf("tables: %+v", tables)
	}
	r := tables[0].Rows
	for _, c := range []struct{ got, want string }{
		{r[0].Delta, "+30 ms (+15.0%)"}, {r[0].CI, "98.75% [+11.0%, +19.0%]"}, {r[0].Baseline, "200.0 ms"},
		{r[1].Delta, "+1.00 pp"}, {r[1].CI, "95% [+0.10 pp, +2.00 pp]"}, {r[1].Candidate, "1.20%"},
		{r[2].CI, "-"}, {r[2].P, "-"}, {r[2].Note, "needs at least 20 one-second buckets"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	f := fixtureFile()
	f.Comparison = &Comparison{Baseline: "prod", Mode: "sequential", Confidence: 0.95, Resamples: 2000, Seed: 1, Rows: rows,
		Gates: []GateResult{{Gate: "error_rate>+0.5%", Candidate: "cand", Status: GateFail, Detail: "change 1%"}}}
	var buf bytes.Buffer
	if err := WriteJSON(&buf, f); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if c := back.Comparison; c == nil || len(c.Rows) != 3 || c.Rows[1] != rows[1] || c.Gates[0].Status != GateFail {
		t.Fatalf("round trip: %+v", back.Comparison)
	}
	buf.Reset()
	if err := WriteHTML(&buf, back); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if err := wellFormed(page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`id="comparison"`, "&#43;1.00 pp", `title="needs at least 20 one-second buckets"`, "fails error_rate&gt;&#43;0.5%"} {
		if !strings.Contains(page, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}
