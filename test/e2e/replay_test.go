package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// runReplay runs bin/replay and fails the test on a non-zero exit.
func runReplay(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin("replay"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("replay %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func loadBenchmarks(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("benchmarks.json: %v", err)
	}
	return v
}

// benchmarkNamed finds the benchmark whose name contains want.
func benchmarkNamed(t *testing.T, file map[string]any, want string) map[string]any {
	t.Helper()
	var names []string
	for _, b := range file["benchmarks"].([]any) {
		bm := b.(map[string]any)
		name, _ := bm["name"].(string)
		if strings.Contains(name, want) {
			return bm
		}
		names = append(names, name)
	}
	t.Fatalf("no benchmark named like %q among %v", want, names)
	return nil
}

// num reads a number at a path of keys.
func num(m map[string]any, keys ...string) float64 {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return math.NaN()
		}
		v = mm[k]
	}
	f, ok := v.(float64)
	if !ok {
		return math.NaN()
	}
	return f
}

// Replaying a capture reproduces its request count, order, token counts and
// arrival offsets; the send-lag distribution is reported.
func TestReplayReproducesCapture(t *testing.T) {
	prod := start(t, bin("replay"), "sim", "--listen", "127.0.0.1:0", "--slots", "32", "--ttft-base", "10ms", "--itl-base", "2ms")
	cand := start(t, bin("replay"), "sim", "--listen", "127.0.0.1:0", "--slots", "32", "--ttft-base", "15ms", "--itl-base", "3ms", "--seed", "7")
	dir := filepath.Join(t.TempDir(), "cap")
	px := start(t, bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", prod.addr, "--capture-dir", dir)

	// 30 requests at irregular offsets with distinct prompt and output lengths.
	const n = 30
	begin := time.Now()
	done := make(chan error, n)
	for i := 0; i < n; i++ {
		due := time.Duration(i*37%11+i*40) * time.Millisecond
		time.Sleep(time.Until(begin.Add(due)))
		go func(i int) {
			status, body, err := chat(px.addr, words(5+i*13), 3+i%9, i%4 != 3)
			if err == nil && status != 200 {
				err = fmt.Errorf("status %d: %.200s", status, body)
			}
			done <- err
		}(i)
	}
	for i := 0; i < n; i++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := px.stop(t); err != nil {
		t.Fatalf("proxy exit: %v", err)
	}
	recs := capturetest.Read(t, dir)
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	// segments are in completion order; replay goes by arrival
	sort.Slice(recs, func(i, j int) bool { return recs[i].T < recs[j].T })

	out := filepath.Join(t.TempDir(), "results")
	runReplay(t, "run", "--target", cand.addr, "--workload", dir, "--profile", "trace", "--output-dir", out, "--save-requests")
	file := loadBenchmarks(t, out)
	bm := benchmarkNamed(t, file, "candidate")
	reqs, _ := bm["requests"].([]any)
	if len(reqs) != n {
		t.Fatalf("replayed %d requests, capture has %d", len(reqs), n)
	}
	t0 := recs[0].T
	for i, x := range reqs {
		r := x.(map[string]any)
		rec := recs[i]
		wantOffset := float64(rec.T-t0) / 1e6
		if got := r["intended_ms"].(float64); math.Abs(got-wantOffset) > 0.001 {
			t.Errorf("request %d: intended offset %.3f ms, recorded %.3f ms", i, got, wantOffset)
		}
		if got := int(r["prompt_tokens"].(float64)); got != rec.PromptTokens {
			t.Errorf("request %d: candidate counted %d prompt tokens, production %d", i, got, rec.PromptTokens)
		}
		if got := int(r["output_tokens"].(float64)); got != rec.OutputTokens {
			t.Errorf("request %d: %d output tokens, recorded %d", i, got, rec.OutputTokens)
		}
		if s, _ := r["stream"].(bool); s != rec.Stream {
			t.Errorf("request %d: stream %v, recorded %v", i, s, rec.Stream)
		}
	}
	m := bm["metrics"].(map[string]any)
	t.Logf("send lag ms: p50 %.3f p99 %.3f max %.3f", num(m, "send_lag_ms", "p50"), num(m, "send_lag_ms", "p99"), num(m, "send_lag_ms", "max"))
	if c := num(m, "send_lag_ms", "count"); c != n {
		t.Errorf("send lag distribution counts %v requests, want %d", c, n)
	}
	// production as captured is reported next to the candidate
	prodBm := benchmarkNamed(t, file, "captured")
	if got := num(prodBm["metrics"].(map[string]any), "requests", "successful"); got != n {
		t.Errorf("captured baseline has %v successful requests, want %d", got, n)
	}
}

// failRun runs a program expecting failure, and checks the error is one
// clear line and not a panic.
func failRun(t *testing.T, wantCode int, wantText string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("%s %v: want exit %d, got %v\n%s", filepath.Base(name), args, wantCode, err, out)
	}
	if ee.ExitCode() != wantCode {
		t.Errorf("%s %v: exit %d, want %d\n%s", filepath.Base(name), args, ee.ExitCode(), wantCode, out)
	}
	s := string(out)
	if strings.Contains(s, "panic") || strings.Contains(s, "goroutine ") {
		t.Errorf("panic output:\n%s", s)
	}
	if !strings.Contains(s, wantText) {
		t.Errorf("%s %v: output does not mention %q:\n%s", filepath.Base(name), args, wantText, s)
	}
}

