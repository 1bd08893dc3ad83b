package compare

import (
	"slices"

	"github.com/reprise-llm/reprise/internal/report"
)

// Headline is the overall verdict on candidate from the comparison rows of
// its metrics (Compare's output; other candidates' rows are ignored).
//
// Each metric is a family of tests — its statistics' deltas, each with a
// two-sided p-value (ComparisonRow.PDelta); rows with insufficient data
// are not tested. A family's p-value is the Bonferroni-adjusted smallest of
// its own, min(1, k·min pᵢ) for k tested statistics, so it is valid however
// the statistics of one metric depend on each other. Across the m families,
// Holm's step-down procedure (Holm 1979, "A simple sequentially rejective
// multiple test procedure", Scand. J. Statist. 6) tests the ordered
// p₍₁₎ ≤ … ≤ p₍ₘ₎ against α/m, α/(m−1), …, stopping at the first that is
// not below its threshold, where α = 1 − confidence. The chance that
// identical deployments show any difference at all is then at most α,
// whatever the correlation between metrics (TTFT and request latency move
// together), and Holm rejects at least what plain Bonferroni does.
//
// A rejected family counts as worse or better by the sign of the delta of
// its smallest-p statistic and the metric's direction. The verdict is
// regressed (only worse), improved (only better), mixed (both), no
// significant difference (none), or insufficient data (no family tested).
func Headline(rows []report.ComparisonRow, candidate string, confidence float64) report.Headline {
	if confidence == 0 {
		confidence = DefaultConfidence
	}
	type family struct {
		metric string
		p      float64
		worse  bool
	}
	var fams []family
	at := map[string]int{}
	tested := map[string]int{}
	for i := range rows {
		r := &rows[i]
		if r.Candidate != candidate || r.Verdict == report.VerdictInsufficient || r.PDelta < 0 {
			continue
		}
		tested[r.Metric]++
		j, ok := at[r.Metric]
		if !ok {
			j = len(fams)
			at[r.Metric] = j
			fams = append(fams, family{metric: r.Metric, p: 2})
		}
		if r.PDelta < fams[j].p {
			fams[j].p = r.PDelta
			fams[j].worse = (r.DeltaAbs > 0) == r.LowerIsBetter
		}
	}
	h := report.Headline{Candidate: candidate, Families: len(fams)}
	if len(fams) == 0 {
		h.Verdict = report.HeadlineInsufficient
		return h
	}
	for i := range fams {
		fams[i].p = min(1, float64(tested[fams[i].metric])*fams[i].p)
	}
	// Stable, so equal p-values keep the rows' metric order.
	slices.SortStableFunc(fams, func(a, b family) int {
		switch {
		case a.p < b.p:
			return -1
		case a.p > b.p:
			return 1
		}
		return 0
	})
	alpha := 1 - confidence
	for i, f := range fams {
		if f.p > alpha/float64(len(fams)-i) {
			break
		}
		if f.worse {
			h.Worse = append(h.Worse, f.metric)
		} else {
			h.Better = append(h.Better, f.metric)
		}
	}
	switch {
	case len(h.Worse) > 0 && len(h.Better) > 0:
		h.Verdict = report.HeadlineMixed
	case len(h.Worse) > 0:
		h.Verdict = report.HeadlineRegressed
	case len(h.Better) > 0:
		h.Verdict = report.HeadlineImproved
	default:
		h.Verdict = report.HeadlineNoDifference
	}
	return h
}
