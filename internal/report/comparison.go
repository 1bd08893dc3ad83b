package report

import (
	"fmt"
	"math"
	"strings"
)

// ComparisonRow is one line of a comparison table: a statistic of a metric
// of a candidate against the baseline, with its interval and verdict. The
// comparison (internal/compare) produces these; the HTML report and the
// console draw them.
type ComparisonRow struct {
	Baseline  string `json:"baseline"`  // benchmark name
	Candidate string `json:"candidate"` // benchmark name
	Metric    string `json:"metric"`    // e.g. time_to_first_token_ms, error_rate
	Stat      string `json:"stat"`      // p50, p90, p99, mean, value
	// BaselineValue and CandidateValue are the statistic in the metric's unit.
	BaselineValue  float64 `json:"baseline_value"`
	CandidateValue float64 `json:"candidate_value"`
	// DeltaPct is (candidate − baseline) / baseline in percent, and
	// CILowPct..CIHighPct its confidence interval (Confidence, e.g. 0.95).
	DeltaPct   float64 `json:"delta_pct"`
	CILowPct   float64 `json:"ci_low_pct"`
	CIHighPct  float64 `json:"ci_high_pct"`
	Confidence float64 `json:"confidence"`
	// PValue is the rank test's for a shift of the distribution; negative
	// when no test applies (a rate, a single number).
	PValue float64 `json:"p_value"`
	// Verdict is better, worse, no significant difference, or insufficient
	// data (too few samples to tell).
	Verdict string `json:"verdict"`
	// Gate names the --fail-if bound this row breaks, if any.
	Gate string `json:"gate,omitempty"`
}

// Verdicts of a ComparisonRow.
const (
	VerdictBetter       = "better"
	VerdictWorse        = "worse"
	VerdictNoDifference = "no significant difference"
	VerdictInsufficient = "insufficient data"
)

// htmlComparison is the comparison section: a table per candidate.
type htmlComparison struct {
	Title string // "candidate vs baseline"
	Rows  []htmlCompRow
}

type htmlCompRow struct {
	Metric, Stat, Baseline, Candidate, Delta, CI, P, Verdict, VerdictClass, Gate string
}

// comparisonTables groups rows by candidate and formats them.
func comparisonTables(rows []ComparisonRow) []htmlComparison {
	var out []htmlComparison
	at := map[string]int{}
	for _, r := range rows {
		key := r.Candidate + " vs " + r.Baseline
		i, ok := at[key]
		if !ok {
			i = len(out)
			at[key] = i
			out = append(out, htmlComparison{Title: key})
		}
		h := htmlCompRow{
			Metric: r.Metric, Stat: r.Stat,
			Baseline: fmtNum(r.BaselineValue), Candidate: fmtNum(r.CandidateValue),
			Delta: signedPct(r.DeltaPct), CI: "-", P: "-",
			Verdict: r.Verdict, VerdictClass: verdictClass(r.Verdict), Gate: r.Gate,
		}
		if r.CILowPct != 0 || r.CIHighPct != 0 {
			conf := ""
			if r.Confidence > 0 {
				conf = fmt.Sprintf("%.0f%% ", 100*r.Confidence)
			}
			h.CI = conf + "[" + signedPct(r.CILowPct) + ", " + signedPct(r.CIHighPct) + "]"
		}
		if r.PValue >= 0 && !math.IsNaN(r.PValue) {
			h.P = fmt.Sprintf("%.3g", r.PValue)
		}
		out[i].Rows = append(out[i].Rows, h)
	}
	return out
}

func verdictClass(v string) string {
	switch strings.ToLower(v) {
	case VerdictBetter:
		return "pass"
	case VerdictWorse:
		return "fail"
	}
	return "same"
}

// signedPct shows a percentage with its sign, e.g. +12.3%.
func signedPct(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", v)
}

// comparisonRows returns the file's comparison as rows to draw; none when
// the file holds no comparison.
func comparisonRows(f *File) []ComparisonRow {
	return nil
}
