package capture

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

var (
	testOrigin  = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	testArrival = testOrigin.Add(3 * time.Second)
)

// ms is the arrival time plus d milliseconds.
func ms(d float64) time.Time { return testArrival.Add(time.Duration(d * float64(time.Millisecond))) }

const chatReq = `{"model":"llama-3","stream":true,"max_tokens":5,"temperature":0.5,"top_p":0.9,"n":1,"user":"alice",
	"messages":[{"role":"system","content":"you are terse"},{"role":"user","content":"hello there"}]}`

// chatEvents is a chat stream: a role-only chunk, n content chunks
// ("tok0 ", ...), a finish chunk, optionally a usage chunk, and [DONE].
func chatEvents(n int, usage bool) []string {
	evs := []string{`data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}` + "\n\n"}
	for i := 0; i < n; i++ {
		evs = append(evs, fmt.Sprintf(`data: {"choices":[{"index":0,"delta":{"content":"tok%d "}}]}`+"\n\n", i))
	}
	evs = append(evs, `data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`+"\n\n")
	if usage {
		evs = append(evs, fmt.Sprintf(`data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":%d,"prompt_tokens_details":{"cached_tokens":8}}}`+"\n\n", n))
	}
	return append(evs, "data: [DONE]\n\n")
}

func newTestTracker(path string, opts *Options) *Tracker {
	return NewTracker(testOrigin, testArrival, "req-1", "POST", path, opts)
}

// runStream feeds events to a tracker: event i arrives whole at 10+i*5 ms.
func runStream(t *testing.T, tr *Tracker, evs []string) *Record {
	t.Helper()
	tr.ResponseStart(ms(2), 200, "text/event-stream; charset=utf-8", "10.0.0.7:8000")
	for i, e := range evs {
		tr.ResponseData(ms(10+float64(i)*5), []byte(e))
	}
	return tr.Finish(ms(100), nil, false)
}

func TestTrackerStreamWithUsage(t *testing.T) {
	h := NewHasher([]byte("k"), 16)
	tr := newTestTracker("/v1/chat/completions", &Options{Hasher: h})
	tr.RequestBody([]byte(chatReq), true)
	r := runStream(t, tr, chatEvents(5, true))

	if r.ID != "req-1" || r.T != int64(3*time.Second) || !r.Wall.Equal(testArrival) || r.Method != "POST" {
		t.Errorf("identity: %+v", r)
	}
	if r.Model != "llama-3" || !r.Stream || r.MaxTokens != 5 || *r.Temperature != 0.5 || *r.TopP != 0.9 || r.N != 1 || r.NMessages != 2 {
		t.Errorf("request fields: %+v", r)
	}
	if r.PromptChars != len("systemyou are terseuserhello there") {
		t.Errorf("prompt chars %d", r.PromptChars)
	}
	if r.Status != 200 || r.Upstream != "10.0.0.7:8000" || r.FinishReason != "length" || r.Error != "" || r.Aborted {
		t.Errorf("response fields: %+v", r)
	}
	if r.PromptTokens != 11 || r.OutputTokens != 5 || r.CachedTokens != 8 || r.TokensSource != TokensUsage {
		t.Errorf("tokens: prompt %d output %d cached %d source %q", r.PromptTokens, r.OutputTokens, r.CachedTokens, r.TokensSource)
	}
	if r.TTFBNs != int64(2*time.Millisecond) {
		t.Errorf("ttfb %d", r.TTFBNs)
	}
	// The role-only chunk at 10 ms does not count; "tok0 " arrives at 15 ms.
	if r.TTFTNs != int64(15*time.Millisecond) {
		t.Errorf("ttft %d, want 15ms", r.TTFTNs)
	}
	if want := []int64{15000, 5000, 5000, 5000, 5000}; !reflect.DeepEqual(r.ChunksUS, want) {
		t.Errorf("chunks_us %v, want %v", r.ChunksUS, want)
	}
	if want := []int{1, 1, 1, 1, 1}; !reflect.DeepEqual(r.ChunkTokens, want) { // one token per event, whatever its length
		t.Errorf("chunk_tokens %v, want %v", r.ChunkTokens, want)
	}
	if r.E2ENs != int64(100*time.Millisecond) {
		t.Errorf("e2e %d", r.E2ENs)
	}
	if len(r.HashIDs) == 0 || r.Block != 16 || r.Prompt != "" || r.Messages != nil {
		t.Errorf("hashed mode: ids %v block %d prompt %q", r.HashIDs, r.Block, r.Prompt)
	}
	if r.Session != h.Session("alice") {
		t.Errorf("session %q should be the keyed hash of the user field", r.Session)
	}
}

