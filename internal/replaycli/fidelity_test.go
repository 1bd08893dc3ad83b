package replaycli

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

// TestTraceProfileWithAnUntimedWorkloadIsAUsageError: --profile trace (the
// default) with a workload that has no arrival times sent every request
// at once, without a word (issue 17). Now it is a usage error naming the
// workload and the profiles to use, before any request is sent (the
// target here accepts no connection).
func TestTraceProfileWithAnUntimedWorkloadIsAUsageError(t *testing.T) {
	txt := tracestest.Write(t, "prompts.txt", "hello\nworld\n")
	const synthetic = "synthetic:prompt_tokens=10,output_tokens=5,samples=20"
	for _, args := range [][]string{
		{"run", "--target", "http://127.0.0.1:1", "--workload", synthetic},
		{"run", "--target", "http://127.0.0.1:1", "--workload", txt, "--profile", "trace"},
		{"run", "--target", "http://127.0.0.1:1", "--workload", "prompts:" + txt, "--profile", "trace", "--rate", "5"},
		{"compare", "--target", "a=http://127.0.0.1:1", "--target", "b=http://127.0.0.1:1", "--workload", synthetic},
	} {
		var out bytes.Buffer
		err := Run(context.Background(), args, &out, &out)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "--profile trace") || !strings.Contains(err.Error(), "profile poisson with a rate") {
			t.Errorf("%v: %v, want a usage error suggesting a rate profile", args, err)
			continue
		}
		if wl := args[slices.Index(args, "--workload")+1]; !strings.Contains(err.Error(), wl) {
			t.Errorf("%v: %v does not name the workload", args, err)
		}
	}
}

// TestRunReportsTheArrivalShape runs a small open loop and a small closed
// loop against the simulator: the open loop's metrics carry the arrival
// shape of its measured requests, the closed loop's none; the console
// table shows it, the send rate and both inter-token conventions.
func TestRunReportsTheArrivalShape(t *testing.T) {
	url := quickSim(t)
	for _, tt := range []struct {
		profile []string
		shape   bool
	}{
		{[]string{"--profile", "poisson", "--rate", "300"}, true},
		{[]string{"--profile", "synchronous"}, false},
	} {
		dir := t.TempDir()
		var out, errb bytes.Buffer
		args := append([]string{"run", "--target", url, "--workload", "synthetic:prompt_tokens=10,output_tokens=4,samples=30", "--quiet", "--output-dir", dir}, tt.profile...)
		if err := Run(context.Background(), args, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", tt.profile, err, errb.String())
		}
		m := reporttest.Read(t, dir).Benchmarks[0].Metrics
		if !tt.shape {
			if m.ArrivalShape != nil || strings.Contains(out.String(), "arrival gap KS") {
				t.Errorf("%v: a closed loop has an arrival shape %+v", tt.profile, m.ArrivalShape)
			}
			continue
		}
		if s := m.ArrivalShape; s == nil || s.Gaps != 29 || s.KSCritical1Pct <= 0 {
			t.Fatalf("%v: arrival shape %+v, want 29 gaps", tt.profile, s)
		}
		for _, row := range []string{"arrival gap KS (1% critical value)", "achieved send rate (req/s)", "successful req/s (window incl. drain)", "ICL p50 (ms, per chunk; vLLM ITL)", "ITL p50 (ms, per request; vLLM TPOT)"} {
			if !strings.Contains(out.String(), row) {
				t.Errorf("%v: console table lacks %q:\n%s", tt.profile, row, out.String())
			}
		}
		// 29 gaps are below stats.MinArrivalGaps: the shape decides nothing.
		if m.Degraded && !strings.Contains(strings.Join(m.DegradedBy, ","), stats.DegradedClientLag) {
			t.Errorf("%v: degraded by %v on %d gaps", tt.profile, m.DegradedBy, m.ArrivalShape.Gaps)
		}
	}
}
