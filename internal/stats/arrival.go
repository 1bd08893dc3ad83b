package stats

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Arrival-shape fidelity: did the load generator send with the gaps the
// schedule intended, or did it bunch them? Per-request lag cannot tell: a
// timer that wakes every millisecond and sends everything due keeps every
// request within 1 ms of its due time, yet the target sees bursts of
// requests microseconds apart where the schedule had them spread out
// (issue 17: at 1,000 req/s, 11% of the gaps the server saw were under
// 0.1 ms while send lag p99 read 1.24 ms). docs/metrics.md, "Arrival
// shape", defines every figure; the constants below are its bounds.
const (
	// ArrivalTolerance and ArrivalRelTolerance are the resolution at which
	// the KS distance compares sent with intended gaps: a gap g counts as
	// unchanged within max(ArrivalTolerance, ArrivalRelTolerance·g). With
	// no tolerance a constant schedule (every gap the same) against sends
	// with microseconds of jitter reads as a distance of about 0.5, and a
	// trace with millisecond timestamps (many gaps exactly 0) as the share
	// of its ties. Go's idle runtime wakes timers up to 1 ms late, so
	// without --spin every gap moves by up to ±1 ms: within a quarter of
	// gaps of 4 ms and more (250 req/s), a jitter no server batching at
	// tens of milliseconds can see; not of the 1 ms gaps of 1,000 req/s.
	ArrivalTolerance    = 100 * time.Microsecond
	ArrivalRelTolerance = 0.25
	// SpacedGap and CompressedGap define a compressed gap: two requests
	// meant to be at least SpacedGap apart that went out less than
	// CompressedGap apart — timer batching, a stalled dispatcher catching
	// up, a GC pause. 0.5 ms is half of the resolution at which Go's idle
	// runtime wakes timers, so a gap that batching can merge; 0.1 ms, a
	// fifth of that.
	SpacedGap     = 500 * time.Microsecond
	CompressedGap = 100 * time.Microsecond
	// MinArrivalGaps is the fewest gaps (for the compressed share: spaced
	// gaps) for which the arrival criteria of Metrics.Degraded apply; below
	// it the figures are reported but decide nothing.
	MinArrivalGaps = 100
	// ArrivalKSMargin is how far the KS distance must exceed its 1%
	// critical value for Metrics.Degraded: in runs of a million requests
	// the critical value falls to 0.002, which differences too small to
	// matter to the target could pass; 0.05 asks that some gap length be
	// over- or under-represented by 5 percentage points beyond chance.
	ArrivalKSMargin = 0.05
	// MaxCompressedGapFraction is the share of spaced gaps that may be
	// compressed before Metrics.Degraded is set.
	MaxCompressedGapFraction = 0.05
)

// Criteria of Metrics.DegradedBy.
const (
	DegradedClientLag      = "client_lag"      // client_lag_ms p99 above lag_threshold_ms
	DegradedArrivalKS      = "arrival_ks"      // arrival_shape.ks_distance above ks_critical_1pct + ArrivalKSMargin
	DegradedCompressedGaps = "compressed_gaps" // arrival_shape.compressed_gap_fraction above MaxCompressedGapFraction
)

// ArrivalShape compares the gaps between the client's consecutive sends with
// the gaps between the schedule's consecutive intended send times, over the
// measured requests of an open-loop benchmark. The client's send time of a
// request is intended + client lag: its sent time less the waits the
// concurrency cap and the workload's order forced (engine.Result.QueueWait,
// OrderWait), the part of the shape the load generator answers for. When
// no request waited it is the sent time, what the target saw.
type ArrivalShape struct {
	Gaps int64 `json:"gaps"` // gaps compared on each side: measured requests − 1
	// KSDistance is the two-sample Kolmogorov–Smirnov distance between
	// the sent gaps and the intended gaps (each side's gaps between
	// consecutive times in time order), read at arrivalTolerance: the
	// largest difference between the two empirical CDFs once a gap g may
	// move by up to max(0.1 ms, g/4). 0: the same shape; 1: no overlap.
	KSDistance float64 `json:"ks_distance"`
	// KSCritical1Pct is the distance two samples of Gaps values drawn
	// from one distribution exceed with probability 1%:
	// c(α)·√((n+m)/(n·m)), c(α) = √(−ln(α/2)/2) = 1.628 for α = 0.01.
	KSCritical1Pct float64 `json:"ks_critical_1pct"`
	// SpacedGaps counts the pairs of requests consecutive in intended
	// order that were meant at least SpacedGap (0.5 ms) apart;
	// CompressedGaps those of them sent less than CompressedGap (0.1 ms)
	// apart, and CompressedGapFraction their share (0 when none was
	// spaced).
	SpacedGaps            int64   `json:"spaced_gaps"`
	CompressedGaps        int64   `json:"compressed_gaps"`
	CompressedGapFraction float64 `json:"compressed_gap_fraction"`
}

// arrival is one measured request's intended and client send offsets:
// 16 bytes a request, kept for open-loop benchmarks only.
type arrival struct{ intended, sent time.Duration }