func TestTrackerStreamWithoutUsageEstimates(t *testing.T) {
	tr := newTestTracker("/v1/chat/completions", &Options{Content: ContentNone})
	tr.RequestBody([]byte(chatReq), true)
	r := runStream(t, tr, chatEvents(4, false))
	prompt := "system\x1fyou are terse\x1euser\x1fhello there\x1e"
	if r.TokensSource != TokensEstimate || r.PromptTokens != openai.EstimateTokens(prompt) || r.OutputTokens != 4 {
		t.Errorf("estimate: source %q prompt %d output %d", r.TokensSource, r.PromptTokens, r.OutputTokens)
	}
	if r.HashIDs != nil || r.Block != 0 || r.Session != "" || r.Prompt != "" {
		t.Errorf("content none leaked: %+v", r)
	}
}

func TestTrackerContinuousUsage(t *testing.T) {
	// vLLM with continuous_usage_stats: cumulative completion_tokens on
	// every chunk; the second content chunk carries two tokens.
	evs := []string{
		`data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}],"usage":{"prompt_tokens":7,"completion_tokens":0}}` + "\n\n",
		`data: {"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":7,"completion_tokens":1}}` + "\n\n",
		`data: {"choices":[{"index":0,"delta":{"content":"bc"}}],"usage":{"prompt_tokens":7,"completion_tokens":3}}` + "\n\n",
		`data: {"choices":[{"index":0,"delta":{"content":"d"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":4}}` + "\n\n",
		`data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":4}}` + "\n\n",
		"data: [DONE]\n\n",
	}
	tr := newTestTracker("/v1/chat/completions", nil)
	r := runStream(t, tr, evs)
	if want := []int{1, 2, 1}; !reflect.DeepEqual(r.ChunkTokens, want) {
		t.Errorf("chunk_tokens %v, want %v", r.ChunkTokens, want)
	}
	if r.OutputTokens != 4 || r.PromptTokens != 7 || r.TokensSource != TokensUsage || r.FinishReason != "stop" {
		t.Errorf("tokens %d/%d %q finish %q", r.PromptTokens, r.OutputTokens, r.TokensSource, r.FinishReason)
	}
}

func TestTrackerUsageOnLastContentChunkIsNotAStep(t *testing.T) {
	// A server that reports the total on its last content chunk: that
	// chunk must not be credited with every token.
	evs := []string{
		`data: {"choices":[{"index":0,"delta":{"content":"one "}}]}` + "\n\n",
		`data: {"choices":[{"index":0,"delta":{"content":"two"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":40}}` + "\n\n",
	}
	r := runStream(t, newTestTracker("/v1/chat/completions", nil), evs)
	if want := []int{1, 1}; !reflect.DeepEqual(r.ChunkTokens, want) || r.OutputTokens != 40 {
		t.Errorf("chunk_tokens %v output %d", r.ChunkTokens, r.OutputTokens)
	}
}

