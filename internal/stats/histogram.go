package stats

import (
	"math"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// HDR geometry. Latencies are stored in microseconds from 1 µs to one hour
// with 3 significant digits, so every reported percentile is within 0.1% of
// a recorded value; token counts are stored as themselves up to ten million.
const (
	sigFigs       = 3
	latencyHighUS = int64(time.Hour / time.Microsecond)
	countHigh     = 10_000_000
)

// ExactLimit is how many values a Histogram keeps exactly: up to this
// count its percentiles are exact order statistics (the same values
// internal/slo computes from the results); beyond it they come from the
// HDR histogram, within 0.1%, at the same rank. 512 KiB per metric at most
// (1 MiB for a token-weighted one, whose entries carry their weight). A
// weighted value is one entry whatever its weight: a token-weighted metric
// keeps one entry per request, not one per token.
const ExactLimit = 1 << 16

// Distribution summarises one metric. Latencies are in milliseconds, token
// counts in tokens. Mean, Min, Max and StdDev (population) are exact.
// Median and the percentiles are nearest rank: the k-th smallest of n
// values, k = ⌈p/100 · n⌉ (at least 1), as internal/slo and docs/metrics.md
// define them. Up to ExactLimit values they are exact; beyond, they come
// from the HDR histogram at the same rank, reported as the highest value
// equivalent to the ranked one, clamped to [Min, Max] (within 0.1% of the
// true order statistic). An empty distribution is all zeros.
type Distribution struct {
	Mean   float64 `json:"mean"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	StdDev float64 `json:"std_dev"`
	Count  int64   `json:"count"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	P95    float64 `json:"p95"`
	P99    float64 `json:"p99"`
	P999   float64 `json:"p999"`
}

// CDF is a compact empirical distribution: V[i] is the value at quantile
// Q[i] (Q in [0, 1], ascending; Q=0 is the minimum, Q=1 the maximum). It is
// what the HTML report draws, so a report can be re-rendered from the JSON.
type CDF struct {
	Q []float64 `json:"q"`
	V []float64 `json:"v"`
}

// CDFQuantiles are the quantiles stored for every CDF: every percent, plus
// 99.5%, 99.9% and the maximum.
var CDFQuantiles = func() []float64 {
	q := make([]float64, 0, 103)
	for i := 0; i <= 99; i++ {
		q = append(q, float64(i)/100)
	}
	return append(q, 0.995, 0.999, 1)
}()

// Histogram records non-negative values of one metric: an HDR histogram
// (sparse, so an idle per-worker copy costs little) for quantiles, and an
// exact running count, mean, variance (Welford), minimum and maximum.
// Values may carry an integer weight (RecordWeighted): a value of weight w
// counts as w equal values in every figure (count, mean, percentiles), as
// GuideLLM's token-weighted distributions count a request once per token,
// without storing it w times. It is not safe for concurrent use; give each
// worker its own and Merge.
type Histogram struct {
	scale float64 // stored units per reported unit (1000 µs per ms; 1 for tokens)
	high  int64   // highest trackable stored value
	h     *hdrhistogram.PackedHistogram

	n        int64   // values recorded, weights summed
	mean, m2 float64 // exact, reported units
	min, max float64

	// exact holds every recorded value (reported units) while there are
	// at most ExactLimit; inexact is set, and exact dropped, beyond.
	// weights[i] is exact[i]'s weight; nil while every weight is 1.
	exact   []float64
	weights []int64
	sorted  bool // exact is in ascending order
	inexact bool
	// budget, when set, is shared by the histograms of one metric that will
	// be merged (stats.Online's shards): the exact values they hold
	// together stay within ExactLimit, so the memory does not grow with
	// the number of shards, and the one whose value passes the limit drops
	// its own (the merge is then inexact, as one histogram would be).
	budget *atomic.Int64
}

// NewLatencyHistogram returns a Histogram for durations, reported in
// milliseconds.
func NewLatencyHistogram() *Histogram {
	return &Histogram{scale: 1000, high: latencyHighUS}
}

// NewCountHistogram returns a Histogram for token counts.
func NewCountHistogram() *Histogram {
	return &Histogram{scale: 1, high: countHigh}
}

// NewFractionHistogram returns a Histogram for fractional counts (tokens
// per chunk), stored in thousandths so its HDR quantiles keep three
// decimals.
func NewFractionHistogram() *Histogram {
	return &Histogram{scale: 1000, high: countHigh * 1000}
}

// RecordDuration records d in milliseconds.
func (h *Histogram) RecordDuration(d time.Duration) {
	h.Record(float64(d) / float64(time.Millisecond))
}

// RecordDurationWeighted records d in milliseconds with weight w.
func (h *Histogram) RecordDurationWeighted(d time.Duration, w int64) {
	h.RecordWeighted(float64(d)/float64(time.Millisecond), w)
}

// Record records v, in the reported unit (ms or tokens). Negative values
// (clock skew, a send a few µs ahead of schedule) are recorded as 0; NaN is
// ignored; values past the HDR range (one hour, ten million tokens) count at
// the top of the range for quantiles but exactly for mean, min and max.
func (h *Histogram) Record(v float64) { h.RecordWeighted(v, 1) }

// RecordWeighted records v as w equal values (w ≥ 1; a weight of 0 or less
// records nothing, as GuideLLM drops zero-weight values). The mean is then
// Σ wᵢvᵢ / Σ wᵢ, the count Σ wᵢ, and a percentile the smallest value whose
// cumulative weight reaches its nearest rank.
func (h *Histogram) RecordWeighted(v float64, w int64) {
	if math.IsNaN(v) || math.IsInf(v, 0) || w <= 0 {
		return
	}
	v = max(v, 0)
	if h.h == nil {
		h.h = hdrhistogram.NewPacked(1, h.high, sigFigs)
	}
	stored := min(int64(math.Round(v*h.scale)), h.high)
	_ = h.h.RecordValues(stored, w) // in range by construction
	if !h.inexact {
		if h.withinLimit() {
			if w != 1 && h.weights == nil {
				h.weights = ones(len(h.exact), len(h.exact)+1)
			}
			h.exact = append(h.exact, v)
			if h.weights != nil {
				h.weights = append(h.weights, w)
			}
			h.sorted = false
		} else {
			h.exact, h.weights, h.inexact = nil, nil, true
		}
	}
	if h.n == 0 {
		h.min, h.max = v, v
	} else {
		h.min, h.max = min(h.min, v), max(h.max, v)
	}
	// West's weighted form of Welford's update: the same running mean and
	// sum of squared deviations as w single updates by v.
	h.n += w
	d := v - h.mean
	h.mean += d * float64(w) / float64(h.n)
	h.m2 += float64(w) * d * (v - h.mean)
}

// ones is n weights of 1, with room for c.
func ones(n, c int) []int64 {
	out := make([]int64, n, c)
	for i := range out {
		out[i] = 1
	}
	return out
}

// withinLimit reports whether one more value may be kept exactly, taking
// it from the shared budget when there is one.
func (h *Histogram) withinLimit() bool {
	if h.budget != nil {
		return h.budget.Add(1) <= ExactLimit
	}
	return len(h.exact) < ExactLimit
}

// Merge adds o's values to h. Both must come from the same constructor.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.h == nil {
		h.h = hdrhistogram.NewPacked(1, h.high, sigFigs)
	}
	h.h.Merge(o.h)
	if !h.inexact && !o.inexact && len(h.exact)+len(o.exact) <= ExactLimit {
		if h.weights != nil || o.weights != nil {
			if h.weights == nil {
				h.weights = ones(len(h.exact), len(h.exact)+len(o.exact))
			}
			if o.weights != nil {
				h.weights = append(h.weights, o.weights...)
			} else {
				h.weights = append(h.weights, ones(len(o.exact), len(o.exact))...)
			}
		}
		h.exact = append(h.exact, o.exact...)
		h.sorted = false
	} else {
		h.exact, h.weights, h.inexact = nil, nil, true
	}
	if h.n == 0 {
		h.n, h.mean, h.m2, h.min, h.max = o.n, o.mean, o.m2, o.min, o.max
		return
	}
	// Chan et al.'s pairwise update of the mean and sum of squared deviations.
	n := h.n + o.n
	d := o.mean - h.mean
	h.mean += d * float64(o.n) / float64(n)
	h.m2 += o.m2 + d*d*float64(h.n)*float64(o.n)/float64(n)
	h.n = n
	h.min, h.max = min(h.min, o.min), max(h.max, o.max)
}

