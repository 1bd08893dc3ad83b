package e2e

import (
	"github.com/reprise-llm/reprise/internal/testenv"
	"path/filepath"
	"testing"
)

// TestTokenizersAgainstSim replays a synthetic workload against the sim
// (which counts prompts with cl100k_base and reports usage) under three
// tokenizers, and reads the requested-vs-reported prompt mismatch from
// benchmarks.json: the server's own tokenizer (--tokenizer server, via
// /tokenize) and the matching tiktoken encoding are exact; Qwen 3's
// tokenizer.json is not, and the mismatch says so.
func TestTokenizersAgainstSim(t *testing.T) {
	sim := start(t, bin("replay"), "sim", "--listen", "127.0.0.1:0")
	workload := "synthetic:samples=20,prompt_tokens=300,prompt_tokens_stdev=100,output_tokens=4,seed=3"
	run := func(tok string) map[string]any {
		out := t.TempDir()
		runReplay(t, "run", "--target", sim.addr, "--workload", workload, "--profile", "concurrent",
			"--concurrency", "4", "--tokenizer", tok, "--output-dir", out, "--quiet")
		return benchmarkNamed(t, loadBenchmarks(t, out), "candidate")
	}
	for _, tok := range []string{"server", "cl100k_base"} {
		b := run(tok)
		compared, exact := num(b, "metrics", "prompt_token_mismatch", "compared"), num(b, "metrics", "prompt_token_mismatch", "exact")
		if compared != 20 || exact != 20 {
			t.Errorf("--tokenizer %s: %v of %v prompts exact, want 20 of 20", tok, exact, compared)
		}
	}
	dir := testenv.Need(t, "REPRISE_TOKENIZERS", "`make test` fetches the tokenizer.json files and sets it")
	// Qwen 3's tokenizer agrees with cl100k on the synthesiser's words (it
	// keeps only words that are one token under the chosen tokenizer, and
	// common English words are one token in both): still exact.
	b := run("hf:" + filepath.Join(dir, "qwen3", "tokenizer.json"))
	if c, e := num(b, "metrics", "prompt_token_mismatch", "compared"), num(b, "metrics", "prompt_token_mismatch", "exact"); c != 20 || e != 20 {
		t.Errorf("--tokenizer hf:qwen3: %v of %v prompts exact, want 20 of 20", e, c)
	}
	// Llama 2's metaspace tokenizer counts a leading token that a cl100k
	// server does not: every prompt is one token short there, and the
	// mismatch says exactly that.
	b = run("hf:" + filepath.Join(dir, "llama2", "tokenizer.json"))
	m := func(k ...string) float64 {
		return num(b, append([]string{"metrics", "prompt_token_mismatch"}, k...)...)
	}
	if m("compared") != 20 || m("exact") != 0 || m("mean_diff") != -1 || m("abs_diff", "max") != 1 {
		t.Errorf("--tokenizer hf:llama2 against a cl100k server: mismatch %v, want every prompt 1 token short", b["metrics"].(map[string]any)["prompt_token_mismatch"])
	}
}