func TestTrackerAbortedKeepsOutputSoFar(t *testing.T) {
	tr := newTestTracker("/v1/chat/completions", nil)
	tr.RequestBody([]byte(chatReq), true)
	tr.ResponseStart(ms(1), 200, "text/event-stream", "")
	evs := chatEvents(10, true)
	for i, e := range evs[:4] { // role chunk + 3 content chunks
		tr.ResponseData(ms(10+float64(i)), []byte(e))
	}
	tr.ResponseData(ms(20), []byte(evs[4][:20])) // half an event, then the client leaves
	r := tr.Finish(ms(30), errors.New("context canceled"), true)
	if !r.Aborted || r.Error != "context canceled" || len(r.ChunksUS) != 3 {
		t.Errorf("aborted %v error %q chunks %v", r.Aborted, r.Error, r.ChunksUS)
	}
	if r.TokensSource != TokensEstimate || r.OutputTokens != 3 || r.FinishReason != "" {
		t.Errorf("tokens %d source %q finish %q", r.OutputTokens, r.TokensSource, r.FinishReason)
	}
}

func TestTrackerUnterminatedLastEventCounted(t *testing.T) {
	tr := newTestTracker("/v1/completions", nil)
	tr.ResponseStart(ms(1), 200, "text/event-stream", "")
	tr.ResponseData(ms(5), []byte(`data: {"choices":[{"text":"hello"}]}`+"\n\n"))
	tr.ResponseData(ms(9), []byte(`data: {"choices":[{"text":" world"}]}`)) // no blank line
	r := tr.Finish(ms(50), nil, false)
	if want := []int64{5000, 4000}; !reflect.DeepEqual(r.ChunksUS, want) {
		t.Errorf("chunks_us %v, want %v (the flushed event timed at its bytes' arrival)", r.ChunksUS, want)
	}
}

func TestTrackerInStreamError(t *testing.T) {
	evs := []string{
		`data: {"choices":[{"index":0,"delta":{"content":"x"}}]}` + "\n\n",
		`data: {"error":{"message":"engine died","code":500}}` + "\n\n",
	}
	tr := newTestTracker("/v1/chat/completions", nil)
	tr.ResponseStart(ms(1), 200, "text/event-stream", "")
	for i, e := range evs {
		tr.ResponseData(ms(float64(5+i)), []byte(e))
	}
	r := tr.Finish(ms(10), errors.New("unexpected EOF"), true)
	if r.Error != "engine died; unexpected EOF" {
		t.Errorf("error %q", r.Error)
	}
}

func TestTrackerNonStreamJSON(t *testing.T) {
	tr := newTestTracker("/v1/chat/completions", &Options{Content: ContentFull, Hasher: NewHasher([]byte("k"), 8)})
	tr.ResponseStart(ms(40), 200, "application/json", "")
	body := `{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2}}`
	tr.ResponseData(ms(41), []byte(body[:30]))
	tr.ResponseData(ms(42), []byte(body[30:]))
	// The proxy hands over the request body at the end.
	tr.RequestBody([]byte(strings.Replace(chatReq, `"stream":true`, `"stream":false`, 1)), true)
	r := tr.Finish(ms(43), nil, false)
	if r.Stream || r.PromptTokens != 9 || r.OutputTokens != 2 || r.TokensSource != TokensUsage || r.FinishReason != "stop" {
		t.Errorf("fields: %+v", r)
	}
	if r.TTFTNs != 0 || r.ChunksUS != nil || r.TTFBNs != int64(40*time.Millisecond) || r.E2ENs != int64(43*time.Millisecond) {
		t.Errorf("timings: ttft %d chunks %v ttfb %d e2e %d", r.TTFTNs, r.ChunksUS, r.TTFBNs, r.E2ENs)
	}
	if r.Prompt != "system\x1fyou are terse\x1euser\x1fhello there\x1e" || !strings.Contains(string(r.Messages), "hello there") || len(r.HashIDs) == 0 {
		t.Errorf("full mode: prompt %q messages %s ids %v", r.Prompt, r.Messages, r.HashIDs)
	}
}

