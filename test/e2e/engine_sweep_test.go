package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/report"
)

// Issue 18 on a real engine (llama.cpp's server, 2 slots, a prompt cache,
// kept-alive connections it closes after streams): a sweep whose
// throughput point leaves requests behind still succeeds, the next point
// waiting for the server to finish them; no request fails on a keep-alive
// close; and a rerun with the same seed gets fresh prompts, so it does not
// find its own earlier prompts in the server's cache — unless told to
// reuse them.
func TestEngineSweepsHoldUp(t *testing.T) {
	model := engineModel(t, "tiny-spm")
	srv := startLlamaServer(t, model, 2, 8192)
	dir := t.TempDir()
	const wl = "synthetic:prompt_tokens=400,output_tokens=16,samples=100000"

	runReplay(t, "run", "--target", srv.url, "--workload", wl, "--tokenizer", model, "--profile", "sweep", "--sweep-points", "3",
		"--max-seconds", "4", "--drain", "1s", "--scrape-metrics", "auto", "--save-requests", "--quiet", "--output-dir", filepath.Join(dir, "sweep"))
	f := readResultsFile(t, filepath.Join(dir, "sweep"))
	if len(f.Benchmarks) != 3 {
		t.Fatalf("%d benchmarks, want synchronous, throughput and one rate", len(f.Benchmarks))
	}
	tp, rate := f.Benchmarks[1], f.Benchmarks[2]
	if tp.Config.CancelledByDrain == nil || *tp.Config.CancelledByDrain == 0 {
		t.Logf("the throughput point cancelled nothing (cancelled %v): the settle is not exercised this time", tp.Config.CancelledByDrain)
	} else if rate.Config.SettledS == nil {
		t.Errorf("the point after a throughput point that cancelled %d requests did not wait for the server", *tp.Config.CancelledByDrain)
	}
	for _, b := range []report.Benchmark{f.Benchmarks[0], rate} {
		if m := b.Metrics.Requests; m.Successful == 0 || m.Errored != 0 {
			var errs []string
			for _, r := range b.Requests {
				if r.Error != "" && !strings.HasPrefix(r.Error, "cancelled") {
					errs = append(errs, fmt.Sprintf("request %d: status %d: %s (sent %.1f ms, ended %.1f ms)", r.Index, r.Status, r.Error, r.SentMs, r.EndMs))
				}
			}
			t.Errorf("%s: requests %+v (retried %d): want successes and no failure:\n%s", b.Name, m, b.Metrics.RetriedRequests, strings.Join(errs, "\n"))
		}
	}

	// Reruns with one seed: fresh prompts by default, the same with
	// --prompt-namespace none.
	share := func(name string, extra ...string) float64 {
		out := filepath.Join(dir, name)
		args := append([]string{"run", "--target", srv.url, "--workload", wl, "--tokenizer", model, "--profile", "constant", "--rate", "2",
			"--max-requests", "6", "--seed", "9", "--scrape-metrics", "off", "--quiet", "--output-dir", out}, extra...)
		runReplay(t, args...)
		return readResultsFile(t, out).Benchmarks[0].Metrics.CachedTokenShare
	}
	share("fresh-1")
	if got := share("fresh-2"); got > 0.3 {
		t.Errorf("a rerun with fresh prompts had %.0f%% of its prompt tokens cached: it found an earlier run's prompts", 100*got)
	}
	share("same-1", "--prompt-namespace", "none")
	if got := share("same-2", "--prompt-namespace", "none"); got < 0.8 {
		t.Errorf("a rerun with the same prompts had only %.0f%% cached: the test does not show the cache", 100*got)
	}
}

func readResultsFile(t *testing.T, dir string) *report.File {
	t.Helper()
	f, _, err := report.ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
