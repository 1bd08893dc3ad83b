package replaycli

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/workload/workloadtest"
)

// replay export --format otel writes a capture, or saved results with
// per-request records, as OTLP JSON GenAI spans that read back as an otel:
// workload of the same requests (issue 14).
func TestExportOTelReadsBack(t *testing.T) {
	capDir := writeCapture(t, 12, 50*time.Millisecond)
	out := filepath.Join(t.TempDir(), "spans.jsonl")
	if got := outcome("export", "--format", "otel", capDir, "-o", out); !strings.Contains(got, "wrote "+out+" (otel, 12 spans)") {
		t.Fatalf("export: %s", got)
	}
	if n := countRequests(t, "otel:"+out); n != 12 {
		t.Errorf("read back %d requests, want 12", n)
	}
	url := quickSim(t)
	dir := t.TempDir()
	if got := outcome("run", "--target", url, "--workload", "synthetic:prompt_tokens=10,output_tokens=2,samples=5", "--profile", "throughput",
		"--save-requests", "--quiet", "--scrape-metrics", "off", "--output-dir", dir); strings.HasPrefix(got, "error: ") {
		t.Fatal(got)
	}
	if got := outcome("export", "--format", "otel-spans", dir); !strings.Contains(got, "(otel-spans, 5 spans)") {
		t.Fatalf("export of results: %s", got)
	}
	if n := countRequests(t, "otel:"+filepath.Join(dir, "spans.guidellm.jsonl")); n != 5 {
		t.Errorf("results read back as %d requests, want 5", n)
	}
}

func countRequests(t *testing.T, spec string) int {
	t.Helper()
	return len(workloadtest.Read(t, spec))
}