func TestTrackerNonStreamWithoutUsageEstimates(t *testing.T) {
	tr := newTestTracker("/v1/completions", nil)
	tr.RequestBody([]byte(`{"model":"m","prompt":"12345678"}`), true)
	tr.ResponseStart(ms(1), 200, "application/json", "")
	tr.ResponseData(ms(2), []byte(`{"choices":[{"text":"abcdefghijkl","finish_reason":"length"}]}`))
	r := tr.Finish(ms(3), nil, false)
	if r.TokensSource != TokensEstimate || r.PromptTokens != 2 || r.OutputTokens != 3 || r.FinishReason != "length" {
		t.Errorf("fields: %+v", r)
	}
}

func TestTrackerErrorResponse(t *testing.T) {
	tr := newTestTracker("/v1/chat/completions", nil)
	tr.RequestBody([]byte(chatReq), true)
	tr.ResponseStart(ms(1), 400, "application/json", "")
	tr.ResponseData(ms(2), []byte(`{"object":"error","message":"max_tokens too large","type":"BadRequestError","code":400}`))
	r := tr.Finish(ms(3), nil, false)
	if r.Status != 400 || r.Error != "max_tokens too large" || r.OutputTokens != 0 {
		t.Errorf("fields: %+v", r)
	}
}

func TestTrackerResponseBodyOverCap(t *testing.T) {
	tr := newTestTracker("/v1/embeddings", &Options{MaxBody: 64})
	tr.ResponseStart(ms(1), 200, "application/json", "")
	tr.ResponseData(ms(2), []byte(`{"data":[{"embedding":[`+strings.Repeat("0.1,", 100)+`0.1]}],"usage":{"prompt_tokens":3}}`))
	r := tr.Finish(ms(3), nil, false)
	if r.Status != 200 || r.TokensSource != "" || r.Error != "" {
		t.Errorf("fields: %+v", r)
	}
}

func TestTrackerOtherPath(t *testing.T) {
	h := NewHasher([]byte("k"), 8)
	tr := newTestTracker("/v1/models", &Options{Content: ContentFull, Hasher: h})
	tr.RequestBody([]byte(chatReq), true)
	tr.ResponseStart(ms(1), 200, "text/event-stream", "")
	tr.ResponseData(ms(2), []byte(chatEvents(2, true)[1]))
	r := tr.Finish(ms(3), nil, false)
	want := Record{ID: "req-1", T: r.T, Wall: r.Wall, Method: "POST", Path: "/v1/models", Status: 200,
		TTFBNs: int64(time.Millisecond), E2ENs: int64(3 * time.Millisecond)}
	if !reflect.DeepEqual(*r, want) {
		t.Errorf("non-OpenAI path recorded more than path/method/status/timings:\n got %+v\nwant %+v", *r, want)
	}
}

func TestTrackerContentModes(t *testing.T) {
	h := NewHasher([]byte("k"), 32)
	common := strings.Repeat("You are a helpful assistant. Answer briefly. ", 20)
	body := func(q string) []byte {
		return fmt.Appendf(nil, `{"model":"m","messages":[{"role":"system","content":%q},{"role":"user","content":%q}]}`, common, q)
	}
	rec := func(mode, q string) *Record {
		tr := newTestTracker("/v1/chat/completions", &Options{Content: mode, Hasher: h})
		tr.RequestBody(body(q), true)
		return tr.Finish(ms(1), nil, false)
	}
	a, b := rec(ContentHashed, "What is the capital of France?"), rec(ContentHashed, "Why is the sky blue?")
	shared := len("system\x1f"+common) / 32 // whole blocks inside the common prefix
	if len(a.HashIDs) <= shared || len(b.HashIDs) <= shared {
		t.Fatalf("too few ids: %d %d", len(a.HashIDs), len(b.HashIDs))
	}
	if !reflect.DeepEqual(a.HashIDs[:shared], b.HashIDs[:shared]) {
		t.Errorf("shared prefix gives different leading ids:\n%v\n%v", a.HashIDs, b.HashIDs)
	}
	if a.HashIDs[len(a.HashIDs)-1] == b.HashIDs[len(b.HashIDs)-1] {
		t.Errorf("different questions share their last id")
	}
	if a.Prompt != "" || a.Messages != nil || a.Block != 32 {
		t.Errorf("hashed mode stored content")
	}
	if n := rec(ContentNone, "x"); n.HashIDs != nil || n.Block != 0 || n.Prompt != "" || n.Messages != nil {
		t.Errorf("none mode: %+v", n)
	}
	f := rec(ContentFull, "Why is the sky blue?")
	if !strings.Contains(f.Prompt, "Why is the sky blue?") || !strings.Contains(string(f.Messages), common) || !reflect.DeepEqual(f.HashIDs, b.HashIDs) {
		t.Errorf("full mode: prompt %q ids %v", f.Prompt, f.HashIDs)
	}
	// Without a hasher, hashed mode records no ids rather than failing.
	tr := newTestTracker("/v1/chat/completions", &Options{Content: ContentHashed})
	tr.RequestBody(body("q"), true)
	if r := tr.Finish(ms(1), nil, false); r.HashIDs != nil || r.Model != "m" {
		t.Errorf("no hasher: %+v", r)
	}
}

