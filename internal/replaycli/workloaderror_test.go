package replaycli

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/sim"
)

// TestRunKeepsResultsWhenTheWorkloadFailsMidRun replays a Mooncake trace
// whose last line is garbage: the requests before it are sent, drained and
// written with stop_reason workload_error, the table is printed, and the
// command still fails naming the file and line.
func TestRunKeepsResultsWhenTheWorkloadFailsMidRun(t *testing.T) {
	srv := workloadErrorSim(t)
	var sb strings.Builder
	const good = 40
	for i := range good {
		fmt.Fprintf(&sb, `{"timestamp": %d, "input_length": 30, "output_length": 4}`+"\n", i*5) // ms
	}
	sb.WriteString("garbage\n")
	trace := filepath.Join(t.TempDir(), "late.jsonl")
	if err := os.WriteFile(trace, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, profile := range []string{"trace", "concurrent"} {
		t.Run(profile, func(t *testing.T) {
			dir := t.TempDir()
			var out, errb bytes.Buffer
			err := Run(context.Background(), []string{"run", "--target", srv, "--workload", "mooncake:" + trace,
				"--profile", profile, "--concurrency", "4", "--output-dir", dir, "--quiet"}, &out, &errb)
			if err == nil || ExitCode(err) != ExitError {
				t.Fatalf("err %v (exit %d), want exit %d", err, ExitCode(err), ExitError)
			}
			if msg := err.Error(); !strings.Contains(msg, "late.jsonl") || !strings.Contains(msg, fmt.Sprint("line ", good+1)) {
				t.Errorf("error %q does not name the file and line %d", msg, good+1)
			}
			fh, ferr := os.Open(filepath.Join(dir, "benchmarks.json"))
			if ferr != nil {
				t.Fatalf("no results written: %v\n%s", ferr, errb.String())
			}
			defer fh.Close()
			file, ferr := report.ReadJSON(fh)
			if ferr != nil {
				t.Fatal(ferr)
			}
			b := file.Benchmarks[0]
			if len(file.Benchmarks) != 1 || b.Metrics.Requests.Successful != good {
				t.Errorf("%d benchmarks, %d successful requests, want 1 and %d", len(file.Benchmarks), b.Metrics.Requests.Successful, good)
			}
			if b.Config["stop_reason"] != engine.StopWorkloadError {
				t.Errorf("stop_reason %v, want %s", b.Config["stop_reason"], engine.StopWorkloadError)
			}
			if e, _ := b.Config["workload_error"].(string); !strings.Contains(e, "late.jsonl") {
				t.Errorf("workload_error %q does not name the file", e)
			}
			if !strings.Contains(out.String(), "TTFT p99") {
				t.Errorf("no summary table:\n%s", out.String())
			}
		})
	}
}

// workloadErrorSim starts a fast in-process simulator and returns its URL.
func workloadErrorSim(t *testing.T) string {
	t.Helper()
	cfg := sim.DefaultConfig()
	cfg.TTFTBase, cfg.ITLBase, cfg.ITLPerSeq = 2*time.Millisecond, time.Millisecond, 0
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}
