package sim

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
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

func TestQueueingDelaysTheSecondRequest(t *testing.T) {
	_, srv := newSim(t, func(c *Config) { c.Slots = 1; c.ITLBase = 5 * time.Millisecond })
	body := `{"model":"x","stream":true,"max_tokens":20,"ignore_eos":true,"messages":[{"role":"user","content":"q"}]}`
	var wg sync.WaitGroup
	ttft := make([]time.Duration, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 20 * time.Millisecond) // request 1 arrives second
			start := time.Now()
			resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			buf := make([]byte, 1)
			_, _ = resp.Body.Read(buf)
			ttft[i] = time.Since(start)
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}(i)
	}
	wg.Wait()
	// the first generates 20 tokens × 5 ms ≈ 100 ms; the second waits for its slot
	if ttft[1] < 50*time.Millisecond || ttft[1] < 3*ttft[0] {
		t.Fatalf("second request's TTFT %v does not include the first's generation (first TTFT %v)", ttft[1], ttft[0])
	}
}

// acquire waits for a slot as the handler does: errQueueFull when the
// queue is at its bound, or ctx's error if the client gave up waiting.
func acquire(ctx context.Context, s *scheduler) error {
	t, err := s.enqueue()
	if err != nil {
		return err
	}
	select {
	case <-t.admitted:
		return nil
	case <-ctx.Done():
		s.leave(t)
		return ctx.Err()
	}
}

func TestSchedulerUnderSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scheduler{slots: 2, maxWaiting: 1}
		ctx := context.Background()
		if acquire(ctx, s) != nil || acquire(ctx, s) != nil {
			t.Fatal("two slots")
		}
		admitted := make(chan struct{})
		go func() { _ = acquire(ctx, s); close(admitted) }()
		synctest.Wait()
		if r, w := s.load(); r != 2 || w != 1 {
			t.Fatalf("running %d waiting %d", r, w)
		}
		if err := acquire(ctx, s); !errors.Is(err, errQueueFull) {
			t.Fatalf("queue bound: %v", err)
		}
		s.release()
		<-admitted
		if r, w := s.load(); r != 2 || w != 0 {
			t.Fatalf("after release: running %d waiting %d", r, w)
		}
		// a waiter that gives up leaves the queue
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error)
		go func() { errc <- acquire(cctx, s) }()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if _, w := s.load(); w != 0 {
			t.Fatal("cancelled waiter still queued")
		}
	})
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
	if status != 200 {
		t.Fatal(status)
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
	c := DefaultConfig()
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--slots", "0", "--jitter", "2", "--itl-base", "-1ms"}); err != nil {
		t.Fatal(err)
	}
	err := c.Validate()
	for _, want := range []string{"--slots", "--jitter", "--itl-base"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

func FuzzHandler(f *testing.F) {
	f.Add("/v1/chat/completions", `{"model":"x","max_tokens":2,"messages":[{"role":"user","content":"q"}]}`)
	f.Add("/v1/completions", `{"prompt":["a","b"],"max_tokens":1,"stream":true}`)
	f.Add("/v1/completions", `{"prompt":[1,2,3],"max_tokens":-4}`)
	cfg := DefaultConfig()
	cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq, cfg.DefaultMaxTokens = 0, 0, 0, 0, 4
	s, _ := New(cfg)
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
