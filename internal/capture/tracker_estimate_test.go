package capture

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// deltaEvents is a chat stream without usage: one content event per token
// of toks, a finish event and [DONE].
func deltaEvents(toks []string) []string {
	var evs []string
	for _, tok := range toks {
		evs = append(evs, fmt.Sprintf(`data: {"choices":[{"index":0,"delta":{"content":%q}}]}`+"\n\n", tok))
	}
	evs = append(evs, `data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`+"\n\n")
	return append(evs, "data: [DONE]\n\n")
}

// Issue 16: a stream without usage was estimated at ceil(chars/4) per
// event, so 16 six-character tokens were recorded as 32 and the replay
// asked for twice the output. Servers stream one token per event; the
// estimate counts events, whatever their length.
func TestTrackerEstimateCountsOneTokenPerEvent(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  string
		n    int
	}{
		{"six characters", " token", 16},
		{"one character", "x", 16},
		{"long words", " internationalization", 40},
		{"multibyte", " 東京都", 24},
	} {
		t.Run(tc.name, func(t *testing.T) {
			toks := make([]string, tc.n)
			for i := range toks {
				toks[i] = tc.tok
			}
			tr := newTestTracker("/v1/chat/completions", nil)
			tr.RequestBody([]byte(`{"model":"m","stream":true,"max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`), true)
			r := runStream(t, tr, deltaEvents(toks))
			if r.OutputTokens != tc.n || r.TokensSource != TokensEstimate {
				t.Errorf("output_tokens %d (%s), want %d", r.OutputTokens, r.TokensSource, tc.n)
			}
			if len(r.ChunkTokens) != tc.n || r.ChunkTokensSource != TokensEstimate {
				t.Fatalf("chunk_tokens %v (%s), want %d events", r.ChunkTokens, r.ChunkTokensSource, tc.n)
			}
			for i, c := range r.ChunkTokens {
				if c != 1 {
					t.Fatalf("chunk_tokens[%d] = %d, want 1", i, c)
				}
			}
		})
	}
}

// An estimate never passes what the request allowed: max_tokens (or
// max_completion_tokens, or max_output_tokens) per choice. The server's
// usage is never capped.
func TestTrackerEstimateCappedAtMaxTokens(t *testing.T) {
	five := deltaEvents([]string{"a", "b", "c", "d", "e"})
	for _, tc := range []struct {
		name, path, body string
		evs              []string
		want             int
		source           string
	}{
		{"max_tokens", "/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":3,"messages":[]}`, five, 3, TokensEstimate},
		{"max_completion_tokens wins", "/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":9,"max_completion_tokens":2,"messages":[]}`, five, 2, TokensEstimate},
		{"per choice", "/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":2,"n":2,"messages":[]}`, five, 4, TokensEstimate},
		{"no limit", "/v1/chat/completions", `{"model":"m","stream":true,"messages":[]}`, five, 5, TokensEstimate},
		{"huge n does not overflow", "/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":4611686018427387904,"n":4,"messages":[]}`, five, 5, TokensEstimate},
		{"responses max_output_tokens", "/v1/responses", `{"model":"m","stream":true,"max_output_tokens":2,"input":"hi"}`, []string{
			"data: {\"type\":\"response.output_text.delta\",\"delta\":\"a\"}\n\n",
			"data: {\"type\":\"response.output_text.delta\",\"delta\":\"b\"}\n\n",
			"data: {\"type\":\"response.output_text.delta\",\"delta\":\"c\"}\n\n",
		}, 2, TokensEstimate},
		{"usage is not capped", "/v1/chat/completions", `{"model":"m","stream":true,"max_tokens":3,"messages":[]}`, chatEvents(5, true), 5, TokensUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The shadow parses the body before the response, the proxy
			// after it (just before Finish): the cap holds either way.
			before := newTestTracker(tc.path, nil)
			before.RequestBody([]byte(tc.body), true)
			after := newTestTracker(tc.path, nil)
			after.ResponseStart(ms(2), 200, "text/event-stream", "")
			for i, e := range tc.evs {
				after.ResponseData(ms(10+float64(i)), []byte(e))
			}
			after.RequestBody([]byte(tc.body), true)
			for name, r := range map[string]*Record{"body first": runStream(t, before, tc.evs), "body last": after.Finish(ms(100), nil, false)} {
				if r.OutputTokens != tc.want || r.TokensSource != tc.source {
					t.Errorf("%s: output_tokens %d (%s), want %d (%s)", name, r.OutputTokens, r.TokensSource, tc.want, tc.source)
				}
			}
		})
	}
}

// A non-streamed response has no events: its text is estimated (4
// characters per token), capped at max_tokens like a stream's count.
func TestTrackerNonStreamEstimateCappedAtMaxTokens(t *testing.T) {
	tr := newTestTracker("/v1/completions", nil)
	tr.RequestBody([]byte(`{"model":"m","prompt":"hi","max_tokens":10}`), true)
	tr.ResponseStart(ms(1), 200, "application/json", "")
	tr.ResponseData(ms(2), []byte(`{"choices":[{"text":"`+strings.Repeat("abcd", 50)+`","finish_reason":"length"}]}`))
	r := tr.Finish(ms(3), nil, false)
	if r.OutputTokens != 10 || r.TokensSource != TokensEstimate {
		t.Errorf("output_tokens %d (%s), want 10: 200 characters are 50 by the text estimate, capped at max_tokens", r.OutputTokens, r.TokensSource)
	}
}

// Tool-call deltas are generated output, as the replayer counts them: a
// stream of them without usage is timed and counted, not recorded as
// having no output.
func TestTrackerToolCallDeltasAreOutput(t *testing.T) {
	evs := []string{
		`data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"get","arguments":""}}]}}]}` + "\n\n",
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\""}}]}}]}` + "\n\n",
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":\"Paris\"}"}}]}}]}` + "\n\n",
		`data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\n",
		"data: [DONE]\n\n",
	}
	tr := newTestTracker("/v1/chat/completions", nil)
	tr.RequestBody([]byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"weather?"}]}`), true)
	r := runStream(t, tr, evs)
	if want := []int{1, 1, 1}; !reflect.DeepEqual(r.ChunkTokens, want) || r.OutputTokens != 3 || r.TokensSource != TokensEstimate {
		t.Errorf("chunk_tokens %v output_tokens %d (%s), want %v and 3", r.ChunkTokens, r.OutputTokens, r.TokensSource, want)
	}
	if r.TTFTNs != int64(ms(10).Sub(testArrival)) || r.FinishReason != "tool_calls" {
		t.Errorf("ttft %d finish %q: the first tool-call delta (10 ms) is the first token", r.TTFTNs, r.FinishReason)
	}
}
