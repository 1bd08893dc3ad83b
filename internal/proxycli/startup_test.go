package proxycli

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/proxy/proxytest"
	"github.com/reprise-llm/reprise/internal/workload/workloadtest"
)

// Issue 16: a second proxy started on the capture directory of a running
// one, whose --listen (or --admin-listen) port is taken, fails without
// writing anything there. The directory then reads as the first run's
// capture in every documented form: DIR, DIR/manifest.json, a segment,
// capture:DIR.
func TestFailedSecondStartLeavesLiveCaptureReadable(t *testing.T) {
	up := drainUpstream(t)
	first := startRun(t, up.URL)
	for range 2 {
		resp, err := http.Post(first.proxyURL+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	taken := strings.TrimPrefix(first.proxyURL, "http://")
	for _, c := range []struct{ listen, admin, flag string }{
		{taken, "127.0.0.1:0", "--listen"},
		{"127.0.0.1:0", first.adminAddr, "--admin-listen"},
	} {
		var stdout, stderr syncBuffer
		err := Run(context.Background(), []string{"--upstream", up.URL, "--capture-dir", first.dir, "--listen", c.listen,
			"--admin-listen", c.admin, "--upstream-wait", "0"}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "listening on "+c.flag) {
			t.Fatalf("second start with %s taken: %v, want a listen error naming %s", c.flag, err, c.flag)
		}
	}
	entries, err := os.ReadDir(first.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), capture.RunDirPrefix) {
			t.Errorf("a failed start left %s in the capture directory", e.Name())
		}
	}
	first.stop()
	if err := first.wait(t); err != nil {
		t.Fatal(err)
	}
	if recs := capturetest.Read(t, first.dir); len(recs) != 2 {
		t.Fatalf("the first run's capture reads %d records, want 2", len(recs))
	}
	segs, _ := filepath.Glob(filepath.Join(first.dir, "seg-*.jsonl.zst"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	for _, spec := range []string{first.dir, filepath.Join(first.dir, capture.ManifestName), segs[0], "capture:" + first.dir} {
		n := len(workloadtest.Read(t, spec))
		if n != 2 {
			t.Errorf("workload %s: %d requests, want 2", spec, n)
		}
	}
}

// --upstream-wait says at once what the proxy waits for and how long,
// and the failure names the flag; nothing is written meanwhile.
func TestUpstreamWaitSaysWhatItWaitsFor(t *testing.T) {
	upstream := "http://" + proxytest.ClosedAddr(t)
	dir := filepath.Join(t.TempDir(), "cap")
	var stdout, stderr syncBuffer
	// Bounded: should another process take the freed port, Run would
	// serve instead of failing, and the test must fail, not hang.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Run(ctx, []string{"--upstream", upstream, "--capture-dir", dir, "--listen", "127.0.0.1:0",
		"--admin-listen", "", "--upstream-wait", "300ms"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "unreachable after 300ms (--upstream-wait)") {
		t.Fatalf("Run: %v", err)
	}
	if want := "waiting up to 300ms for upstream " + upstream + " to accept connections"; !strings.Contains(stderr.String(), want) {
		t.Errorf("log does not say %q:\n%s", want, stderr.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the capture directory was created although the proxy never started: %v", err)
	}
}

// A long wait reports progress until the upstream answers or the wait
// ends; cancelled (SIGTERM), it stops at once and says what it waited for.
func TestWaitForUpstreamReportsProgress(t *testing.T) {
	addr := proxytest.ClosedAddr(t)
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- waitForUpstream(ctx, "http://"+addr, time.Hour, time.Nanosecond, zap.New(core)) }()
	for logs.FilterMessage("still waiting for upstream to accept connections").Len() == 0 {
		select {
		case err := <-done:
			t.Fatalf("waitForUpstream returned %v before reporting progress", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for upstream http://"+addr) {
		t.Errorf("cancelled wait: %v", err)
	}
	if logs.FilterMessageSnippet("waiting up to 1h0m0s for upstream http://"+addr+" to accept connections").Len() != 1 {
		t.Errorf("log:\n%v", logs.All())
	}
}

// Issue 16: an upstream (or shadow) base ending in /v1 sends a client's
// /v1/chat/completions to /v1/v1/chat/completions. The proxy says so at
// start and again, once, when a request really gets the doubled path; it
// still starts and forwards every path unchanged, because clients that
// call /chat/completions without /v1 are served right by such a base.
func TestUpstreamEndingInV1IsNamedNotRefused(t *testing.T) {
	var mu sync.Mutex
	var paths []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/v1/chat/completions" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`)
	}))
	t.Cleanup(up.Close)
	r := startRun(t, up.URL+"/v1", "--shadow", "http://127.0.0.1:9/v1/", "--shadow-fraction", "0")
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	var statuses []int
	for _, path := range []string{"/v1/chat/completions", "/v1/chat/completions", "/chat/completions"} {
		resp, err := http.Post(r.proxyURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
	r.stop()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := strings.Join(paths, " ")
	mu.Unlock()
	if want := "/v1/v1/chat/completions /v1/v1/chat/completions /v1/chat/completions"; got != want || statuses[0] != 404 || statuses[2] != 200 {
		t.Errorf("upstream saw %q with statuses %v, want %q (forwarded unchanged: 404, 404, 200)", got, statuses, want)
	}
	logs := r.stderr.String()
	for _, want := range []string{
		"--upstream " + up.URL + "/v1: Reprise adds /v1/... itself; use --upstream " + up.URL,
		"use --shadow http://127.0.0.1:9",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("start-up log lacks %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "--upstream ends in /v1 and a client called a /v1/ path"); n != 1 {
		t.Errorf("the doubled path was named %d times, want once:\n%s", n, logs)
	}
}
