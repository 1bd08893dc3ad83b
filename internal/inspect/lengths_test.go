package inspect

import (
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/inspect/inspecttest"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Percentiles are nearest-rank over the exact values; past the exact
// limit the figures come from the histogram and say "≈".
func TestLengthsExactThenApproximate(t *testing.T) {
	l := newLengths()
	for _, v := range []int64{126195, 5, 1, 3, 2, 4, 6, 7, 8, 9} {
		l.record(v)
	}
	// 10 values: p10 is the 1st, p50 the 5th, p90 the 9th, p99 the 10th.
	want := "mean 12624  min 1  p10 1  p50 5  p90 9  p99 126195  max 126195"
	if got := l.String(); got != want {
		t.Errorf("%q, want %q", got, want)
	}
	width, counts := l.bins(4)
	total := int64(0)
	for _, c := range counts {
		total += c
	}
	if width != 31549 || total != 10 || counts[0] != 9 || counts[len(counts)-1] != 1 {
		t.Errorf("bins of %d: %v", width, counts)
	}

	small := &lengths{max: 3}
	for _, v := range []int64{126195, 1, 2, 3} {
		small.record(v)
	}
	if !small.approx() || small.count() != 4 || !strings.HasPrefix(small.String(), "≈ ") {
		t.Errorf("past the limit: approx %v, count %d, %q", small.approx(), small.count(), small.String())
	}
	if got := small.at(100); got < 126195 || got > 126195*1001/1000 {
		t.Errorf("approximate max %d, want 126195 within 3 significant digits", got)
	}
}

// Under a minute of span, no per-minute mean is extrapolated.
func TestRatePerMinuteUnderAMinute(t *testing.T) {
	path := writeFile(t, "t.jsonl", `{"timestamp":0,"input_length":10,"output_length":1}
{"timestamp":100,"input_length":10,"output_length":1}
{"timestamp":650,"input_length":10,"output_length":1}
`)
	out, _, _ := summarise(t, path, workload.Transforms{})
	if got, want := inspecttest.Field(t, out, "rate per minute"), "span under a minute: 3 requests in all"; got != want {
		t.Errorf("rate per minute %q, want %q", got, want)
	}
}
