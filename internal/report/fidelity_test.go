package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/stats"
)

// TestConsoleTableShowsArrivalShapeAndDegradation: the arrival shape and
// the degradation criteria reach the console, so that bunched sends are
// seen without opening benchmarks.json (issue 17).
func TestConsoleTableShowsArrivalShapeAndDegradation(t *testing.T) {
	f := &File{Benchmarks: []Benchmark{
		{Name: "poisson", Profile: "poisson", Metrics: stats.Metrics{
			Degraded: true, DegradedBy: []string{stats.DegradedArrivalKS, stats.DegradedCompressedGaps},
			ArrivalShape: &stats.ArrivalShape{Gaps: 9999, KSDistance: 0.1504, KSCritical1Pct: 0.0230, SpacedGaps: 6000, CompressedGaps: 660, CompressedGapFraction: 0.11},
			AchievedRate: 998.7, RequestsPerSecond: 950,
		}},
		{Name: "sync", Profile: "synchronous", Metrics: stats.Metrics{AchievedRate: 3.2}},
		{Name: "old", Profile: "constant", Metrics: stats.Metrics{Degraded: true}}, // written before degraded_by
	}}
	var buf bytes.Buffer
	if err := WriteTable(&buf, f); err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(buf.String(), "\n") {
		for _, label := range []string{"arrival gap KS (1% critical value)", "gaps compressed below 0.1 ms", "degraded by the client", "achieved send rate (req/s)", "successful req/s (window incl. drain)"} {
			if strings.HasPrefix(strings.TrimSpace(l), label) {
				lines[label] = strings.Join(strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), label)), " ")
			}
		}
	}
	for label, want := range map[string]string{
		"arrival gap KS (1% critical value)":    "0.150 (0.023) - -",
		"gaps compressed below 0.1 ms":          "11.0% (660/6000) - -",
		"degraded by the client":                "yes: arrival_ks, compressed_gaps no yes",
		"achieved send rate (req/s)":            "998.7 3.20 0",
		"successful req/s (window incl. drain)": "950.0 0 0",
	} {
		if got := lines[label]; got != want {
			t.Errorf("row %q = %q, want %q\n%s", label, got, want, buf.String())
		}
	}

	// Without shapes or degradation, neither row is there.
	buf.Reset()
	if err := WriteTable(&buf, &File{Benchmarks: f.Benchmarks[1:2]}); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); strings.Contains(s, "arrival gap") || strings.Contains(s, "degraded") {
		t.Errorf("rows for figures no benchmark has:\n%s", s)
	}
}
