package report

import (
	"encoding/json"
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
	Confidence float64 `json:"confidence"`
	Resamples  int     `json:"resamples"`
	Seed       uint64  `json:"seed"`
	// Headlines are the overall verdict per candidate (docs/compare.md).
	Headlines []Headline      `json:"headlines,omitempty"`
	Rows      []ComparisonRow `json:"rows"`
	Gates     []GateResult    `json:"gates,omitempty"`
	// Notes are what a reader must know to read the comparison (the
	// vantage points of production as captured and of the replayer).
	Notes []string `json:"notes,omitempty"`
}

// Headline is the overall verdict on one candidate: whether any metric
// family (all statistics of one metric) differs from the baseline, with the
// family-wise error rate across families held at the comparison's level by
// Holm's step-down procedure.
type Headline struct {
	Candidate string `json:"candidate"`
	// Verdict is regressed, improved, mixed (some metrics better, some
	// worse), no significant difference, or insufficient data (no metric
	// had enough samples to be tested).
	Verdict string `json:"verdict"`
	// Worse and Better name the metrics that differ significantly after
	// the correction.
	Worse  []string `json:"worse,omitempty"`
	Better []string `json:"better,omitempty"`
	// Families is the number of metric families tested.
	Families int `json:"families"`
}

// Headline verdicts.
const (
	HeadlineRegressed    = "regressed"
	HeadlineImproved     = "improved"
	HeadlineMixed        = "mixed"
	HeadlineNoDifference = "no significant difference"
	HeadlineInsufficient = "insufficient data"
)

// Text is the headline as one line, e.g. "cand: regressed (worse:
// time_to_first_token_ms)".
func (h *Headline) Text() string {
	s := h.Candidate + ": " + h.Verdict
	var parts []string
	if len(h.Worse) > 0 {
		parts = append(parts, "worse: "+strings.Join(h.Worse, ", "))
	}
	if len(h.Better) > 0 {
		parts = append(parts, "better: "+strings.Join(h.Better, ", "))
	}
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, "; ") + ")"
	}
	return s
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
	// PDelta is the two-sided p-value of "delta = 0" that the verdict's
	// interval inverts (bootstrap, or the z test of a proportion); the
	// headline's Holm procedure uses it. Negative when there is none.
	PDelta float64 `json:"p_delta"`
	// NoInterval says the row has too few samples for an interval (its
	// verdict is insufficient data): the six interval fields are written
	// as null and read back as 0.
	NoInterval bool `json:"-"`
}

// comparisonRowJSON is a ComparisonRow as written: the interval fields
// shadow the embedded ones, so they can be null.
type comparisonRowJSON struct {
	plainComparisonRow
	CILowAbs        *float64 `json:"ci_low"`
	CIHighAbs       *float64 `json:"ci_high"`
	CILowPct        *float64 `json:"ci_low_pct"`
	CIHighPct       *float64 `json:"ci_high_pct"`
	CandidateCILow  *float64 `json:"candidate_ci_low"`
	CandidateCIHigh *float64 `json:"candidate_ci_high"`
}

type plainComparisonRow ComparisonRow

func (j *comparisonRowJSON) fields(r *ComparisonRow) []struct {
	p **float64
	v *float64
} {
	return []struct {
		p **float64
		v *float64
	}{{&j.CILowAbs, &r.CILowAbs}, {&j.CIHighAbs, &r.CIHighAbs}, {&j.CILowPct, &r.CILowPct},
		{&j.CIHighPct, &r.CIHighPct}, {&j.CandidateCILow, &r.CandidateCILow}, {&j.CandidateCIHigh, &r.CandidateCIHigh}}
}

// MarshalJSON writes the row, with null intervals when NoInterval.
func (r ComparisonRow) MarshalJSON() ([]byte, error) {
	j := comparisonRowJSON{plainComparisonRow: plainComparisonRow(r)}
	if !r.NoInterval {
		for _, f := range j.fields(&r) {
			*f.p = f.v
		}
	}
	return json.Marshal(&j)
}

// UnmarshalJSON reads a row; null intervals set NoInterval.
func (r *ComparisonRow) UnmarshalJSON(b []byte) error {
	var j comparisonRowJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = ComparisonRow(j.plainComparisonRow)
	null := true
	for _, f := range j.fields(r) {
		if *f.p != nil {
			*f.v, null = **f.p, false
		}
	}
	r.NoInterval = null
	return nil
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
	Title    string // "candidate vs baseline"
	Headline string // the overall verdict, when computed
	Rows     []htmlCompRow
}

type htmlCompRow struct {
	Metric, Stat, Baseline, Candidate, Delta, CI, P, Verdict, VerdictClass, Gate, Note string
}

// comparisonTables groups rows by candidate and formats them.
func comparisonTables(rows []ComparisonRow, heads ...Headline) []htmlComparison {
	var out []htmlComparison
	at := map[string]int{}
	for _, r := range rows {
		key := r.Candidate + " vs " + r.Baseline
		i, ok := at[key]
		if !ok {
			i = len(out)
			at[key] = i
			out = append(out, htmlComparison{Title: key})
			for _, h := range heads {
				if h.Candidate == r.Candidate {
					out[i].Headline = h.Text()
				}
			}
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
	if r.NoInterval {
		return "-"
	}
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
