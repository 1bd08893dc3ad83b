package stats_test

import (
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/stats"
)

// The metrics' percentiles and the SLO verdict's are the same statistic:
// at n = 70, p99 is the maximum in both.
func TestMetricsPercentilesMatchTheSLOs(t *testing.T) {
	var results []engine.Result
	for i := range 70 {
		ttft := time.Duration(20+i*i) * time.Millisecond
		results = append(results, engine.Result{Index: i, Stream: true, Status: 200, Sent: 0,
			FirstToken: ttft, LastToken: ttft + 50*time.Millisecond, End: ttft + 60*time.Millisecond, OutputTokens: 6})
	}
	spec, err := slo.Parse("ttft_p99<=10s,ttft_p50<=10s,e2e_p90<=10s")
	if err != nil {
		t.Fatal(err)
	}
	rep := spec.Evaluate(results)
	m := stats.Summarize(results, stats.Options{})
	want := []float64{m.TimeToFirstToken.P99, m.TimeToFirstToken.P50, m.RequestLatency.P90}
	for i, term := range rep.Terms {
		if term.ValueMs != want[i] {
			t.Errorf("%s: SLO value %v ms, metrics %v ms", term.Term, term.ValueMs, want[i])
		}
	}
	if m.TimeToFirstToken.P99 != m.TimeToFirstToken.Max {
		t.Errorf("p99 %v, max %v", m.TimeToFirstToken.P99, m.TimeToFirstToken.Max)
	}
}
