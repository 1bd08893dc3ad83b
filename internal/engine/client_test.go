package engine

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// bodies builds minimal request bodies, as internal/synth does.
type bodies struct{}

var _ BodyBuilder = bodies{}

func (bodies) Body(req *workload.Request, model string) ([]byte, error) {
	if model == "" {
		model = req.Model
	}
	return fmt.Appendf(nil, `{"model":%q,"stream":%v,"max_tokens":%d,"messages":[{"role":"user","content":"%d"}]}`,
		model, req.Stream, req.OutputTokens, req.Index), nil
}

// llmServer is a tiny OpenAI-compatible server. By the request's model:
//   - "fail": 503 with a JSON error;
//   - "hang": sends headers and one token, then waits for the client to go;
//   - "bare": a stream without a Content-Type and without usage;
//   - otherwise a stream of 4 tokens 2 ms apart with vLLM continuous usage
//     (2 completion tokens per chunk), a finish chunk, a usage chunk with
//     cached tokens and [DONE]; or, when not streamed, a JSON response.
//
// It records each request's headers and arrival order.
type llmServer struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
	order   []string // request message contents (the index), in arrival order
	conns   atomic.Int64
}

func newLLMServer(t *testing.T) *llmServer {
	s := &llmServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *llmServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b := string(body)
	s.mu.Lock()
	h := r.Header.Clone()
	h.Set("Host", r.Host)
	h.Set("Path", r.URL.Path)
	s.headers = append(s.headers, h)
	if i := strings.Index(b, `"content":"`); i >= 0 {
		s.order = append(s.order, strings.SplitN(b[i+11:], `"`, 2)[0])
	}
	s.mu.Unlock()
	fl := w.(http.Flusher)
	switch {
	case strings.Contains(b, `"model":"fail"`):
		http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusServiceUnavailable)
	case strings.Contains(b, `"model":"hang"`):
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t\"}}]}\n\n")
		fl.Flush()
		<-r.Context().Done()
	case strings.Contains(b, `"model":"bare"`):
		w.Header()["Content-Type"] = nil
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"text\":\"b\",\"finish_reason\":\"stop\"}]}\n\n")
	case strings.Contains(b, `"model":"verbose"`):
		// 400 characters and no usage: ceil(400/4) = 100 tokens by the
		// text estimate, more than any max_tokens the tests send.
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"choices":[{"message":{"content":%q},"finish_reason":"length"}]}`, strings.Repeat("abcd", 100))
	case !strings.Contains(b, `"stream":true`):
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"choices":[{"message":{"content":"a b c"},"finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":3}}`)
	default:
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":0}}\n\n")
		fl.Flush()
		for i := 1; i <= 4; i++ {
			time.Sleep(2 * time.Millisecond)
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":%d}}\n\n", i, 2*i)
			fl.Flush()
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\n"+
			"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":8,\"prompt_tokens_details\":{\"cached_tokens\":2}}}\n\n"+
			"data: [DONE]\n\n")
	}
}