// Count is the number of recorded values, weights summed.
func (h *Histogram) Count() int64 { return h.n }

// NearestRank is the 1-based rank of percentile pct (in percent) among n
// values: ⌈pct/100 · n⌉, at least 1 and at most n (0 when n is 0). The
// value at this rank is the smallest with at least pct % of the values at
// or below it. The product is computed as pct·n/100 and a rounding error
// above an integer (99.9/100 · 10 000 is 9990.000000000002 in floating
// point) is not rounded up: percentiles with a few decimals never put
// pct·n/100 that close above an integer.
func NearestRank(pct float64, n int64) int64 {
	if n <= 0 {
		return 0
	}
	x := pct * float64(n) / 100
	k := int64(math.Ceil(x - 1e-9*max(x, 1)))
	return min(max(k, 1), n)
}

// percentiles returns the values at pcts (each in percent, 0 to 100) by
// nearest rank, clamped to the exact [min, max]; 0 and 100 are the exact
// extremes.
func (h *Histogram) percentiles(pcts []float64) []float64 {
	out := make([]float64, len(pcts))
	if h.n == 0 {
		return out
	}
	if !h.inexact && h.weights == nil && int64(len(h.exact)) == h.n {
		if !h.sorted {
			slices.Sort(h.exact)
			h.sorted = true
		}
		for i, p := range pcts {
			out[i] = h.exact[NearestRank(p, h.n)-1]
		}
		return out
	}
	if !h.inexact && h.weights != nil {
		if !h.sorted {
			sort.Sort(byValue{h.exact, h.weights})
			h.sorted = true
		}
		// The value of nearest rank k is the first whose cumulative
		// weight reaches k.
		for i, p := range pcts {
			k, cum := NearestRank(p, h.n), int64(0)
			for j, w := range h.weights {
				if cum += w; cum >= k {
					out[i] = h.exact[j]
					break
				}
			}
		}
		return out
	}
	// HDR ranks percentile P at ⌊P/100 · n + 0.5⌋; asking for
	// 100·(k − ¼)/n makes that rank k, the nearest rank.
	query := make([]float64, len(pcts))
	for i, p := range pcts {
		query[i] = 100 * (float64(NearestRank(p, h.n)) - 0.25) / float64(h.n)
	}
	for i, v := range h.h.ValueAtPercentilesSlice(query) {
		switch {
		case pcts[i] <= 0:
			out[i] = h.min
		case pcts[i] >= 100:
			out[i] = h.max
		default:
			out[i] = min(max(float64(v)/h.scale, h.min), h.max)
		}
	}
	return out
}

