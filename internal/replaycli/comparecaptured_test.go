package replaycli

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/compare"
	"github.com/reprise-llm/reprise/internal/report"
)

// writeCapture writes a capture of n streamed chat records, gap apart,
// whose TTFT encodes their position: 300 + i ms.
func writeCapture(t *testing.T, n int, gap time.Duration) string {
	t.Helper()
	recs := make([]capture.Record, n)
	for i := range recs {
		recs[i] = capture.Record{ID: fmt.Sprintf("r%03d", i), T: int64(i) * int64(gap), Path: "/v1/chat/completions", Model: "m", Stream: true,
			PromptTokens: 20, OutputTokens: 3, Status: 200, TTFTNs: int64(300*time.Millisecond + time.Duration(i)*time.Millisecond), E2ENs: int64(400 * time.Millisecond)}
	}
	return capturetest.Write(t, recs)
}

// TestCompareCapturedBaseline replays a capture against a simulator and
// compares it with production's recorded timings (TTFT 300 ms).
func TestCompareCapturedBaseline(t *testing.T) {
	capDir := writeCapture(t, 40, 5*time.Millisecond)
	cand := compareSim(t, 10*time.Millisecond, 7)
	f, out, err := runCLI(t, "compare", "--target", "cand="+cand, "--baseline", "captured", "--workload", capDir,
		"--fail-if", "ttft_p50>+0ms")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	r := compRow(t, f, "cand", compare.TTFT, compare.StatP50)
	if r.Baseline != "production (captured)" || r.Verdict != report.VerdictBetter || r.BaselineN != 40 || r.BaselineValue < 300 {
		t.Errorf("vs captured: %+v", r)
	}
	if !f.Benchmarks[0].Baseline || f.Benchmarks[0].Profile != "captured" || f.Comparison.Baseline != "production (captured)" {
		t.Errorf("benchmarks: %+v", f.Benchmarks[0])
	}
}

// TestCompareCapturedFollowsTransforms: with --sample 0.5, production's
// side is exactly the sampled requests (their recorded TTFTs, 300 + index
// ms), not the capture's first N; the mode is "captured" (B2, B9).
func TestCompareCapturedFollowsTransforms(t *testing.T) {
	capDir := writeCapture(t, 80, 20*time.Millisecond)
	cand := compareSim(t, 10*time.Millisecond, 13)
	f, out, err := runCLI(t, "compare", "--target", "cand="+cand, "--baseline", "captured", "--workload", capDir,
		"--sample", "0.5", "--time-scale", "0.25", "--save-requests")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if f.Comparison.Mode != "captured" {
		t.Errorf("mode %q, want captured", f.Comparison.Mode)
	}
	reqs := f.Benchmarks[1].Requests
	var ttfts []float64
	sequential := true
	for i, r := range reqs {
		ttfts = append(ttfts, float64(300+r.Index))
		sequential = sequential && r.Index == i
	}
	if len(reqs) < 20 || len(reqs) > 60 || sequential {
		t.Fatalf("sample kept %d requests (sequential %v): not a sample of 80", len(reqs), sequential)
	}
	slices.Sort(ttfts)
	wantP50 := ttfts[(len(ttfts)+1)/2-1] // nearest rank
	r := compRow(t, f, "cand", compare.TTFT, compare.StatP50)
	if r.BaselineN != len(reqs) || r.BaselineValue < wantP50-0.01 || r.BaselineValue > wantP50+0.01 {
		t.Errorf("production side: n %d, ttft p50 %.3f ms; want n %d and %.0f ms (the sampled requests' own)", r.BaselineN, r.BaselineValue, len(reqs), wantP50)
	}
	if got := f.Benchmarks[0].Metrics.Requests.Total; got != int64(len(reqs)) {
		t.Errorf("production benchmark counts %d requests, want %d", got, len(reqs))
	}
}