func TestTrackerSessionHeaderWins(t *testing.T) {
	h := NewHasher([]byte("k"), 8)
	tr := newTestTracker("/v1/chat/completions", &Options{Hasher: h})
	tr.SetSession("conversation-42")
	tr.RequestBody([]byte(chatReq), true) // has "user":"alice"
	if r := tr.Finish(ms(1), nil, false); r.Session != h.Session("conversation-42") {
		t.Errorf("session %q", r.Session)
	}
}

func TestTrackerTruncatedRequestBody(t *testing.T) {
	big := `{"model":"big-model","stream":true,"max_tokens":99,"temperature":1.5,"messages":[{"role":"user","content":"` +
		strings.Repeat("z", 1000) + `"}],"top_p":0.5}`
	tr := newTestTracker("/v1/chat/completions", &Options{Hasher: NewHasher([]byte("k"), 8), MaxBody: 200})
	tr.RequestBody([]byte(big), true) // longer than MaxBody: cut by the tracker
	r := tr.Finish(ms(1), nil, false)
	if !r.BodyTruncated || r.Model != "big-model" || !r.Stream || r.MaxTokens != 99 || r.Temperature == nil || *r.Temperature != 1.5 {
		t.Errorf("salvage: %+v", r)
	}
	if r.Error != "" || r.HashIDs != nil || r.TopP != nil || r.PromptChars != 0 {
		t.Errorf("truncated body must not error, hash or guess: %+v", r)
	}
	// A cut inside a number must not report a shorter number.
	tr = newTestTracker("/v1/completions", nil)
	tr.RequestBody([]byte(`{"model":"m","max_tokens":12`), false)
	if r := tr.Finish(ms(1), nil, false); r.MaxTokens != 0 || r.Model != "m" || !r.BodyTruncated {
		t.Errorf("cut number: %+v", r)
	}
}

func TestTrackerInvalidCompleteBody(t *testing.T) {
	tr := newTestTracker("/v1/chat/completions", nil)
	tr.RequestBody([]byte(`{"model":`), true)
	r := tr.Finish(ms(1), nil, false)
	if r.BodyTruncated || r.Error != "" || r.Model != "" {
		t.Errorf("invalid body: %+v", r)
	}
}

