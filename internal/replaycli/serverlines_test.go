package replaycli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/scrape"
)

// The target's side of a benchmark: its prompt cache next to the
// workload's prediction, and its running + waiting requests when they
// disagree with the client's requests in flight (issue 18: llama.cpp
// still held about 980 requests the client had cancelled).
func TestServerLines(t *testing.T) {
	hit, predicted := 0.42, 0.40
	b := func(running, waiting, client float64) *report.Benchmark {
		b := &report.Benchmark{Name: "cand", ServerMetrics: &scrape.Report{Engine: "vLLM", PrefixCacheHitRate: &hit, Gauges: map[string]scrape.GaugeSummary{
			"vllm:num_requests_running": {Mean: running}, "vllm:num_requests_waiting": {Mean: waiting},
		}}}
		b.Metrics.ConcurrencyMean, b.Metrics.CachedTokenShare = client, 0.45
		b.Config.WorkloadPrefixShare = &predicted
		return b
	}
	var w bytes.Buffer
	serverLines(&w, b(4, 976, 20))
	out := w.String()
	for _, want := range []string{"cand: prompt cache: 45.0% of prompt tokens cached (usage), 42.0% by the server's counters (vLLM); the workload's prefix structure predicts 40.0%",
		"cand: the server held 980.0 requests on average (running + waiting) while the client had 20.0 in flight: it was still serving requests the client had given up on"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	w.Reset()
	serverLines(&w, b(18, 1, 20))
	if strings.Contains(w.String(), "the server held") {
		t.Errorf("agreeing counts called out:\n%s", w.String())
	}
}
