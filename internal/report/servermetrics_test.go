package report

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/scrape"
)

// scrapedReport is what scraping a vLLM V1 target once a second for n
// seconds gives: running requests climbing to 8, waiting ones from half
// way, KV-cache usage following running, and prefix-cache counters with a
// 25% hit rate.
func scrapedReport(n int) *scrape.Report {
	r := &scrape.Report{URL: "http://vllm:8000/metrics", IntervalS: 1, Scrapes: n + 1}
	var run, wait, kv []float64
	for i := 0; i <= n; i++ {
		running := float64(min(i, 8))
		waiting := float64(max(0, i-n/2))
		usage := running / 10
		run, wait, kv = append(run, running), append(wait, waiting), append(kv, usage)
		r.Series = append(r.Series, scrape.Sample{TS: float64(i) - 0.01, Values: map[string]float64{
			gaugeRunning: running, gaugeWaiting: waiting, "vllm:kv_cache_usage_perc": usage,
			"vllm:prefix_cache_hits_total": float64(100 * i), "vllm:prefix_cache_queries_total": float64(400 * i),
		}})
	}
	summary := func(v []float64) scrape.GaugeSummary {
		g := scrape.GaugeSummary{Min: slices.Min(v), Max: slices.Max(v), Last: v[len(v)-1], Samples: len(v)}
		for _, x := range v {
			g.Mean += x / float64(len(v))
		}
		return g
	}
	r.Gauges = map[string]scrape.GaugeSummary{gaugeRunning: summary(run), gaugeWaiting: summary(wait), "vllm:kv_cache_usage_perc": summary(kv)}
	r.Counters = map[string]scrape.CounterSummary{
		"vllm:prefix_cache_hits_total":    {First: 0, Last: float64(100 * n), Delta: float64(100 * n), RatePerS: 100},
		"vllm:prefix_cache_queries_total": {First: 0, Last: float64(400 * n), Delta: float64(400 * n), RatePerS: 400},
	}
	rate := 0.25
	r.PrefixCacheHitRate, r.PrefixCacheHitRateFrom = &rate, "counters"
	return r
}

