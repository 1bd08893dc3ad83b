package report

import (
	"fmt"
	"strconv"

	"github.com/reprise-llm/reprise/internal/scrape"
)

// vLLM's gauges of running and waiting requests. The report draws
// whichever engine's series a target exposes (scrape.Engines: vLLM,
// SGLang, llama.cpp, TGI), found by the Report's RunningGauge,
// WaitingGauge and KVCacheGauge.
const (
	gaugeRunning = "vllm:num_requests_running"
	gaugeWaiting = "vllm:num_requests_waiting"
)

// kvCacheGauge returns the name of the KV-cache usage gauge r carries.
func kvCacheGauge(r *scrape.Report) (string, bool) { return r.KVCacheGauge() }

// gaugeOf is the "mean / max" text of the gauge pick finds in r, or "-".
func gaugeOf(r *scrape.Report, pick func(*scrape.Report) (string, bool)) string {
	n, ok := pick(r)
	if !ok {
		return "-"
	}
	return gaugeText(r, n, 1)
}

// htmlServer is the report's server-metrics section: a summary row per
// scraped benchmark, every kept series in detail, and the vLLM gauges over
// time.
type htmlServer struct {
	Rows   []htmlServerRow
	Series []htmlServerSeries
	Charts []*chart
}

type htmlServerRow struct {
	Name, Class, URL, Scrapes, Running, Waiting, KVCache, PrefixHit string
}

// htmlServerSeries is one kept series of one benchmark.
type htmlServerSeries struct {
	Bench, Class, Name, Kind, Summary string
}

// serverSection builds the section; nil when no benchmark was scraped.
func serverSection(bs []Benchmark) *htmlServer {
	var s htmlServer
	for i := range bs {
		r := bs[i].ServerMetrics
		if r == nil {
			continue
		}
		row := htmlServerRow{Name: bs[i].Name, Class: colour(i), URL: r.URL, Scrapes: strconv.Itoa(r.Scrapes),
			Running: gaugeOf(r, (*scrape.Report).RunningGauge), Waiting: gaugeOf(r, (*scrape.Report).WaitingGauge), KVCache: "-", PrefixHit: "-"}
		if r.Errors > 0 {
			row.Scrapes += fmt.Sprintf(" (%d failed: %s)", r.Errors, r.FirstError)
		}
		if n, ok := kvCacheGauge(r); ok {
			row.KVCache = gaugeText(r, n, 100)
		}
		if r.PrefixCacheHitRate != nil {
			row.PrefixHit = fmt.Sprintf("%.1f%%", 100**r.PrefixCacheHitRate)
		}
		s.Rows = append(s.Rows, row)
		for _, n := range sortedKeys(r.Gauges) {
			g := r.Gauges[n]
			s.Series = append(s.Series, htmlServerSeries{Bench: bs[i].Name, Class: colour(i), Name: n, Kind: "gauge",
				Summary: fmt.Sprintf("mean %s, min %s, max %s, last %s (%d samples)", fmtNum(g.Mean), fmtNum(g.Min), fmtNum(g.Max), fmtNum(g.Last), g.Samples)})
		}
		for _, n := range sortedKeys(r.Counters) {
			c := r.Counters[n]
			sum := fmt.Sprintf("+%s (%s/s), %s → %s", fmtNum(c.Delta), fmtNum(c.RatePerS), fmtNum(c.First), fmtNum(c.Last))
			if c.Resets > 0 {
				sum += fmt.Sprintf(", %d resets", c.Resets)
			}
			s.Series = append(s.Series, htmlServerSeries{Bench: bs[i].Name, Class: colour(i), Name: n, Kind: "counter", Summary: sum})
		}
	}
	if len(s.Rows) == 0 {
		return nil
	}
	for _, c := range []*chart{
		serverChart("KV-cache usage (server)", "percent of blocks in use", bs, (*scrape.Report).KVCacheGauge, 100),
		serverChart("Requests running (server)", "requests", bs, (*scrape.Report).RunningGauge, 1),
		serverChart("Requests waiting (server)", "requests", bs, (*scrape.Report).WaitingGauge, 1),
	} {
		if !c.Empty { // a target without the series (no known engine) gets no empty chart
			s.Charts = append(s.Charts, c)
		}
	}
	return &s
}

