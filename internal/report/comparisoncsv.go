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
// comparison row (docs/compare.md), in order, then the labels of the
// candidate as label_<key> and of the baseline as baseline_label_<key>
// (each benchmark's own, else the file's; File.LabelKeys).
var comparisonCSVHeader = []string{
	"baseline", "candidate", "metric", "stat", "unit", "lower_is_better", "baseline_n", "candidate_n",
	"baseline_value", "candidate_value", "delta", "ci_low", "ci_high", "delta_pct", "ci_low_pct", "ci_high_pct",
	"relative_undefined", "candidate_ci_low", "candidate_ci_high", "confidence", "p_value", "verdict", "note", "gate",
}

// WriteComparisonCSV writes f's comparison as CSV (RFC 4180): a header and
// one row per candidate, metric and statistic. A file without a comparison
// gives the header alone. Empty cells are numbers that do not exist
// (p_value when no test applies, a relative delta of an undefined ratio,
// an interval below the minimum sample).
func WriteComparisonCSV(w io.Writer, f *File) error {
	keys := f.LabelKeys()
	header := append([]string(nil), comparisonCSVHeader...)
	for _, k := range keys {
		header = append(header, "label_"+k)
	}
	for _, k := range keys {
		header = append(header, "baseline_label_"+k)
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
		ci := func(v float64) string {
			if r.NoInterval {
				return ""
			}
			return fmtExact(v)
		}
		cipct := func(v float64) string {
			if r.NoInterval {
				return ""
			}
			return pct(v)
		}
		p := ""
		if r.PValue >= 0 {
			p = fmtExact(r.PValue)
		}
		rec := []string{
			r.Baseline, r.Candidate, r.Metric, r.Stat, r.Unit, strconv.FormatBool(r.LowerIsBetter),
			strconv.Itoa(r.BaselineN), strconv.Itoa(r.CandidateN),
			fmtExact(r.BaselineValue), fmtExact(r.CandidateValue),
			fmtExact(r.DeltaAbs), ci(r.CILowAbs), ci(r.CIHighAbs),
			pct(r.DeltaPct), cipct(r.CILowPct), cipct(r.CIHighPct), strconv.FormatBool(r.RelativeUndefined),
			ci(r.CandidateCILow), ci(r.CandidateCIHigh), fmtExact(r.Confidence), p,
			r.Verdict, r.Note, r.Gate,
		}
		cand, base := f.benchmarkNamed(r.Candidate), f.benchmarkNamed(r.Baseline)
		for _, k := range keys {
			v, _ := f.Label(cand, k)
			rec = append(rec, v)
		}
		for _, k := range keys {
			v, _ := f.Label(base, k)
			rec = append(rec, v)
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

// benchmarkNamed is the benchmark called name; an empty one when none is.
func (f *File) benchmarkNamed(name string) *Benchmark {
	for i := range f.Benchmarks {
		if f.Benchmarks[i].Name == name {
			return &f.Benchmarks[i]
		}
	}
	return &Benchmark{}
}
