package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/reprise-llm/reprise/internal/stats"
)

// GuideLLMVersion is the GuideLLM release whose benchmarks.json models (the
// v2 GenerativeBenchmarksReport schema) WriteGuideLLM is validated against.
const GuideLLMVersion = "0.8.1"

// WriteGuideLLM writes f as GuideLLM's benchmarks.json (schema version 2),
// so GuideLLM's tools (guidellm export, its CSV and console outputs) and the
// scripts its users already have can read Reprise results. The mapping is
// docs/results.md's "GuideLLM export": every figure Reprise measured goes
// under GuideLLM's name for the same definition; what Reprise does not
// measure is left empty (a distribution with count 0) or at GuideLLM's
// defaults, never invented. Percentiles GuideLLM wants and Reprise did not
// keep (p0.1, p1, p5, p10, p25, p75 without a CDF) are interpolated between
// the nearest ones it did.
func WriteGuideLLM(w io.Writer, f *File) error {
	for i := range f.Benchmarks {
		if b := &f.Benchmarks[i]; b.Profile == "gamma" { // GuideLLM's strategies are synchronous, concurrent, throughput, constant, poisson, trace
			return fmt.Errorf("benchmark %s: GuideLLM has no gamma (bursty) arrival profile to express it with; export the other benchmarks from a run without it", b.Name)
		}
	}
	doc := guidellmReport(f)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encoding guidellm benchmarks: %w", err)
	}
	return nil
}

