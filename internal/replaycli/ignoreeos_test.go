package replaycli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// strictSim is the simulator behind a front that, like a strict
// OpenAI-compatible API, answers 400 to a body with ignore_eos.
func strictSim(t *testing.T) *httptest.Server {
	t.Helper()
	inner := fastSim(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if bytes.Contains(body, []byte(`"ignore_eos"`)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":"Unrecognized request argument supplied: ignore_eos","type":"invalid_request_error"}}`)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, inner.URL+r.URL.Path, bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A target that rejects ignore_eos fails the run with a hint to turn it
// off; with --ignore-eos off the same run succeeds.
func TestIgnoreEOSRejectedHintsOff(t *testing.T) {
	srv := strictSim(t)
	args := []string{"run", "--target", srv.URL, "--workload", "synthetic:prompt_tokens=20,output_tokens=5,samples=3",
		"--profile", "synchronous", "--quiet"}
	var out bytes.Buffer
	err := Run(context.Background(), append(args, "--output-dir", t.TempDir()), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "rerun with --ignore-eos off") {
		t.Fatalf("ignore_eos rejected: %v, want a hint to rerun with --ignore-eos off", err)
	}
	out.Reset()
	if err := Run(context.Background(), append(args, "--output-dir", t.TempDir(), "--ignore-eos", "off"), &out, &out); err != nil {
		t.Fatalf("--ignore-eos off: %v\n%s", err, out.String())
	}
}

// Verbatim prompts are measured, so every request is in the prompt token
// comparison, and benchmarks.csv carries the comparison.
func TestVerbatimPromptsComparedAndInCSV(t *testing.T) {
	srv := fastSim(t)
	p := filepath.Join(t.TempDir(), "p.jsonl")
	data := `{"prompt":"hello world, how are you today?"}` + "\n" +
		`{"messages":[{"role":"user","content":"tell me a story about a cat"}]}` + "\n"
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"run", "--target", srv.URL, "--workload", "prompts:" + p,
		"--profile", "synchronous", "--quiet", "--output-dir", dir}, &out, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	m := readRunResults(t, dir).Benchmarks[0].Metrics.PromptTokenMismatch
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