func TestClientRecordsWhatTheServerDid(t *testing.T) {
	srv := newLLMServer(t)
	src := &sliceSource{reqs: []workload.Request{
		{Index: 0, Endpoint: openai.Chat, Stream: true, PromptTokens: 4, OutputTokens: 8},
		{Index: 1, Endpoint: openai.Chat, Stream: false, PromptTokens: 4, OutputTokens: 3},
		{Index: 2, Endpoint: openai.Chat, Stream: true, Model: "fail"},
		{Index: 3, Endpoint: openai.Completions, Stream: true, Model: "bare", PromptTokens: 7},
	}}
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer sk-secret")
	hdr.Set("X-Gateway", "blue")
	hdr.Set("Host", "llama.models.example.com")
	run, err := Execute(context.Background(), Config{Target: srv.URL + "/", Profile: ProfileSynchronous, Headers: hdr}, src, bodies{})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 4 {
		t.Fatalf("%d results", len(run.Results))
	}

	s := run.Results[0]
	if !s.OK() || s.Status != 200 || len(s.Chunks) != 4 || s.PromptTokens != 4 || s.OutputTokens != 8 || s.CachedTokens != 2 ||
		!s.TokensFromUsage || s.FinishReason != "length" || s.Endpoint != "chat" || !s.Stream || s.RequestedOutputTokens != 8 {
		t.Fatalf("stream result %+v", s)
	}
	for i, n := range s.ChunkTokens { // continuous usage: 2 tokens per event
		if n != 2 {
			t.Errorf("chunk %d: %d tokens, want 2", i, n)
		}
	}
	if !(s.Intended <= s.Sent && s.Sent <= s.FirstByte && s.FirstByte <= s.FirstToken && s.FirstToken < s.LastToken && s.LastToken <= s.End) ||
		s.FirstToken != s.Chunks[0] || s.LastToken != s.Chunks[3] {
		t.Errorf("times out of order: %+v", s)
	}
	if s.LastToken-s.FirstToken < 6*time.Millisecond { // three 2 ms gaps at least
		t.Errorf("chunks %v: not timed as they arrived", s.Chunks)
	}

	if j := run.Results[1]; !j.OK() || j.OutputTokens != 3 || j.PromptTokens != 4 || j.FirstToken != j.End || j.LastToken != j.End || j.FinishReason != "length" || len(j.Chunks) != 0 {
		t.Errorf("json result %+v", j)
	}
	if f := run.Results[2]; f.OK() || f.Status != 503 || f.Err != `http 503: {"error":{"message":"overloaded"}}` || f.FirstToken != 0 {
		t.Errorf("error result %+v", f)
	}
	// No Content-Type and no usage: SSE because a stream was asked for;
	// one token per content event; the prompt is what was asked for.
	if b := run.Results[3]; !b.OK() || len(b.Chunks) != 2 || b.OutputTokens != 2 || b.TokensFromUsage || b.PromptTokens != 7 || b.FinishReason != "stop" || b.Endpoint != "completions" {
		t.Errorf("bare stream result %+v", b)
	}

	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i, h := range srv.headers {
		if h.Get("Authorization") != "Bearer sk-secret" || h.Get("X-Gateway") != "blue" || h.Get("Host") != "llama.models.example.com" || h.Get("Content-Type") != "application/json" {
			t.Errorf("request %d headers %v", i, h)
		}
	}
	if p := srv.headers[3].Get("Path"); p != "/v1/completions" {
		t.Errorf("completions sent to %s", p)
	}
	if run.Config.Headers != nil {
		t.Error("the run keeps the headers (and the API key in them)")
	}
	if n := srv.conns.Load(); n != 1 {
		t.Errorf("%d connections for 4 sequential requests (the 503 too should leave it reusable)", n)
	}
}

func TestTraceOverRealServer(t *testing.T) {
	srv := newLLMServer(t)
	offs := []time.Duration{0, 100 * ms, 200 * ms, 300 * ms, 500 * ms}
	run, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileTrace}, traceOf(offs...), bodies{})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range run.Results {
		if !r.OK() || r.Index != i || r.Intended != offs[i] {
			t.Fatalf("result %d: %+v", i, r)
		}
		// Generous: a noisy machine under -race may wake late, never early.
		if lag := r.Sent - r.Intended; lag < 0 || lag > 250*ms {
			t.Errorf("request %d sent %v after its due time", i, lag)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if got := strings.Join(srv.order, ","); got != "0,1,2,3,4" {
		t.Errorf("server saw requests in order %s", got)
	}
	// Five requests, free slots: nothing waits or is dropped. Late depends
	// on how promptly this machine wakes, so only its meaning is checked.
	late := 0
	for _, r := range run.Results {
		if r.Sent-r.Intended > LateAfter {
			late++
		}
	}
	if run.Duration < 500*ms || run.Late != late || run.Waited != 0 || run.Dropped != 0 {
		t.Errorf("duration %v late %d (want %d) waited %d dropped %d", run.Duration, run.Late, late, run.Waited, run.Dropped)
	}
}

func TestDrainCancelsRequestsInFlight(t *testing.T) {
	srv := newLLMServer(t)
	src := &sliceSource{reqs: []workload.Request{
		{Index: 0, Stream: true, Model: "hang"},
		{Index: 1, Stream: true},
		{Index: 2, Stream: true, Model: "hang"},
	}}
	start := time.Now()
	run, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileConstant, Rate: 100, Drain: 200 * ms}, src, bodies{})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("drain of 200 ms took %v", took)
	}
	for _, i := range []int{0, 2} {
		r := run.Results[i]
		if r.Err != errDrained.Error() || r.Status != 200 || len(r.Chunks) != 1 || r.End < 200*ms {
			t.Errorf("hanging request %d: %+v", i, r)
		}
	}
	if !run.Results[1].OK() {
		t.Errorf("request 1: %+v", run.Results[1])
	}
}

