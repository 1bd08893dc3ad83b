package slo

import (
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/stats"
)

// Result is one term's verdict.
type Result struct {
	Term
	// ValueMs is the statistic measured: 0 when Count is 0, +Inf when it
	// falls on a failed request (written as null in JSON).
	ValueMs float64 `json:"value_ms"`
	Count   int     `json:"count"` // requests in the statistic, Failed included
	// Failed is how many of them failed, timed out or were cancelled by the
	// drain: each counts as a violation, at +Inf.
	Failed int  `json:"failed"`
	Pass   bool `json:"pass"` // false also when Count is 0
}

// resultJSON is Result with ValueMs as a pointer, nil for +Inf (JSON has
// no infinity).
type resultJSON struct {
	plainResult
	ValueMs *float64 `json:"value_ms"`
}

type plainResult Result

// MarshalJSON writes an infinite value as null.
func (r Result) MarshalJSON() ([]byte, error) {
	j := resultJSON{plainResult: plainResult(r)}
	if !math.IsInf(r.ValueMs, 0) && !math.IsNaN(r.ValueMs) {
		v := r.ValueMs
		j.ValueMs = &v
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads a null value back as +Inf when the term had data.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j resultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Result(j.plainResult)
	switch {
	case j.ValueMs != nil:
		r.ValueMs = *j.ValueMs
	case r.Count > 0:
		r.ValueMs = math.Inf(1)
	default:
		r.ValueMs = 0
	}
	return nil
}

// Origins of latency (Spec.FromIntended, Report.From).
const (
	FromSent     = "sent"
	FromIntended = "intended"
)

// Report is a benchmark's verdict against a spec, written to
// benchmarks.json as "slo". Attainment and goodput come from
// stats.Metrics.Goodput, whose per-request thresholds are PerRequest().
type Report struct {
	Spec  string   `json:"spec"`
	From  string   `json:"from"` // sent or intended: where ttft, tpot and e2e are measured from
	Pass  bool     `json:"pass"` // every term passed
	Terms []Result `json:"terms"`
}

// PerRequest is the spec as per-request thresholds, for stats.Options.SLO:
// each metric's smallest threshold. Strict "<" is treated as "<=" there.
func (s *Spec) PerRequest() *stats.SLO {
	out := &stats.SLO{FromIntended: s.FromIntended}
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

// Evaluate checks results against the spec over the requests outside
// warmup and cooldown, as in stats. Latencies are measured from the actual
// send, or from the intended send when s.FromIntended (so that a client
// that fell behind its schedule cannot hide the delay): ttft = first token
// − origin; itl = (last token − first token)/(output tokens − 1), streamed
// requests with two or more tokens; tpot = (last token − origin)/output
// tokens; e2e = end − origin. A request that failed, timed out or was
// cancelled by the drain violates every term: it enters every statistic
// at +Inf, so a rate at which most requests fail cannot pass on the speed
// of the survivors. Percentiles are exact, nearest rank (the smallest
// value with at least p% of the requests at or below it).
func (s *Spec) Evaluate(results []engine.Result) Report {
	values := map[string][]float64{}
	failed := 0
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	for i := range results {
		r := &results[i]
		if r.Phase != "" { // warmup and cooldown are left out of every metric
			continue
		}
		if !r.OK() {
			failed++
			for _, m := range []string{TTFT, ITL, TPOT, E2E} {
				values[m] = append(values[m], math.Inf(1))
			}
			continue
		}
		from := r.Sent
		if s.FromIntended {
			from = r.Intended
		}
		values[E2E] = append(values[E2E], ms(max(r.End, r.Sent)-from))
		if r.FirstToken <= 0 {
			continue
		}
		first, last := r.FirstToken, max(r.LastToken, r.FirstToken)
		values[TTFT] = append(values[TTFT], ms(first-from))
		if n := r.OutputTokens; n >= 1 {
			values[TPOT] = append(values[TPOT], ms(last-from)/float64(n))
			if r.Stream && n >= 2 {
				values[ITL] = append(values[ITL], ms(last-first)/float64(n-1))
			}
		}
	}
	for _, v := range values {
		slices.Sort(v)
	}
	rep := Report{Spec: s.String(), From: FromSent, Pass: true}
	if s.FromIntended {
		rep.From = FromIntended
	}
	for _, t := range s.Terms {
		v := values[t.Metric]
		res := Result{Term: t, Count: len(v), Failed: failed}
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
	return sorted[stats.NearestRank(t.Percentile, int64(len(sorted)))-1] // the same rank as the metrics

}