// gPercentiles is GuideLLM's Percentiles.
type gPercentiles struct {
	P001 float64 `json:"p001"`
	P01  float64 `json:"p01"`
	P05  float64 `json:"p05"`
	P10  float64 `json:"p10"`
	P25  float64 `json:"p25"`
	P50  float64 `json:"p50"`
	P75  float64 `json:"p75"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
}

// gDist is GuideLLM's DistributionSummary. Reprise computes no confidence
// intervals per distribution, so mean_ci and percentile_cis are null (the
// benchmark config says confidence: null), and no pdf.
type gDist struct {
	Mean          float64      `json:"mean"`
	Median        float64      `json:"median"`
	Mode          float64      `json:"mode"`
	Variance      float64      `json:"variance"`
	StdDev        float64      `json:"std_dev"`
	Min           float64      `json:"min"`
	Max           float64      `json:"max"`
	Count         int64        `json:"count"`
	TotalSum      float64      `json:"total_sum"`
	Percentiles   gPercentiles `json:"percentiles"`
	PDF           any          `json:"pdf"`
	MeanCI        any          `json:"mean_ci"`
	PercentileCIs any          `json:"percentile_cis"`
}

// gStatus is GuideLLM's StatusDistributionSummary.
type gStatus struct {
	Successful gDist `json:"successful"`
	Errored    gDist `json:"errored"`
	Incomplete gDist `json:"incomplete"`
	Total      gDist `json:"total"`
}

// gCounts is GuideLLM's StatusBreakdown[int, int, int, int].
type gCounts struct {
	Successful int64 `json:"successful"`
	Errored    int64 `json:"errored"`
	Incomplete int64 `json:"incomplete"`
	Total      int64 `json:"total"`
}

// quantilePoint is a (quantile, value) pair known exactly.
type quantilePoint struct{ q, v float64 }

// fromDistribution converts a Reprise distribution (scaled by scale, e.g.
// 0.001 for ms → s) with its CDF when there is one. Mode is not measured
// and reported as the median.
func fromDistribution(d stats.Distribution, cdf *stats.CDF, scale float64) gDist {
	if d.Count == 0 {
		return gDist{}
	}
	known := []quantilePoint{{0, d.Min}, {0.5, d.P50}, {0.9, d.P90}, {0.95, d.P95}, {0.99, d.P99}, {0.999, d.P999}, {1, d.Max}}
	if cdf != nil {
		for i := 0; i < min(len(cdf.Q), len(cdf.V)); i++ {
			known = append(known, quantilePoint{cdf.Q[i], cdf.V[i]})
		}
	}
	slices.SortStableFunc(known, func(a, b quantilePoint) int { return cmp.Compare(a.q, b.q) })
	q := func(p float64) float64 { return scale * interpolate(known, p) }
	g := gDist{
		Mean: scale * d.Mean, Median: scale * d.Median, Mode: scale * d.Median,
		StdDev: scale * d.StdDev, Variance: scale * scale * d.StdDev * d.StdDev,
		Min: scale * d.Min, Max: scale * d.Max, Count: d.Count, TotalSum: scale * d.Mean * float64(d.Count),
		Percentiles: gPercentiles{
			P001: q(0.001), P01: q(0.01), P05: q(0.05), P10: q(0.10), P25: q(0.25),
			P50: scale * d.P50, P75: q(0.75), P90: scale * d.P90, P95: scale * d.P95, P99: scale * d.P99, P999: scale * d.P999,
		},
	}
	return g
}

// interpolate is the value at quantile p, linear between the nearest known
// points (sorted by quantile); an exact point is returned as is.
func interpolate(known []quantilePoint, p float64) float64 {
	i, found := slices.BinarySearchFunc(known, p, func(k quantilePoint, p float64) int { return cmp.Compare(k.q, p) })
	switch {
	case found:
		return known[i].v
	case i == 0:
		return known[0].v
	case i >= len(known):
		return known[len(known)-1].v
	}
	a, b := known[i-1], known[i]
	return a.v + (b.v-a.v)*(p-a.q)/(b.q-a.q)
}

// fromValues summarises exact observations the way GuideLLM does
// (percentiles by nearest rank; mode the most frequent value).
func fromValues(vs []float64) gDist {
	if len(vs) == 0 {
		return gDist{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	n := float64(len(s))
	mean := sum / n
	var ss float64
	for _, v := range s {
		ss += (v - mean) * (v - mean)
	}
	rank := func(p float64) float64 {
		return s[min(max(int(math.Ceil(p*n))-1, 0), len(s)-1)]
	}
	mode, best := s[0], 0
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] == s[i] {
			j++
		}
		if j-i > best {
			mode, best = s[i], j-i
		}
		i = j
	}
	return gDist{
		Mean: mean, Median: rank(0.5), Mode: mode, Variance: ss / n, StdDev: math.Sqrt(ss / n),
		Min: s[0], Max: s[len(s)-1], Count: int64(len(s)), TotalSum: sum,
		Percentiles: gPercentiles{
			P001: rank(0.001), P01: rank(0.01), P05: rank(0.05), P10: rank(0.10), P25: rank(0.25), P50: rank(0.5),
			P75: rank(0.75), P90: rank(0.9), P95: rank(0.95), P99: rank(0.99), P999: rank(0.999),
		},
	}
}

// allRequests puts a distribution over every request under "total", and
// under "successful" too when every request succeeded (then they are the
// same).
func allRequests(d gDist, m *stats.Metrics) gStatus {
	s := gStatus{Total: d}
	if m.Requests.Errored == 0 && m.Requests.Cancelled == 0 {
		s.Successful = d
	}
	return s
}

// successfulOnly puts a distribution of successful requests under
// "successful", and under "total" too when every request succeeded (then
// they are the same); errored and incomplete stay empty: Reprise's
// distributions cover successful requests only.
func successfulOnly(d gDist, m *stats.Metrics) gStatus {
	s := gStatus{Successful: d}
	if m.Requests.Errored == 0 && m.Requests.Cancelled == 0 {
		s.Total = d
	}
	return s
}

func epoch(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// strategy maps a Reprise profile to GuideLLM's SchedulingStrategy.
// Production as captured is a replay of its own recorded arrivals: trace.
func strategy(b *Benchmark) map[string]any {
	c := &b.Config
	s := map[string]any{"worker_count": nil, "max_concurrency": nil}
	if c.MaxConcurrency != nil && *c.MaxConcurrency > 0 {
		s["max_concurrency"] = *c.MaxConcurrency
	}
	switch b.Profile {
	case "synchronous", "throughput":
		s["type_"] = b.Profile
	case "concurrent":
		s["type_"] = "concurrent"
		s["streams"] = max(c.Concurrency, 1)
	case "constant", "poisson":
		s["type_"] = b.Profile
		rate := c.Rate
		if rate == 0 {
			rate = b.Metrics.RequestedRate
		}
		s["rate"] = rate
		if c.Seed != nil && b.Profile == "poisson" {
			s["random_seed"] = *c.Seed
		}
	default: // trace, captured
		s["type_"] = "trace"
		scale := c.TimeScale
		if scale <= 0 {
			scale = 1
		}
		s["time_scale"] = scale
	}
	return s
}

// profileKind is GuideLLM's profile kind for the whole file: sweep when the
// file holds a sweep, else the first benchmark's strategy.
func profileKind(f *File) string {
	if len(sweepGroups(f.Benchmarks)) > 0 {
		return "sweep"
	}
	if len(f.Benchmarks) > 0 {
		k := strategy(&f.Benchmarks[0])["type_"].(string)
		if k == "trace" {
			return "replay" // GuideLLM's profile whose strategy is trace
		}
		return k
	}
	return "synchronous"
}

// profileSpec is GuideLLM's profile arguments for the whole file: its kind
// plus what that kind requires, the rates of constant and poisson
// benchmarks and the stream counts of concurrent ones, in benchmark order.
func profileSpec(f *File) map[string]any {
	kind := profileKind(f)
	spec := map[string]any{"kind": kind}
	var rates []float64
	var streams []int
	for i := range f.Benchmarks {
		s := strategy(&f.Benchmarks[i])
		if r, ok := s["rate"].(float64); ok && r > 0 {
			rates = append(rates, r)
		}
		if n, ok := s["streams"].(int); ok {
			streams = append(streams, n)
		}
	}
	switch kind {
	case "constant", "poisson":
		spec["rate"] = rates
	case "concurrent":
		spec["streams"] = streams
	case "throughput": // required, may be null
		spec["max_concurrency"] = nil
		if len(f.Benchmarks) > 0 {
			spec["max_concurrency"] = strategy(&f.Benchmarks[0])["max_concurrency"]
		}
	}
	return spec
}

// guidellmSLO maps Reprise's per-request SLO to GuideLLM's GoodputSLO:
// GuideLLM's tpot_ms is checked against inter_token_latency_ms, Reprise's
// itl_ms. A Reprise SLO GuideLLM cannot express (a TPOT threshold in
// GuideLLM's legacy time_per_output_token convention, or times measured
// from the intended send) yields nil: no attainment is claimed under
// GuideLLM's name.
func guidellmSLO(g *stats.Goodput) map[string]any {
	if g == nil || g.SLO.TPOTMs > 0 || g.SLO.FromIntended {
		return nil
	}
	pos := func(v float64) any {
		if v > 0 {
			return v
		}
		return nil
	}
	return map[string]any{"ttft_ms": pos(g.SLO.TTFTMs), "tpot_ms": pos(g.SLO.ITLMs), "e2el_ms": pos(g.SLO.E2EMs)}
}

// point summarises a single observation: a rate over the whole window.
func point(v float64) gDist {
	return fromValues([]float64{v})
}

func runID(f *File) string {
	return "reprise-" + strconv.FormatInt(f.Created.UTC().UnixNano(), 10)
}
