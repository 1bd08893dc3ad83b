package report

import (
	"math"
	"strconv"
	"strings"

	"github.com/reprise-llm/reprise/internal/stats"
)

// chart is an SVG line chart laid out in Go; the template only prints the
// precomputed coordinates. Units are SVG user units of the viewBox.
type chart struct {
	Title, XLabel, YLabel string
	W, H                  float64 // viewBox size
	L, T, PW, PH          float64 // plot area: left, top, width, height
	R, B, BT, XMid, YMid  float64 // derived: right, bottom, tick-mark end, centres (for the template)
	Lines                 []line
	XTicks, YTicks        []tick
	Empty                 bool // nothing to draw
}

// line is one benchmark's polyline; Class picks its colour from the
// stylesheet (s0, s1, …), so no style is ever built from data.
type line struct {
	Name, Class, Points string
}

type tick struct {
	Pos   float64 // x for XTicks, y for YTicks
	Label string
}

const palette = 8 // colour classes s0..s7 in the stylesheet

func newChart(title, xlabel, ylabel string) *chart {
	c := &chart{Title: title, XLabel: xlabel, YLabel: ylabel, W: 640, H: 300, L: 64, T: 12, PW: 560, PH: 240}
	c.R, c.B = c.L+c.PW, c.T+c.PH
	c.BT = c.B + 5
	c.XMid, c.YMid = c.L+c.PW/2, c.T+c.PH/2
	return c
}

// xy is one data point.
type xy struct{ X, Y float64 }

// layout maps each series into the plot area over [0, xmax] × [0, ymax]
// (both rounded up to a "nice" step) and computes the ticks. Points beyond
// the range are clipped by the plot area's nested <svg>.
func (c *chart) layout(names []string, series [][]xy, xmax, ymax float64, ylabel func(float64) string) {
	if xmax <= 0 || ymax <= 0 || math.IsNaN(xmax+ymax) || math.IsInf(xmax+ymax, 0) {
		c.Empty = true
		return
	}
	xs, xmax, xdec := niceTicks(xmax)
	ys, ymax, ydec := niceTicks(ymax)
	if ylabel == nil {
		ylabel = func(v float64) string { return strconv.FormatFloat(v, 'f', ydec, 64) }
	}
	px := func(x float64) float64 { return c.L + x/xmax*c.PW }
	py := func(y float64) float64 { return c.T + c.PH - y/ymax*c.PH }
	for _, v := range xs {
		c.XTicks = append(c.XTicks, tick{px(v), strconv.FormatFloat(v, 'f', xdec, 64)})
	}
	for _, v := range ys {
		c.YTicks = append(c.YTicks, tick{py(v), ylabel(v)})
	}
	for i, pts := range series {
		if len(pts) == 0 {
			continue
		}
		var b strings.Builder
		for j, p := range pts {
			if j > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(coord(px(p.X)) + "," + coord(py(p.Y)))
		}
		c.Lines = append(c.Lines, line{Name: names[i], Class: "s" + strconv.Itoa(i%palette), Points: b.String()})
	}
	c.Empty = len(c.Lines) == 0
}

func coord(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// niceTicks returns at most seven ticks from 0 to a "nice" bound ≥ max
// (steps of 1, 2, 2.5 or 5 × 10^k), the bound, and decimals for the labels.
func niceTicks(max float64) ([]float64, float64, int) {
	mag := math.Pow(10, math.Floor(math.Log10(max/6)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if math.Ceil(max/(m*mag)-1e-9) <= 6 {
			step = m * mag
			break
		}
	}
	n := int(math.Ceil(max/step - 1e-9))
	ticks := make([]float64, n+1)
	for i := range ticks {
		ticks[i] = float64(i) * step
	}
	dec := 0
	for d := step; d != math.Trunc(d) && dec < 6; d *= 10 {
		dec++
	}
	return ticks, float64(n) * step, dec
}

// cdfChart draws one metric's CDF for every benchmark. The x range ends at
// the largest p99.9 so one extreme outlier does not flatten the curves.
func cdfChart(title, key string, bs []Benchmark) *chart {
	c := newChart(title, "milliseconds", "fraction of requests")
	names := make([]string, len(bs))
	series := make([][]xy, len(bs))
	var xmax float64
	for i := range bs {
		names[i] = bs[i].Name
		cdf := bs[i].Metrics.CDF[key]
		n := min(len(cdf.Q), len(cdf.V))
		for j := 0; j < n; j++ {
			series[i] = append(series[i], xy{cdf.V[j], cdf.Q[j]})
			if cdf.Q[j] <= 0.999 {
				xmax = max(xmax, cdf.V[j])
			}
		}
	}
	c.layout(names, series, xmax, 1, func(v float64) string { return strconv.Itoa(int(math.Round(v*100))) + "%" })
	return c
}

// seriesChart draws one time-series field for every benchmark, against
// seconds since the benchmark's first bucket (so runs overlay). Buckets for
// which get reports no value (no TTFT measured, say) are skipped.
func seriesChart(title, ylabel string, bs []Benchmark, get func(*stats.Bucket) (float64, bool)) *chart {
	c := newChart(title, "seconds since start", ylabel)
	names := make([]string, len(bs))
	series := make([][]xy, len(bs))
	var xmax, ymax float64
	for i := range bs {
		names[i] = bs[i].Name
		s := bs[i].Metrics.Series
		if len(s) == 0 {
			continue
		}
		w := bs[i].Metrics.SeriesBucketS
		for j := range s {
			x := s[j].T - s[0].T + w/2
			xmax = max(xmax, x+w/2)
			if y, ok := get(&s[j]); ok {
				series[i] = append(series[i], xy{x, y})
				ymax = max(ymax, y)
			}
		}
	}
	if ymax == 0 {
		ymax = 1 // a flat zero line is still worth showing
	}
	c.layout(names, series, xmax, ymax, nil)
	return c
}
