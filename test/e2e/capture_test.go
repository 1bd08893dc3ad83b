package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// testClient never reuses connections: a program started by an earlier
// test may have listened on the same port, and a stale keep-alive
// connection would fail a POST (the transport does not retry it).
var testClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// chat sends one streaming chat request and returns the body and whether the
// stream ended with [DONE].
func chat(url, prompt string, maxTokens int, stream bool) (int, []byte, error) {
	body := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}],"max_tokens":%d,"ignore_eos":true,"stream":%v,"stream_options":{"include_usage":true}}`,
		prompt, maxTokens, stream)
	if !stream {
		body = fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":%q}],"max_tokens":%d,"ignore_eos":true}`, prompt, maxTokens)
	}
	resp, err := testClient.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func words(n int) string {
	var sb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, " word%d", i%97)
	}
	return sb.String()
}

// The proxy's record must match what the simulator was configured to do:
// TTFT = 40 ms (no prefill cost, no queueing: 64 slots, 4 concurrent), and
// 10 ms between tokens, jitter off. Tolerance: the proxy observes the sim
// over loopback on a noisy 2-core machine, so a record may be late by
// scheduling delays but never early: TTFT in [40 ms, 40 ms + 40 ms], mean
// token gap in [10 ms, 10 ms + 8 ms].
func TestCaptureFidelityAgainstSimLatencies(t *testing.T) {
	sim := start(t, bin("replay"), "sim", "--listen", "127.0.0.1:0", "--slots", "64",
		"--ttft-base", "40ms", "--prefill-per-token", "0s", "--itl-base", "10ms", "--itl-per-seq", "0s", "--jitter", "0")
	dir := filepath.Join(t.TempDir(), "cap")
	px := start(t, bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", sim.addr, "--capture-dir", dir)

	const n, tokens = 20, 8
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			status, body, err := chat(px.addr, words(20+i), tokens, i%5 != 0)
			if err != nil || status != 200 {
				errs <- fmt.Errorf("request %d: status %d err %v body %.200s", i, status, err, body)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := px.stop(t); err != nil {
		t.Fatalf("proxy exit: %v\n%s", err, px.stderr.String())
	}
	recs := capturetest.Read(t, dir)
	if len(recs) != n {
		t.Fatalf("%d records for %d requests", len(recs), n)
	}
	ids := map[string]bool{}
	for _, r := range recs {
		if ids[r.ID] {
			t.Errorf("duplicate record id %s", r.ID)
		}
		ids[r.ID] = true
		if r.Status != 200 || r.OutputTokens != tokens || r.TokensSource != capture.TokensUsage || r.PromptTokens == 0 {
			t.Errorf("record %s: status %d output %d source %s prompt %d", r.ID, r.Status, r.OutputTokens, r.TokensSource, r.PromptTokens)
			continue
		}
		if !r.Stream {
			continue
		}
		// The sim sends the first token after 40 ms, so a TTFT below it is
		// wrong; above it only this shared 2-core machine's load adds time,
		// so the upper bound only catches a wrong event (the stream's end,
		// 40 ms plus every later gap) rather than timing the machine.
		ttft := time.Duration(r.TTFTNs)
		if ttft < 40*time.Millisecond || ttft > 500*time.Millisecond || ttft+time.Duration(tokens-1)*10*time.Millisecond > time.Duration(r.E2ENs) {
			t.Errorf("record %s: TTFT %v (e2e %v), sim configured 40ms", r.ID, ttft, time.Duration(r.E2ENs))
		}
		if len(r.ChunksUS) != tokens {
			t.Errorf("record %s: %d content events, want %d", r.ID, len(r.ChunksUS), tokens)
			continue
		}
		var sum int64
		for _, d := range r.ChunksUS[1:] {
			sum += d
		}
		// The last event cannot arrive before the sim's 40 ms plus its
		// 10 ms gaps (a late first event shortens the gaps after it, so
		// the mean gap alone may fall under 10 ms); the mean above 18 ms
		// would be gaps timed wrong.
		last := time.Duration(r.ChunksUS[0]+sum) * time.Microsecond
		itl := time.Duration(sum/int64(tokens-1)) * time.Microsecond
		if last < 40*time.Millisecond+time.Duration(tokens-1)*10*time.Millisecond || itl > 18*time.Millisecond {
			t.Errorf("record %s: last event at %v, mean inter-token gap %v; sim configured 40ms then 10ms", r.ID, last, itl)
		}
	}
}

// SIGTERM in the middle of load: in-flight streams finish within the drain
// bound, every request the clients saw complete is on disk, and the capture
// reads back without error.
func TestProxySIGTERMMidLoadKeepsEveryCompletedRecord(t *testing.T) {
	sim := start(t, bin("replay"), "sim", "--listen", "127.0.0.1:0", "--slots", "64",
		"--ttft-base", "20ms", "--itl-base", "4ms", "--itl-per-seq", "0s")
	dir := filepath.Join(t.TempDir(), "cap")
	px := start(t, bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", sim.addr, "--capture-dir", dir, "--drain-timeout", "20s")

	var completed, failed atomic.Int64
	stopClients := make(chan struct{})
	var wg sync.WaitGroup
	for c := 0; c < 24; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stopClients:
					return
				default:
				}
				status, body, err := chat(px.addr, words(10+c), 40, true)
				if err == nil && status == 200 && bytes.Contains(body, []byte("[DONE]")) {
					completed.Add(1)
				} else {
					failed.Add(1) // refused after SIGTERM: expected
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(c)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := px.stop(t); err != nil {
		t.Fatalf("proxy exit: %v\n%s", err, px.stderr.String())
	}
	close(stopClients)
	wg.Wait()
	recs := capturetest.Read(t, dir)
	var ok int64
	for _, r := range recs {
		if r.Status == 200 && !r.Aborted && r.OutputTokens == 40 {
			ok++
		}
	}
	if completed.Load() == 0 {
		t.Fatal("no request completed before SIGTERM; the test proves nothing")
	}
	if ok != completed.Load() {
		t.Fatalf("clients completed %d requests, capture holds %d complete records (%d records in all)", completed.Load(), ok, len(recs))
	}
	t.Logf("completed %d, refused after SIGTERM %d, records %d", completed.Load(), failed.Load(), len(recs))
}

// The proxy captures, and the replayer replays, against GuideLLM's mock
// server: an OpenAI-compatible implementation this project did not write.
func TestCaptureAndReplayAgainstGuideLLMMockServer(t *testing.T) {
	mock := guidellmMock(t, "--ttft-ms", "30", "--itl-ms", "5", "--output-tokens", "200")
	dir := filepath.Join(t.TempDir(), "cap")
	px := start(t, bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", mock, "--capture-dir", dir)
	const n = 12
	for i := 0; i < n; i++ {
		status, body, err := chat(px.addr, words(30+i*7), 6+i, i%3 != 0)
		if err != nil || status != 200 {
			t.Fatalf("request %d via proxy to guidellm: %d %v %.300s", i, status, err, body)
		}
	}
	if err := px.stop(t); err != nil {
		t.Fatalf("proxy exit: %v\n%s", err, px.stderr.String())
	}
	recs := capturetest.Read(t, dir)
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].T < recs[j].T })
	for i, r := range recs {
		if r.OutputTokens != 6+i || r.TokensSource != capture.TokensUsage || r.PromptTokens == 0 {
			t.Errorf("record %d: output %d (want %d) source %s prompt %d", i, r.OutputTokens, 6+i, r.TokensSource, r.PromptTokens)
		}
		if r.Stream && (r.TTFTNs < int64(25*time.Millisecond) || len(r.ChunksUS) == 0) {
			t.Errorf("record %d: ttft %v chunks %d", i, time.Duration(r.TTFTNs), len(r.ChunksUS))
		}
	}

	out := filepath.Join(t.TempDir(), "results")
	res := runReplay(t, "run", "--target", mock, "--workload", dir, "--profile", "trace", "--output-dir", out, "--save-requests")
	b := loadBenchmarks(t, out)
	cand := benchmarkNamed(t, b, "candidate")
	m := cand["metrics"].(map[string]any)
	if got := num(m, "requests", "successful"); got != n {
		t.Fatalf("replay against guidellm: %v successful requests, want %d\n%s", got, n, res)
	}
	if p99 := num(m, "time_to_first_token_ms", "p99"); p99 < 25 {
		t.Errorf("replayed TTFT p99 %.1f ms, mock is configured for 30 ms", p99)
	}
}
