package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"

	"github.com/reprise-llm/reprise/internal/stats"
)

// chart is an SVG chart laid out in Go; the template only prints the
// precomputed coordinates. Units are SVG user units of the viewBox. A chart
// draws lines (series), dots (points with a tooltip), bars, and marks
// (labelled reference lines: an SLO threshold, a saturation point).
type chart struct {
	Title, XLabel, YLabel string
	W, H                  float64 // viewBox size
	L, T, PW, PH          float64 // plot area: left, top, width, height
	R, B, BT, XMid, YMid  float64 // derived: right, bottom, tick-mark end, centres (for the template)
	Lines                 []line
	Dots                  []dot
	Bars                  []bar
	Marks                 []mark
	XTicks, YTicks        []tick
	Legend                []legendItem
	Empty                 bool // nothing to draw
	Note                  string
}

// line is one polyline; Class picks its colour (s0, s1, …) and dash (d1,
// d2) from the stylesheet, so no style is ever built from data.
type line struct {
	Name, Class, Points string
}

// dot is one data point with a native SVG tooltip (its <title>).
type dot struct {
	X, Y         float64
	Class, Title string
}

// bar is one rectangle with a tooltip.
type bar struct {
	X, Y, W, H   float64
	Class, Title string
	LabelX       float64 // where the value label is drawn (end of the bar)
	Label        string
}

// mark is a labelled reference line across the plot area: vertical when
// Vertical, else horizontal. X1..Y2 are its ends, TX/TY its label's anchor.
type mark struct {
	X1, Y1, X2, Y2, TX, TY float64
	Class, Label, Anchor   string // Anchor: the label's text-anchor (start, end)
	Vertical               bool
}

// legendItem is one entry under a chart; Class as for line.
type legendItem struct{ Name, Class string }

type tick struct {
	Pos   float64 // x for XTicks, y for YTicks
	Label string
}

// palette is the number of colour classes s0..s9 in the stylesheet.
const palette = 10

// maxLinePoints bounds the points of one polyline. CDFs carry 103 points;
// a time series is averaged down to this many, so the page's size does not
// grow with the run's length (docs/results.md: series are coarsened to at
// most 1800 buckets; a report draws at most this many of them).
const maxLinePoints = 240

// maxCDFPoints bounds the points of one CDF line (the stored CDF has 103).
const maxCDFPoints = 200

func colour(i int) string { return "s" + strconv.Itoa(i%palette) }

func newChart(title, xlabel, ylabel string) *chart {
	c := &chart{Title: title, XLabel: xlabel, YLabel: ylabel, W: 640, H: 300, L: 64, T: 12, PW: 560, PH: 240}
	c.R, c.B = c.L+c.PW, c.T+c.PH
	c.BT = c.B + 5
	c.XMid, c.YMid = c.L+c.PW/2, c.T+c.PH/2
	return c
}

// xy is one data point.
type xy struct{ X, Y float64 }

// axes maps data to plot coordinates over [0, xmax] × [0, ymax], both
// rounded up to a "nice" step.
type axes struct {
	xmax, ymax float64
	c          *chart
}

func (a axes) px(x float64) float64 { return a.c.L + x/a.xmax*a.c.PW }
func (a axes) py(y float64) float64 { return a.c.T + a.c.PH - y/a.ymax*a.c.PH }

// scale sets the ticks for [0, xmax] × [0, ymax] and returns the mapping;
// ok is false (and the chart Empty) when a range is empty or not finite.
func (c *chart) scale(xmax, ymax float64, ylabel func(float64) string) (axes, bool) {
	if !(xmax > 0) || !(ymax > 0) || math.IsInf(xmax+ymax, 0) {
		c.Empty = true
		return axes{}, false
	}
	xs, xmax, xdec := niceTicks(xmax)
	ys, ymax, ydec := niceTicks(ymax)
	if ylabel == nil {
		ylabel = func(v float64) string { return strconv.FormatFloat(v, 'f', ydec, 64) }
	}
	a := axes{xmax, ymax, c}
	c.XTicks, c.YTicks = nil, nil
	for _, v := range xs {
		c.XTicks = append(c.XTicks, tick{a.px(v), strconv.FormatFloat(v, 'f', xdec, 64)})
	}
	for _, v := range ys {
		c.YTicks = append(c.YTicks, tick{a.py(v), ylabel(v)})
	}
	return a, true
}

