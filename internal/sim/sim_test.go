package sim

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tiktoken-go/tokenizer"

	"github.com/reprise-llm/reprise/internal/openai"
)

func newSim(t *testing.T, mod func(*Config)) (*Server, *httptest.Server) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq, cfg.Jitter = 2*time.Millisecond, 0, time.Millisecond, 0, 0
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func postJSON(t *testing.T, url, path, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// decode parses a streamed body with Reprise's own SSE decoder.
func decode(t *testing.T, b []byte) (content string, events int, finish string, usage *openai.Usage, done bool) {
	t.Helper()
	var d openai.Decoder
	d.Feed(b)
	for {
		ev, ok := d.Next()
		if !ok {
			return
		}
		c, err := openai.ParseChunk(ev.Data)
		if err != nil {
			t.Fatalf("bad event %q: %v", ev.Data, err)
		}
		if c.Done {
			done = true
			continue
		}
		if c.Content != "" {
			events++
			content += c.Content
		}
		if c.FinishReason != "" {
			finish = c.FinishReason
		}
		if c.Usage != nil {
			usage = c.Usage
		}
	}
}

func count(t *testing.T, s string) int {
	c, _ := tokenizer.Get(tokenizer.Cl100kBase)
	n, _ := c.Count(s)
	return n
}

func TestStreamingChatAndCompletionsWithUsage(t *testing.T) {
	_, srv := newSim(t, nil)
	prompt := "hello there, how are you today?"
	status, b := postJSON(t, srv.URL, "/v1/chat/completions", `{"model":"x","stream":true,"max_tokens":9,"ignore_eos":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"`+prompt+`"}]}`)
	if status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	_, events, finish, usage, done := decode(t, b)
	wantPrompt := count(t, "be brief") + count(t, prompt)
	if events != 9 || finish != "length" || !done || usage == nil || usage.CompletionTokens != 9 || usage.PromptTokens != wantPrompt {
		t.Fatalf("events %d finish %q done %v usage %+v (want prompt %d)", events, finish, done, usage, wantPrompt)
	}
	status, b = postJSON(t, srv.URL, "/v1/completions", `{"model":"x","stream":true,"max_tokens":4,"ignore_eos":true,"prompt":"abc def","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`)
	_, events, _, usage, _ = decode(t, b)
	if status != 200 || events != 4 || usage.CompletionTokens != 4 || usage.PromptTokens != count(t, "abc def") {
		t.Fatalf("completions stream: %d events %d usage %+v", status, events, usage)
	}
	if strings.Count(string(b), `"usage"`) != 6 { // 4 tokens + final + usage-only chunk
		t.Errorf("continuous usage: %d usage objects\n%s", strings.Count(string(b), `"usage"`), b)
	}
}

func TestNonStreamingAndNaturalStop(t *testing.T) {
	_, srv := newSim(t, func(c *Config) { c.NaturalOutputMean = 3 })
	status, b := postJSON(t, srv.URL, "/v1/chat/completions", `{"model":"x","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`)
	r, err := openai.ParseResponse(b)
	if status != 200 || err != nil || r.Usage == nil {
		t.Fatalf("%d %v %s", status, err, b)
	}
	if r.Usage.CompletionTokens >= 50 || r.FinishReason != "stop" || r.Content == "" {
		t.Errorf("natural stop: %+v", r)
	}
	status, b = postJSON(t, srv.URL, "/v1/completions", `{"model":"x","max_tokens":5,"ignore_eos":true,"prompt":"hi"}`)
	r, _ = openai.ParseResponse(b)
	if status != 200 || r.Usage.CompletionTokens != 5 || r.FinishReason != "length" {
		t.Errorf("ignore_eos: %+v", r)
	}
}

func TestBadRequests(t *testing.T) {
	_, srv := newSim(t, nil)
	for _, body := range []string{`{`, `{"messages":"nope"}`, `{"model":"x","messages":[]}`, `null`} {
		status, b := postJSON(t, srv.URL, "/v1/chat/completions", body)
		var e struct {
			Error struct{ Message, Type string }
		}
		if status != 400 || json.Unmarshal(b, &e) != nil || e.Error.Type != "invalid_request_error" || e.Error.Message == "" {
			t.Errorf("%s → %d %s", body, status, b)
		}
	}
}

func TestPrefixCacheHitReportsCachedTokens(t *testing.T) {
	_, srv := newSim(t, func(c *Config) { c.PrefillPerToken = 50 * time.Microsecond })
	long := strings.Repeat("the quick brown fox jumps over the lazy dog ", 200)
	body := `{"model":"x","max_tokens":1,"ignore_eos":true,"messages":[{"role":"user","content":"` + long + `"}]}`
	var cached []int
	var took []time.Duration
	for i := 0; i < 2; i++ {
		start := time.Now()
		_, b := postJSON(t, srv.URL, "/v1/chat/completions", body)
		took = append(took, time.Since(start))
		var r struct {
			Usage struct {
				PromptTokens        int `json:"prompt_tokens"`
				PromptTokensDetails *struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			}
		}
		_ = json.Unmarshal(b, &r)
		c := 0
		if r.Usage.PromptTokensDetails != nil {
			c = r.Usage.PromptTokensDetails.CachedTokens
		}
		cached = append(cached, c)
	}
	if cached[0] != 0 || cached[1] < 1500 {
		t.Fatalf("cached tokens %v", cached)
	}
	if took[1] >= took[0] {
		t.Errorf("cache hit not faster: %v then %v", took[0], took[1])
	}
}

func TestClientCancelFreesSlot(t *testing.T) {
	s, srv := newSim(t, func(c *Config) { c.Slots = 1; c.ITLBase = 20 * time.Millisecond })
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"x","stream":true,"max_tokens":1000,"ignore_eos":true,"messages":[{"role":"user","content":"q"}]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	_, _ = resp.Body.Read(buf)
	cancel()
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r, _ := s.sched.load(); r == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slot not freed after the client went away")
		}
		time.Sleep(5 * time.Millisecond)
	}
	status, _ := postJSON(t, srv.URL, "/v1/chat/completions", `{"model":"x","max_tokens":2,"messages":[{"role":"user","content":"q"}]}`)
	if st := s.Stats(); status != 200 || st.Cancelled != 1 || st.Served != 1 {
		t.Fatalf("status %d, stats %+v", status, st)
	}
}

