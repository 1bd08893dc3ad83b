package browser

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/replaycli"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// maxReportBytes is issue 6's budget: a 10-point sweep with 100,000
// requests weighs under 2 MB.
const maxReportBytes = 2 << 20

// renderTarget is issue 6's render budget for the large sweep: navigation
// start to the load event and the charts painted. Logged (and printed by
// bench/report.sh), never asserted: a shared machine is no stopwatch.
const renderTarget = 2000 // ms

// TestLargeSweepReport renders a 10-point sweep of 100,000 requests (with
// per-request records in benchmarks.json, which the page must not draw one
// by one, and the server's scraped metrics) and loads it in Chromium: every
// chart drawn with data, nothing fetched, no console error, under 2 MB.
// The render time is logged as "render time: N ms", not asserted.
func TestLargeSweepReport(t *testing.T) {
	b := newBrowser(t)
	f, err := reporttest.Sweep(reporttest.SweepOptions{Points: 10, Requests: 100_000, SaveRequests: true, ServerMetrics: true, Seed: 6})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := report.WriteAll(dir, f); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, report.HTMLFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := os.Stat(filepath.Join(dir, report.JSONFile))
	t.Logf("100,000 requests in 10 benchmarks: report.html %d bytes (benchmarks.json %d bytes)", st.Size(), js.Size())
	if st.Size() >= maxReportBytes {
		t.Errorf("report.html is %d bytes, budget %d", st.Size(), maxReportBytes)
	}
	res := b.load(t, path, "report-sweep-100k.png")
	t.Logf("chromium: %s", res)
	t.Logf("render time: %.0f ms (navigation start → load event and charts painted; target %d ms, not asserted); report.html %d bytes (budget %d)",
		res.Rendered, renderTarget, st.Size(), maxReportBytes)
	checkOffline(t, res, path)
	if res.Empty != 0 {
		t.Errorf("%d charts without data", res.Empty)
	}
	// 4 CDFs + 4 series + 5 against the rate (TTFT, ITL, e2e, throughput,
	// attainment) + the attainment bars + 3 of the server's metrics.
	if res.Charts != 17 {
		t.Errorf("%d charts drawn, want 17: %q", res.Charts, res.Captions)
	}
	for _, want := range []string{"Time to first token", "Inter-token latency", "Time to first token vs rate", "Output throughput",
		"Requests in flight", "SLO attainment vs rate", "KV-cache usage (server)", "Requests running (server)", "Requests waiting (server)"} {
		if !slices.Contains(res.Captions, want) {
			t.Errorf("no chart %q in %q", want, res.Captions)
		}
	}
	if res.ServerRows != 10 {
		t.Errorf("%d rows in the server-metrics summary, want 10", res.ServerRows)
	}
	// A line per benchmark in each CDF, series and server chart, 3
	// percentiles in 3 latency charts, throughput and attainment.
	if want := 11*10 + 3*3 + 2; res.Lines != want {
		t.Errorf("%d lines with points, want %d", res.Lines, want)
	}
	if want := (3*3 + 2) * 10; res.Dots != want {
		t.Errorf("%d points, want %d (one per benchmark per line against the rate)", res.Dots, want)
	}
	if res.Bars < 5 || res.Bars > 10 { // the low rates meet the SLO, the saturated ones may not at all
		t.Errorf("%d attainment bars drawn with a width, want 5 to 10", res.Bars)
	}
	if res.Marks < 5 { // saturation in each rate chart, SLO lines in TTFT and ITL
		t.Errorf("%d reference lines (SLO thresholds, saturation point), want at least 5", res.Marks)
	}
	if res.Layout.ChartWidth < 300 {
		t.Errorf("first chart laid out %v px wide", res.Layout.ChartWidth)
	}
}

// TestRunReportInChromium runs a real sweep against the simulator (in this
// process) with SLOs and the saturation detector, re-renders it with
// `replay report`, and checks the page in Chromium.
func TestRunReportInChromium(t *testing.T) {
	b := newBrowser(t)
	url, _ := simtest.Start(t, func(c *sim.Config) {
		c.Slots, c.TTFTBase, c.ITLBase = 4, 10*time.Millisecond, 2*time.Millisecond
	})

	dir := filepath.Join(t.TempDir(), "results")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	args := []string{"run", "--target", url, "--workload", "synthetic:prompt_tokens=64,output_tokens=24",
		"--profile", "sweep", "--sweep-points", "4", "--max-seconds", "1.5", "--max-concurrency", "64",
		"--slo", "ttft_p99<=150ms,itl_p99<=15ms", "--detect-saturation", "monitor",
		"--output-dir", dir, "--quiet", "--label", "test=browser"}
	err := replaycli.Run(ctx, args, &out, &out)
	if err != nil && !strings.Contains(err.Error(), "does not meet --slo") {
		t.Fatalf("replay run: %v\n%s", err, out.String())
	}
	if err := os.Remove(filepath.Join(dir, report.HTMLFile)); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := replaycli.Run(ctx, []string{"report", dir}, &out, &out); err != nil {
		t.Fatalf("replay report: %v\n%s", err, out.String())
	}
	t.Logf("replay report:\n%s", out.String())
	f := reporttest.Read(t, dir)
	path := filepath.Join(dir, report.HTMLFile)
	res := b.load(t, path, "report-sim-sweep.png")
	t.Logf("chromium: %s", res)
	checkOffline(t, res, path)
	n := len(f.Benchmarks)
	if n < 3 {
		t.Fatalf("the sweep ran %d benchmarks", n)
	}
	for _, want := range []string{"Time to first token", "Inter-token latency", "Time to first token vs rate", "Output throughput", "Requests in flight", "SLO attainment"} {
		if !slices.Contains(res.Captions, want) {
			t.Errorf("no chart %q in %q", want, res.Captions)
		}
	}
	if res.Empty != 0 {
		t.Errorf("%d charts without data: %q", res.Empty, res.Captions)
	}
	if res.Lines < 8*n { // every CDF and series has a line per benchmark
		t.Errorf("%d lines for %d benchmarks", res.Lines, n)
	}
	if res.Dots < 3*3*n {
		t.Errorf("%d points for %d benchmarks", res.Dots, n)
	}
}