// polyline formats points for a <polyline>.
func (a axes) polyline(pts []xy) string {
	var b strings.Builder
	b.Grow(len(pts) * 12)
	for j, p := range pts {
		if j > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(coord(a.px(p.X)))
		b.WriteByte(',')
		b.WriteString(coord(a.py(p.Y)))
	}
	return b.String()
}

// layout maps each series into the plot area over [0, xmax] × [0, ymax]
// and computes the ticks; one legend entry per named series. Points beyond
// the range are clipped by the plot area's nested <svg>.
func (c *chart) layout(names []string, series [][]xy, xmax, ymax float64, ylabel func(float64) string) axes {
	a, ok := c.scale(xmax, ymax, ylabel)
	if !ok {
		return a
	}
	for i, pts := range series {
		if len(pts) == 0 {
			continue
		}
		c.Lines = append(c.Lines, line{Name: names[i], Class: colour(i), Points: a.polyline(pts)})
		c.Legend = append(c.Legend, legendItem{names[i], colour(i)})
	}
	c.Empty = len(c.Lines) == 0
	return a
}

// hmark adds a horizontal reference line at data value y (ignored when it
// is outside the y range, which then hides nothing the caller should show:
// callers widen ymax to include their marks).
func (c *chart) hmark(a axes, y float64, class, label string) {
	if !(y >= 0) || y > a.ymax {
		return
	}
	py := a.py(y)
	c.Marks = append(c.Marks, mark{X1: c.L, X2: c.R, Y1: py, Y2: py, TX: c.R - 4, TY: py - 4, Class: class, Label: label, Anchor: "end"})
}

// vmark adds a vertical reference line at data value x.
func (c *chart) vmark(a axes, x float64, class, label string) {
	if !(x >= 0) || x > a.xmax {
		return
	}
	px := a.px(x)
	m := mark{X1: px, X2: px, Y1: c.T, Y2: c.B, TX: px + 4, TY: c.T + 12, Class: class, Label: label, Vertical: true, Anchor: "start"}
	if px > c.L+0.6*c.PW { // label on the left of a line near the right edge
		m.TX, m.Anchor = px-4, "end"
	}
	c.Marks = append(c.Marks, m)
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
// the largest p99.9 so one extreme outlier does not flatten the curves; an
// SLO threshold on the metric is marked.
func cdfChart(title, key string, bs []Benchmark, slos []sloLine) *chart {
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
		series[i] = thin(series[i], maxCDFPoints)
	}
	// Widen the axis to show an SLO threshold close beyond the curves; one
	// far beyond them is named in a note instead.
	for _, s := range slos {
		if s.Key == key && xmax > 0 && s.ThresholdMs > xmax {
			if s.ThresholdMs <= 2*xmax {
				xmax = s.ThresholdMs
			} else {
				c.Note = s.Label + ": beyond the axis"
			}
		}
	}
	a := c.layout(names, series, xmax, 1, func(v float64) string { return strconv.Itoa(int(math.Round(v*100))) + "%" })
	if c.Empty {
		return c
	}
	for _, s := range slos {
		if s.Key == key {
			c.vmark(a, s.ThresholdMs, "slo", s.Label)
		}
	}
	return c
}

// seriesChart draws one time-series field for every benchmark, against
// seconds since the benchmark's first bucket (so runs overlay). Buckets for
// which get reports no value (no TTFT measured, say) are skipped. Each line
// is averaged down to maxLinePoints.
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
			}
		}
		series[i] = average(series[i], maxLinePoints)
		for _, p := range series[i] {
			ymax = max(ymax, p.Y)
		}
	}
	if ymax == 0 {
		ymax = 1 // a flat zero line is still worth showing
	}
	c.layout(names, series, xmax, ymax, nil)
	return c
}

