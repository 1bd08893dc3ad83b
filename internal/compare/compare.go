// Package compare decides whether a candidate deployment is better, worse
// or indistinguishable from a baseline, from the per-request observations
// of one benchmark of each. It is pure statistics: no I/O, seeded, and
// fast enough for 100,000 requests a side.
//
// For every latency metric (TTFT, inter-token and inter-chunk latency,
// TPOT, NTPOT, request latency) and statistic (p50, p90, p99, mean) it
// reports the candidate − baseline delta, absolute and relative, with a
// percentile-bootstrap confidence interval, the Mann–Whitney rank test's
// p-value for a shift of the whole distribution, and a verdict. Throughput
// and goodput rates get a bootstrap interval over requests; the error rate
// and SLO attainment, as proportions, Newcombe's score interval. docs/compare.md
// explains every choice.
package compare

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/stats"
)

// Options tunes Compare. The zero value means the defaults.
type Options struct {
	// Confidence is the family-wise confidence level per metric (default
	// 0.95): the intervals of a metric's statistics hold simultaneously at
	// this level (Bonferroni: each of k statistics at 1 − (1−Confidence)/k),
	// so identical targets show a spurious difference on a metric at most
	// 1 − Confidence of the time.
	Confidence float64
	// Resamples is the number of bootstrap replicates (default 2000).
	Resamples int
	// Seed seeds the bootstrap; equal inputs and seeds give equal results.
	Seed uint64
	// SLO enables the goodput rows: requests that met these thresholds.
	SLO *stats.SLO
}

// Defaults of Options.
const (
	DefaultConfidence = 0.95
	DefaultResamples  = 2000
	DefaultSeed       = 1
)

