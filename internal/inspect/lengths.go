package inspect

import (
	"fmt"
	"slices"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/reprise-llm/reprise/internal/stats"
)

// exactLengthsMax is how many lengths a summary keeps exactly (8 bytes
// each: 40 MB); past it, the lengths go into an HDR histogram of 3
// significant digits and the figures are printed with "≈".
const exactLengthsMax = 5_000_000

// lengths is a distribution of token counts: exact values (sorted when
// read) up to exactLengthsMax, then an HDR histogram.
type lengths struct {
	vals   []int64
	sorted bool
	sum    float64
	hdr    *hdrhistogram.Histogram // non-nil once past exactLengthsMax
	max    int                     // exactLengthsMax; a field so tests can lower it
}

func newLengths() *lengths { return &lengths{max: exactLengthsMax} }

// record adds one length.
func (l *lengths) record(v int64) {
	l.sum += float64(v)
	if l.hdr != nil {
		_ = l.hdr.RecordValue(v)
		return
	}
	l.vals = append(l.vals, v)
	l.sorted = false
	if len(l.vals) > l.max {
		l.hdr = hdrhistogram.New(0, 1<<40, 3)
		for _, x := range l.vals {
			_ = l.hdr.RecordValue(x)
		}
		l.vals = nil
	}
}

// count is how many lengths were recorded.
func (l *lengths) count() int64 {
	if l.hdr != nil {
		return l.hdr.TotalCount()
	}
	return int64(len(l.vals))
}

// approx reports whether the figures come from the HDR histogram.
func (l *lengths) approx() bool { return l.hdr != nil }

// at returns the pct percentile by nearest rank (0: the minimum, 100: the
// maximum).
func (l *lengths) at(pct float64) int64 {
	if l.hdr != nil {
		switch pct {
		case 0:
			return l.hdr.Min()
		case 100:
			return l.hdr.Max()
		}
		return l.hdr.ValueAtQuantile(pct)
	}
	if !l.sorted {
		slices.Sort(l.vals)
		l.sorted = true
	}
	if pct == 0 {
		return l.vals[0]
	}
	return l.vals[stats.NearestRank(pct, int64(len(l.vals)))-1]
}

// String is the mean and percentiles, exact or marked "≈".
func (l *lengths) String() string {
	n := l.count()
	if n == 0 {
		return "none"
	}
	s := fmt.Sprintf("mean %.0f  min %d  p10 %d  p50 %d  p90 %d  p99 %d  max %d", l.sum/float64(n), l.at(0),
		l.at(10), l.at(50), l.at(90), l.at(99), l.at(100))
	if l.approx() {
		s = "≈ " + s + fmt.Sprintf(" (over %d requests: 3 significant digits)", l.max)
	}
	return s
}

// bins spreads the lengths over n equal bins from 0 to the maximum.
func (l *lengths) bins(n int) (width int64, counts []int64) {
	top := l.at(100)
	width = max(1, (top+int64(n))/int64(n))
	counts = make([]int64, top/width+1)
	if l.hdr != nil {
		for _, b := range l.hdr.Distribution() {
			if b.Count > 0 {
				counts[min(b.From/width, int64(len(counts)-1))] += b.Count
			}
		}
		return width, counts
	}
	for _, v := range l.vals {
		counts[min(v/width, int64(len(counts)-1))]++
	}
	return width, counts
}
