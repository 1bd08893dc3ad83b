package report

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strings"
	"testing"
)

// TestNoIntervalIsDash: a row below its minimum sample shows no interval
// in the console table, comparison.csv or the HTML, never "[-0.2%, -0.2%]".
func TestNoIntervalIsDash(t *testing.T) {
	f := &File{Benchmarks: []Benchmark{{Name: "a"}, {Name: "b"}}, Comparison: &Comparison{Rows: []ComparisonRow{{
		Baseline: "a", Candidate: "b", Metric: "time_to_first_token_ms", Stat: "p99", Unit: "ms", LowerIsBetter: true,
		BaselineN: 100, CandidateN: 100, BaselineValue: 50, CandidateValue: 49.9, DeltaAbs: -0.1, DeltaPct: -0.2,
		Confidence: 0.9875, PValue: 0.5, PDelta: -1, Verdict: VerdictInsufficient, NoInterval: true,
	}}}}
	var tb bytes.Buffer
	if err := WriteComparisonTable(&tb, f.Comparison.Rows); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tb.String(), "[") || !strings.Contains(tb.String(), " - ") {
		t.Errorf("table shows an interval:\n%s", tb.String())
	}
	var cb bytes.Buffer
	if err := WriteComparisonCSV(&cb, f); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&cb).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, col := range []string{"ci_low", "ci_high", "ci_low_pct", "ci_high_pct", "candidate_ci_low", "candidate_ci_high"} {
		if v := rows[1][slices.Index(rows[0], col)]; v != "" {
			t.Errorf("comparison.csv %s = %q, want empty", col, v)
		}
	}
	var hb bytes.Buffer
	if err := WriteHTML(&hb, f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hb.String(), "<td>-</td><td>0.5</td>") {
		t.Error("report.html shows an interval for an insufficient row")
	}
}

// TestLabelsPerBenchmark: labels that differ by benchmark are taken from
// each benchmark (falling back to the file's) in benchmarks.csv,
// comparison.csv, the console table and the HTML; shared ones are the
// table's footer.
func TestLabelsPerBenchmark(t *testing.T) {
	f := &File{Labels: map[string]string{"team": "x", "gpu": "L4"}, Benchmarks: []Benchmark{
		{Name: "a", Labels: map[string]string{"gpu": "A100"}},
		{Name: "b", Labels: map[string]string{"gpu": "H100", "team": "x"}},
		{Name: "c"},
	}, Comparison: &Comparison{Rows: []ComparisonRow{{Baseline: "a", Candidate: "b", Metric: "error_rate", Stat: "value", PDelta: -1}}}}
	var b bytes.Buffer
	if err := WriteCSV(&b, f); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	gpu, team := slices.Index(rows[0], "label_gpu"), slices.Index(rows[0], "label_team")
	var got []string
	for _, r := range rows[1:] {
		got = append(got, r[gpu]+"/"+r[team])
	}
	if !slices.Equal(got, []string{"A100/x", "H100/x", "L4/x"}) {
		t.Errorf("benchmarks.csv labels %v", got)
	}
	b.Reset()
	if err := WriteComparisonCSV(&b, f); err != nil {
		t.Fatal(err)
	}
	rows, _ = csv.NewReader(&b).ReadAll()
	if r := rows[1]; r[slices.Index(rows[0], "label_gpu")] != "H100" || r[slices.Index(rows[0], "baseline_label_gpu")] != "A100" {
		t.Errorf("comparison.csv: %v / %v", rows[0], r)
	}
	b.Reset()
	if err := WriteTable(&b, f); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.HasPrefix(strings.TrimSpace(lines[1]), "gpu") || strings.Fields(lines[1])[1] != "A100" ||
		strings.Fields(lines[1])[3] != "L4" || strings.Contains(b.String(), "team ") || !strings.Contains(b.String(), "labels: gpu=L4 team=x") {
		t.Errorf("table:\n%s", b.String())
	}
	b.Reset()
	if err := WriteHTML(&b, f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `<span class="label">gpu=H100</span>`) || strings.Contains(b.String(), `<span class="label">team=x</span>`) {
		t.Error("report.html does not label the benchmarks by what tells them apart")
	}
}
