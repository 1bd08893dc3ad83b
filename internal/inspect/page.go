package inspect

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/report"
)

// rateSeries is requests per second in at most maxBins bins of whole
// seconds over the span: bin width and the mean rate in each.
func (s *Summary) rateSeries(maxBins int) (width int64, rates []float64) {
	last := int64(s.span / time.Second)
	width = max(1, (last+int64(maxBins))/int64(maxBins))
	counts := make([]int, last/width+1)
	for sec, n := range s.perSecond {
		counts[sec/width] += n
	}
	rates = make([]float64, len(counts))
	for i, n := range counts {
		rates[i] = float64(n) / float64(width)
	}
	return width, rates
}

// tips are the bars' tooltips: the bin's range of x and its value.
func tips(xLabel string, values []float64, binWidth float64) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = fmt.Sprintf("%s %s–%s: %s", xLabel, short(float64(i)*binWidth), short(float64(i+1)*binWidth), short(v))
	}
	return out
}

// short formats a tooltip's number compactly: three significant digits,
// k and M for thousands and millions, whole numbers as they are.
func short(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// figures are the page's charts: the arrival rate over time (with a span)
// and the prompt and output length histograms (with lengths known).
func (s *Summary) figures() []*report.Histogram {
	var figs []*report.Histogram
	if s.requests > 0 && s.span > 0 {
		width, rates := s.rateSeries(240)
		const x = "offset (s)"
		figs = append(figs, &report.Histogram{
			Title: "Arrival rate over time (requests/s)", XLabel: x, YLabel: "requests/s",
			Note:     fmt.Sprintf("Mean over bins of %d s; the dashed line is the mean per whole second from 0 through the last arrival.", width),
			BinWidth: float64(width), Values: rates, Tips: tips(x, rates, float64(width)),
			Mark: s.meanRate(), MarkLabel: "mean " + short(s.meanRate()),
		})
	}
	for _, h := range []struct {
		name string
		h    *lengths
	}{{"Prompt tokens", s.prompt}, {"Output tokens", s.output}} {
		if h.h.count() == 0 {
			continue
		}
		width, counts := h.h.bins(40)
		vals := make([]float64, len(counts))
		for i, c := range counts {
			vals[i] = float64(c)
		}
		x := strings.ToLower(h.name)
		figs = append(figs, &report.Histogram{
			Title: h.name + " (requests per bin)", XLabel: x, YLabel: "requests",
			Note:     fmt.Sprintf("Bins of %d tokens. %s.", width, h.h),
			BinWidth: float64(width), Values: vals, Tips: tips(x, vals, float64(width)),
		})
	}
	return figs
}

// page is the summary page. It shares the report's stylesheet and charts;
// its only rule of its own is for the warnings list, which the report has
// not. Summary values are text, so their cells are the report's left-aligned
// "txt" cells.
var page = template.Must(template.New("inspect").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reprise workload: {{.Spec}}</title>
<style>
{{.Style}}.warn { color: #b00020; }
</style>
</head>
<body>
<h1>Reprise workload summary</h1>
<p class="meta">{{.Spec}} — inspected {{.Created}}</p>
{{- if .Transforms}}
<p class="meta">Transforms: {{range .Transforms}}{{.Key}}={{.Value}} {{end}}</p>
{{- end}}
{{- if .Warnings}}
<h2>Warnings</h2>
<ul>{{range .Warnings}}<li class="warn">{{.}}</li>{{end}}</ul>
{{- end}}
<h2>Summary</h2>
<table id="summary">
<tbody>
{{- range .Rows}}
<tr><th>{{.Label}}</th><td class="txt">{{.Value}}</td></tr>
{{- end}}
</tbody>
</table>
{{- if .Figures}}
<h2>Charts</h2>
<div class="charts">
{{- range .Figures}}
{{.}}
{{- end}}
</div>
{{- end}}
</body>
</html>
`))

// WriteHTML writes the summary as a self-contained page in the report's
// style: the transforms applied to the workload (described by the
// caller), the source's warnings, the summary table, and the rate over
// time and length histograms as inline SVG. created is the time the page
// says it was made.
func (s *Summary) WriteHTML(w io.Writer, transforms *report.TransformsConfig, created time.Time) error {
	var figs []template.HTML
	for _, h := range s.figures() {
		f, err := h.HTML()
		if err != nil {
			return err
		}
		figs = append(figs, f)
	}
	err := page.Execute(w, map[string]any{
		"Spec": s.spec, "Created": created.UTC().Format(time.RFC3339), "Transforms": transforms.Entries(), "Style": report.Stylesheet(),
		"Warnings": s.warnings, "Rows": s.rows(), "Figures": figs,
	})
	if err != nil {
		return fmt.Errorf("rendering the workload summary page: %w", err)
	}
	return nil
}