// compareSim starts a simulator (in this process) whose time to first
// token is ttft; it serves vLLM's metrics at /metrics.
func compareSim(t *testing.T, ttft time.Duration, seed int64) string {
	t.Helper()
	url, _ := simtest.Start(t, func(c *sim.Config) {
		c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq = ttft, 0, time.Millisecond, 0
		c.Jitter, c.Seed, c.Slots = 0.2, seed, 8
	})
	return url
}

// TestCompareReportInChromium measures two simulators with replay run
// (their metrics scraped), compares the saved results with replay compare
// — the candidate 40 ms slower to its first token — and checks the page in
// Chromium: a comparison row per statistic with TTFT worse, the servers'
// metrics summarised and charted, comparison.csv written.
func TestCompareReportInChromium(t *testing.T) {
	b := newBrowser(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := t.TempDir()
	var dirs []string
	for _, side := range []struct {
		name string
		ttft time.Duration
	}{{"base", 10 * time.Millisecond}, {"cand", 50 * time.Millisecond}} {
		dir := filepath.Join(root, side.name)
		var out bytes.Buffer
		args := []string{"run", "--target", compareSim(t, side.ttft, int64(len(dirs)+1)), "--name", side.name,
			"--workload", "synthetic:prompt_tokens=30,output_tokens=8,samples=120", "--profile", "constant", "--rate", "40",
			"--save-requests", "--scrape-interval", "200ms", "--output-dir", dir, "--quiet"}
		if err := replaycli.Run(ctx, args, &out, &out); err != nil {
			t.Fatalf("replay run %s: %v\n%s", side.name, err, out.String())
		}
		dirs = append(dirs, dir)
	}
	dir := filepath.Join(root, "compared")
	var out bytes.Buffer
	if err := replaycli.Run(ctx, append([]string{"compare", "--output-dir", dir, "--label", "test=browser"}, dirs...), &out, &out); err != nil {
		t.Fatalf("replay compare: %v\n%s", err, out.String())
	}
	f := reporttest.Read(t, dir)
	if f.Comparison == nil || len(f.Comparison.Rows) == 0 {
		t.Fatal("replay compare wrote no comparison")
	}
	scraped := 0
	for _, bm := range f.Benchmarks {
		if bm.ServerMetrics != nil && bm.ServerMetrics.Scrapes > 0 {
			scraped++
		}
	}
	if scraped != 2 {
		t.Fatalf("%d of 2 benchmarks carry the simulator's scraped metrics", scraped)
	}
	if _, err := os.Stat(filepath.Join(dir, report.ComparisonCSVFile)); err != nil {
		t.Errorf("no comparison.csv: %v", err)
	}
	path := filepath.Join(dir, report.HTMLFile)
	res := b.load(t, path, "report-compare.png")
	t.Logf("chromium: %s; %d comparison rows (%d worse), %d server-metrics rows", res, res.CompareRows, res.CompareWorse, res.ServerRows)
	checkOffline(t, res, path)
	if res.CompareRows != len(f.Comparison.Rows) {
		t.Errorf("%d comparison rows shown, the file has %d", res.CompareRows, len(f.Comparison.Rows))
	}
	worse := 0
	for _, r := range f.Comparison.Rows {
		if r.Verdict == report.VerdictWorse {
			worse++
		}
		if r.Metric == "time_to_first_token_ms" && r.Stat == "p50" && r.Verdict != report.VerdictWorse {
			t.Errorf("ttft p50 of a candidate 40 ms slower: %s", r.Verdict)
		}
	}
	if res.CompareWorse != worse || worse == 0 {
		t.Errorf("%d verdicts shown as worse, the file has %d", res.CompareWorse, worse)
	}
	if res.ServerRows != 2 {
		t.Errorf("%d rows in the server-metrics summary, want 2", res.ServerRows)
	}
	for _, want := range []string{"Time to first token", "Inter-token latency", "Requests in flight", "KV-cache usage (server)", "Requests running (server)", "Requests waiting (server)"} {
		if !slices.Contains(res.Captions, want) {
			t.Errorf("no chart %q in %q", want, res.Captions)
		}
	}
	if res.Empty != 0 {
		t.Errorf("%d charts without data: %q", res.Empty, res.Captions)
	}
}