// TestTrackerFragmentationInvariant feeds the same stream split at random
// byte boundaries inside events (each piece arriving at its event's time)
// and byte by byte: the record must not change.
func TestTrackerFragmentationInvariant(t *testing.T) {
	evs := chatEvents(12, true)
	evs[len(evs)-1] = "data: [DONE]" // unterminated end exercises Flush too
	whole := func() *Record {
		tr := newTestTracker("/v1/chat/completions", nil)
		tr.RequestBody([]byte(chatReq), true)
		return runStream(t, tr, evs)
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		tr := newTestTracker("/v1/chat/completions", nil)
		tr.RequestBody([]byte(chatReq), true)
		tr.ResponseStart(ms(2), 200, "text/event-stream", "10.0.0.7:8000")
		for i, e := range evs {
			b := []byte(e)
			for len(b) > 0 {
				n := 1 + rng.IntN(len(b))
				if trial%10 == 0 {
					n = 1
				}
				tr.ResponseData(ms(10+float64(i)*5), b[:n])
				b = b[n:]
			}
		}
		got := tr.Finish(ms(100), nil, false)
		if !reflect.DeepEqual(got, whole) {
			t.Fatalf("trial %d: record differs:\n got %+v\nwant %+v", trial, got, whole)
		}
	}
	// With one arrival time for every byte, any split at all gives the
	// same record, including splits across events.
	all := []byte(strings.Join(evs, ""))
	ref := func(cuts []int) *Record {
		tr := newTestTracker("/v1/chat/completions", nil)
		tr.ResponseStart(ms(2), 200, "text/event-stream", "")
		prev := 0
		for _, c := range append(cuts, len(all)) {
			tr.ResponseData(ms(7), all[prev:c])
			prev = c
		}
		return tr.Finish(ms(9), nil, false)
	}
	want := ref(nil)
	for trial := 0; trial < 100; trial++ {
		var cuts []int
		for i := 1; i < len(all); i++ {
			if rng.IntN(30) == 0 {
				cuts = append(cuts, i)
			}
		}
		if got := ref(cuts); !reflect.DeepEqual(got, want) {
			t.Fatalf("cuts %v: record differs", cuts)
		}
	}
}

func TestTrackerResponsesAPIStream(t *testing.T) {
	evs := []string{
		"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"status\":\"in_progress\"}}\n\n",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hel\"}\n\n",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"lo\"}\n\n",
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"status\":\"completed\",\"usage\":{\"input_tokens\":12,\"output_tokens\":2,\"input_tokens_details\":{\"cached_tokens\":4}}}}\n\n",
	}
	tr := newTestTracker("/v1/responses", nil)
	tr.RequestBody([]byte(`{"model":"gpt","input":"hi","stream":true}`), true)
	r := runStream(t, tr, evs)
	if r.PromptTokens != 12 || r.OutputTokens != 2 || r.CachedTokens != 4 || r.FinishReason != "stop" || len(r.ChunksUS) != 2 || r.TTFTNs != int64(15*time.Millisecond) {
		t.Errorf("responses stream: %+v", r)
	}
}

func TestTrackerFinishIdempotent(t *testing.T) {
	tr := newTestTracker("/v1/chat/completions", nil)
	a := tr.Finish(ms(1), nil, false)
	tr.ResponseData(ms(2), []byte("late"))
	if b := tr.Finish(ms(5), errors.New("x"), true); b != a || b.E2ENs != int64(time.Millisecond) || b.Aborted {
		t.Errorf("second Finish changed the record: %+v", b)
	}
}

// BenchmarkTracker128 is one streamed chat request of 128 content events
// through the tracker, as the proxy drives it.
func BenchmarkTracker128(b *testing.B) {
	opts := &Options{Hasher: NewHasher([]byte("k"), DefaultBlockChars)}
	evs := chatEvents(128, true)
	bufs := make([][]byte, len(evs))
	for i, e := range evs {
		bufs[i] = []byte(e)
	}
	req := []byte(chatReq)
	b.ReportAllocs()
	for b.Loop() {
		tr := NewTracker(testOrigin, testArrival, "req", "POST", "/v1/chat/completions", opts)
		tr.ResponseStart(ms(1), 200, "text/event-stream", "")
		for i, p := range bufs {
			tr.ResponseData(ms(float64(2+i)), p)
		}
		tr.RequestBody(req, true)
		_ = tr.Finish(ms(200), nil, false)
	}
}
