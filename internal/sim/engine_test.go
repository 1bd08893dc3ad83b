package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// The tests of the behaviours issue 18 asked for (package doc): the prefix
// cache as the client sees it, requests held after their client went away,
// and kept-alive connections closed under the client's next request.

// recorder is a ResponseWriter for handlers run in a synctest bubble: it
// notes the (fake) time of the first body byte and of the handler's end.
type recorder struct {
	mu            sync.Mutex
	header        http.Header
	status        int
	body          strings.Builder
	first, ended  time.Time
	wroteAnything bool
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if !r.wroteAnything {
		r.wroteAnything, r.first = true, time.Now()
	}
	return r.body.Write(p)
}
func (r *recorder) Flush() {}

// serve runs one request through s on its own goroutine, in the bubble.
func serve(ctx context.Context, s *Server, body string) *recorder {
	rec := newRecorder()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
	go func() {
		s.ServeHTTP(rec, req)
		rec.mu.Lock()
		rec.ended = time.Now()
		rec.mu.Unlock()
	}()
	return rec
}

func streamBody(tokens int) string {
	return `{"model":"x","stream":true,"max_tokens":` + strconv.Itoa(tokens) + `,"ignore_eos":true,"messages":[{"role":"user","content":"q"}]}`
}

// result reads what the handler has done so far.
func (r *recorder) result() (status int, first, ended time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status, r.first, r.ended
}

// holdConfig is one slot, 10 ms to the first token and 10 ms between
// tokens (plus 1 ms per running sequence), no jitter: in a synctest bubble
// every time is exact.
func holdConfig(hold bool) Config {
	cfg := DefaultConfig()
	cfg.Slots, cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq, cfg.Jitter = 1, 10*time.Millisecond, 0, 10*time.Millisecond, time.Millisecond, 0
	cfg.HoldCancelled = hold
	return cfg
}

// A running request whose client goes away: vLLM frees its slot at once;
// with HoldCancelled, as llama-server, it keeps the slot until its 100
// tokens would have been generated, and the next request waits for that.
func TestHoldCancelledKeepsTheSlot(t *testing.T) {
	for _, hold := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			s, err := New(holdConfig(hold))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx, cancel := context.WithCancel(t.Context())
			start := time.Now()
			a := serve(ctx, s, streamBody(100))
			time.Sleep(35 * time.Millisecond) // prefill and 2 more tokens, mid-sleep of the 4th
			cancel()
			synctest.Wait()
			if _, _, ended := a.result(); ended.IsZero() {
				t.Fatal("the cancelled request's handler is still running: a held request must free its connection")
			}
			st := s.Stats()
			if st.Cancelled != 1 {
				t.Fatalf("hold %v: cancelled %d, want 1", hold, st.Cancelled)
			}
			if want := map[bool]int{false: 0, true: 1}[hold]; st.Running != want {
				t.Fatalf("hold %v: %d running after the client went away, want %d", hold, st.Running, want)
			}
			b := serve(t.Context(), s, streamBody(1))
			synctest.Wait()
			if w := s.Stats().Waiting; hold && w != 1 {
				t.Fatalf("the next request is not queued behind the held one: waiting %d", w)
			}
			time.Sleep(5 * time.Second)
			status, first, _ := b.result()
			if first.IsZero() || status != http.StatusOK {
				t.Fatalf("hold %v: the next request got nothing (status %d)", hold, status)
			}
			ttft := first.Sub(start)
			// A's 100 tokens: 10 ms of prefill, then 99 gaps of 10 ms + 1 ms
			// per running sequence (A alone: 11 ms), and B's own 10 ms.
			if aEnd := 10*time.Millisecond + 99*11*time.Millisecond; hold && ttft < aEnd+10*time.Millisecond {
				t.Errorf("held: the next request's first token came %v after A started, before A's generation would have ended (%v)", ttft, aEnd)
			}
			if !hold && ttft > 35*time.Millisecond+20*time.Millisecond {
				t.Errorf("not held: the next request's first token came %v after A started; A's slot was not freed at the cancel (35 ms)", ttft)
			}
			if st := s.Stats(); hold && st.GenerationTokens != 101 {
				t.Errorf("held: %d tokens generated, want A's 100 and B's 1", st.GenerationTokens)
			}
		})
	}
}

