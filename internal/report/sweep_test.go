package report_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
)

// maxReportBytes is the size budget of report.html (issue 6: a 10-point
// sweep with 100,000 requests weighs under 2 MB).
const maxReportBytes = 2 << 20

// TestSweepReport renders the 100,000-request, 10-point sweep with
// per-request records and 1 s server scrapes, and checks the page stays
// small (no per-request points, time series averaged down), draws the latency-vs-rate charts with the saturation point and
// the SLO thresholds, and reports every benchmark.
func TestSweepReport(t *testing.T) {
	requests := 100_000
	if testing.Short() {
		requests = 10_000
	}
	f, err := reporttest.Sweep(reporttest.SweepOptions{Requests: requests, SaveRequests: true, ServerMetrics: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	start := time.Now()
	if err := report.WriteHTML(&buf, f); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	t.Logf("report.html for %d requests in %d benchmarks: %d bytes, rendered in %v", requests, len(f.Benchmarks), len(page), time.Since(start))
	if len(page) >= maxReportBytes {
		t.Errorf("report.html is %d bytes, budget %d", len(page), maxReportBytes)
	}
	for _, want := range []string{
		"<figcaption>Time to first token vs rate</figcaption>",
		"<figcaption>Inter-token latency vs rate</figcaption>",
		"<figcaption>Request latency vs rate</figcaption>",
		"<figcaption>Output throughput vs rate</figcaption>",
		"<figcaption>SLO attainment vs rate</figcaption>",
		"<figcaption>SLO attainment</figcaption>",
		`id="saturation"`,
		"SLO ttft_p99&lt;=400ms",
		"over-saturated: constant@",
		"<figcaption>KV-cache usage (server)</figcaption>",
		"<figcaption>Requests waiting (server)</figcaption>",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// One dot per benchmark per statistic per latency chart, never one per request.
	if n := strings.Count(page, "<circle"); n > 20*len(f.Benchmarks) {
		t.Errorf("%d points drawn for %d benchmarks", n, len(f.Benchmarks))
	}
	for _, pts := range regexp.MustCompile(`points="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if n := strings.Count(pts[1], ","); n > 240 {
			t.Errorf("a line with %d points", n)
		}
	}
	if strings.Contains(page, `"index"`) || strings.Contains(page, "first_token_ms") {
		t.Error("per-request records leaked into the page")
	}
}

// BenchmarkWriteHTMLSweep renders the 100,000-request sweep report.
func BenchmarkWriteHTMLSweep(b *testing.B) {
	f, err := reporttest.Sweep(reporttest.SweepOptions{SaveRequests: true})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		if err := report.WriteHTML(&buf, f); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "bytes/report")
}
