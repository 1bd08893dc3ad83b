package replaycli

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

// TestRunKeepsResultsWhenTheWorkloadFailsMidRun replays a Mooncake trace
// whose last line is garbage: the requests before it are sent, drained and
// written with stop_reason workload_error, the table is printed, and the
// command still fails naming the file and line.
func TestRunKeepsResultsWhenTheWorkloadFailsMidRun(t *testing.T) {
	url := quickSim(t)
	var sb strings.Builder
	const good = 40
	for i := range good {
		fmt.Fprintf(&sb, `{"timestamp": %d, "input_length": 30, "output_length": 4}`+"\n", i*5) // ms
	}
	sb.WriteString("garbage\n")
	trace := tracestest.Write(t, "late.jsonl", sb.String())
	for _, profile := range []string{"trace", "concurrent"} {
		t.Run(profile, func(t *testing.T) {
			dir := t.TempDir()
			var out, errb bytes.Buffer
			args := []string{"run", "--target", url, "--workload", "mooncake:" + trace, "--profile", profile, "--output-dir", dir, "--quiet"}
			if profile == "concurrent" {
				args = append(args, "--concurrency", "4")
			}
			err := Run(context.Background(), args, &out, &errb)
			if err == nil || ExitCode(err) != ExitError {
				t.Fatalf("err %v (exit %d), want exit %d", err, ExitCode(err), ExitError)
			}
			if msg := err.Error(); !strings.Contains(msg, "late.jsonl") || !strings.Contains(msg, fmt.Sprint("line ", good+1)) {
				t.Errorf("error %q does not name the file and line %d", msg, good+1)
			}
			file := reporttest.Read(t, dir)
			b := file.Benchmarks[0]
			if len(file.Benchmarks) != 1 || b.Metrics.Requests.Successful != good {
				t.Errorf("%d benchmarks, %d successful requests, want 1 and %d", len(file.Benchmarks), b.Metrics.Requests.Successful, good)
			}
			if b.Config.StopReason != engine.StopWorkloadError {
				t.Errorf("stop_reason %v, want %s", b.Config.StopReason, engine.StopWorkloadError)
			}
			if e := b.Config.WorkloadError; !strings.Contains(e, "late.jsonl") {
				t.Errorf("workload_error %q does not name the file", e)
			}
			if !strings.Contains(out.String(), "TTFT p99") {
				t.Errorf("no summary table:\n%s", out.String())
			}
		})
	}
}
