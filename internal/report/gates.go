package report

import (
	"fmt"
	"strconv"
	"strings"
)

// htmlSLO is the SLO section: one row per benchmark that was checked, one
// column per distinct term, an attainment bar chart.
type htmlSLO struct {
	Terms []string
	Rows  []htmlSLORow
	Chart *chart
}

type htmlSLORow struct {
	Name, Class, Verdict, VerdictClass string
	Cells                              []htmlCell
	Attainment, Goodput                string
}

// htmlCell is a table cell with a class from the stylesheet (pass, fail).
type htmlCell struct{ Text, Class string }

// sloSection builds the SLO section, or nil when no benchmark has an SLO
// verdict or goodput.
func sloSection(bs []Benchmark) *htmlSLO {
	var s htmlSLO
	col := map[string]int{}
	for i := range bs {
		if v := bs[i].SLO; v != nil {
			for _, t := range v.Terms {
				if _, ok := col[t.Text]; !ok {
					col[t.Text] = len(s.Terms)
					s.Terms = append(s.Terms, t.Text)
				}
			}
		}
	}
	var names []string
	var values []float64
	var titles []string
	for i := range bs {
		b := &bs[i]
		if b.SLO == nil && b.Metrics.Goodput == nil {
			continue
		}
		r := htmlSLORow{Name: b.Name, Class: colour(i), Cells: make([]htmlCell, len(s.Terms)), Verdict: "-", Attainment: "-", Goodput: "-"}
		for j := range r.Cells {
			r.Cells[j] = htmlCell{Text: "-"}
		}
		if v := b.SLO; v != nil {
			r.Verdict, r.VerdictClass = "FAIL", "fail"
			if v.Pass {
				r.Verdict, r.VerdictClass = "PASS", "pass"
			}
			for _, t := range v.Terms {
				c := htmlCell{Text: fmtNum(t.ValueMs) + " ms", Class: "fail"}
				if t.Count == 0 {
					c.Text = "no data"
				}
				if t.Pass {
					c.Class = "pass"
				}
				r.Cells[col[t.Text]] = c
			}
		}
		if g := b.Metrics.Goodput; g != nil {
			r.Attainment = fmt.Sprintf("%.1f%%", 100*g.Attainment)
			r.Goodput = fmtNum(g.RequestsPerSecond)
			names = append(names, b.Name)
			values = append(values, 100*g.Attainment)
			titles = append(titles, fmt.Sprintf("%s: %d requests met the SLO (%.1f%%), goodput %s req/s", b.Name, g.Met, 100*g.Attainment, fmtNum(g.RequestsPerSecond)))
		}
		s.Rows = append(s.Rows, r)
	}
	if len(s.Rows) == 0 {
		return nil
	}
	if len(values) > 0 {
		s.Chart = barChart("SLO attainment", "requests meeting the SLO", names, values, titles, 100,
			func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + "%" })
	}
	return &s
}

// barChart draws one horizontal bar per value over [0, xmax], a row of
// rowH units per bar, the name left of the plot.
func barChart(title, xlabel string, names []string, values []float64, titles []string, xmax float64, xfmt func(float64) string) *chart {
	const rowH = 22
	c := newChart(title, xlabel, "")
	c.L, c.PH = 180, float64(rowH*len(names))
	c.PW = c.W - c.L - 48 // room for the value label of a full bar
	c.H = c.T + c.PH + 40
	c.R, c.B = c.L+c.PW, c.T+c.PH
	c.BT = c.B + 5
	c.XMid, c.YMid = c.L+c.PW/2, c.T+c.PH/2
	xs, xmax, xdec := niceTicks(xmax)
	px := func(x float64) float64 { return c.L + x/xmax*c.PW }
	for _, v := range xs {
		label := strconv.FormatFloat(v, 'f', xdec, 64)
		if xfmt != nil {
			label = xfmt(v)
		}
		c.XTicks = append(c.XTicks, tick{px(v), label})
	}
	for i, v := range values {
		y := c.T + float64(i*rowH) + 3
		w := max(px(min(v, xmax))-c.L, 0)
		label := fmtNum(v)
		if xfmt != nil {
			label = xfmt(v)
		}
		c.Bars = append(c.Bars, bar{X: c.L, Y: y, W: w, H: rowH - 6, Class: colour(i), Title: titles[i], LabelX: c.L + w + 4, Label: label})
		c.YTicks = append(c.YTicks, tick{y + (rowH-6)/2, clip(names[i], 28)})
	}
	c.Empty = len(c.Bars) == 0
	return c
}

// clip shortens s to at most n runes with an ellipsis.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// htmlSat is one benchmark's over-saturation line.
type htmlSat struct {
	Name, Class, Mode, Verdict, VerdictClass, Signals, TTFTSlope, ConcSlope, Rates string
}

// saturationRows lists the detector's report of every benchmark that ran it.
func saturationRows(bs []Benchmark) []htmlSat {
	var out []htmlSat
	for i := range bs {
		s := bs[i].Saturation
		if s == nil {
			continue
		}
		h := htmlSat{Name: bs[i].Name, Class: colour(i), Mode: s.Mode, Verdict: "not detected", VerdictClass: "pass", Signals: "-", TTFTSlope: "-", ConcSlope: "-", Rates: "-"}
		if s.Detected {
			h.Verdict, h.VerdictClass = fmt.Sprintf("over-saturated at %.1f s", s.DetectedAtS), "fail"
			var fired []string
			for _, f := range s.Fired {
				fired = append(fired, fmt.Sprintf("%s (%.1f s)", f.Signal, f.AtS))
			}
			h.Signals = strings.Join(fired, ", ")
		}
		if s.TTFTSlope != nil {
			h.TTFTSlope = fmt.Sprintf("%.4g ± %.0f%% (n=%d)", *s.TTFTSlope, 100*deref(s.TTFTSlopeMOE), s.TTFTN)
		}
		if s.ConcurrentSlope != nil {
			h.ConcSlope = fmt.Sprintf("%.4g ± %.0f%% (n=%d)", *s.ConcurrentSlope, 100*deref(s.ConcurrentSlopeMOE), s.ConcurrentN)
		}
		if s.OfferedRate > 0 || s.CompletedRate > 0 {
			h.Rates = fmtNum(s.OfferedRate) + " / " + fmtNum(s.CompletedRate)
		}
		out = append(out, h)
	}
	return out
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
