package stats

import (
	"maps"
	"math"
	"slices"
	"time"
)

// inFlightDistribution summarises the time spent at each concurrency
// level over the window (levels, from inFlight): a time-weighted
// distribution, GuideLLM's request_concurrency. Its mean is the
// time-weighted mean in flight (concurrency_mean), its max the peak
// (concurrency_max), a percentile p the smallest level at or below which the
// run spent at least p % of the window, and its count the number of
// requests (as GuideLLM counts it), not a number of observations. Its CDF
// gives the levels at CDFQuantiles the same way.
func inFlightDistribution(levels map[int64]time.Duration, requests int64) (Distribution, CDF) {
	ls := slices.Sorted(maps.Keys(levels))
	ls = slices.DeleteFunc(ls, func(l int64) bool { return levels[l] <= 0 })
	var total time.Duration
	var sum float64 // level·ns
	for _, l := range ls {
		total += levels[l]
		sum += float64(l) * float64(levels[l])
	}
	if total <= 0 {
		return Distribution{}, CDF{Q: []float64{}, V: []float64{}}
	}
	T := float64(total)
	mean := sum / T
	var ss float64
	for _, l := range ls {
		d := float64(l) - mean
		ss += d * d * float64(levels[l])
	}
	// at is the smallest level whose cumulative time reaches pct % of the
	// window. The product is compared with a relative tolerance, as
	// NearestRank does, so an exact boundary is not pushed past by rounding.
	at := func(pct float64) float64 {
		target := pct / 100 * T
		var cum time.Duration
		for _, l := range ls {
			cum += levels[l]
			if float64(cum) >= target-1e-9*T {
				return float64(l)
			}
		}
		return float64(ls[len(ls)-1])
	}
	d := Distribution{
		Mean: mean, Min: float64(ls[0]), Max: float64(ls[len(ls)-1]),
		StdDev: math.Sqrt(ss / T), Count: requests,
		P50: at(50), P90: at(90), P95: at(95), P99: at(99), P999: at(99.9),
	}
	d.Median = d.P50
	cdf := CDF{Q: append([]float64(nil), CDFQuantiles...), V: make([]float64, len(CDFQuantiles))}
	for i, q := range CDFQuantiles {
		cdf.V[i] = at(100 * q)
	}
	return d, cdf
}
