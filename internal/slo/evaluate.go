package slo

import (
	"math"
	"slices"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/stats"
)

// Result is one term's verdict.
type Result struct {
	Term
	ValueMs float64 `json:"value_ms"` // the statistic measured; 0 when Count is 0
	Count   int     `json:"count"`    // requests the metric is defined for
	Pass    bool    `json:"pass"`     // false also when Count is 0
}

// Report is a benchmark's verdict against a spec, written to
// benchmarks.json as "slo". Attainment and goodput come from
// stats.Metrics.Goodput, whose per-request thresholds are PerRequest().
type Report struct {
	Spec  string   `json:"spec"`
	Pass  bool     `json:"pass"` // every term passed
	Terms []Result `json:"terms"`
}

// PerRequest is the spec as per-request thresholds, for stats.Options.SLO:
// each metric's smallest threshold. Strict "<" is treated as "<=" there.
func (s *Spec) PerRequest() *stats.SLO {
	out := &stats.SLO{}
	set := func(p *float64, v float64) {
		if *p == 0 || v < *p {
			*p = v
		}
	}
	for _, t := range s.Terms {
		switch t.Metric {
		case TTFT:
			set(&out.TTFTMs, t.ThresholdMs)
		case ITL:
			set(&out.ITLMs, t.ThresholdMs)
		case TPOT:
			set(&out.TPOTMs, t.ThresholdMs)
		case E2E:
			set(&out.E2EMs, t.ThresholdMs)
		}
	}
	return out
}

// Evaluate checks results against the spec. Metrics are measured from the
// actual send over successful requests outside warmup and cooldown, as in
// stats: ttft = first token −
// sent; itl = (last token − first token)/(output tokens − 1), streamed
// requests with two or more tokens; tpot = (last token − sent)/output
// tokens; e2e = end − sent. Percentiles are exact, nearest rank (the
// smallest value with at least p% of the requests at or below it).
func (s *Spec) Evaluate(results []engine.Result) Report {
	values := map[string][]float64{}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for i := range results {
		r := &results[i]
		if !r.OK() || r.Phase != "" { // failures, and warmup/cooldown (left out of every metric)
			continue
		}
		values[E2E] = append(values[E2E], ms(max(r.End, r.Sent)-r.Sent))
		if r.FirstToken <= 0 {
			continue
		}
		first, last := r.FirstToken, max(r.LastToken, r.FirstToken)
		values[TTFT] = append(values[TTFT], ms(first-r.Sent))
		if n := r.OutputTokens; n >= 1 {
			values[TPOT] = append(values[TPOT], ms(last-r.Sent)/float64(n))
			if r.Stream && n >= 2 {
				values[ITL] = append(values[ITL], ms(last-first)/float64(n-1))
			}
		}
	}
	for _, v := range values {
		slices.Sort(v)
	}
	rep := Report{Spec: s.String(), Pass: true}
	for _, t := range s.Terms {
		v := values[t.Metric]
		res := Result{Term: t, Count: len(v)}
		if len(v) > 0 {
			res.ValueMs = statistic(v, t)
			res.Pass = res.ValueMs <= t.ThresholdMs && !(t.Strict && res.ValueMs == t.ThresholdMs)
		}
		rep.Pass = rep.Pass && res.Pass
		rep.Terms = append(rep.Terms, res)
	}
	return rep
}

// statistic is the term's statistic of sorted values (not empty).
func statistic(sorted []float64, t Term) float64 {
	if t.Mean {
		var sum float64
		for _, x := range sorted {
			sum += x
		}
		return sum / float64(len(sorted))
	}
	rank := int(math.Ceil(t.Percentile / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
