package report

import (
	"fmt"
	"math"
	"strings"
)

// Comparison is the "comparison" section of benchmarks.json written by
// replay compare: every candidate against the baseline, metric by metric,
// and the --fail-if gates. docs/compare.md explains the statistics.
type Comparison struct {
	Baseline string `json:"baseline"` // name of the reference benchmark
	// Mode is how the targets were driven: sequential, parallel, saved
	// (result directories) or captured (production's recorded timings as
	// the baseline).
	Mode        string `json:"mode"`
	Repetitions int    `json:"repetitions,omitempty"` // sequential: rounds, order alternated
	// Confidence is the family-wise level per metric; Resamples and Seed
	// the bootstrap's.
	Confidence float64         `json:"confidence"`
	Resamples  int             `json:"resamples"`
	Seed       uint64          `json:"seed"`
	Rows       []ComparisonRow `json:"rows"`
	Gates      []GateResult    `json:"gates,omitempty"`
}

// GateResult is one --fail-if bound checked against one candidate.
type GateResult struct {
	Gate      string `json:"gate"`      // the term as written, e.g. ttft_p99>+10%
	Candidate string `json:"candidate"` // benchmark name
	// Status is pass, fail (the bound is exceeded with confidence) or
	// undecided (insufficient data for the statistic: neither).
	Status string `json:"status"`
	Detail string `json:"detail"` // the figures the decision rests on
}

// Gate statuses.
const (
	GatePass      = "pass"
	GateFail      = "fail"
	GateUndecided = "undecided"
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
	// Unit of the values and absolute deltas: ms, req/s, tok/s, or
	// fraction (0.01 = one percentage point).
	Unit string `json:"unit"`
	// LowerIsBetter gives the metric's direction (latency, errors: true).
	LowerIsBetter bool `json:"lower_is_better"`
	// BaselineN and CandidateN are the samples behind the statistic.
	BaselineN  int `json:"baseline_n"`
	CandidateN int `json:"candidate_n"`
	// BaselineValue and CandidateValue are the statistic in the metric's unit.
	BaselineValue  float64 `json:"baseline_value"`
	CandidateValue float64 `json:"candidate_value"`
	// DeltaAbs is candidate − baseline in Unit, and CILowAbs..CIHighAbs its
	// confidence interval.
	DeltaAbs  float64 `json:"delta"`
	CILowAbs  float64 `json:"ci_low"`
	CIHighAbs float64 `json:"ci_high"`
	// DeltaPct is (candidate − baseline) / baseline in percent, and
	// CILowPct..CIHighPct its confidence interval (Confidence, e.g. 0.95).
	DeltaPct  float64 `json:"delta_pct"`
	CILowPct  float64 `json:"ci_low_pct"`
	CIHighPct float64 `json:"ci_high_pct"`
	// RelativeUndefined says DeltaPct or its interval does not exist (a
	// baseline of 0, a proportion); the Pct fields are then 0 or partial.
	RelativeUndefined bool `json:"relative_undefined,omitempty"`
	// CandidateCILow..CandidateCIHigh is the interval of the candidate's
	// own statistic (for gates on a level, e.g. ttft_p99>500ms).
	CandidateCILow  float64 `json:"candidate_ci_low"`
	CandidateCIHigh float64 `json:"candidate_ci_high"`
	// Confidence is the level of this row's intervals.
	Confidence float64 `json:"confidence"`
	// PValue is the rank test's for a shift of the distribution; negative
	// when no test applies (a rate, a single number).
	PValue float64 `json:"p_value"`
	// Verdict is better, worse, no significant difference, or insufficient
	// data (too few samples to tell).
	Verdict string `json:"verdict"`
	// Note says why a verdict is insufficient data.
	Note string `json:"note,omitempty"`
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
	Metric, Stat, Baseline, Candidate, Delta, CI, P, Verdict, VerdictClass, Gate, Note string
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
			Baseline: valueText(r.BaselineValue, r.Unit), Candidate: valueText(r.CandidateValue, r.Unit),
			Delta: deltaText(&r), CI: ciText(&r), P: "-",
			Verdict: r.Verdict, VerdictClass: verdictClass(r.Verdict), Gate: r.Gate, Note: r.Note,
		}
		if r.PValue >= 0 && !math.IsNaN(r.PValue) {
			h.P = fmt.Sprintf("%.3g", r.PValue)
		}
		out[i].Rows = append(out[i].Rows, h)
	}
	return out
}

// valueText shows a value in its unit; fractions as percentages.
func valueText(v float64, unit string) string {
	switch unit {
	case "fraction":
		return fmt.Sprintf("%.2f%%", 100*v)
	case "":
		return fmtNum(v)
	}
	return fmtNum(v) + " " + unit
}

// absText shows a signed absolute delta in unit (fractions in points).
func absText(v float64, unit string) string {
	switch unit {
	case "fraction":
		return fmt.Sprintf("%+.2f pp", 100*v)
	case "":
		return fmt.Sprintf("%+.3g", v)
	}
	return fmt.Sprintf("%+.3g %s", v, unit)
}

// deltaText is "+30.2 ms (+25.0%)": the absolute delta, and the relative
// one when it exists.
func deltaText(r *ComparisonRow) string {
	if r.Unit == "" { // rows from before units were recorded
		return signedPct(r.DeltaPct)
	}
	s := absText(r.DeltaAbs, r.Unit)
	if r.BaselineValue != 0 && r.Unit != "fraction" {
		s += " (" + signedPct(r.DeltaPct) + ")"
	}
	return s
}

// ciText is the interval with its level: relative when it exists, else
// absolute; "-" when there is none.
func ciText(r *ComparisonRow) string {
	conf := ""
	if r.Confidence > 0 {
		conf = strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", 100*r.Confidence), "0"), ".") + "% "
	}
	switch {
	case !r.RelativeUndefined && (r.CILowPct != 0 || r.CIHighPct != 0):
		return conf + "[" + signedPct(r.CILowPct) + ", " + signedPct(r.CIHighPct) + "]"
	case r.Unit != "" && (r.CILowAbs != 0 || r.CIHighAbs != 0):
		return conf + "[" + absText(r.CILowAbs, r.Unit) + ", " + absText(r.CIHighAbs, r.Unit) + "]"
	}
	return "-"
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
	if f.Comparison == nil {
		return nil
	}
	return f.Comparison.Rows
}
