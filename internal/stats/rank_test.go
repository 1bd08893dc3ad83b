package stats

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestNearestRank(t *testing.T) {
	for _, c := range []struct {
		pct  float64
		n, k int64
	}{
		{99, 70, 70}, {99, 100, 99}, {99, 101, 100}, {50, 1, 1}, {50, 2, 1}, {50, 3, 2},
		{99.9, 10000, 9990}, {99.9, 10001, 9991}, {90, 10, 9}, {0, 5, 1}, {100, 5, 5}, {99, 0, 0},
	} {
		if k := NearestRank(c.pct, c.n); k != c.k {
			t.Errorf("NearestRank(%v, %d) = %d, want %d", c.pct, c.n, k, c.k)
		}
	}
}

// At n = 70, p99's nearest rank is ⌈69.3⌉ = 70: the maximum, as
// internal/slo computes it (HDR's ⌊p·n + 0.5⌋ rank would be 69).
func TestP99OfSeventyIsTheMax(t *testing.T) {
	var rs []float64
	h := NewLatencyHistogram()
	for i := range 70 {
		v := float64(10 + i*i) // distinct, spread values (ms)
		rs = append(rs, v)
		h.RecordDuration(time.Duration(v * float64(time.Millisecond)))
	}
	d := h.Distribution()
	if d.P99 != d.Max || d.Max != slices.Max(rs) {
		t.Errorf("p99 %v, max %v: want p99 = max = %v", d.P99, d.Max, slices.Max(rs))
	}
	// Exact below ExactLimit: p50 is the 35th smallest value itself.
	slices.Sort(rs)
	if d.P50 != rs[34] || d.P90 != rs[62] {
		t.Errorf("p50 %v p90 %v, want %v and %v", d.P50, d.P90, rs[34], rs[62])
	}
	// The HDR path ranks the same way.
	h.exact, h.inexact = nil, true
	if p := h.Distribution(); p.P99 != d.Max || math.Abs(p.P50-rs[34]) > 1e-3*rs[34] || math.Abs(p.P90-rs[62]) > 1e-3*rs[62] {
		t.Errorf("from HDR: p50 %v p90 %v p99 %v, want %v %v %v", p.P50, p.P90, p.P99, rs[34], rs[62], d.Max)
	}
}

// Past ExactLimit values, percentiles come from HDR at the nearest rank,
// within 0.1%; merging exact histograms past the limit does the same.
func TestPercentilesPastTheExactLimit(t *testing.T) {
	n := ExactLimit + 1000
	h, a, b := NewLatencyHistogram(), NewLatencyHistogram(), NewLatencyHistogram()
	vals := make([]float64, 0, n)
	for i := range n {
		v := 0.1 + float64((i*7919)%n)/10 // a permutation of 0.1 .. ~6650 ms in 0.1 ms steps
		vals = append(vals, v)
		h.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	if !a.inexact && !b.inexact {
		a.Merge(b)
	}
	if !h.inexact || !a.inexact || h.exact != nil {
		t.Fatalf("exact values kept past the limit: %v %v", h.inexact, a.inexact)
	}
	slices.Sort(vals)
	for _, hist := range []*Histogram{h, a} {
		d := hist.Distribution()
		for _, c := range []struct {
			pct float64
			got float64
		}{{50, d.P50}, {90, d.P90}, {99, d.P99}, {99.9, d.P999}} {
			want := vals[NearestRank(c.pct, int64(n))-1]
			if math.Abs(c.got-want) > 1e-3*want+1e-3 {
				t.Errorf("p%v = %v, want %v ± 0.1%%", c.pct, c.got, want)
			}
		}
	}
}