// gaugeText is "mean M, max X" of a gauge scaled by k (100: a percentage),
// or "-" when r lacks it.
func gaugeText(r *scrape.Report, name string, k float64) string {
	g, ok := r.Gauges[name]
	if !ok {
		return "-"
	}
	if k == 100 {
		return fmt.Sprintf("%.1f%% / %.1f%%", 100*g.Mean, 100*g.Max)
	}
	return fmtNum(g.Mean) + " / " + fmtNum(g.Max)
}

// serverChart draws one scraped series of every scraped benchmark against
// seconds since its run origin (the scrape just before the run, slightly
// negative, is drawn at 0), each line averaged down to maxLinePoints.
// name picks the series of a report; k scales its values.
func serverChart(title, ylabel string, bs []Benchmark, name func(*scrape.Report) (string, bool), k float64) *chart {
	c := newChart(title, "seconds since start", ylabel)
	names := make([]string, len(bs))
	series := make([][]xy, len(bs))
	var xmax, ymax float64
	for i := range bs {
		names[i] = bs[i].Name
		r := bs[i].ServerMetrics
		if r == nil {
			continue
		}
		n, ok := name(r)
		if !ok {
			continue
		}
		for _, smp := range r.Series {
			v, ok := smp.Values[n]
			if !ok {
				continue
			}
			x := max(smp.TS, 0)
			series[i] = append(series[i], xy{x, k * v})
			xmax = max(xmax, x)
		}
		series[i] = average(series[i], maxLinePoints)
		for _, p := range series[i] {
			ymax = max(ymax, p.Y)
		}
	}
	if ymax == 0 {
		ymax = 1 // a flat zero line (nothing waited) is still worth showing
	}
	if k == 100 {
		ymax = max(ymax, 100) // usage is drawn on its full scale
	}
	if xmax == 0 {
		xmax = 1
	}
	c.layout(names, series, xmax, ymax, nil)
	return c
}

// serverCSVColumns are benchmarks.csv's server-metrics columns, present
// when at least one benchmark was scraped; a benchmark that was not, or a
// series its target does not expose, leaves the cell empty.
func serverCSVColumns(bs []Benchmark) []csvColumn {
	scraped := false
	for i := range bs {
		scraped = scraped || bs[i].ServerMetrics != nil
	}
	if !scraped {
		return nil
	}
	gauge := func(pick func(*scrape.Report) (string, bool), get func(scrape.GaugeSummary) float64) func(*Benchmark) string {
		return func(b *Benchmark) string {
			r := b.ServerMetrics
			if r == nil {
				return ""
			}
			n, ok := pick(r)
			if !ok {
				return ""
			}
			g, ok := r.Gauges[n]
			if !ok {
				return ""
			}
			return fmtExact(get(g))
		}
	}
	mean := func(g scrape.GaugeSummary) float64 { return g.Mean }
	maxOf := func(g scrape.GaugeSummary) float64 { return g.Max }
	return []csvColumn{
		{"server_scrapes", func(b *Benchmark) string {
			if b.ServerMetrics == nil {
				return ""
			}
			return strconv.Itoa(b.ServerMetrics.Scrapes)
		}},
		{"server_scrape_errors", func(b *Benchmark) string {
			if b.ServerMetrics == nil {
				return ""
			}
			return strconv.Itoa(b.ServerMetrics.Errors)
		}},
		{"server_requests_running_mean", gauge((*scrape.Report).RunningGauge, mean)},
		{"server_requests_running_max", gauge((*scrape.Report).RunningGauge, maxOf)},
		{"server_requests_waiting_mean", gauge((*scrape.Report).WaitingGauge, mean)},
		{"server_requests_waiting_max", gauge((*scrape.Report).WaitingGauge, maxOf)},
		{"server_kv_cache_usage_mean", gauge(kvCacheGauge, mean)},
		{"server_kv_cache_usage_max", gauge(kvCacheGauge, maxOf)},
		{"server_prefix_cache_hit_rate", func(b *Benchmark) string {
			if b.ServerMetrics == nil || b.ServerMetrics.PrefixCacheHitRate == nil {
				return ""
			}
			return fmtExact(*b.ServerMetrics.PrefixCacheHitRate)
		}},
	}
}
