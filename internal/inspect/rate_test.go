package inspect

import (
	"fmt"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/inspect/inspecttest"
	"github.com/reprise-llm/reprise/internal/workload"
)

// rateFigures reads the mean and peak of a "rate per ..." line.
func rateFigures(t *testing.T, out, label string) (mean float64, peak int) {
	t.Helper()
	line := inspecttest.Field(t, out, label)
	if _, err := fmt.Sscanf(line, "mean %g, peak %d", &mean, &peak); err != nil {
		t.Fatalf("%s %q: %v", label, line, err)
	}
	return mean, peak
}

// Issue 16, defect 10: the mean rate is never above the peak. The mean was
// requests ÷ span and the peak the busiest whole second (or minute), so a
// span under a second, a steady trace (its span ends at the last arrival)
// or a burst in a last, partial minute put the mean above the peak. Both
// now count the same whole-second (whole-minute) buckets.
func TestMeanRateNeverAbovePeak(t *testing.T) {
	trace := func(offsetsMs ...int) string {
		var sb strings.Builder
		for _, ms := range offsetsMs {
			fmt.Fprintf(&sb, `{"timestamp":%d,"input_length":10,"output_length":2}`+"\n", ms)
		}
		return writeFile(t, "t.jsonl", sb.String())
	}
	steps := func(n, fromMs, stepMs int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = fromMs + i*stepMs
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		offsets   []int
		perSecond [2]float64 // want mean, peak
		perMinute [2]float64 // 0: span under a minute
	}{
		// 10 requests in 450 ms: was a mean of 22.2 against a peak of 10
		{"under a second", steps(10, 0, 50), [2]float64{10, 10}, [2]float64{}},
		// 10 req/s for 100 s, span 99.9 s: was 10.01 against 10
		{"steady", steps(1000, 0, 100), [2]float64{10, 10}, [2]float64{500, 600}},
		// 50 in the first minute, 50 within 60.0-60.49 s: was 99.2 a
		// minute against a peak of 50
		{"burst in a partial minute", append(steps(50, 0, 1000), steps(50, 60000, 10)...), [2]float64{100.0 / 61, 50}, [2]float64{50, 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, _ := summarise(t, "mooncake:"+trace(tc.offsets...), workload.Transforms{})
			mean, peak := rateFigures(t, out, "rate per second")
			if fmt.Sprintf("%.3g", mean) != fmt.Sprintf("%.3g", tc.perSecond[0]) || float64(peak) != tc.perSecond[1] || mean > float64(peak) {
				t.Errorf("rate per second %q, want a mean of %.3g and a peak of %g", inspecttest.Field(t, out, "rate per second"), tc.perSecond[0], tc.perSecond[1])
			}
			if tc.perMinute[1] == 0 {
				if got := inspecttest.Field(t, out, "rate per minute"); !strings.HasPrefix(got, "span under a minute") {
					t.Errorf("rate per minute %q for a span under a minute", got)
				}
				return
			}
			mean, peak = rateFigures(t, out, "rate per minute")
			if mean != tc.perMinute[0] || float64(peak) != tc.perMinute[1] || mean > float64(peak) {
				t.Errorf("rate per minute %q, want a mean of %g and a peak of %g", inspecttest.Field(t, out, "rate per minute"), tc.perMinute[0], tc.perMinute[1])
			}
		})
	}
}
