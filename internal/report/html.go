package report

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/stats"
)

//go:embed report.html.tmpl
var htmlSource string

// htmlTemplate renders the report. html/template escapes every value for
// its context; the page loads nothing (no scripts, no external URLs, no
// fonts) and needs no script to draw: every chart is inline SVG, every
// tooltip an SVG <title>.
var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"c": coord,
}).Parse(htmlSource))

// htmlPage is the template's data.
type htmlPage struct {
	Tool, Created, Command string
	Labels                 []kv
	Benchmarks             []htmlBench
	Summary                []htmlRow
	CDFs, Series, Sweep    []*chart
	DistHeader             []string
	SLO                    *htmlSLO
	Saturation             []htmlSat
	Comparisons            []htmlComparison
	Server                 *htmlServer // the targets' scraped metrics; nil when none
	OpenDetails            bool        // benchmark details start expanded (few benchmarks)
}

type kv struct{ Key, Value string }

type htmlBench struct {
	Name, Class, Target, Profile, Start, Duration string
	Index                                         int
	Baseline                                      bool
	Labels                                        []kv // labels that tell it from the others (benchLabelKeys)
	Config                                        []kv
	Fidelity                                      []kv
	Dists                                         []htmlRow
}

type htmlRow struct {
	Label string
	Cells []string
}

// distColumns are the statistics shown per distribution in the HTML.
var distColumns = []string{"count", "mean", "p50", "p90", "p95", "p99", "p999", "max"}

// WriteHTML writes one self-contained HTML page: summary table, CDFs of
// TTFT, ITL, inter-chunk latency and request latency, throughput,
// concurrency and TTFT over time, the targets' scraped server metrics,
// and every distribution of every benchmark. It needs only the File, so it can be re-rendered from
// benchmarks.json.
func WriteHTML(w io.Writer, f *File) error {
	if err := htmlTemplate.Execute(w, buildPage(f)); err != nil {
		return fmt.Errorf("rendering html report: %w", err)
	}
	return nil
}

func buildPage(f *File) htmlPage {
	bs := f.Benchmarks
	p := htmlPage{
		Tool:       f.Tool,
		Created:    f.Created.UTC().Format(time.RFC3339),
		Command:    strings.Join(RedactCommand(f.Command), " "),
		DistHeader: distColumns,
	}
	for _, k := range sortedKeys(f.Labels) {
		p.Labels = append(p.Labels, kv{k, f.Labels[k]})
	}
	for _, r := range summaryRows(bs) {
		hr := htmlRow{Label: r.Label}
		for i := range bs {
			hr.Cells = append(hr.Cells, r.Value(&bs[i]))
		}
		p.Summary = append(p.Summary, hr)
	}
	labelKeys := benchLabelKeys(f)
	for i := range bs {
		hb := benchData(&bs[i], i)
		for _, k := range labelKeys {
			if v, ok := f.Label(&bs[i], k); ok {
				hb.Labels = append(hb.Labels, kv{k, v})
			}
		}
		p.Benchmarks = append(p.Benchmarks, hb)
	}
	p.OpenDetails = len(bs) <= 3
	slos := sloLines(bs)
	var heads []Headline
	if f.Comparison != nil {
		heads = f.Comparison.Headlines
	}
	p.Comparisons = comparisonTables(comparisonRows(f), heads...)
	p.Sweep = sweepCharts(bs, sweepGroups(bs), slos, f.Knee)
	p.SLO = sloSection(bs)
	p.Saturation = saturationRows(bs)
	p.Server = serverSection(bs)
	p.CDFs = []*chart{
		cdfChart("Time to first token", stats.CDFTimeToFirstToken, bs, slos),
		cdfChart("Inter-token latency", stats.CDFInterTokenLatency, bs, slos),
		cdfChart("Inter-chunk latency", stats.CDFInterChunkLatency, bs, slos),
		cdfChart("Request latency", stats.CDFRequestLatency, bs, slos),
	}
	p.Series = []*chart{
		seriesChart("Output throughput", "tokens per second", bs, func(b *stats.Bucket) (float64, bool) { return b.OutputTokensPerS, true }),
		seriesChart("Requests in flight", "requests (time-weighted mean)", bs, func(b *stats.Bucket) (float64, bool) { return b.InFlight, true }),
		seriesChart("Mean TTFT of requests sent", "milliseconds", bs, func(b *stats.Bucket) (float64, bool) { return b.MeanTTFTMs, b.TTFTCount > 0 }),
		seriesChart("Requests started", "per bucket", bs, func(b *stats.Bucket) (float64, bool) { return float64(b.Started), true }),
	}
	return p
}

func benchData(b *Benchmark, i int) htmlBench {
	m := &b.Metrics
	h := htmlBench{
		Name: b.Name, Class: colour(i), Index: i, Target: b.Target, Profile: b.Profile,
		Start: b.Start.UTC().Format(time.RFC3339), Duration: fmtNum(b.DurationS) + " s", Baseline: b.Baseline,
	}
	h.Config = b.Config.entries()
	h.Fidelity = []kv{
		{"requested rate (req/s)", orDash(m.RequestedRate)},
		{"scheduled rate (req/s)", orDash(m.ScheduledRate)},
		{"achieved send rate (req/s)", orDash(m.AchievedRate)},
		{"dropped requests", strconv.FormatInt(m.DroppedRequests, 10)},
		{"send lag p50 / p99 / max (ms)", fmtNum(m.SendLag.P50) + " / " + fmtNum(m.SendLag.P99) + " / " + fmtNum(m.SendLag.Max)},
		{"token counts from usage", fmt.Sprintf("%.0f%%", 100*m.TokensFromUsageFraction)},
	}
	for _, d := range distributions {
		dist := d.Get(m)
		r := htmlRow{Label: d.Title}
		for _, col := range distColumns {
			if dist.Count == 0 {
				r.Cells = append(r.Cells, "-")
				continue
			}
			for _, s := range distStats {
				if s.Key == col {
					if col == "count" {
						r.Cells = append(r.Cells, strconv.FormatInt(dist.Count, 10))
					} else {
						r.Cells = append(r.Cells, fmtNum(s.Get(dist)))
					}
				}
			}
		}
		h.Dists = append(h.Dists, r)
	}
	return h
}

func orDash(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmtNum(v)
}

// configValue shows scalars as themselves and anything else as JSON.
func configValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return fmtExact(v)
	case nil:
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
