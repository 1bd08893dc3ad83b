package report

import (
	"bytes"
	"strings"
	"testing"
)

// A knee sweep's report marks the knee on its sweep charts, at the rate
// of the first benchmark at or above it.
func TestKneeIsMarkedOnTheSweepCharts(t *testing.T) {
	f := &File{Tool: "reprise", Knee: &Knee{Status: KneeFound, Concurrency: 4.2, SaturationBenchmark: "concurrent@8"}}
	for i, c := range []int{1, 2, 4, 8, 16} {
		b := Benchmark{Name: "concurrent@" + string(rune('0'+c%10)), Target: "http://sim", Profile: "concurrent", Config: RunConfig{Concurrency: c}}
		if c >= 10 {
			b.Name = "concurrent@16"
		}
		b.Metrics.RequestsPerSecond = float64(10 * min(c, 4) * (i + 1) / (i + 1))
		b.Metrics.RequestsPerSecond += float64(i) // distinct rates
		b.Metrics.OutputTokensPerSecond = 20 * b.Metrics.RequestsPerSecond
		b.Metrics.Requests.Successful, b.Metrics.Requests.Total = 10, 10
		f.Benchmarks = append(f.Benchmarks, b)
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html.String(), "knee: concurrency 4.2 (concurrent@8)") {
		t.Error("the knee is not marked")
	}
	f.Knee.Status = KneeNone
	html.Reset()
	if err := WriteHTML(&html, f); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html.String(), "knee: concurrency") {
		t.Error("a knee marked where none was found")
	}
}
