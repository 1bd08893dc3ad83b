package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// TestEngineCaptureReplayCompare is Reprise's whole loop on a real engine:
// production is llama-server with the small model (2 slots); the proxy in
// front of it captures traffic that replay drives through it (a shared
// 256-token system prefix, Poisson arrivals); the capture is then replayed
// at its recorded times against a candidate llama-server serving the
// bigger model, and `replay compare --baseline captured` must name the
// candidate the slower one, with a verdict.
func TestEngineCaptureReplayCompare(t *testing.T) {
	small, big := engineModel(t, "tiny-spm"), engineModel(t, "small-spm")
	const n = 24
	prod := startLlamaServer(t, small, 2, 8192)
	dir := t.TempDir()
	capDir := filepath.Join(dir, "capture")
	px := start(t, bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", prod.url, "--capture-dir", capDir)
	runReplay(t, "run", "--target", px.addr,
		"--workload", "synthetic:prompt_tokens=300,prompt_tokens_stdev=100,output_tokens=16,samples=24,prefix_tokens=256",
		"--profile", "poisson", "--rate", "4", "--seed", "7", "--tokenizer", small,
		"--scrape-metrics", "off", "--output-dir", filepath.Join(dir, "drive"), "--quiet")
	if err := px.stop(t); err != nil {
		t.Fatalf("proxy exit: %v\n%s", err, px.stderr.String())
	}
	// Replay's own requests other than the load (a check of the target
	// before the run) pass through the proxy too: count the chat ones.
	var recs []*capture.Record
	for _, r := range capturetest.Read(t, capDir) {
		if r.Path == "/v1/chat/completions" {
			recs = append(recs, r)
		}
	}
	if len(recs) != n {
		t.Fatalf("%d chat capture records, want %d", len(recs), n)
	}
	var prompt, cached int
	for i, r := range recs {
		if r.Status != 200 || r.TokensSource != capture.TokensUsage || r.OutputTokens != 16 || len(r.HashIDs) == 0 {
			t.Fatalf("record %d: status %d, tokens from %s, %d output tokens, %d hash ids", i, r.Status, r.TokensSource, r.OutputTokens, len(r.HashIDs))
		}
		prompt += r.PromptTokens
		cached += r.CachedTokens
	}
	if cached == 0 {
		t.Fatalf("production's usage reported no cached tokens for a shared 256-token prefix")
	}

	cand := startLlamaServer(t, big, 2, 8192)
	out := filepath.Join(dir, "compare")
	cmd := exec.Command(bin("replay"), "compare", "--target", "cand="+cand.url, "--workload", capDir,
		"--profile", "trace", "--baseline", "captured", "--tokenizer", "server", "--output-dir", out, "--quiet")
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("replay compare: %v\n%s", err, res)
	}
	raw, err := os.ReadFile(filepath.Join(out, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Benchmarks []struct {
			Name          string         `json:"name"`
			Metrics       map[string]any `json:"metrics"`
			ServerMetrics map[string]any `json:"server_metrics"`
		} `json:"benchmarks"`
		Comparison struct {
			Mode      string `json:"mode"`
			Headlines []struct {
				Candidate string   `json:"candidate"`
				Verdict   string   `json:"verdict"`
				Worse     []string `json:"worse"`
			} `json:"headlines"`
			Rows []struct {
				Metric, Stat, Verdict string
			} `json:"rows"`
		} `json:"comparison"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	c := file.Comparison
	if c.Mode != "captured" || len(c.Headlines) != 1 || c.Headlines[0].Candidate != "cand" || c.Headlines[0].Verdict != "regressed" {
		t.Fatalf("comparison %+v: want the candidate named regressed against production as captured\n%s", c.Headlines, res)
	}
	// A model four times deeper and wider is slower per token at any load.
	if !slices.Contains(c.Headlines[0].Worse, "inter_token_latency_ms") {
		t.Errorf("worse metrics %v: want inter_token_latency_ms among them", c.Headlines[0].Worse)
	}
	if !strings.Contains(string(res), "overall cand: regressed") {
		t.Errorf("console output lacks the headline:\n%s", res)
	}
	for _, b := range file.Benchmarks {
		if b.Name != "cand" {
			continue
		}
		if num(b.Metrics, "requests", "successful") != n {
			t.Errorf("candidate: %v successful requests, want %d", num(b.Metrics, "requests", "successful"), n)
		}
		if b.ServerMetrics["engine"] != "llama.cpp" || num(b.ServerMetrics, "prefix_cache_hit_rate") <= 0 {
			t.Errorf("candidate server metrics: engine %v, prefix-cache hit rate %v", b.ServerMetrics["engine"], b.ServerMetrics["prefix_cache_hit_rate"])
		}
		t.Logf("production's usage: %.1f%% of prompt tokens cached; candidate's llamacpp counters: %.1f%%",
			100*float64(cached)/float64(prompt), 100*num(b.ServerMetrics, "prefix_cache_hit_rate"))
		return
	}
	t.Fatalf("no candidate benchmark in %s", out)
}