// TestServerMetricsSection: a scraped benchmark gets a summary row, the
// KV-cache / running / waiting charts and every series in detail; one that
// was not scraped gets no row, and a file without scrapes no section.
func TestServerMetricsSection(t *testing.T) {
	f := fixtureFile()
	var plain bytes.Buffer
	if err := WriteHTML(&plain, f); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "Server metrics") {
		t.Error("a file without scrapes has a server-metrics section")
	}
	f.Benchmarks[1].ServerMetrics = scrapedReport(20)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, f); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	if err := wellFormed(page); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<h2 id="server-metrics">Server metrics</h2>`,
		"<figcaption>KV-cache usage (server)</figcaption>",
		"<figcaption>Requests running (server)</figcaption>",
		"<figcaption>Requests waiting (server)</figcaption>",
		"<td>25.0%</td>",                  // prefix-cache hit rate
		"<td>21</td>",                     // scrapes
		"vllm:prefix_cache_queries_total", // the detail table
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	section := page[strings.Index(page, `id="server-metrics"`):]
	section = section[:strings.Index(section, "<h2>Benchmarks</h2>")]
	if n := strings.Count(section, "<tr><th><span class=\"key s1\"></span>candidate"); n != 1+5 { // summary row + 3 gauges + 2 counters
		t.Errorf("%d rows for the scraped benchmark, want 6", n)
	}
	if strings.Contains(section, "production (captured)") {
		t.Error("the benchmark that was not scraped has a row")
	}
	if strings.Count(section, `<polyline class="series s1"`) != 3 || strings.Contains(section, "no data") {
		t.Error("want one line per chart for the scraped benchmark and no empty chart")
	}

	// A target exposing none of vLLM's gauges: its row, no empty charts.
	f.Benchmarks[1].ServerMetrics = &scrape.Report{URL: "http://other/metrics", IntervalS: 1, Scrapes: 3, Errors: 1, FirstError: "scraping http://other/metrics: status 500",
		Gauges: map[string]scrape.GaugeSummary{"queue_depth": {Mean: 2, Max: 3, Samples: 3}},
		Series: []scrape.Sample{{TS: 0, Values: map[string]float64{"queue_depth": 1}}, {TS: 1, Values: map[string]float64{"queue_depth": 3}}}}
	buf.Reset()
	if err := WriteHTML(&buf, f); err != nil {
		t.Fatal(err)
	}
	page = buf.String()
	if !strings.Contains(page, "3 (1 failed: scraping http://other/metrics: status 500)") || !strings.Contains(page, "queue_depth") {
		t.Error("the non-vLLM target's row or series is missing")
	}
	if strings.Contains(page, "(server)</figcaption>") {
		t.Error("charts drawn for series the target does not expose")
	}
}

// TestServerMetricsCSV: the server_* columns appear when a benchmark was
// scraped, with the summary's figures, and are empty for one that was not.
func TestServerMetricsCSV(t *testing.T) {
	f := fixtureFile()
	var buf bytes.Buffer
	if err := WriteCSV(&buf, f); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "server_") {
		t.Error("server columns without any scrape")
	}
	r := scrapedReport(20)
	f.Benchmarks[1].ServerMetrics = r
	buf.Reset()
	if err := WriteCSV(&buf, f); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	want := map[string]string{
		"server_scrapes":               "21",
		"server_scrape_errors":         "0",
		"server_requests_running_mean": fmtExact(r.Gauges[gaugeRunning].Mean),
		"server_requests_running_max":  "8",
		"server_requests_waiting_max":  "10",
		"server_kv_cache_usage_mean":   fmtExact(r.Gauges["vllm:kv_cache_usage_perc"].Mean),
		"server_kv_cache_usage_max":    "0.8",
		"server_prefix_cache_hit_rate": "0.25",
	}
	for name, v := range want {
		i, ok := col[name]
		if !ok {
			t.Errorf("no column %s", name)
			continue
		}
		if got := rows[2][i]; got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
		if got := rows[1][i]; got != "" {
			t.Errorf("%s of the unscraped benchmark = %q, want empty", name, got)
		}
	}
	// Before the labels, after the distributions.
	if col["server_scrapes"] < col["client_lag_ms_p999"] || col["server_prefix_cache_hit_rate"] > col["label_env"] {
		t.Errorf("server columns out of place: %v", rows[0])
	}
}

// TestComparisonCSV: comparison.csv has a row per comparison row with
// the JSON's figures, empty cells for numbers that do not exist, and the
// labels; WriteAll writes it only for a file with a comparison.
func TestComparisonCSV(t *testing.T) {
	f := fixtureFile()
	dir := t.TempDir()
	if err := WriteAll(dir, f); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ComparisonCSVFile)); !os.IsNotExist(err) {
		t.Errorf("comparison.csv written without a comparison: %v", err)
	}
	f.Comparison = &Comparison{Baseline: "prod", Mode: "saved", Confidence: 0.95, Resamples: 2000, Seed: 1, Rows: []ComparisonRow{
		{Baseline: "prod", Candidate: "cand", Metric: "time_to_first_token_ms", Stat: "p99", Unit: "ms", LowerIsBetter: true,
			BaselineN: 1200, CandidateN: 1100, BaselineValue: 412, CandidateValue: 455.1, DeltaAbs: 43.1, CILowAbs: 21.7, CIHighAbs: 70.2,
			DeltaPct: 10.5, CILowPct: 5.2, CIHighPct: 17.1, CandidateCILow: 433, CandidateCIHigh: 482.4, Confidence: 0.9875, PValue: 0.0003,
			Verdict: VerdictWorse, Gate: "ttft_p99>+5%"},
		{Baseline: "prod", Candidate: "cand", Metric: "requests_per_second", Stat: "value", Unit: "req/s",
			BaselineN: 5, CandidateN: 5, BaselineValue: 10, CandidateValue: 10.1, DeltaAbs: 0.1, DeltaPct: 1, RelativeUndefined: true, PValue: -1,
			Verdict: VerdictInsufficient, Note: "needs at least 20 one-second buckets, \"a quote\""},
	}}
	if err := WriteAll(dir, f); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(filepath.Join(dir, ComparisonCSVFile))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want header + 2", len(rows))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	for _, c := range []struct {
		row         int
		name, value string
	}{
		{1, "candidate", "cand"}, {1, "metric", "time_to_first_token_ms"}, {1, "stat", "p99"}, {1, "delta", "43.1"},
		{1, "ci_low_pct", "5.2"}, {1, "ci_high_pct", "17.1"}, {1, "p_value", "0.0003"}, {1, "verdict", "worse"},
		{1, "gate", "ttft_p99>+5%"}, {1, "candidate_n", "1100"}, {1, "lower_is_better", "true"}, {1, "label_gpu", "H100"},
		{2, "delta_pct", ""}, {2, "p_value", ""}, {2, "relative_undefined", "true"}, {2, "verdict", "insufficient data"},
		{2, "note", "needs at least 20 one-second buckets, \"a quote\""}, {2, "label_env", "staging"},
	} {
		i, ok := col[c.name]
		if !ok {
			t.Errorf("no column %s", c.name)
			continue
		}
		if got := rows[c.row][i]; got != c.value {
			t.Errorf("row %d %s = %q, want %q", c.row, c.name, got, c.value)
		}
	}
	// Re-rendering a saved comparison writes it too.
	if err := os.Remove(filepath.Join(dir, ComparisonCSVFile)); err != nil {
		t.Fatal(err)
	}
	if err := WriteViews(dir, f); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ComparisonCSVFile)); err != nil {
		t.Errorf("WriteViews: %v", err)
	}
}
