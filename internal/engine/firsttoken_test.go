package engine

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

func TestOnFirstTokenFiresBeforeTheRequestEnds(t *testing.T) {
	// The server sends one token, then holds the stream open until the
	// client's OnFirstToken has fired (or, if it never does, until the
	// request's context ends), then finishes.
	fired := make(chan FirstToken, 1)
	var heldOpen bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"choices":[{"delta":{"role":"assistant"}}]}`+"\n\n")
		_, _ = io.WriteString(w, `data: {"choices":[{"delta":{"content":"a"}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-fired:
			heldOpen = true
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, `data: {"choices":[{"delta":{"content":"b"}}]}`+"\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	var mu sync.Mutex
	var got []FirstToken
	cfg := Config{Target: srv.URL, Profile: ProfileSynchronous, MaxRequests: 1, Timeout: time.Minute,
		OnFirstToken: func(f FirstToken) {
			mu.Lock()
			got = append(got, f)
			mu.Unlock()
			fired <- f
		}}
	src := &sliceSource{reqs: []workload.Request{{Index: 0, Endpoint: openai.Chat, Stream: true, OutputTokens: 2}}}
	run, err := Execute(context.Background(), cfg, src, bodies{})
	if err != nil {
		t.Fatal(err)
	}
	r := run.Results[0]
	if !r.OK() || !heldOpen {
		t.Fatalf("request %+v; the server saw OnFirstToken before finishing: %v", r, heldOpen)
	}
	if len(got) != 1 {
		t.Fatalf("OnFirstToken called %d times, want 1", len(got))
	}
	if f := got[0]; f.Index != 0 || f.Sent != r.Sent || f.At != r.FirstToken || f.At >= r.End || f.TTFT() != r.FirstToken-r.Sent {
		t.Errorf("first token %+v, result sent %v first token %v end %v", f, r.Sent, r.FirstToken, r.End)
	}
	// The role delta is an event, not output.
	if r.Events != 4 || r.FirstEvent == 0 || r.FirstEvent > r.FirstToken || len(r.Chunks) != 2 {
		t.Errorf("events %d first event %v first token %v chunks %d; want 4 events (role, a, b, [DONE]), 2 chunks", r.Events, r.FirstEvent, r.FirstToken, len(r.Chunks))
	}
}

func TestToolCallDeltasAreTimedAsOutput(t *testing.T) {
	stream := strings.Join([]string{
		`data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}`,
		`: keep-alive`,
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}`,
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}`,
		`data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		`data: [DONE]`,
	}, "\n\n") + "\n\n"
	r := readAll(iotest.OneByteReader(strings.NewReader(stream))) // one read per byte: distinct times
	if len(r.Chunks) != 3 || r.FirstToken == 0 || r.LastToken <= r.FirstToken || r.OutputTokens != 3 {
		t.Fatalf("chunks %v first %v last %v output %d: want the 3 tool-call deltas timed", r.Chunks, r.FirstToken, r.LastToken, r.OutputTokens)
	}
	// The comment line is not an event; the role delta, the finish and [DONE] are.
	if r.Events != 6 || r.FirstEvent == 0 || r.FirstEvent >= r.FirstToken {
		t.Errorf("events %d, first event %v, first token %v", r.Events, r.FirstEvent, r.FirstToken)
	}
	if r.FinishReason != "tool_calls" {
		t.Errorf("finish reason %q", r.FinishReason)
	}

	// The Responses API's function-call argument deltas count the same way.
	responses := strings.Join([]string{
		`data: {"type":"response.created","response":{"id":"r","status":"in_progress","usage":null}}`,
		`data: {"type":"response.function_call_arguments.delta","item_id":"fc","output_index":0,"delta":"{\"a\":"}`,
		`data: {"type":"response.function_call_arguments.delta","item_id":"fc","output_index":0,"delta":"1}"}`,
		`data: {"type":"response.completed","response":{"status":"completed","usage":{"input_tokens":5,"output_tokens":2}}}`,
	}, "\n\n") + "\n\n"
	r = readAll(iotest.OneByteReader(strings.NewReader(responses)))
	if len(r.Chunks) != 2 || r.Events != 4 || r.OutputTokens != 2 {
		t.Errorf("responses: chunks %v events %d output %d", r.Chunks, r.Events, r.OutputTokens)
	}
}

func TestSentBodyIsReleasedAndRebuiltForARetry(t *testing.T) {
	sb := &sentBody{b: []byte("hello, body")}
	got, err := io.ReadAll(iotest.OneByteReader(sb))
	if err != nil || string(got) != "hello, body" || sb.b != nil {
		t.Fatalf("read %q, %v; bytes still held: %v", got, err, sb.b != nil)
	}
	// A 307 makes net/http send the request again, with a body from
	// GetBody: the rebuilt body must be the one first sent.
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, string(b))
		mu.Unlock()
		if r.URL.RawQuery == "" {
			http.Redirect(w, r, r.URL.Path+"?again=1", http.StatusTemporaryRedirect)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}`)
	}))
	defer srv.Close()
	cfg := (&Config{Target: srv.URL, Profile: ProfileSynchronous}).withDefaults()
	c, err := newClient(&cfg, bodies{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer c.hc.CloseIdleConnections()
	req := workload.Request{Index: 7, Endpoint: openai.Chat, OutputTokens: 1}
	want, _ := bodies{}.Body(&req, "")
	pre := c.build(&req)
	if r := c.send(context.Background(), &req, pre, 0); !r.OK() {
		t.Fatalf("%+v", r)
	}
	if len(seen) != 2 || seen[0] != string(want) || seen[1] != string(want) {
		t.Errorf("bodies received %q, want twice %q", seen, want)
	}
	if pre.body != nil {
		t.Error("the prebuilt body is still held after sending")
	}
}
