package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/reprise-llm/reprise/internal/testenv"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Tests named TestEngine* run a real inference engine: llama.cpp's
// llama-server, built from the sources in PyPI's llama-cpp-python sdist,
// serving random-weight GGUF models with real tokenizers (Llama 2's
// SentencePiece, Llama 3's BPE). `make engine` (scripts/engine.sh) builds
// and caches them; `make test` passes their directory as REPRISE_ENGINE.
// None calls t.Parallel: each engine is given one thread (-t 1) and the
// tests run one at a time, so that two cores shared with other work are
// enough.

// engineDir is REPRISE_ENGINE, or a skip saying how to get it (a failure
// under CI, which must run `make test`).
func engineDir(t *testing.T) string {
	t.Helper()
	dir := testenv.Need(t, "REPRISE_ENGINE", "`make engine` builds llama-server and its models, and `make test` sets it")
	if _, err := os.Stat(filepath.Join(dir, "bin", "llama-server")); err != nil {
		t.Fatalf("REPRISE_ENGINE=%s holds no bin/llama-server (run `make engine`): %v", dir, err)
	}
	return dir
}

// engineModel is the path of one of scripts/engine-models.py's models:
// tiny-spm (2×128, Llama 2 vocabulary), small-spm (8×512, same
// vocabulary), tiny-bpe (2×64, Llama 3 vocabulary).
func engineModel(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(engineDir(t), "models", name+".gguf")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("model %s: %v (run `make engine`)", name, err)
	}
	return p
}

// llamaServer is a llama-server started for a test, on loopback.
type llamaServer struct {
	url   string
	model string
	log   *lockedBuffer
}

// startLlamaServer serves model with slots parallel slots sharing ctx
// tokens of KV cache, one CPU thread, Prometheus metrics on, and waits
// until /health says the model is loaded. The server is stopped at
// cleanup.
func startLlamaServer(t *testing.T, model string, slots, ctx int, extra ...string) *llamaServer {
	t.Helper()
	exe := filepath.Join(engineDir(t), "bin", "llama-server")
	port := freePort(t)
	args := append([]string{"-m", model, "--host", "127.0.0.1", "--port", fmt.Sprint(port),
		"-t", "1", "--parallel", fmt.Sprint(slots), "-c", fmt.Sprint(ctx), "--metrics", "--no-webui"}, extra...)
	cmd := exec.Command(exe, args...)
	s := &llamaServer{url: fmt.Sprintf("http://127.0.0.1:%d", port), model: model, log: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	done := startServerProcess(t, cmd, "llama-server")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("llama-server exited:\n%s", s.log.String())
		default:
		}
		resp, err := http.Get(s.url + "/health") // 503 while the model loads
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("llama-server not ready in 60s:\n%s", s.log.String())
	return nil
}

// post sends a JSON body to the server and decodes the JSON answer.
func (s *llamaServer) post(t *testing.T, path string, body, out any) {
	t.Helper()
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s: %.300s", path, resp.Status, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("POST %s: %v: %.300s", path, err, data)
	}
}

// tokenize is llama-server's own tokenization of text (special tokens in
// the text parsed, as in a prompt); addSpecial adds what the model adds to
// a prompt (BOS).
func (s *llamaServer) tokenize(t *testing.T, text string, addSpecial bool) []int {
	t.Helper()
	var out struct {
		Tokens []int `json:"tokens"`
	}
	s.post(t, "/tokenize", map[string]any{"content": text, "add_special": addSpecial, "parse_special": true}, &out)
	return out.Tokens
}

// chatOverhead is the number of tokens a chat request's prompt has beyond
// its message's content, by the engine's own chat template and tokenizer:
// the tokens of the rendered template (with BOS) less those of the content
// alone. Prompts Reprise synthesises start with a space-prefixed word, as
// the probe does.
func (s *llamaServer) chatOverhead(t *testing.T) int {
	t.Helper()
	const content = " the model"
	var tmpl struct {
		Prompt string `json:"prompt"`
	}
	s.post(t, "/apply-template", map[string]any{"messages": []map[string]string{{"role": "user", "content": content}}}, &tmpl)
	if !strings.Contains(tmpl.Prompt, content) {
		t.Fatalf("/apply-template: %q does not hold the content", tmpl.Prompt)
	}
	return len(s.tokenize(t, tmpl.Prompt, true)) - len(s.tokenize(t, content, false))
}

// records are the per-request records of a benchmark (--save-requests).
type engineRecord struct {
	Status                int    `json:"status"`
	Error                 string `json:"error"`
	PromptTokens          int    `json:"prompt_tokens"`
	OutputTokens          int    `json:"output_tokens"`
	CachedTokens          int    `json:"cached_tokens"`
	TokensFromUsage       bool   `json:"tokens_from_usage"`
	RequestedPromptTokens int    `json:"requested_prompt_tokens"`
	RequestedOutputTokens int    `json:"requested_output_tokens"`
	FinishReason          string `json:"finish_reason"`
}

func benchmarkRecords(t *testing.T, bm map[string]any) []engineRecord {
	t.Helper()
	b, _ := json.Marshal(bm["requests"])
	var rs []engineRecord
	if err := json.Unmarshal(b, &rs); err != nil || len(rs) == 0 {
		t.Fatalf("benchmark %v has no request records (--save-requests): %v", bm["name"], err)
	}
	return rs
}
