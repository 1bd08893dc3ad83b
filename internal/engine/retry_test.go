package engine

import (
	"context"
	"github.com/reprise-llm/reprise/internal/keepalive"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/workload"
)

// modelStreams is n streamed chat requests of 3 output tokens, each model
// named by models[i % len(models)] ("" for the target's default).
func modelStreams(n int, models ...string) *sliceSource {
	s := &sliceSource{}
	for i := range n {
		m := ""
		if len(models) > 0 {
			m = models[i%len(models)]
		}
		s.reqs = append(s.reqs, workload.Request{Index: i, Endpoint: openai.Chat, Stream: true, Model: m, PromptTokens: 4, OutputTokens: 3})
	}
	return s
}

// Issue 18: llama-server sometimes closes a kept-alive connection after a
// stream without Connection: close, and the next request sent on it reads
// EOF before any byte. Against the simulator doing the same after 30 % of
// streams, 40 back-to-back streams all succeed, and exactly the requests
// that met a closed connection were re-sent, once each.
func TestKeepAliveClosesAreRetried(t *testing.T) {
	s, srv := closingSim(t)

	run, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileSynchronous}, modelStreams(40), bodies{})
	if err != nil {
		t.Fatal(err)
	}
	retries, retried := 0, 0
	for _, r := range run.Results {
		if !r.OK() {
			t.Errorf("request %d failed: %+v", r.Index, r)
		}
		if r.Retries > 1 {
			t.Errorf("request %d re-sent %d times: its re-send went out on a connection of its own", r.Index, r.Retries)
		}
		if r.Retries > 0 {
			retried++
			if !(r.Intended <= r.Sent && r.Sent < r.FirstByte) {
				t.Errorf("re-sent request %d: intended %v sent %v first byte %v", r.Index, r.Intended, r.Sent, r.FirstByte)
			}
		}
		retries += r.Retries
	}
	st := s.Stats()
	if st.KeepAliveCloses == 0 || int64(retries) != st.KeepAliveCloses {
		t.Errorf("%d re-sends for %d connections the simulator closed under a request; want as many, and some", retries, st.KeepAliveCloses)
	}
	if st.Served != 40 {
		t.Errorf("the simulator served %d requests, want 40 (each once)", st.Served)
	}
	t.Logf("%d of 40 requests re-sent (the simulator closed %d connections)", retried, st.KeepAliveCloses)
}

// The same under load: 8 closed loops, so that a connection the simulator
// is about to close often goes straight from the request that ended to
// the next one without idling in the pool (how llama-server's closes met
// a sweep's rate point in CI): every request succeeds, and each close
// under a request is re-sent.
func TestKeepAliveClosesAreRetriedUnderLoad(t *testing.T) {
	s, srv := closingSim(t)
	run, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileConcurrent, Concurrency: 8}, modelStreams(400), bodies{})
	if err != nil {
		t.Fatal(err)
	}
	retries := 0
	for _, r := range run.Results {
		if !r.OK() {
			t.Errorf("request %d failed: %s", r.Index, r.Err)
		}
		retries += r.Retries
	}
	if st := s.Stats(); st.KeepAliveCloses == 0 || int64(retries) < st.KeepAliveCloses || st.Served != 400 {
		t.Errorf("%d re-sends for %d connections closed under a request, %d served; want at least as many re-sends, and 400 served", retries, st.KeepAliveCloses, st.Served)
	}
}

// closingSim is the simulator closing 30 % of kept-alive connections
// after a stream, without Connection: close, as llama-server does.
func closingSim(t *testing.T) (*sim.Server, *httptest.Server) {
	cfg := sim.DefaultConfig()
	cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq, cfg.Jitter = time.Millisecond, 0, time.Millisecond, 0, 0
	cfg.KeepAliveCloseRate = 0.3
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// rudeServer misbehaves by the request's model, counting requests by it:
//   - "close": reads the request, then closes the connection without a byte;
//   - "partial": reads it, writes the start of a response's headers, closes;
//   - "slow": holds the request until the client gives up;
//   - "fail": answers 503;
//   - anything else: a short, complete stream.
type rudeServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]int
}

func newRudeServer(t *testing.T) *rudeServer {
	s := &rudeServer{seen: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *rudeServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	model := ""
	for _, m := range []string{"lateclose", "close", "partial", "slow", "fail"} {
		if strings.Contains(string(body), `"model":"`+m+`"`) {
			model = m
			break
		}
	}
	s.mu.Lock()
	s.seen[model]++
	s.mu.Unlock()
	switch model {
	case "lateclose": // read, served for a while, then the connection dropped: not the race
		time.Sleep(keepalive.RaceWindow + 300*time.Millisecond)
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		_ = c.Close()
	case "close", "partial":
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		if model == "partial" {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")) // no end of headers
		}
		_ = c.Close()
	case "slow":
		<-r.Context().Done()
	case "fail":
		http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
	default:
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n")
	}
}

func (s *rudeServer) count(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[model]
}

// Nothing but the keep-alive race is re-sent: a server that reads a
// request and hangs up on a fresh connection is refusing that request; a
// response byte, a timeout or an error status mean the server had it.
func TestOnlyNeverReachedRequestsAreRetried(t *testing.T) {
	for _, tc := range []struct {
		name, model string
		first       bool // the request is the run's first: a fresh connection
		sends       int  // how many times the server should see it
		retries     int
		errHas      string
		timeout     time.Duration // 0: 300 ms
	}{
		{name: "closed on a fresh connection", model: "close", first: true, sends: 1, errHas: "EOF"},
		// on a reused connection it is the race, re-sent once on a
		// connection of its own, where the same close is final
		{name: "closed on a reused connection", model: "close", sends: 2, retries: 1, errHas: "EOF"},
		{name: "closed after a response byte", model: "partial", sends: 1, errHas: "unexpected EOF"},
		{name: "timed out", model: "slow", sends: 1, errHas: "timeout"},
		{name: "503", model: "fail", sends: 1, errHas: "http 503"},
		// a close long after the write: the server read it and failed
		// while serving it (a crash, a proxy's idle timeout)
		{name: "closed long after the write on a reused connection", model: "lateclose", sends: 1, errHas: "EOF", timeout: 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRudeServer(t)
			src := modelStreams(2, "", tc.model)
			if tc.first {
				src = modelStreams(1, tc.model)
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 300 * time.Millisecond
			}
			run, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileSynchronous, Timeout: timeout}, src, bodies{})
			if err != nil {
				t.Fatal(err)
			}
			r := run.Results[len(run.Results)-1]
			if r.OK() || !strings.Contains(r.Err, tc.errHas) {
				t.Errorf("result %+v, want an error with %q", r, tc.errHas)
			}
			if r.Retries != tc.retries {
				t.Errorf("re-sent %d times, want %d", r.Retries, tc.retries)
			}
			if n := srv.count(tc.model); n != tc.sends {
				t.Errorf("the server saw the request %d times, want %d", n, tc.sends)
			}
			if !tc.first && (!run.Results[0].OK() || run.Results[0].Retries != 0) {
				t.Errorf("the request before it: %+v", run.Results[0])
			}
		})
	}
}
