package report_test

import (
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/report"
)

// A Histogram is drawn by the report's chart template: one bar per
// positive value with its tooltip, the mark as a labelled dashed line even
// above every bar, values escaped; without a positive value, "no data".
func TestHistogramHTML(t *testing.T) {
	h := &report.Histogram{
		Title: "Rate <per> bin", XLabel: "offset (s)", YLabel: "requests/s", Note: "a note",
		BinWidth: 10, Values: []float64{2, 0, 4, 1},
		Tips: []string{"first", "empty", "third & last-but-one"},
		Mark: 5, MarkLabel: "mean 5",
	}
	got, err := h.HTML()
	if err != nil {
		t.Fatal(err)
	}
	html := string(got)
	for _, want := range []string{
		"<figcaption>Rate &lt;per&gt; bin</figcaption>", `aria-label="Rate &lt;per&gt; bin"`,
		"<title>first</title>", "<title>third &amp; last-but-one</title>", "<title></title>", // the fourth bar has no tip
		`<line class="mark sat"`, ">mean 5</text>", ">offset (s)</text>", ">requests/s</text>", `<p class="note">a note</p>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the chart lacks %q:\n%s", want, html)
		}
	}
	if n := strings.Count(html, `<rect class="bar s0"`); n != 3 {
		t.Errorf("%d bars, want 3 (the empty bin has none)", n)
	}
	// A bar's value label is a tick text without text-anchor; bars
	// without a label get none.
	if strings.Contains(html, "empty") || strings.Contains(html, `dy="12">`) {
		t.Errorf("the empty bin is drawn, or a bar has a value label:\n%s", html)
	}

	none, err := (&report.Histogram{Title: "nothing", BinWidth: 1, Values: []float64{0, 0}}).HTML()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(none), `<p class="empty">no data</p>`) || strings.Contains(string(none), "<svg") {
		t.Errorf("a histogram of zeros:\n%s", none)
	}
}

// The stylesheet is the report's own: a page using it styles the charts
// the way the report does.
func TestStylesheetIsTheReports(t *testing.T) {
	css := string(report.Stylesheet())
	var b strings.Builder
	if err := report.WriteHTML(&b, &report.File{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(css, "svg.chart {") || !strings.Contains(b.String(), "<style>\n"+css+"</style>") {
		t.Errorf("the report's page does not carry Stylesheet verbatim")
	}
}