func TestMetricsAndModels(t *testing.T) {
	_, srv := newSim(t, nil)
	postJSON(t, srv.URL, "/v1/chat/completions", `{"model":"x","max_tokens":3,"ignore_eos":true,"messages":[{"role":"user","content":"q"}]}`)
	resp, _ := http.Get(srv.URL + "/metrics")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"vllm:num_requests_running{", "vllm:num_requests_waiting{", "vllm:generation_tokens_total{model_name=\"reprise-sim\"} 3"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q:\n%s", want, b)
		}
	}
	resp, _ = http.Get(srv.URL + "/v1/models")
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"reprise-sim"`) {
		t.Errorf("models: %s", b)
	}
}

func TestValidateAndFlags(t *testing.T) {
	def := DefaultConfig()
	if err := def.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	c := DefaultConfig()
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	c.RegisterFlags(fs)
	for _, name := range []string{"model", "slots", "max-waiting", "ttft-base", "prefill-per-token", "itl-base", "itl-per-seq",
		"default-max-tokens", "natural-output-mean", "prefix-cache", "prefix-block", "jitter", "error-rate", "seed"} {
		if fs.Lookup(name) == nil {
			t.Errorf("no --%s flag", name)
		}
	}
	if err := fs.Parse([]string{"--slots", "0", "--jitter", "2", "--itl-base", "-1ms", "--prefix-block", "0", "--ttft-base", "5ms"}); err != nil {
		t.Fatal(err)
	}
	if c.TTFTBase != 5*time.Millisecond || c.ITLPerSeq != def.ITLPerSeq {
		t.Errorf("flags not bound: %+v", c)
	}
	err := c.Validate()
	for _, want := range []string{"--slots", "--jitter", "--itl-base", "--prefix-block"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "--ttft-base") {
		t.Errorf("Validate() blames a valid flag: %v", err)
	}
	if _, err := New(c); err == nil {
		t.Error("New accepted an invalid config")
	}
}

func FuzzHandler(f *testing.F) {
	f.Add("/v1/chat/completions", `{"model":"x","max_tokens":2,"messages":[{"role":"user","content":"q"}]}`)
	f.Add("/v1/completions", `{"prompt":["a","b"],"max_tokens":1,"stream":true}`)
	f.Add("/v1/completions", `{"prompt":[1,2,3],"max_tokens":-4}`)
	f.Add("/v1/completions", `{"prompt":[[1,2],[3]],"max_tokens":1,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`)
	f.Add("/v1/completions", `{"prompt":[-5, 1e30, "a"]}`)
	cfg := DefaultConfig()
	cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq, cfg.DefaultMaxTokens = 0, 0, 0, 0, 4
	s, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req := httptest.NewRequest("POST", "/", strings.NewReader(body))
		req.URL.Path = path
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != 200 && rec.Code != 400 && rec.Code != 404 {
			t.Fatalf("%s %q → %d", path, body, rec.Code)
		}
	})
}

func TestQueueingDelaysTheSecondRequest(t *testing.T) {
	s, srv := newSim(t, func(c *Config) { c.Slots = 1; c.ITLBase = 5 * time.Millisecond })
	body := `{"model":"x","stream":true,"max_tokens":20,"ignore_eos":true,"messages":[{"role":"user","content":"q"}]}`
	// firstByte posts body and returns when the first token arrives.
	firstByte := func() (time.Time, *http.Response) {
		resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return time.Time{}, nil
		}
		if _, err := resp.Body.Read(make([]byte, 1)); err != nil {
			t.Error(err)
		}
		return time.Now(), resp
	}
	start0 := time.Now()
	_, resp0 := firstByte()
	if resp0 == nil {
		t.FailNow()
	}
	if s.Stats().Running != 1 {
		t.Fatalf("first request not running: %+v", s.Stats())
	}
	start1 := time.Now()
	done := make(chan time.Time)
	go func() {
		at, resp1 := firstByte()
		if resp1 != nil {
			_, _ = io.Copy(io.Discard, resp1.Body)
			resp1.Body.Close()
		}
		done <- at
	}()
	_, _ = io.Copy(io.Discard, resp0.Body)
	resp0.Body.Close()
	end0 := time.Now()
	first1 := <-done
	// Timers never fire early: the first request holds the only slot for at
	// least 2ms + 19 × 5ms, so the second's first token cannot come sooner;
	// with no queueing it would come ~2ms after it was sent.
	if first1.Sub(start0) < 97*time.Millisecond {
		t.Fatalf("second request's first token %v after the first was sent (first ended after %v, second sent at %v)",
			first1.Sub(start0), end0.Sub(start0), start1.Sub(start0))
	}
}

func TestExactUsageAcrossShapes(t *testing.T) {
	_, srv := newSim(t, nil)
	msgs := `[{"role":"system","content":"You are terse."},{"role":"user","content":"Count: one two three, ünïcödé 🙂"},{"role":"assistant","content":""},{"role":"user","content":[{"type":"text","text":"and parts"}]}]`
	wantPrompt := count(t, "You are terse.") + count(t, "Count: one two three, ünïcödé 🙂") + count(t, "and parts")
	status, b := postJSON(t, srv.URL, "/v1/chat/completions", `{"model":"x","max_completion_tokens":7,"ignore_eos":true,"messages":`+msgs+`}`)
	r, err := openai.ParseResponse(b)
	if status != 200 || err != nil || r.Usage == nil || r.Usage.PromptTokens != wantPrompt || r.Usage.CompletionTokens != 7 || r.FinishReason != "length" {
		t.Fatalf("chat: %d %v %+v (want prompt %d)\n%s", status, err, r.Usage, wantPrompt, b)
	}
	if n := count(t, r.Content); n != 7 {
		t.Errorf("content %q is %d tokens, want 7", r.Content, n)
	}
	status, b = postJSON(t, srv.URL, "/v1/completions", `{"model":"x","stream":true,"max_tokens":3,"ignore_eos":true,"prompt":"Once upon a time","stream_options":{"include_usage":true}}`)
	content, events, finish, usage, done := decode(t, b)
	if status != 200 || events != 3 || finish != "length" || !done || usage == nil || usage.PromptTokens != count(t, "Once upon a time") || usage.CompletionTokens != 3 || count(t, content) != 3 {
		t.Fatalf("completions stream: %d events %d finish %q usage %+v\n%s", status, events, finish, usage, b)
	}
	if !strings.Contains(string(b), `"choices":[],"usage"`) {
		t.Errorf("no usage-only chunk with empty choices:\n%s", b)
	}
}

func TestWordsAreSingleTokens(t *testing.T) {
	for _, w := range words {
		if n := count(t, w); n != 1 {
			t.Errorf("%q is %d tokens", w, n)
		}
	}
}

func TestStreamedCachedTokensAndErrorRate(t *testing.T) {
	_, srv := newSim(t, nil)
	long := strings.Repeat("lorem ipsum dolor sit amet ", 20)
	body := `{"stream":true,"max_tokens":2,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"` + long + `"}]}`
	postJSON(t, srv.URL, "/v1/chat/completions", body)
	_, b := postJSON(t, srv.URL, "/v1/chat/completions", body)
	_, _, _, usage, _ := decode(t, b)
	if n := count(t, long); usage == nil || usage.CachedTokens != (n-1)/16*16 || usage.PromptTokens != n {
		t.Fatalf("usage %+v, want %d prompt tokens, %d cached", usage, n, (n-1)/16*16)
	}
	_, failing := newSim(t, func(c *Config) { c.ErrorRate = 1 })
	if status, b := postJSON(t, failing.URL, "/v1/chat/completions", body); status != 500 || !strings.Contains(string(b), `"error"`) {
		t.Fatalf("--error-rate 1: %d %s", status, b)
	}
}

func TestManyConcurrentHTTPStreams(t *testing.T) {
	s, srv := newSim(t, func(c *Config) { c.Slots = 64 })
	const n = 300
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	t.Cleanup(client.CloseIdleConnections)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := client.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(chatBody(5, true)))
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
				t.Errorf("truncated stream %q", b)
			}
		})
	}
	wg.Wait()
	if st := s.Stats(); st.Served != n || st.Running != 0 {
		t.Fatalf("stats %+v", st)
	}
}
