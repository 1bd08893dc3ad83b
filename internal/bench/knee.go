package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
)

// The knee profile (issue 14, after GuideLLM 0.8's): a concurrency sweep
// that finds where output throughput stops rising with concurrency — the
// point past which more requests in flight only queue — and refines
// around it once.
//
// Detection rule. The points are (concurrency c, output tokens per second
// y / the highest y measured). For every breakpoint k that leaves at least
// two points on each side, an ordinary least-squares line is fitted to
// the points up to and including k and another to those from k on; the k
// with the least total squared error is the candidate. It is a knee when
// all of these hold:
//
//   - at least KneeMinPoints points were measured;
//   - the tail is flat: its slope is at most KneeMaxTailRatio of the rising
//     slope (and the rising slope is positive);
//   - two segments explain the curve: their squared error is at most
//     1 − KneeMinFitImprovement of one line's;
//   - the breakpoint is near the top: its throughput is at least
//     KneeMinThroughput of the peak.
//
// The knee is where the two lines cross (clamped between the breakpoint's
// neighbours); the saturation concurrency is the first measured one at or
// above it. Refinement then measures up to KneePointsEachSide unmeasured
// integer concurrencies on each side of the knee, between its measured
// neighbours, and the rule is applied again to every point.
const (
	KneeMinPoints         = 5
	KneeMaxTailRatio      = 0.25
	KneeMinFitImprovement = 0.5
	KneeMinThroughput     = 0.85
	KneePointsEachSide    = 2
)

// DefaultKneeStreams are the initial sweep's concurrencies.
var DefaultKneeStreams = []int{1, 2, 4, 8, 16, 32}

// Knee is a knee sweep's settings.
type Knee struct {
	// Streams are the initial concurrencies, ascending.
	Streams []int
	// Refine measures around a detected knee once.
	Refine bool
}

// Validate checks the settings.
func (k Knee) Validate() error {
	if len(k.Streams) < KneeMinPoints {
		return &FieldError{Field: "KneeStreams", Value: fmt.Sprint(k.Streams), Err: fmt.Errorf("want at least %d concurrencies", KneeMinPoints)}
	}
	for i, s := range k.Streams {
		if s < 1 || (i > 0 && s <= k.Streams[i-1]) {
			return &FieldError{Field: "KneeStreams", Value: fmt.Sprint(k.Streams), Err: errors.New("want ascending concurrencies of at least 1")}
		}
	}
	return nil
}

// kneePoint is one measured concurrency.
type kneePoint struct {
	c, y float64 // concurrency, output tokens per second
	name string
}

// AnalyzeKnee applies the detection rule to benchmarks of the concurrent
// profile (their config's concurrency and output throughput).
func AnalyzeKnee(bs []report.Benchmark) *report.Knee {
	var pts []kneePoint
	for i := range bs {
		b := &bs[i]
		if b.Profile != engine.ProfileConcurrent || b.Config.Concurrency < 1 {
			continue
		}
		pts = append(pts, kneePoint{c: float64(b.Config.Concurrency), y: b.Metrics.OutputTokensPerSecond, name: b.Name})
	}
	slices.SortFunc(pts, func(a, b kneePoint) int { return int(a.c - b.c) })
	k := &report.Knee{Status: report.KneeNone, Rule: fmt.Sprintf("two-segment fit of output throughput vs concurrency: >= %d points, tail slope <= %.2f x rising, error <= %.0f%% of one line's, breakpoint >= %.0f%% of peak",
		KneeMinPoints, KneeMaxTailRatio, 100*(1-KneeMinFitImprovement), 100*KneeMinThroughput)}
	for _, p := range pts {
		k.Concurrencies = append(k.Concurrencies, int(p.c))
	}
	if len(pts) < KneeMinPoints {
		k.Reason = fmt.Sprintf("%d concurrencies measured; the rule needs %d", len(pts), KneeMinPoints)
		return k
	}
	peak := 0.0
	for _, p := range pts {
		peak = max(peak, p.y)
	}
	if !(peak > 0) {
		k.Reason = "no output throughput measured"
		return k
	}
	xs, ys := make([]float64, len(pts)), make([]float64, len(pts))
	for i, p := range pts {
		xs[i], ys[i] = p.c, p.y/peak
	}
	_, _, one := lineFit(xs, ys)
	best, bestErr := -1, math.Inf(1)
	var bl, ml, br, mr float64
	for b := 1; b <= len(pts)-2; b++ {
		if b+1 < 2 || len(pts)-b < 2 {
			continue
		}
		b0, m0, e0 := lineFit(xs[:b+1], ys[:b+1])
		b1, m1, e1 := lineFit(xs[b:], ys[b:])
		if e := e0 + e1; e < bestErr {
			best, bestErr, bl, ml, br, mr = b, e, b0, m0, b1, m1
		}
	}
	if best < 0 {
		k.Reason = "no breakpoint leaves two points on each side"
		return k
	}
	k.BreakpointConcurrency = xs[best]
	k.PreSlope, k.TailSlope = ml, mr
	if ml > 0 {
		k.SlopeRatio = mr / ml
	}
	if one > 0 {
		k.FitImprovement = 1 - bestErr/one
	}
	k.ThroughputFraction = ys[best]
	switch {
	case !(ml > 0):
		k.Reason = "throughput does not rise with concurrency"
	case k.SlopeRatio > KneeMaxTailRatio:
		k.Reason = fmt.Sprintf("the tail still rises: slope ratio %.2f > %.2f", k.SlopeRatio, KneeMaxTailRatio)
	case k.FitImprovement < KneeMinFitImprovement:
		k.Reason = fmt.Sprintf("two segments explain the curve no better than one: improvement %.2f < %.2f", k.FitImprovement, KneeMinFitImprovement)
	case k.ThroughputFraction < KneeMinThroughput:
		k.Reason = fmt.Sprintf("the breakpoint is at %.0f%% of the peak throughput, below %.0f%%", 100*k.ThroughputFraction, 100*KneeMinThroughput)
	default:
		x := k.BreakpointConcurrency
		if ml != mr {
			x = (br - bl) / (ml - mr)
		}
		lo, hi := xs[best-1], xs[min(best+1, len(xs)-1)]
		x = min(max(x, lo), hi)
		k.Status, k.Concurrency = report.KneeFound, x
		for i, c := range xs {
			if c >= x {
				k.SaturationConcurrency, k.SaturationBenchmark = c, pts[i].name
				break
			}
		}
		k.Reason = fmt.Sprintf("throughput flattens at concurrency %.1f: the tail's slope is %.2f of the rise, two segments cut the error by %.0f%%",
			x, k.SlopeRatio, 100*k.FitImprovement)
	}
	return k
}