// A queued request whose client goes away: vLLM drops it from the queue;
// with HoldCancelled it keeps its place, is admitted in turn and holds the
// slot for its whole generation, so a later request waits for it too.
func TestHoldCancelledKeepsTheQueuePlace(t *testing.T) {
	for _, hold := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			s, err := New(holdConfig(hold))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			start := time.Now()
			a := serve(t.Context(), s, streamBody(10)) // 10 + 9×11 = 109 ms
			synctest.Wait()
			ctx, cancel := context.WithCancel(t.Context())
			serve(ctx, s, streamBody(50)) // queued behind a
			synctest.Wait()
			if w := s.Stats().Waiting; w != 1 {
				t.Fatalf("waiting %d, want 1", w)
			}
			cancel()
			synctest.Wait()
			if w := s.Stats().Waiting; w != map[bool]int{false: 0, true: 1}[hold] {
				t.Fatalf("hold %v: waiting %d after the queued client went away", hold, w)
			}
			c := serve(t.Context(), s, streamBody(1))
			time.Sleep(10 * time.Second)
			aStatus, _, aEnded := a.result()
			cStatus, cFirstAt, _ := c.result()
			if aStatus != http.StatusOK || cStatus != http.StatusOK {
				t.Fatalf("statuses %d, %d", aStatus, cStatus)
			}
			aEnd := aEnded.Sub(start)
			cFirst := cFirstAt.Sub(start)
			// held: b's 50 tokens (10 + 49×11 ms = 549 ms) run between a and c
			if hold && cFirst < aEnd+549*time.Millisecond {
				t.Errorf("held: c's first token %v, before the held request's generation after a (%v + 549 ms)", cFirst, aEnd)
			}
			if !hold && cFirst > aEnd+20*time.Millisecond {
				t.Errorf("not held: c's first token %v, long after a ended (%v)", cFirst, aEnd)
			}
		})
	}
}

// Close ends held requests and waits for them.
func TestCloseEndsHeldRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(holdConfig(true))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		serve(ctx, s, streamBody(100_000))
		serve(ctx, s, streamBody(100_000)) // queued
		synctest.Wait()
		cancel()
		synctest.Wait()
		if st := s.Stats(); st.Running != 1 || st.Waiting != 1 {
			t.Fatalf("running %d waiting %d, want both held", st.Running, st.Waiting)
		}
		time.Sleep(time.Second)
		s.Close()
		if st := s.Stats(); st.Running != 0 || st.Waiting != 0 {
			t.Fatalf("after Close: running %d waiting %d", st.Running, st.Waiting)
		}
	})
}

// keepAliveSim serves a simulator with KeepAliveCloseRate rate, as every
// test serves it: no wiring is needed.
func keepAliveSim(t *testing.T, rate float64) (*Server, *httptest.Server) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq, cfg.Jitter = time.Millisecond, 0, time.Millisecond, 0, 0
	cfg.KeepAliveCloseRate = rate
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(s.Close)
	t.Cleanup(hs.Close) // the server first, then the simulator
	return s, hs
}

// attempt posts a streamed request on c and reports whether its
// connection was reused and whether any response byte came back.
func attempt(t *testing.T, c *http.Client, url string) (reused, firstByte bool, err error) {
	t.Helper()
	trace := &httptrace.ClientTrace{
		GotConn:              func(i httptrace.GotConnInfo) { reused = i.Reused },
		GotFirstResponseByte: func() { firstByte = true },
	}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodPost, url+"/v1/chat/completions", strings.NewReader(streamBody(3)))
	resp, err := c.Do(req)
	if err != nil {
		return reused, firstByte, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && (resp.StatusCode != http.StatusOK || !strings.HasSuffix(string(b), "data: [DONE]\n\n")) {
		t.Fatalf("status %d body %q", resp.StatusCode, b)
	}
	if resp.Close || resp.Header.Get("Connection") != "" {
		t.Fatalf("the stream said Connection: %q; llama-server says nothing", resp.Header.Get("Connection"))
	}
	return reused, firstByte, err
}

// After a stream, the kept-alive connection is closed as the next request
// arrives on it: the client reused it and reads EOF (or a reset) before
// any response byte. net/http does not re-send a POST it wrote whole, so
// the error reaches the caller; the request after it gets a new
// connection.
func TestKeepAliveCloseMeetsTheNextRequest(t *testing.T) {
	s, srv := keepAliveSim(t, 1)
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	if reused, _, err := attempt(t, c, srv.URL); err != nil || reused {
		t.Fatalf("first request: reused %v, %v", reused, err)
	}
	reused, firstByte, err := attempt(t, c, srv.URL)
	if err == nil || !reused || firstByte {
		t.Fatalf("second request: reused %v, first byte %v, err %v; want an error on the reused connection before any byte", reused, firstByte, err)
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("second request: %v, want EOF or a reset", err)
	}
	if reused, _, err := attempt(t, c, srv.URL); err != nil || reused {
		t.Fatalf("third request: reused %v, %v; want a new connection", reused, err)
	}
	if st := s.Stats(); st.KeepAliveCloses != 1 || st.Served != 2 {
		t.Errorf("keep-alive closes %d, served %d; want 1 and 2", st.KeepAliveCloses, st.Served)
	}
}

