package report

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/stats"
)

// sloLine is one SLO term drawn on a chart: a threshold on a metric.
type sloLine struct {
	Metric      string  // slo.TTFT, slo.ITL, slo.TPOT or slo.E2E
	Key         string  // the metric's JSON key (and CDF key), e.g. time_to_first_token_ms
	Percentile  float64 // of the term (100: every request; 0 with Mean)
	Mean        bool
	ThresholdMs float64
	Label       string // e.g. "SLO ttft_p99<=200ms"
}

// sloMetricKeys maps an SLO metric to its distribution's JSON key.
var sloMetricKeys = map[string]string{
	slo.TTFT: stats.CDFTimeToFirstToken,
	slo.ITL:  stats.CDFInterTokenLatency,
	slo.TPOT: "time_per_output_token_ms",
	slo.E2E:  stats.CDFRequestLatency,
}

// sloLines lists every distinct SLO term of the benchmarks, in order.
func sloLines(bs []Benchmark) []sloLine {
	var out []sloLine
	seen := map[string]bool{}
	for i := range bs {
		if bs[i].SLO == nil {
			continue
		}
		for _, t := range bs[i].SLO.Terms {
			id := t.Metric + "|" + strconv.FormatFloat(t.Percentile, 'g', -1, 64) + "|" + strconv.FormatBool(t.Mean) + "|" + strconv.FormatFloat(t.ThresholdMs, 'g', -1, 64)
			if seen[id] {
				continue
			}
			seen[id] = true
			out = append(out, sloLine{
				Metric: t.Metric, Key: sloMetricKeys[t.Metric], Percentile: t.Percentile, Mean: t.Mean,
				ThresholdMs: t.ThresholdMs, Label: "SLO " + t.Text,
			})
		}
	}
	return out
}

// sweepGroup is the benchmarks of one target measured at several loads, in
// order of achieved request rate.
type sweepGroup struct {
	Target string
	Idx    []int // indexes into the file's benchmarks
}

// sweepGroups finds the sweeps in bs: benchmarks of one target (production
// as captured excluded) at two or more distinct achieved rates.
func sweepGroups(bs []Benchmark) []sweepGroup {
	var out []sweepGroup
	at := map[string]int{}
	for i := range bs {
		b := &bs[i]
		if b.Profile == "captured" || !(b.Metrics.RequestsPerSecond > 0) {
			continue
		}
		g, ok := at[b.Target]
		if !ok {
			g = len(out)
			at[b.Target] = g
			out = append(out, sweepGroup{Target: b.Target})
		}
		out[g].Idx = append(out[g].Idx, i)
	}
	rate := func(i int) float64 { return bs[i].Metrics.RequestsPerSecond }
	kept := out[:0]
	for _, g := range out {
		slices.SortStableFunc(g.Idx, func(a, b int) int { return cmp.Compare(rate(a), rate(b)) })
		if len(g.Idx) >= 2 && rate(g.Idx[0]) != rate(g.Idx[len(g.Idx)-1]) {
			kept = append(kept, g)
		}
	}
	return kept
}

// rateStat is one line of a latency-vs-rate chart: a statistic of a
// distribution, drawn with a dash class.
type rateStat struct {
	Name, Dash string
	Get        func(stats.Distribution) float64
}

var rateStats = []rateStat{
	{"p50", "d2", func(d stats.Distribution) float64 { return d.P50 }},
	{"p90", "d1", func(d stats.Distribution) float64 { return d.P90 }},
	{"p99", "", func(d stats.Distribution) float64 { return d.P99 }},
}

