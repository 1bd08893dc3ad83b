package replaycli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

// --start-at waits for its instant, records it, and refuses one that passed.
func TestStartAt(t *testing.T) {
	url := fastSim(t)
	args := func(dir, at string) []string {
		return []string{"run", "--target", url, "--workload", "synthetic:prompt_tokens=5,output_tokens=2,samples=3",
			"--profile", "synchronous", "--output-dir", dir, "--quiet", "--start-at", at}
	}
	var out bytes.Buffer
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if err := Run(context.Background(), args(t.TempDir(), past), &out, &out); err == nil || !strings.Contains(err.Error(), "in the past") {
		t.Errorf("a past --start-at: %v", err)
	}
	if err := Run(context.Background(), args(t.TempDir(), "tomorrow"), &out, &out); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("--start-at tomorrow: %v, want a usage error", err)
	}
	at := time.Now().Add(300 * time.Millisecond).UTC()
	dir := t.TempDir()
	if err := Run(context.Background(), args(dir, at.Format(time.RFC3339Nano)), &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	b := reporttest.Read(t, dir).Benchmarks[0]
	if b.Config.StartAt != at.Format(time.RFC3339Nano) {
		t.Errorf("config start_at %v, want %s", b.Config.StartAt, at.Format(time.RFC3339Nano))
	}
	if b.Start.Before(at) {
		t.Errorf("the run started at %s, before --start-at %s", b.Start, at)
	}
}

// Verbatim prompts are measured, so every request is in the prompt token
// comparison, and benchmarks.csv carries the comparison.
func TestVerbatimPromptsComparedAndInCSV(t *testing.T) {
	url := fastSim(t)
	p := tracestest.Write(t, "p.jsonl", `{"prompt":"hello world, how are you today?"}`+"\n"+
		`{"messages":[{"role":"user","content":"tell me a story about a cat"}]}`+"\n")
	dir := t.TempDir()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"run", "--target", url, "--workload", "prompts:" + p,
		"--profile", "synchronous", "--quiet", "--output-dir", dir}, &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	m := reporttest.Read(t, dir).Benchmarks[0].Metrics.PromptTokenMismatch
	if m == nil || m.Compared != 2 {
		t.Fatalf("prompt token mismatch %+v, want both verbatim prompts compared", m)
	}
	csv, err := os.ReadFile(filepath.Join(dir, "benchmarks.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(csv, []byte("prompt_token_mismatch_compared")) {
		t.Errorf("benchmarks.csv lacks the mismatch columns:\n%s", csv)
	}
}