// arrivalShape computes the shape of as (nil for fewer than two requests).
// It sorts as in place by intended time (their order carries no meaning)
// and allocates two gap lists of 8 bytes a request while it runs.
func arrivalShape(as []arrival) *ArrivalShape {
	if len(as) < 2 {
		return nil
	}
	slices.SortFunc(as, func(a, b arrival) int {
		if c := cmp.Compare(a.intended, b.intended); c != 0 {
			return c
		}
		return cmp.Compare(a.sent, b.sent) // ties in any order give the same result
	})
	n := len(as) - 1
	s := &ArrivalShape{Gaps: int64(n)}
	intended := make([]time.Duration, n)
	for i := range n {
		g := as[i+1].intended - as[i].intended
		intended[i] = g
		if g >= SpacedGap {
			s.SpacedGaps++
			if d := as[i+1].sent - as[i].sent; d < CompressedGap && d > -CompressedGap {
				s.CompressedGaps++
			}
		}
	}
	sent := make([]time.Duration, len(as))
	for i := range as {
		sent[i] = as[i].sent
	}
	slices.Sort(sent)
	for i := range n {
		sent[i] = sent[i+1] - sent[i]
	}
	sent = sent[:n]
	slices.Sort(intended)
	slices.Sort(sent)
	s.KSDistance = ksDistance(intended, sent, arrivalTolerance)
	s.KSCritical1Pct = ksCritical(0.01, n, n)
	s.CompressedGapFraction = ratio(float64(s.CompressedGaps), float64(s.SpacedGaps))
	return s
}

// arrivalTolerance is how far a gap g may move and still count as
// unchanged: max(ArrivalTolerance, ArrivalRelTolerance·g).
func arrivalTolerance(g time.Duration) time.Duration {
	return max(ArrivalTolerance, time.Duration(ArrivalRelTolerance*float64(g)))
}

// ksDistance is the two-sample Kolmogorov–Smirnov distance between the
// sorted, non-empty samples a and b, with a tolerance tol(x) ≥ 0 such that
// x + tol(x) never decreases:
//
//	D = max(0, sup_x F_a(x) − F_b(x+tol(x)), sup_x F_b(x) − F_a(x+tol(x)))
//
// F being a sample's empirical CDF. With tol = 0 it is the usual
// sup_x |F_a(x) − F_b(x)|; a tolerance never increases it, so its
// classical critical values stay conservative. Each supremum is reached at
// a point of the sample whose CDF leads (between two of its points that
// CDF is flat and the other's, at x + tol(x), can only grow), so one
// merge-like pass over each side computes it: O(len(a) + len(b)).
func ksDistance(a, b []time.Duration, tol func(time.Duration) time.Duration) float64 {
	return max(0, ksOneSided(a, b, tol), ksOneSided(b, a, tol))
}

// ksOneSided is sup_x F_x(x) − F_y(x+tol(x)) over the points x of xs.
func ksOneSided(xs, ys []time.Duration, tol func(time.Duration) time.Duration) float64 {
	nx, ny := float64(len(xs)), float64(len(ys))
	var d float64
	j := 0
	for i := 0; i < len(xs); {
		v := xs[i]
		for i < len(xs) && xs[i] == v {
			i++ // i = #xs ≤ v
		}
		for hi := v + tol(v); j < len(ys) && ys[j] <= hi; {
			j++ // j = #ys ≤ v + tol(v)
		}
		d = max(d, float64(i)/nx-float64(j)/ny)
	}
	return d
}

// ksCritical is the two-sample KS distance that samples of n and m values
// from one continuous distribution exceed with probability alpha, by the
// asymptotic formula c(α)·√((n+m)/(n·m)) with c(α) = √(−ln(α/2)/2)
// (1.628 at α = 0.01); 0 when a sample is empty.
func ksCritical(alpha float64, n, m int) float64 {
	if n <= 0 || m <= 0 {
		return 0
	}
	c := math.Sqrt(-math.Log(alpha/2) / 2)
	return c * math.Sqrt(float64(n+m)/(float64(n)*float64(m)))
}

// degradedBy lists the criteria that make m degraded, in a fixed order:
// client lag p99 above the threshold; for an open-loop benchmark with at
// least MinArrivalGaps gaps, a KS distance above its 1% critical value
// plus ArrivalKSMargin; with at least MinArrivalGaps spaced gaps, a
// compressed share above MaxCompressedGapFraction.
func degradedBy(m *Metrics) []string {
	var by []string
	if m.ClientLag.Count > 0 && m.ClientLag.P99 > m.LagThresholdMs {
		by = append(by, DegradedClientLag)
	}
	if s := m.ArrivalShape; s != nil {
		if s.Gaps >= MinArrivalGaps && s.KSDistance > s.KSCritical1Pct+ArrivalKSMargin {
			by = append(by, DegradedArrivalKS)
		}
		if s.SpacedGaps >= MinArrivalGaps && s.CompressedGapFraction > MaxCompressedGapFraction {
			by = append(by, DegradedCompressedGaps)
		}
	}
	return by
}
