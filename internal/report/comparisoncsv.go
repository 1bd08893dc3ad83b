package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// ComparisonCSVFile is the comparison's CSV inside a results directory,
// written next to benchmarks.csv when the file holds a comparison.
const ComparisonCSVFile = "comparison.csv"

// comparisonCSVHeader are comparison.csv's columns: the JSON keys of a
// comparison row (docs/compare.md), in order, then the file's labels as
// label_<key>.
var comparisonCSVHeader = []string{
	"baseline", "candidate", "metric", "stat", "unit", "lower_is_better", "baseline_n", "candidate_n",
	"baseline_value", "candidate_value", "delta", "ci_low", "ci_high", "delta_pct", "ci_low_pct", "ci_high_pct",
	"relative_undefined", "candidate_ci_low", "candidate_ci_high", "confidence", "p_value", "verdict", "note", "gate",
}

// WriteComparisonCSV writes f's comparison as CSV (RFC 4180): a header and
// one row per candidate, metric and statistic. A file without a comparison
// gives the header alone. Empty cells are numbers that do not exist
// (p_value when no test applies, a relative delta of an undefined ratio).
func WriteComparisonCSV(w io.Writer, f *File) error {
	keys := sortedKeys(f.Labels)
	header := append([]string(nil), comparisonCSVHeader...)
	for _, k := range keys {
		header = append(header, "label_"+k)
	}
	cw := csv.NewWriter(w)
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("writing comparison csv: %w", err)
	}
	for _, r := range comparisonRows(f) {
		pct := func(v float64) string {
			if r.RelativeUndefined {
				return ""
			}
			return fmtExact(v)
		}
		p := ""
		if r.PValue >= 0 {
			p = fmtExact(r.PValue)
		}
		rec := []string{
			r.Baseline, r.Candidate, r.Metric, r.Stat, r.Unit, strconv.FormatBool(r.LowerIsBetter),
			strconv.Itoa(r.BaselineN), strconv.Itoa(r.CandidateN),
			fmtExact(r.BaselineValue), fmtExact(r.CandidateValue),
			fmtExact(r.DeltaAbs), fmtExact(r.CILowAbs), fmtExact(r.CIHighAbs),
			pct(r.DeltaPct), pct(r.CILowPct), pct(r.CIHighPct), strconv.FormatBool(r.RelativeUndefined),
			fmtExact(r.CandidateCILow), fmtExact(r.CandidateCIHigh), fmtExact(r.Confidence), p,
			r.Verdict, r.Note, r.Gate,
		}
		for _, k := range keys {
			rec = append(rec, f.Labels[k])
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("writing comparison csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing comparison csv: %w", err)
	}
	return nil
}