// lineFit is the least-squares line through the points: intercept, slope
// and the squared error.
func lineFit(xs, ys []float64) (b, m, sse float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy, sxx, sxy = sx+xs[i], sy+ys[i], sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	if d := n*sxx - sx*sx; d != 0 {
		m = (n*sxy - sx*sy) / d
	}
	b = (sy - m*sx) / n
	for i := range xs {
		r := ys[i] - (b + m*xs[i])
		sse += r * r
	}
	return b, m, sse
}

// refinement are the unmeasured integer concurrencies to add around a
// found knee: up to KneePointsEachSide on each side, between the knee's
// measured neighbours, nearest first.
func refinement(k *report.Knee) []int {
	if k.Status != report.KneeFound {
		return nil
	}
	measured := map[int]bool{}
	lo, hi := 0, math.MaxInt
	for _, c := range k.Concurrencies {
		measured[c] = true
		if float64(c) < k.Concurrency {
			lo = max(lo, c)
		} else if float64(c) > k.Concurrency {
			hi = min(hi, c)
		}
	}
	var out []int
	center := int(math.Round(k.Concurrency))
	below, above := 0, 0
	for d := 0; d < 64 && (below < KneePointsEachSide || above < KneePointsEachSide); d++ {
		for _, c := range []int{center - d, center + d} {
			if c <= lo || c >= hi || c < 1 || measured[c] || slices.Contains(out, c) {
				continue
			}
			if c < center && below < KneePointsEachSide {
				below++
				out = append(out, c)
			} else if c >= center && above < KneePointsEachSide {
				above++
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// RunKnee runs a knee sweep: the concurrent profile at each of the
// settings' concurrencies, bounded by the plan's limits, the rule applied,
// then (Refine) the points around a knee measured and the rule applied
// again to all. It returns the benchmarks and the final analysis.
func (r *Runner) RunKnee(ctx context.Context, k Knee) ([]report.Benchmark, *report.Knee, error) {
	if err := errors.Join(k.Validate(), r.plan.Bounded()); err != nil {
		return nil, nil, err
	}
	var out []report.Benchmark
	run := func(streams []int) error {
		for _, c := range streams {
			if err := ctx.Err(); err != nil {
				return err
			}
			cfg := r.plan.Engine
			cfg.Profile, cfg.Rate, cfg.TimeScale, cfg.Concurrency = engine.ProfileConcurrent, 0, 1, c
			o, err := r.Run(ctx, cfg, "concurrent@"+strconv.Itoa(c), 0, sweepDetector(r.plan.Detector))
			if err == nil {
				err = FailureSummary(o.Run)
			}
			if err != nil {
				return fmt.Errorf("benchmark concurrent@%d: %w", c, err)
			}
			out = append(out, o.Benchmark)
		}
		return nil
	}
	if err := run(k.Streams); err != nil {
		return out, AnalyzeKnee(out), err
	}
	first := AnalyzeKnee(out)
	if !k.Refine {
		return out, first, nil
	}
	more := refinement(first)
	if err := run(more); err != nil {
		return out, AnalyzeKnee(out), err
	}
	final := AnalyzeKnee(out)
	final.Refined = more
	final.Initial = first
	return out, final, nil
}
