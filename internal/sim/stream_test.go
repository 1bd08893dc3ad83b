package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond every few milliseconds for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idPrompt is a completions body whose prompt is n token ids starting at first.
func idPrompt(first, n, maxTokens int, stream bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"model":"x","stream":%v,"max_tokens":%d,"ignore_eos":true,"prompt":[`, stream, maxTokens)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, first+i)
	}
	b.WriteString("]}")
	return b.String()
}

// The simulator must hold 2,000 streams open at once over real sockets. The
// client speaks cleartext HTTP/2 so that 2,000 streams share a few
// connections: HTTP/1.1 would need a connection (and two transport
// goroutines) per stream, which exceeds the race detector's goroutine limit.
// Every slot is first taken by a request with a 1,000-token prompt
// (10 s of prefill); the 2,000 streams then queue with their headers sent,
// and the test checks that all are open and waiting before releasing them.
func TestTwoThousandOpenHTTPStreams(t *testing.T) {
	const n, slots = 2000, 32
	cfg := DefaultConfig()
	cfg.Slots, cfg.PrefixCache, cfg.Jitter = slots, false, 0
	cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq = 0, 10*time.Millisecond, time.Millisecond, 0
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	srv := httptest.NewUnstartedServer(s)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &h2c}}
	t.Cleanup(client.CloseIdleConnections)

	post := func(ctx context.Context, body string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/completions", strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		return client.Do(req)
	}

	blockCtx, unblock := context.WithCancel(context.Background())
	defer unblock()
	var blockers sync.WaitGroup
	for i := range slots {
		blockers.Go(func() {
			resp, err := post(blockCtx, idPrompt(i*1000, 1000, 1, true))
			if err != nil {
				return // cancelled before the headers came
			}
			_, _ = io.Copy(io.Discard, resp.Body) // ends when unblock cancels it
			resp.Body.Close()
		})
	}
	waitFor(t, "the blockers to take every slot", func() bool { return s.Stats().Running == slots })

	var streams sync.WaitGroup
	open := make(chan struct{}, n)
	errs := make(chan error, n)
	for range n {
		streams.Go(func() {
			resp, err := post(context.Background(), `{"model":"x","stream":true,"max_tokens":2,"ignore_eos":true,"prompt":"q"}`)
			if err != nil {
				errs <- err
				open <- struct{}{}
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || resp.ProtoMajor != 2 {
				errs <- fmt.Errorf("status %d, content-type %q, proto %s", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Proto)
			}
			open <- struct{}{} // headers arrive while the request waits for a slot
			b, err := io.ReadAll(resp.Body)
			if err != nil || !bytes.HasSuffix(b, []byte("data: [DONE]\n\n")) || bytes.Count(b, []byte("data: ")) != 4 {
				errs <- fmt.Errorf("stream: %v %q", err, b)
			}
		})
	}
	for range n {
		<-open
	}
	if st := s.Stats(); st.Waiting != n || st.Running != slots {
		t.Errorf("with every stream open: %+v, want %d waiting, %d running", st, n, slots)
	}
	unblock()
	blockers.Wait()
	streams.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := s.Stats(); st.Served != n || st.Cancelled != slots || st.Running != 0 || st.Waiting != 0 {
		t.Errorf("after the run: %+v, want %d served, %d cancelled", st, n, slots)
	}
}

func TestTokenIDPrompts(t *testing.T) {
	_, srv := newSim(t, nil)
	usageOf := func(body string) (int, int) {
		t.Helper()
		status, b := postJSON(t, srv.URL, "/v1/completions", body)
		var r struct {
			Usage usage `json:"usage"`
		}
		if status != 200 || json.Unmarshal(b, &r) != nil {
			t.Fatalf("%s → %d %s", body, status, b)
		}
		cached := 0
		if r.Usage.PromptTokensDetails != nil {
			cached = r.Usage.PromptTokensDetails.CachedTokens
		}
		return r.Usage.PromptTokens, cached
	}
	body := idPrompt(50000, 40, 1, false)
	if p, c := usageOf(body); p != 40 || c != 0 {
		t.Errorf("cold token-id prompt: %d prompt, %d cached; want 40, 0", p, c)
	}
	if p, c := usageOf(body); p != 40 || c != 32 {
		t.Errorf("repeated token-id prompt: %d prompt, %d cached; want 40, 32", p, c)
	}
	if p, _ := usageOf(`{"max_tokens":1,"prompt":[[1,2],[3]]}`); p != 3 {
		t.Errorf("batch of token-id prompts: %d prompt tokens, want 3", p)
	}
	if p, _ := usageOf(`{"max_tokens":1,"prompt":[100000,1]}`); p != 2 {
		t.Errorf("multi-digit token ids: %d prompt tokens, want 2", p)
	}
	for _, bad := range []string{`{"prompt":[-1]}`, `{"prompt":[[1],[4294967296]]}`} {
		if status, b := postJSON(t, srv.URL, "/v1/completions", bad); status != 400 || !strings.Contains(string(b), "invalid_request_error") {
			t.Errorf("%s → %d %s", bad, status, b)
		}
	}
}

func TestContinuousUsageNeedsIncludeUsage(t *testing.T) {
	_, srv := newSim(t, nil)
	// vLLM: include_continuous_usage = include_usage and continuous_usage_stats
	status, b := postJSON(t, srv.URL, "/v1/completions", `{"stream":true,"max_tokens":3,"ignore_eos":true,"prompt":"hi","stream_options":{"continuous_usage_stats":true}}`)
	if status != 200 || strings.Contains(string(b), `"usage"`) {
		t.Errorf("continuous_usage_stats without include_usage: %d\n%s", status, b)
	}
	status, b = postJSON(t, srv.URL, "/v1/chat/completions", `{"stream":true,"max_tokens":3,"ignore_eos":true,"messages":[{"role":"user","content":"hi"}]}`)
	if status != 200 || strings.Contains(string(b), `"usage"`) {
		t.Errorf("plain stream carries usage: %d\n%s", status, b)
	}
}

func TestMetricsNamesAndValues(t *testing.T) {
	s, srv := newSim(t, nil)
	prompt := strings.Repeat("one two three four ", 20)
	body := `{"max_tokens":2,"ignore_eos":true,"prompt":"` + prompt + `"}`
	postJSON(t, srv.URL, "/v1/completions", body)
	postJSON(t, srv.URL, "/v1/completions", body)
	n := count(t, prompt)
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("content-type %q", ct)
	}
	st := s.Stats()
	lbl := `{model_name="reprise-sim"} `
	for _, want := range []string{
		"vllm:num_requests_running" + lbl + "0",
		"vllm:num_requests_waiting" + lbl + "0",
		"vllm:kv_cache_usage_perc" + lbl + "0",
		"vllm:gpu_cache_usage_perc" + lbl + "0",
		fmt.Sprintf("vllm:prefix_cache_queries_total%s%d", lbl, 2*n),
		fmt.Sprintf("vllm:prefix_cache_hits_total%s%d", lbl, (n-1)/16*16),
		fmt.Sprintf("vllm:prompt_tokens_total%s%d", lbl, 2*n),
		"vllm:generation_tokens_total" + lbl + "4",
		"vllm:request_success_total" + lbl + "2",
		"# TYPE vllm:num_requests_running gauge",
		"# TYPE vllm:prefix_cache_hits_total counter",
	} {
		if !strings.Contains(string(b), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
	if st.PrefixHitTokens != int64((n-1)/16*16) {
		t.Errorf("stats %+v", st)
	}
	// Every sample line is "name{labels} value": the text format's grammar.
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		name, rest, ok := strings.Cut(line, "{")
		if !ok || !strings.HasPrefix(name, "vllm:") || !strings.Contains(rest, "} ") {
			t.Errorf("malformed sample line %q", line)
		}
	}
}
