package sim

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// engineConfig is an exact (jitter-free) capacity model for fake-clock tests.
func engineConfig() Config {
	c := DefaultConfig()
	c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq, c.Jitter = 10*time.Millisecond, 0, 8*time.Millisecond, time.Millisecond, 0
	return c
}

// call serves one request in-process and reports how long it took.
func call(ctx context.Context, s *Server, path, body string) (*httptest.ResponseRecorder, time.Duration) {
	req := httptest.NewRequest("POST", path, strings.NewReader(body)).WithContext(ctx)
	rec := httptest.NewRecorder()
	start := time.Now()
	s.ServeHTTP(rec, req)
	return rec, time.Since(start)
}

func chatBody(maxTokens int, stream bool) string {
	st := "false"
	if stream {
		st = "true"
	}
	return `{"model":"m","stream":` + st + `,"ignore_eos":true,"max_tokens":` + strconv.Itoa(maxTokens) + `,"messages":[{"role":"user","content":"hello"}]}`
}

func TestITLMathGrowsWithRunningSequences(t *testing.T) {
	s, err := New(engineConfig())
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	for running, want := range []time.Duration{8 * time.Millisecond, 9 * time.Millisecond, 10 * time.Millisecond} {
		if got := s.itl(running, rng); got != want {
			t.Errorf("itl(%d) = %v, want %v", running, got, want)
		}
	}
	s.cfg.Jitter = 0.1
	for range 1000 {
		if d := s.itl(2, rng); d < 9*time.Millisecond || d > 11*time.Millisecond {
			t.Fatalf("jittered itl(2) = %v, want within 10ms ± 10%%", d)
		}
	}
	s.cfg.PrefillPerToken = time.Millisecond
	s.cfg.Jitter = 0
	if d := s.prefillDelay(5, rng); d != 15*time.Millisecond {
		t.Errorf("prefillDelay(5) = %v, want 15ms", d)
	}
}

func TestEngineDecodeSlowsAsTheBatchFills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := New(engineConfig())
		if err != nil {
			t.Fatal(err)
		}
		// alone: 10ms to the first token, then 10 × (8ms + 1 × 1ms)
		rec, took := call(context.Background(), s, "/v1/chat/completions", chatBody(11, true))
		if rec.Code != 200 || took != 100*time.Millisecond {
			t.Fatalf("alone: status %d took %v, want 100ms", rec.Code, took)
		}
		// four at once: 10 × (8ms + 4 × 1ms) after the first token
		var wg sync.WaitGroup
		tooks := make([]time.Duration, 4)
		for i := range tooks {
			wg.Go(func() { _, tooks[i] = call(context.Background(), s, "/v1/chat/completions", chatBody(11, true)) })
		}
		wg.Wait()
		for i, d := range tooks {
			if d != 130*time.Millisecond {
				t.Errorf("request %d of 4 took %v, want 130ms", i, d)
			}
		}
	})
}

func TestEngineQueuesFIFOForSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := engineConfig()
		cfg.Slots, cfg.MaxWaiting = 1, 1
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var first, second time.Duration
		wg.Go(func() {
			_, first = call(context.Background(), s, "/v1/completions", `{"prompt":"a","max_tokens":11,"ignore_eos":true}`)
		})
		synctest.Wait()
		wg.Go(func() {
			_, second = call(context.Background(), s, "/v1/completions", `{"prompt":"b","max_tokens":11,"ignore_eos":true}`)
		})
		synctest.Wait()
		if st := s.Stats(); st.Running != 1 || st.Waiting != 1 {
			t.Fatalf("stats %+v, want 1 running 1 waiting", st)
		}
		rec, _ := call(context.Background(), s, "/v1/completions", `{"prompt":"c","max_tokens":1}`)
		if rec.Code != 429 || !strings.Contains(rec.Body.String(), "rate_limit_error") {
			t.Fatalf("beyond --max-waiting: %d %s", rec.Code, rec.Body)
		}
		wg.Wait()
		// one running: 10ms + 10 × 9ms each, back to back
		if first != 100*time.Millisecond || second != 200*time.Millisecond {
			t.Fatalf("first took %v (want 100ms), second %v (want 200ms)", first, second)
		}
		if st := s.Stats(); st.Served != 2 || st.Rejected != 1 || st.Running != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestEnginePrefixCacheSkipsPrefill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := engineConfig()
		cfg.PrefillPerToken = 100 * time.Microsecond
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		prompt := strings.Repeat("alpha beta gamma delta ", 50)
		n, _ := s.codec.Count(prompt)
		body := `{"prompt":"` + prompt + `","max_tokens":1}`
		_, cold := call(context.Background(), s, "/v1/completions", body)
		_, warm := call(context.Background(), s, "/v1/completions", body)
		cached := (n - 1) / 16 * 16 // the last prompt token is always computed
		if want := 10*time.Millisecond + time.Duration(n)*100*time.Microsecond; cold != want {
			t.Errorf("cold TTFT %v, want %v", cold, want)
		}
		if want := 10*time.Millisecond + time.Duration(n-cached)*100*time.Microsecond; warm != want {
			t.Errorf("warm TTFT %v, want %v", warm, want)
		}
		if st := s.Stats(); st.PrefixHitTokens != int64(cached) || st.PrefixQueryTokens != int64(2*n) {
			t.Errorf("stats %+v, want %d hit of %d queried", st, cached, 2*n)
		}
	})
}

func TestEngineCancelAndCloseFreeSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := engineConfig()
		cfg.Slots = 1
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { call(ctx, s, "/v1/chat/completions", chatBody(1000, true)); close(done) }()
		waiter := make(chan struct{})
		go func() { call(ctx, s, "/v1/chat/completions", chatBody(1000, true)); close(waiter) }()
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		if st := s.Stats(); st.Running != 1 || st.Waiting != 1 {
			t.Fatalf("stats %+v", st)
		}
		cancel()
		<-done
		<-waiter
		if st := s.Stats(); st.Running != 0 || st.Waiting != 0 || st.Cancelled != 2 {
			t.Fatalf("after cancel: %+v", st)
		}
		closed := make(chan struct{})
		go func() { call(context.Background(), s, "/v1/chat/completions", chatBody(1000, true)); close(closed) }()
		time.Sleep(50 * time.Millisecond)
		s.Close()
		<-closed
		if st := s.Stats(); st.Running != 0 || st.Cancelled != 3 {
			t.Fatalf("after Close: %+v", st)
		}
		if rec, _ := call(context.Background(), s, "/v1/chat/completions", chatBody(1, false)); rec.Code != 503 {
			t.Fatalf("after Close: %d", rec.Code)
		}
	})
}

func TestEngineTwoThousandConcurrentStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := engineConfig()
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		const n = 2000
		var wg sync.WaitGroup
		bad := make(chan string, n)
		for range n {
			wg.Go(func() {
				rec, _ := call(context.Background(), s, "/v1/chat/completions", chatBody(3, true))
				if rec.Code != 200 || !strings.HasSuffix(rec.Body.String(), "data: [DONE]\n\n") {
					bad <- rec.Body.String()
				}
			})
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if st := s.Stats(); st.Running != cfg.Slots || st.Waiting != n-cfg.Slots {
			t.Errorf("stats %+v, want %d running, %d waiting", st, cfg.Slots, n-cfg.Slots)
		}
		wg.Wait()
		close(bad)
		for b := range bad {
			t.Fatalf("bad stream: %q", b)
		}
		if st := s.Stats(); st.Served != n || st.GenerationTokens != 3*n {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestSchedulerBoundsAndCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &scheduler{slots: 2, maxWaiting: 1}
		ctx := context.Background()
		if s.acquire(ctx, nil) != nil || s.acquire(ctx, nil) != nil {
			t.Fatal("two slots")
		}
		admitted := make(chan struct{})
		queued := false
		go func() { _ = s.acquire(ctx, func() { queued = true }); close(admitted) }()
		synctest.Wait()
		if r, w := s.load(); r != 2 || w != 1 || !queued {
			t.Fatalf("running %d waiting %d queued %v", r, w, queued)
		}
		if err := s.acquire(ctx, func() { t.Error("a rejected request was accepted") }); !errors.Is(err, errQueueFull) {
			t.Fatalf("queue bound: %v", err)
		}
		s.release()
		<-admitted
		if r, w := s.load(); r != 2 || w != 0 {
			t.Fatalf("after release: running %d waiting %d", r, w)
		}
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error)
		go func() { errc <- s.acquire(cctx, nil) }()
		synctest.Wait()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		if r, w := s.load(); r != 2 || w != 0 {
			t.Fatalf("cancelled waiter: running %d waiting %d", r, w)
		}
	})
}

func TestPrefixCacheLRU(t *testing.T) {
	c := newPrefixCache(4)
	a := make([]uint, 32) // two blocks of 16
	for i := range a {
		a[i] = uint(i)
	}
	if hit, blocks := c.lookupAndInsert(a, 16); hit != 0 || blocks != 2 {
		t.Fatalf("cold: %d of %d", hit, blocks)
	}
	if hit, _ := c.lookupAndInsert(a[:20], 16); hit != 1 {
		t.Fatalf("shared first block: %d", hit)
	}
	// vLLM's max_cache_hit_length = num_tokens - 1: a fully cached prompt
	// still computes the block with its last token; one more token and
	// both blocks hit.
	if hit, _ := c.lookupAndInsert(a, 16); hit != 1 {
		t.Fatalf("fully cached 32-token prompt: %d blocks hit, want 1", hit)
	}
	if hit, _ := c.lookupAndInsert(append(a[:32:32], 7), 16); hit != 2 {
		t.Fatalf("33-token prompt over 2 cached blocks: %d blocks hit, want 2", hit)
	}
	b := append([]uint{99}, a[1:]...) // differs in block 0: no later block may hit
	if hit, _ := c.lookupAndInsert(b, 16); hit != 0 {
		t.Fatalf("different prefix: %d", hit)
	}
	// capacity 4: b's two blocks plus a new pair evict a
	d := make([]uint, 32)
	for i := range d {
		d[i] = uint(1000 + i)
	}
	c.lookupAndInsert(d, 16)
	if hit, _ := c.lookupAndInsert(a, 16); hit != 0 {
		t.Fatalf("evicted prefix still hit: %d", hit)
	}
}