func TestBadInputGivesClearErrors(t *testing.T) {
	dead := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	tmp := t.TempDir()

	t.Run("unknown flag", func(t *testing.T) {
		failRun(t, 2, "-bogus", bin("replay"), "run", "--bogus")
		failRun(t, 2, "-bogus", bin("proxy"), "--bogus")
		failRun(t, 2, "unknown command", bin("replay"), "frobnicate")
	})
	t.Run("unreachable target", func(t *testing.T) {
		failRun(t, 1, "127.0.0.1", bin("replay"), "run", "--target", dead,
			"--workload", "synthetic:prompt_tokens=8,output_tokens=4,samples=3", "--profile", "synchronous", "--output-dir", filepath.Join(tmp, "o1"))
	})
	t.Run("unreachable upstream", func(t *testing.T) {
		failRun(t, 1, "upstream", bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", dead,
			"--capture-dir", filepath.Join(tmp, "c1"), "--upstream-wait", "500ms")
	})
	t.Run("missing workload", func(t *testing.T) {
		failRun(t, 1, "no-such-file.csv", bin("replay"), "run", "--target", dead, "--workload", "azure:"+filepath.Join(tmp, "no-such-file.csv"))
	})
	t.Run("malformed trace line", func(t *testing.T) {
		p := filepath.Join(tmp, "bad.jsonl")
		_ = os.WriteFile(p, []byte("{\"timestamp\":0,\"input_length\":10,\"output_length\":5,\"hash_ids\":[1]}\n{\"timestamp\":\"soon\"}\n"), 0o644)
		failRun(t, 1, "line 2", bin("replay"), "inspect", "mooncake:"+p)
	})
	t.Run("corrupt segment", func(t *testing.T) {
		sim := start(t, bin("replay"), "sim", "--listen", "127.0.0.1:0")
		dir := filepath.Join(tmp, "cap")
		px := start(t, bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", sim.addr, "--capture-dir", dir)
		for i := 0; i < 50; i++ {
			if _, _, err := chat(px.addr, words(50), 4, true); err != nil {
				t.Fatalf("request %d: %v\nproxy:\n%s\nsim:\n%s", i, err, px.stderr.String(), sim.stderr.String())
			}
		}
		if err := px.stop(t); err != nil {
			t.Fatal(err)
		}
		segs, _ := filepath.Glob(filepath.Join(dir, "seg-*.jsonl.zst"))
		if len(segs) == 0 {
			t.Fatal("no segment written")
		}
		b, _ := os.ReadFile(segs[0])
		for i := len(b) / 3; i < len(b)/3+16 && i < len(b); i++ {
			b[i] ^= 0x5a
		}
		_ = os.WriteFile(segs[0], b, 0o644)
		failRun(t, 1, filepath.Base(segs[0]), bin("replay"), "inspect", dir)
	})
}