// sweepCharts draws, for every sweep, latency percentiles against the
// achieved request rate (one chart per metric), output throughput against
// it, and SLO attainment when measured. The first benchmark of a sweep at
// which over-saturation was detected is marked with a vertical line, every
// SLO threshold on the metric with a horizontal one, and every point
// carries its figures as a tooltip.
func sweepCharts(bs []Benchmark, groups []sweepGroup, slos []sloLine, knee *Knee) []*chart {
	if len(groups) == 0 {
		return nil
	}
	metrics := []struct {
		Title, Key string
		Get        func(*stats.Metrics) stats.Distribution
	}{
		{"Time to first token vs rate", slo.TTFT, ttft},
		{"Inter-token latency vs rate", slo.ITL, itl},
		{"Request latency vs rate", slo.E2E, e2e},
	}
	for _, s := range slos {
		if s.Metric == slo.TPOT {
			metrics = append(metrics, struct {
				Title, Key string
				Get        func(*stats.Metrics) stats.Distribution
			}{"Time per output token vs rate", slo.TPOT, func(m *stats.Metrics) stats.Distribution { return m.TimePerOutputToken }})
			break
		}
	}
	var out []*chart
	for _, m := range metrics {
		var lines []rateLine
		var thresholds []sloLine
		for _, s := range slos {
			if s.Metric == m.Key {
				thresholds = append(thresholds, s)
			}
		}
		for gi, g := range groups {
			for _, st := range rateStats {
				rl := rateLine{Name: st.Name, Class: colour(gi) + " " + st.Dash, Dot: colour(gi)}
				if len(groups) > 1 {
					rl.Name = g.Target + " " + st.Name
				}
				for _, i := range g.Idx {
					d := m.Get(&bs[i].Metrics)
					if d.Count == 0 {
						continue
					}
					rl.Points = append(rl.Points, xy{bs[i].Metrics.RequestsPerSecond, st.Get(d)})
					rl.Titles = append(rl.Titles, fmt.Sprintf("%s: %s req/s, %s %s ms (n=%d)", bs[i].Name, fmtNum(bs[i].Metrics.RequestsPerSecond), st.Name, fmtNum(st.Get(d)), d.Count))
				}
				lines = append(lines, rl)
			}
		}
		out = append(out, rateChart(m.Title, "milliseconds", bs, groups, lines, thresholds, knee, nil))
	}
	var tput []rateLine
	var attain []rateLine
	for gi, g := range groups {
		t := rateLine{Name: "output tok/s", Class: colour(gi), Dot: colour(gi)}
		a := rateLine{Name: "SLO attainment", Class: colour(gi), Dot: colour(gi)}
		if len(groups) > 1 {
			t.Name, a.Name = g.Target, g.Target
		}
		for _, i := range g.Idx {
			mt := &bs[i].Metrics
			t.Points = append(t.Points, xy{mt.RequestsPerSecond, mt.OutputTokensPerSecond})
			t.Titles = append(t.Titles, fmt.Sprintf("%s: %s req/s, %s output tok/s", bs[i].Name, fmtNum(mt.RequestsPerSecond), fmtNum(mt.OutputTokensPerSecond)))
			if mt.Goodput != nil {
				a.Points = append(a.Points, xy{mt.RequestsPerSecond, 100 * mt.Goodput.Attainment})
				a.Titles = append(a.Titles, fmt.Sprintf("%s: %s req/s, %.1f%% of requests met the SLO, goodput %s req/s", bs[i].Name, fmtNum(mt.RequestsPerSecond), 100*mt.Goodput.Attainment, fmtNum(mt.Goodput.RequestsPerSecond)))
			}
		}
		tput = append(tput, t)
		attain = append(attain, a)
	}
	out = append(out, rateChart("Output throughput vs rate", "tokens per second", bs, groups, tput, nil, knee, nil))
	if hasPoints(attain) {
		pct := func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + "%" }
		out = append(out, rateChart("SLO attainment vs rate", "requests meeting the SLO", bs, groups, attain, nil, knee, pct))
	}
	return out
}

// rateLine is one line of a chart against the request rate, with a
// tooltip per point.
type rateLine struct {
	Name, Class, Dot string
	Points           []xy
	Titles           []string
}

func hasPoints(ls []rateLine) bool {
	for _, l := range ls {
		if len(l.Points) > 0 {
			return true
		}
	}
	return false
}

// rateChart lays out lines against achieved req/s, marks SLO thresholds
// and each sweep's saturation point.
func rateChart(title, ylabel string, bs []Benchmark, groups []sweepGroup, lines []rateLine, thresholds []sloLine, knee *Knee, yfmt func(float64) string) *chart {
	c := newChart(title, "achieved requests per second", ylabel)
	var xmax, ymax float64
	for _, l := range lines {
		for _, p := range l.Points {
			xmax, ymax = max(xmax, p.X), max(ymax, p.Y)
		}
	}
	for _, t := range thresholds {
		if t.ThresholdMs <= 3*ymax {
			ymax = max(ymax, t.ThresholdMs)
		} else if ymax > 0 {
			c.Note = t.Label + ": beyond the axis"
		}
	}
	a, ok := c.scale(xmax, ymax, yfmt)
	if !ok {
		return c
	}
	for _, l := range lines {
		if len(l.Points) == 0 {
			continue
		}
		c.Lines = append(c.Lines, line{Name: l.Name, Class: l.Class, Points: a.polyline(l.Points)})
		c.Legend = append(c.Legend, legendItem{l.Name, l.Class})
		for j, p := range l.Points {
			c.Dots = append(c.Dots, dot{X: a.px(p.X), Y: a.py(p.Y), Class: l.Dot, Title: l.Titles[j]})
		}
	}
	for _, t := range thresholds {
		c.hmark(a, t.ThresholdMs, "slo", t.Label)
	}
	for _, g := range groups {
		for _, i := range g.Idx {
			if s := bs[i].Saturation; s != nil && s.Detected {
				c.vmark(a, bs[i].Metrics.RequestsPerSecond, "sat", "over-saturated: "+bs[i].Name)
				break
			}
		}
	}
	if knee != nil && knee.Status == KneeFound {
		for i := range bs {
			if bs[i].Name == knee.SaturationBenchmark {
				c.vmark(a, bs[i].Metrics.RequestsPerSecond, "sat", fmt.Sprintf("knee: concurrency %.1f (%s)", knee.Concurrency, bs[i].Name))
			}
		}
	}
	c.Empty = len(c.Lines) == 0
	return c
}