// average returns pts reduced to at most n points, each the mean of a run
// of consecutive points (x and y alike), so the shape of a long series
// survives without one point per bucket.
func average(pts []xy, n int) []xy {
	if len(pts) <= n || n < 1 {
		return pts
	}
	k := (len(pts) + n - 1) / n
	out := make([]xy, 0, n)
	for i := 0; i < len(pts); i += k {
		end := min(i+k, len(pts))
		var sx, sy float64
		for _, p := range pts[i:end] {
			sx += p.X
			sy += p.Y
		}
		m := float64(end - i)
		out = append(out, xy{sx / m, sy / m})
	}
	return out
}

// thin keeps at most n points of pts, evenly spaced by index, always
// keeping the first and the last (a CDF's minimum and maximum).
func thin(pts []xy, n int) []xy {
	if len(pts) <= n || n < 2 {
		return pts
	}
	out := make([]xy, n)
	for i := range out {
		out[i] = pts[i*(len(pts)-1)/(n-1)]
	}
	return out
}

//go:embed report.css
var stylesheet string

// The report's page includes the stylesheet as a named template, so the
// one file styles the report and every page drawn with Histogram.
var _ = template.Must(htmlTemplate.New("stylesheet").Parse(stylesheet))

// Stylesheet is the report's CSS, charts included: a page that shows a
// Histogram puts it in its <style> and looks like the report.
func Stylesheet() template.CSS { return template.CSS(stylesheet) }

// Histogram is a chart of adjacent vertical bars over equal bins of x, drawn
// by the report's chart code for pages other than the report (replay
// inspect's workload summary), so there is one chart engine and one style.
type Histogram struct {
	Title, XLabel, YLabel string
	Note                  string // shown under the chart
	// BinWidth is one bin's width in x units: bar i covers
	// [i·BinWidth, (i+1)·BinWidth).
	BinWidth float64
	// Values are the bars' heights; a bar of 0 is not drawn.
	Values []float64
	// Tips are the bars' tooltips, by index (a bar without one has none).
	Tips []string
	// Mark, when positive, is a dashed horizontal reference line at that
	// height (a mean, say), labelled MarkLabel; the y axis reaches it.
	Mark      float64
	MarkLabel string
}

// HTML renders h as the report renders its charts: a <figure> with the
// title as caption, the inline SVG and the note. The page needs Stylesheet.
func (h *Histogram) HTML() (template.HTML, error) {
	var b strings.Builder
	if err := htmlTemplate.ExecuteTemplate(&b, "chart", h.chart()); err != nil {
		return "", fmt.Errorf("rendering chart %q: %w", h.Title, err)
	}
	return template.HTML(b.String()), nil
}

// chart lays h out: x over [0, len(Values)·BinWidth], y over [0, the
// tallest bar or the mark], one bar per positive value in colour s0, a
// hair narrower than its bin so neighbours stay apart.
func (h *Histogram) chart() *chart {
	c := newChart(h.Title, h.XLabel, h.YLabel)
	c.Note = h.Note
	// Token counts run to six digits: keep room right of the plot for
	// half the last x label, which is centred on the axis's end.
	c.PW -= 16
	c.R, c.XMid = c.L+c.PW, c.L+c.PW/2
	ymax := max(h.Mark, 0)
	for _, v := range h.Values {
		ymax = max(ymax, v)
	}
	a, ok := c.scale(float64(len(h.Values))*h.BinWidth, ymax, nil)
	if !ok {
		return c
	}
	bw := a.px(h.BinWidth) - c.L
	for i, v := range h.Values {
		if !(v > 0) {
			continue
		}
		b := bar{X: a.px(float64(i) * h.BinWidth), Y: a.py(v), W: max(bw-0.5, 0.5), Class: colour(0)}
		b.H = c.B - b.Y
		if i < len(h.Tips) {
			b.Title = h.Tips[i]
		}
		c.Bars = append(c.Bars, b)
	}
	c.Empty = len(c.Bars) == 0
	if !c.Empty && h.Mark > 0 {
		c.hmark(a, h.Mark, "sat", h.MarkLabel)
	}
	return c
}
