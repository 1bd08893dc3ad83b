package compare

import (
	"math"
	"math/rand/v2"
	"slices"

	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/variate"
)

// normalApproxN is the sample size from which the bootstrap distribution of
// a mean is drawn from its normal limit, Normal(mean, sd/√n), instead of by
// resampling (central limit theorem; at n ≥ 2000 the skew a resampled mean
// keeps is small next to the Monte Carlo error of 2000 replicates). The
// normal costs O(1) per replicate instead of O(n): resampling 100k requests
// 2000 times for each of six metrics would take tens of seconds.
const normalApproxN = 2000

// rankOf is the nearest-rank index (1-based) of quantile q in n sorted
// values, the benchmarks' own definition (stats.NearestRank): the smallest
// k with k/n ≥ q. The bootstrap below is exact for it.
func rankOf(q float64, n int) int {
	return int(stats.NearestRank(100*q, int64(n)))
}

// quantileSorted is the nearest-rank q-quantile of sorted xs (non-empty).
func quantileSorted(xs []float64, q float64) float64 {
	return xs[rankOf(q, len(xs))-1]
}

// bootQuantile returns b bootstrap replicates of the nearest-rank
// q-quantile of sorted xs.
//
// A bootstrap resample is x(⌈nU₁⌉) … x(⌈nUₙ⌉) for n independent uniforms
// Uᵢ, and ⌈n·u⌉ is non-decreasing in u, so the resample's k-th order
// statistic is x(⌈n·U₍ₖ₎⌉), where U₍ₖ₎, the k-th order statistic of n
// uniforms, is Beta(k, n−k+1) distributed. One Beta draw therefore gives
// one replicate exactly, whatever n is: no resampling, no sorting.
func bootQuantile(r *rand.Rand, xs []float64, q float64, b int) []float64 {
	n := len(xs)
	k := rankOf(q, n)
	out := make([]float64, b)
	for i := range out {
		u := variate.Beta(r, float64(k), float64(n-k+1))
		j := int(math.Ceil(float64(n) * u))
		out[i] = xs[min(max(j, 1), n)-1]
	}
	return out
}

// bootMean returns b bootstrap replicates of the mean of xs: by
// resampling when len(xs) < normalApproxN, else from the normal limit.
func bootMean(r *rand.Rand, xs []float64, b int) []float64 {
	n := len(xs)
	out := make([]float64, b)
	if n >= normalApproxN {
		m, sd := meanSD(xs)
		se := sd / math.Sqrt(float64(n))
		for i := range out {
			out[i] = m + se*r.NormFloat64()
		}
		return out
	}
	for i := range out {
		var s float64
		for range n {
			s += xs[r.IntN(n)]
		}
		out[i] = s / float64(n)
	}
	return out
}

// meanSD is the mean and the population standard deviation (divisor n,
// the bootstrap's own) of xs.
func meanSD(xs []float64) (mean, sd float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)))
}

// percentileCI is the percentile-bootstrap interval at level conf of the
// replicates (sorted in place): the α/2 and 1−α/2 nearest-rank quantiles.
func percentileCI(reps []float64, conf float64) (lo, hi float64) {
	slices.Sort(reps)
	a := (1 - conf) / 2
	return quantileSorted(reps, a), quantileSorted(reps, 1-a)
}

// normalQuantile is the standard normal quantile function Φ⁻¹(p).
func normalQuantile(p float64) float64 {
	return math.Sqrt2 * math.Erfinv(2*p-1)
}

// normalTwoSided is the two-sided p-value of a standard normal statistic.
func normalTwoSided(z float64) float64 {
	return math.Erfc(math.Abs(z) / math.Sqrt2)
}