// byValue sorts exact values with their weights.
type byValue struct {
	v []float64
	w []int64
}

func (b byValue) Len() int           { return len(b.v) }
func (b byValue) Less(i, j int) bool { return b.v[i] < b.v[j] }
func (b byValue) Swap(i, j int) {
	b.v[i], b.v[j] = b.v[j], b.v[i]
	b.w[i], b.w[j] = b.w[j], b.w[i]
}

// Distribution summarises the recorded values.
func (h *Histogram) Distribution() Distribution {
	if h.n == 0 {
		return Distribution{}
	}
	p := h.percentiles([]float64{50, 90, 95, 99, 99.9})
	return Distribution{
		Mean: h.mean, Median: p[0], Min: h.min, Max: h.max,
		StdDev: math.Sqrt(max(h.m2, 0) / float64(h.n)), Count: h.n,
		P50: p[0], P90: p[1], P95: p[2], P99: p[3], P999: p[4],
	}
}

// CDF returns the values at CDFQuantiles, or an empty CDF when nothing was
// recorded.
func (h *Histogram) CDF() CDF {
	if h.n == 0 {
		return CDF{Q: []float64{}, V: []float64{}}
	}
	pcts := make([]float64, len(CDFQuantiles))
	for i, q := range CDFQuantiles {
		pcts[i] = q * 100
	}
	return CDF{Q: append([]float64(nil), CDFQuantiles...), V: h.percentiles(pcts)}
}