func (o Options) withDefaults() Options {
	if o.Confidence == 0 {
		o.Confidence = DefaultConfidence
	}
	if o.Resamples == 0 {
		o.Resamples = DefaultResamples
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	return o
}

// Validate reports every invalid option.
func (o *Options) Validate() error {
	var errs []error
	if o.Confidence != 0 && (math.IsNaN(o.Confidence) || o.Confidence < 0.5 || o.Confidence >= 1) {
		errs = append(errs, fmt.Errorf("confidence %v: want a level in [0.5, 1), e.g. 0.95", o.Confidence))
	}
	if o.Resamples != 0 && (o.Resamples < 100 || o.Resamples > 1_000_000) {
		errs = append(errs, fmt.Errorf("resamples %d: want 100 … 1000000", o.Resamples))
	}
	if o.SLO != nil {
		if err := o.SLO.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Side is one benchmark as the comparison sees it.
type Side struct {
	Name     string
	Requests []report.RequestRecord
	// WindowS is the benchmark window in seconds (stats.Metrics.WindowS,
	// summed over repetitions); rates divide by it. 0 omits the rate rows.
	WindowS float64
	// RunLengths are the lengths of the consecutive runs (repetitions)
	// Requests holds, each timed from its own origin; nil is one run.
	RunLengths []int
}

// Minimum samples per side for a verdict other than "insufficient data".
// A percentile needs at least MinTailSamples observations expected beyond
// it on each side (so the p99 of 100 requests, which is just their largest
// value, is never called), and every statistic needs MinSamples.
const (
	MinSamples     = 20
	MinTailSamples = 3
)

// MinN is the smallest sample size per side for which stat gets a verdict:
// max(MinSamples, ⌈MinTailSamples/(1−q)⌉) for a q-percentile — 20 for p50
// and the mean, 30 for p90, 300 for p99.
func MinN(stat string) int {
	q, ok := statQuantile[stat]
	if !ok {
		return MinSamples
	}
	return max(MinSamples, int(math.Ceil(MinTailSamples/(1-q)-1e-9)))
}

// Compare compares candidate with baseline and returns one row per metric
// and statistic. Rows for metrics neither side has samples of are left out.
func Compare(baseline, candidate Side, opts Options) ([]report.ComparisonRow, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	c := &comparer{o: o, base: measured(baseline), cand: measured(candidate)}
	var rows []report.ComparisonRow
	for _, m := range latencyMetrics {
		rows = append(rows, c.latency(m)...)
	}
	rows = append(rows, c.rates()...)
	rows = append(rows, c.proportions()...)
	for i := range rows {
		rows[i].Baseline, rows[i].Candidate = baseline.Name, candidate.Name
		finite(&rows[i])
	}
	return rows, nil
}

// measured is s without the requests of a warmup or cooldown phase
// (RequestRecord.Phase), which the benchmark's metrics leave out too, with
// RunLengths counted again.
func measured(s Side) Side {
	out := s
	out.Requests, out.RunLengths = nil, nil
	runs := s.RunLengths
	if len(runs) == 0 {
		runs = []int{len(s.Requests)}
	}
	at := 0
	for _, n := range runs {
		reqs := s.Requests[min(at, len(s.Requests)):min(at+n, len(s.Requests))]
		at += n
		kept := 0
		for i := range reqs {
			if reqs[i].Phase == "" {
				out.Requests = append(out.Requests, reqs[i])
				kept++
			}
		}
		out.RunLengths = append(out.RunLengths, kept)
	}
	return out
}

type comparer struct {
	o          Options
	base, cand Side
}

// rng returns the generator of one (metric, statistic, side): a PCG stream
// keyed by their names, so a row's result does not depend on which other
// rows were computed.
func (c *comparer) rng(metric, stat, side string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(metric + "\x00" + stat + "\x00" + side))
	return rand.New(rand.NewPCG(c.o.Seed, h.Sum64()))
}

func samples(s Side, m latencyMetric) []float64 {
	var xs []float64
	for i := range s.Requests {
		r := &s.Requests[i]
		if classify(r) != outcomeOK {
			continue
		}
		if v, ok := m.value(r); ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
			xs = append(xs, v)
		}
	}
	slices.Sort(xs)
	return xs
}

// latency compares one latency metric's statistics.
func (c *comparer) latency(m latencyMetric) []report.ComparisonRow {
	bx, cx := samples(c.base, m), samples(c.cand, m)
	if len(bx) == 0 && len(cx) == 0 {
		return nil
	}
	p, _ := mannWhitney(cx, bx)
	// Bonferroni over the metric's statistics.
	conf := 1 - (1-c.o.Confidence)/float64(len(latencyStats))
	var rows []report.ComparisonRow
	for _, stat := range latencyStats {
		row := report.ComparisonRow{
			Metric: m.name, Stat: stat, Unit: metricUnit[m.name], LowerIsBetter: true,
			BaselineN: len(bx), CandidateN: len(cx), Confidence: conf, PValue: p, PDelta: -1,
		}
		point := func(xs []float64) float64 {
			if q, ok := statQuantile[stat]; ok {
				return quantileSorted(xs, q)
			}
			mean, _ := meanSD(xs)
			return mean
		}
		boot := func(xs []float64, side string) []float64 {
			r := c.rng(m.name, stat, side)
			if q, ok := statQuantile[stat]; ok {
				return bootQuantile(r, xs, q, c.o.Resamples)
			}
			return bootMean(r, xs, c.o.Resamples)
		}
		if len(bx) == 0 || len(cx) == 0 {
			row.Verdict = report.VerdictInsufficient
			row.Note = fmt.Sprintf("no samples on one side (baseline %d, candidate %d)", len(bx), len(cx))
			if len(bx) > 0 {
				row.BaselineValue = point(bx)
			}
			if len(cx) > 0 {
				row.CandidateValue = point(cx)
			}
			row.RelativeUndefined, row.NoInterval = true, true
			rows = append(rows, row)
			continue
		}
		row.BaselineValue, row.CandidateValue = point(bx), point(cx)
		c.intervals(&row, boot(bx, "baseline"), boot(cx, "candidate"), conf)
		decide(&row, MinN(stat))
		rows = append(rows, row)
	}
	return rows
}

// intervals fills the delta and its intervals from replicates of each
// side's statistic (consumed).
func (c *comparer) intervals(row *report.ComparisonRow, bReps, cReps []float64, conf float64) {
	row.DeltaAbs = row.CandidateValue - row.BaselineValue
	if row.BaselineValue != 0 {
		row.DeltaPct = 100 * row.DeltaAbs / row.BaselineValue
	} else {
		row.RelativeUndefined = true
	}
	abs := make([]float64, len(bReps))
	rel := make([]float64, 0, len(bReps))
	for i := range bReps {
		abs[i] = cReps[i] - bReps[i]
		if bReps[i] != 0 {
			rel = append(rel, 100*(cReps[i]-bReps[i])/bReps[i])
		}
	}
	row.CILowAbs, row.CIHighAbs = percentileCI(abs, conf)
	row.PDelta = bootP(abs)
	// A relative interval needs a baseline replicate that is never 0.
	if !row.RelativeUndefined && len(rel) == len(bReps) {
		row.CILowPct, row.CIHighPct = percentileCI(rel, conf)
	} else {
		row.RelativeUndefined = true
	}
	row.CandidateCILow, row.CandidateCIHigh = percentileCI(cReps, conf)
}

// bootP is the two-sided bootstrap p-value of "delta = 0" from sorted
// replicates of delta: twice the smaller share of replicates on either
// side of 0 (ties count on both), with the +1 correction that keeps it
// above 0 — the smallest α at which the percentile interval at 1 − α would
// still contain 0, up to Monte Carlo error.
func bootP(sorted []float64) float64 {
	b := len(sorted)
	if b == 0 {
		return -1
	}
	le, _ := slices.BinarySearch(sorted, math.SmallestNonzeroFloat64) // replicates ≤ 0
	lt, _ := slices.BinarySearch(sorted, 0)                           // replicates < 0
	ge := b - lt
	return min(1, 2*float64(min(le, ge)+1)/float64(b+1))
}

// decide sets the verdict from the absolute interval: better or worse when
// it excludes 0 (by the metric's direction), insufficient data below minN
// samples on either side, else no significant difference. Below minN the
// interval is withdrawn too: replicates of a handful of values (the p99 of
// 100 requests is their maximum) would show a spuriously exact one.
func decide(row *report.ComparisonRow, minN int) {
	if row.BaselineN < minN || row.CandidateN < minN {
		row.Verdict = report.VerdictInsufficient
		row.Note = fmt.Sprintf("needs at least %d samples a side for %s, has %d and %d", minN, row.Stat, row.BaselineN, row.CandidateN)
		noInterval(row)
		return
	}
	up := row.CILowAbs > 0
	down := row.CIHighAbs < 0
	switch {
	case !up && !down:
		row.Verdict = report.VerdictNoDifference
	case up == row.LowerIsBetter:
		row.Verdict = report.VerdictWorse
	default:
		row.Verdict = report.VerdictBetter
	}
}

// noInterval withdraws a row's intervals and its p-value of the delta.
func noInterval(row *report.ComparisonRow) {
	row.NoInterval, row.PDelta = true, -1
	row.CILowAbs, row.CIHighAbs, row.CILowPct, row.CIHighPct, row.CandidateCILow, row.CandidateCIHigh = 0, 0, 0, 0, 0, 0
}

// BucketS is the width in seconds of the time buckets whose rates give
// a throughput its interval.
const BucketS = 1.0

// rates compares throughput (and goodput, with an SLO). The point values
// are totals over the window, as in the benchmark's metrics. Their
// interval comes from the rates of consecutive one-second buckets
// (requests attributed to the bucket they ended in): a bootstrap of the
// buckets' mean, centred on the window rates. Requests resampled one by
// one would miss the variation that matters (bursts, stalls) and give an
// open-loop run a spuriously exact throughput; with buckets, a run shorter
// than MinSamples seconds is honestly "insufficient data". There is no
// rank test for a rate.
func (c *comparer) rates() []report.ComparisonRow {
	if c.base.WindowS <= 0 || c.cand.WindowS <= 0 {
		return nil
	}
	type rate struct {
		name string
		per  func(r *report.RequestRecord) float64
	}
	list := []rate{
		{RequestsPerSecond, func(r *report.RequestRecord) float64 {
			if classify(r) == outcomeOK {
				return 1
			}
			return 0
		}},
		{OutputTokensPerS, func(r *report.RequestRecord) float64 {
			if classify(r) == outcomeOK {
				return float64(max(r.OutputTokens, 0))
			}
			return 0
		}},
	}
	if s := c.o.SLO; s != nil {
		list = append(list, rate{GoodputPerSecond, func(r *report.RequestRecord) float64 {
			if classify(r) == outcomeOK && meetsSLO(s, r) {
				return 1
			}
			return 0
		}})
	}
	var rows []report.ComparisonRow
	for _, rt := range list {
		total := func(s Side) float64 {
			var t float64
			for i := range s.Requests {
				t += rt.per(&s.Requests[i])
			}
			return t / s.WindowS
		}
		bx, cx := bucketRates(c.base, rt.per), bucketRates(c.cand, rt.per)
		row := report.ComparisonRow{
			Metric: rt.name, Stat: StatValue, Unit: metricUnit[rt.name], LowerIsBetter: false,
			BaselineN: len(bx), CandidateN: len(cx), Confidence: c.o.Confidence, PValue: -1, PDelta: -1,
			BaselineValue: total(c.base), CandidateValue: total(c.cand),
		}
		if len(bx) == 0 || len(cx) == 0 {
			row.DeltaAbs = row.CandidateValue - row.BaselineValue
			row.RelativeUndefined, row.NoInterval = true, true
			row.Verdict = report.VerdictInsufficient
			row.Note = fmt.Sprintf("needs at least %d one-second buckets a side (runs of %d s), has %d and %d", MinSamples, MinSamples, len(bx), len(cx))
			rows = append(rows, row)
			continue
		}
		centre := func(xs, reps []float64, point float64) []float64 {
			m, _ := meanSD(xs)
			for i := range reps {
				reps[i] += point - m
			}
			return reps
		}
		bReps := centre(bx, bootMean(c.rng(rt.name, StatValue, "baseline"), bx, c.o.Resamples), row.BaselineValue)
		cReps := centre(cx, bootMean(c.rng(rt.name, StatValue, "candidate"), cx, c.o.Resamples), row.CandidateValue)
		c.intervals(&row, bReps, cReps, c.o.Confidence)
		decide(&row, MinSamples)
		if row.Verdict == report.VerdictInsufficient {
			row.Note = fmt.Sprintf("needs at least %d one-second buckets a side (runs of %d s), has %d and %d", MinSamples, MinSamples, len(bx), len(cx))
		}
		rows = append(rows, row)
	}
	return rows
}

// bucketRates splits each run of s (RunLengths) into whole BucketS-second
// buckets from its first send and returns every bucket's rate of per,
// attributed at each request's end. A last partial bucket is left out.
func bucketRates(s Side, per func(r *report.RequestRecord) float64) []float64 {
	var out []float64
	runs := s.RunLengths
	if len(runs) == 0 {
		runs = []int{len(s.Requests)}
	}
	at := 0
	for _, n := range runs {
		reqs := s.Requests[at:min(at+n, len(s.Requests))]
		at += n
		if len(reqs) == 0 {
			continue
		}
		first, last := math.Inf(1), math.Inf(-1)
		for i := range reqs {
			first = min(first, reqs[i].SentMs)
			last = max(last, reqs[i].EndMs, reqs[i].SentMs)
		}
		k := int((last - first) / 1000 / BucketS)
		if k <= 0 {
			continue
		}
		sums := make([]float64, k)
		for i := range reqs {
			j := int((max(reqs[i].EndMs, reqs[i].SentMs) - first) / 1000 / BucketS)
			if j >= 0 && j < k {
				sums[j] += per(&reqs[i])
			}
		}
		for _, v := range sums {
			out = append(out, v/BucketS)
		}
	}
	return out
}

// proportions compares the error rate (errored / (successful + errored))
// and, with an SLO, the attainment (met / (successful + errored)) with
// Newcombe's interval for a difference of proportions and the pooled z
// test. Deltas of proportions are in the proportion's unit (0.01 = one
// percentage point); the relative delta has no interval.
func (c *comparer) proportions() []report.ComparisonRow {
	count := func(s Side, hit func(r *report.RequestRecord, o outcome) bool) (x, n float64) {
		for i := range s.Requests {
			r := &s.Requests[i]
			o := classify(r)
			if o == outcomeCancelled {
				continue
			}
			n++
			if hit(r, o) {
				x++
			}
		}
		return x, n
	}
	type prop struct {
		name        string
		lowerBetter bool
		hit         func(r *report.RequestRecord, o outcome) bool
	}
	list := []prop{{ErrorRate, true, func(_ *report.RequestRecord, o outcome) bool { return o == outcomeErrored }}}
	if s := c.o.SLO; s != nil {
		list = append(list, prop{GoodputAttainment, false, func(r *report.RequestRecord, o outcome) bool { return o == outcomeOK && meetsSLO(s, r) }})
	}
	z := normalQuantile(1 - (1-c.o.Confidence)/2)
	var rows []report.ComparisonRow
	for _, pr := range list {
		bx, bn := count(c.base, pr.hit)
		cx, cn := count(c.cand, pr.hit)
		row := report.ComparisonRow{
			Metric: pr.name, Stat: StatValue, Unit: metricUnit[pr.name], LowerIsBetter: pr.lowerBetter,
			BaselineN: int(bn), CandidateN: int(cn), Confidence: c.o.Confidence, RelativeUndefined: true, PDelta: -1,
		}
		if bn == 0 || cn == 0 {
			row.Verdict, row.PValue, row.NoInterval = report.VerdictInsufficient, -1, true
			row.Note = "no completed requests on one side"
			rows = append(rows, row)
			continue
		}
		row.BaselineValue, row.CandidateValue = bx/bn, cx/cn
		row.DeltaAbs = row.CandidateValue - row.BaselineValue
		if row.BaselineValue != 0 {
			row.DeltaPct = 100 * row.DeltaAbs / row.BaselineValue
		}
		row.CILowAbs, row.CIHighAbs = newcombe(cx, cn, bx, bn, z)
		row.CandidateCILow, row.CandidateCIHigh = wilson(cx, cn, z)
		row.PValue = twoProportionP(cx, cn, bx, bn)
		row.PDelta = row.PValue
		decide(&row, MinSamples)
		rows = append(rows, row)
	}
	return rows
}

// finite replaces NaN and ±Inf (which JSON cannot hold) by 0.
func finite(r *report.ComparisonRow) {
	for _, p := range []*float64{&r.BaselineValue, &r.CandidateValue, &r.DeltaAbs, &r.DeltaPct, &r.CILowAbs, &r.CIHighAbs,
		&r.CILowPct, &r.CIHighPct, &r.CandidateCILow, &r.CandidateCIHigh} {
		if math.IsNaN(*p) || math.IsInf(*p, 0) {
			*p = 0
		}
	}
	if math.IsNaN(r.PValue) || math.IsInf(r.PValue, 0) {
		r.PValue = -1
	}
	if math.IsNaN(r.PDelta) || math.IsInf(r.PDelta, 0) {
		r.PDelta = -1
	}
}