// Off (the default), connections stay open; an HTTP/1.0 client, whose
// response is not chunked and ends with the connection, is left alone.
func TestKeepAliveCloseOffOrNotKeptAlive(t *testing.T) {
	_, off := keepAliveSim(t, 0)
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	for i := range 5 {
		reused, _, err := attempt(t, c, off.URL)
		if err != nil || reused != (i > 0) {
			t.Fatalf("request %d: reused %v, %v", i, reused, err)
		}
	}
	s, on := keepAliveSim(t, 1)
	conn, err := net.Dial("tcp", strings.TrimPrefix(on.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := streamBody(2)
	if _, err := io.WriteString(conn, "POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(conn) // HTTP/1.0: the server ends the body by closing
	if err != nil || !strings.HasPrefix(string(resp), "HTTP/1.0 200") || !strings.HasSuffix(string(resp), "data: [DONE]\n\n") {
		t.Fatalf("HTTP/1.0 stream: %v\n%s", err, resp)
	}
	if n := s.Stats().KeepAliveCloses; n != 0 {
		t.Errorf("%d keep-alive closes for an HTTP/1.0 request", n)
	}
}

// The prefix cache as the client sees it: cached_tokens is reported (0
// included) in the streamed usage chunk and the JSON response while the
// cache is on, never while it is off, and /metrics counts cached prompt
// tokens under vLLM's name; a cache too small for the prompt evicts it.
func TestPrefixCacheReportsAndEvicts(t *testing.T) {
	long := strings.Repeat("the quick brown fox jumps over the lazy dog ", 40) // 361 tokens
	stream := `{"model":"x","stream":true,"max_tokens":1,"ignore_eos":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"` + long + `"}]}`
	plain := `{"model":"x","max_tokens":1,"ignore_eos":true,"messages":[{"role":"user","content":"` + long + `"}]}`
	cachedOf := func(t *testing.T, url, body string, streamed bool) (prompt, cached int, reported bool) {
		t.Helper()
		status, b := postJSON(t, url, "/v1/chat/completions", body)
		if status != 200 {
			t.Fatalf("%d %s", status, b)
		}
		if streamed {
			_, _, _, u, _ := decode(t, b)
			if u == nil {
				t.Fatalf("no usage chunk in %s", b)
			}
			prompt, cached = u.PromptTokens, u.CachedTokens
		} else {
			var r struct {
				Usage usageJSON `json:"usage"`
			}
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			prompt = r.Usage.PromptTokens
			if r.Usage.PromptTokensDetails != nil {
				cached = r.Usage.PromptTokensDetails.CachedTokens
			}
		}
		return prompt, cached, strings.Contains(string(b), `"prompt_tokens_details":{"cached_tokens":`)
	}

	_, srv := newSim(t, nil)
	p, c, rep := cachedOf(t, srv.URL, stream, true)
	if c != 0 || !rep || p < 300 {
		t.Fatalf("first: prompt %d cached %d reported %v; want a reported 0", p, c, rep)
	}
	full := p / 16 * 16 // every full block
	if _, c, rep = cachedOf(t, srv.URL, stream, true); c != full || !rep {
		t.Fatalf("streamed resend: cached %d of %d, want every full 16-token block (%d)", c, p, full)
	}
	if _, c, rep = cachedOf(t, srv.URL, plain, false); c != full || !rep {
		t.Fatalf("JSON resend: cached %d of %d", c, p)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`vllm:prompt_tokens_total{model_name="reprise-sim"} ` + strconv.Itoa(3*p),
		`vllm:prompt_tokens_cached_total{model_name="reprise-sim"} ` + strconv.Itoa(2*full),
		`vllm:prefix_cache_hits_total{model_name="reprise-sim"} ` + strconv.Itoa(2*full),
		`vllm:prefix_cache_queries_total{model_name="reprise-sim"} ` + strconv.Itoa(3*p),
	} {
		if !strings.Contains(string(m), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}

	_, off := newSim(t, func(c *Config) { c.PrefixCache = false })
	for range 2 {
		if _, c, rep := cachedOf(t, off.URL, stream, true); c != 0 || rep {
			t.Fatalf("cache off: cached %d, reported %v", c, rep)
		}
	}

	// 10 blocks of room for a 22-block prompt: each pass evicts the
	// blocks the next pass looks up first.
	_, small := newSim(t, func(c *Config) { c.PrefixCacheBlocks = 10 })
	for i := range 3 {
		if _, c, _ := cachedOf(t, small.URL, plain, false); c != 0 {
			t.Fatalf("pass %d: %d tokens cached by a cache smaller than the prompt", i, c)
		}
	}
}