func TestTimeoutIsRecorded(t *testing.T) {
	srv := newLLMServer(t)
	run, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileSynchronous, Timeout: 100 * ms},
		&sliceSource{reqs: []workload.Request{{Stream: true, Model: "hang"}}}, bodies{})
	if err != nil {
		t.Fatal(err)
	}
	if r := run.Results[0]; r.OK() || !strings.HasPrefix(r.Err, "timeout: ") || r.End < 100*ms {
		t.Errorf("result %+v", r)
	}
}

func TestUnreachableTargetIsRecordedNotFatal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	run, err := Execute(context.Background(), Config{Target: "http://" + addr, Profile: ProfileConstant, Rate: 100, MaxRequests: 5},
		evenly(10, 0), bodies{})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 5 {
		t.Fatalf("%d results", len(run.Results))
	}
	for _, r := range run.Results {
		if r.OK() || !strings.Contains(r.Err, "refused") || r.End < r.Sent {
			t.Errorf("result %+v", r)
		}
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	err := (&Config{Target: "ftp://x", Profile: "poisson", MaxConcurrency: -1, MaxSeconds: -1, Drain: -1}).Validate()
	for _, want := range []string{"Target", "Rate", "MaxConcurrency", "MaxSeconds", "Drain"} {
		if !slices.Contains(configErrorFields(err), want) {
			t.Errorf("%v does not name %s", err, want)
		}
	}
	for _, c := range []Config{
		{Target: "http://x", Profile: "bursty"},
		{Target: "http://x", Profile: ProfileConcurrent},
		{Target: "http://x", Profile: ProfileTrace, TimeScale: -1},
		{Target: "http://x", Profile: ProfileConstant, Rate: nan()},
		{Target: "127.0.0.1:8000", Profile: ProfileTrace},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (&Config{Target: "https://gw.example.com/ns/model", Profile: ProfileTrace}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	if run, err := Execute(context.Background(), Config{Target: "::", Profile: ProfileTrace}, traceOf(0), bodies{}); err == nil || run != nil {
		t.Error("malformed target accepted")
	}
}

func nan() float64 { var z float64; return z / z }

// Issue 16: without usage, a non-streamed reply's output is estimated from
// its text, and the estimate never exceeds the max_tokens the request sent
// (a text of 100 estimated tokens for max_tokens 16 counts 16); with no
// max_tokens sent, the estimate stands.
func TestNonStreamedEstimateCappedAtMaxTokens(t *testing.T) {
	srv := newLLMServer(t)
	src := &sliceSource{reqs: []workload.Request{
		{Index: 0, Endpoint: openai.Chat, Model: "verbose", PromptTokens: 4, OutputTokens: 16},
		{Index: 1, Endpoint: openai.Chat, Model: "verbose", PromptTokens: 4},
	}}
	run, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileSynchronous}, src, bodies{})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 2 {
		t.Fatalf("%d results", len(run.Results))
	}
	for i, want := range []int{16, 100} {
		if r := run.Results[i]; !r.OK() || r.TokensFromUsage || r.OutputTokens != want {
			t.Errorf("request %d: ok %v, from usage %v, output tokens %d, want an estimate of %d", i, r.OK(), r.TokensFromUsage, r.OutputTokens, want)
		}
	}
}
