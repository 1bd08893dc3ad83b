package capture

import (
	"reflect"
	"testing"
)

func TestTrackerChunkTokensSource(t *testing.T) {
	// Per-chunk usage on every content chunk (vLLM continuous_usage_stats):
	// every count is the server's.
	continuous := []string{
		`data: {"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":7,"completion_tokens":1}}` + "\n\n",
		`data: {"choices":[{"index":0,"delta":{"content":"bc"}}],"usage":{"prompt_tokens":7,"completion_tokens":3}}` + "\n\n",
		`data: {"choices":[{"index":0,"delta":{"content":"d"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":4}}` + "\n\n",
		"data: [DONE]\n\n",
	}
	r := runStream(t, newTestTracker("/v1/chat/completions", nil), continuous)
	if !reflect.DeepEqual(r.ChunkTokens, []int{1, 2, 1}) || r.ChunkTokensSource != TokensUsage || r.TokensSource != TokensUsage {
		t.Errorf("continuous usage: chunk_tokens %v chunk source %q tokens source %q", r.ChunkTokens, r.ChunkTokensSource, r.TokensSource)
	}

	// Only a final usage event: the totals are the server's, the per-chunk
	// counts are estimates, and the record says so.
	r = runStream(t, newTestTracker("/v1/chat/completions", nil), chatEvents(3, true))
	if r.TokensSource != TokensUsage || r.ChunkTokensSource != TokensEstimate || len(r.ChunkTokens) != 3 {
		t.Errorf("final usage only: tokens source %q chunk source %q chunks %v", r.TokensSource, r.ChunkTokensSource, r.ChunkTokens)
	}

	// Per-chunk usage that skips one content chunk: one estimate is enough.
	mixed := []string{continuous[0],
		`data: {"choices":[{"index":0,"delta":{"content":"bc"}}]}` + "\n\n",
		continuous[2], continuous[3]}
	r = runStream(t, newTestTracker("/v1/chat/completions", nil), mixed)
	if r.ChunkTokensSource != TokensEstimate {
		t.Errorf("one chunk without usage: chunk source %q", r.ChunkTokensSource)
	}

	// No content events, no chunk counts: no source either.
	tr := newTestTracker("/v1/chat/completions", nil)
	tr.ResponseStart(ms(1), 200, "application/json", "")
	tr.ResponseData(ms(2), []byte(`{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`))
	if r := tr.Finish(ms(3), nil, false); r.ChunkTokens != nil || r.ChunkTokensSource != "" || r.TokensSource != TokensUsage {
		t.Errorf("non-streamed: chunks %v chunk source %q", r.ChunkTokens, r.ChunkTokensSource)
	}
}

func TestTrackerSessionInEveryContentMode(t *testing.T) {
	// A session is a keyed hash, not content: both sources (the body's
	// "user" and --session-header) are recorded the same way in every mode.
	h := NewHasher([]byte("k"), 16)
	for _, mode := range []string{ContentNone, ContentHashed, ContentFull} {
		tr := newTestTracker("/v1/chat/completions", &Options{Content: mode, Hasher: h})
		tr.RequestBody([]byte(chatReq), true) // "user":"alice"
		if r := tr.Finish(ms(1), nil, false); r.Session != h.Session("alice") {
			t.Errorf("%s: session from user %q, want %q", mode, r.Session, h.Session("alice"))
		}
		tr = newTestTracker("/v1/chat/completions", &Options{Content: mode, Hasher: h})
		tr.SetSession("conversation-42")
		tr.RequestBody([]byte(chatReq), true)
		if r := tr.Finish(ms(1), nil, false); r.Session != h.Session("conversation-42") {
			t.Errorf("%s: session from header %q", mode, r.Session)
		}
		tr = newTestTracker("/v1/chat/completions", &Options{Content: mode, Hasher: h})
		tr.RequestBody([]byte(chatReq), true)
		r := tr.Finish(ms(1), nil, false)
		if mode == ContentNone && (r.HashIDs != nil || r.Prompt != "" || r.Messages != nil) {
			t.Errorf("none mode recorded content: %+v", r)
		}
	}
}
