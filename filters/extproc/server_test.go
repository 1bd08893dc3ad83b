package extproc

import (
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/filters/extproc/extproctest"
	"github.com/reprise-llm/reprise/internal/capture"
)

func sseEvent(content string) string {
	return `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` + content + `"}}]}` + "\n\n"
}

const (
	chatBody   = `{"model":"llama-3-8b","stream":true,"max_tokens":64,"user":"alice","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello to the whole wide world, please."}]}`
	usageEvent = `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":21,"completion_tokens":4}}` + "\n\n"
	doneEvent  = "data: [DONE]\n\n"
)

// Secrets an Envoy without forward_rules forwards: none may reach a record
// or a log line.
var secrets = []string{"sk-live-SECRETKEY12345", "sess=COOKIESECRET", "AKEYSECRET99", "Basic dXNlcjpTRUNSRVQ="}

// A streamed chat completion, sent message by message as Envoy sends it in
// observability mode, with gaps, becomes one record: the request's fields,
// Envoy's request.time as its wall time, timings taken at receipt (TTFB
// from request headers to response headers; each SSE event at the chunk
// that completed it, events sharing a chunk sharing its time), the
// upstream the endpoint picker chose, and no credential anywhere. The
// collector closes the stream as soon as the response ends, without
// waiting for Envoy's deferred close.
func TestStreamedChatCompletionIsRecorded(t *testing.T) {
	c := startCollector(t, Config{SessionHeader: "x-session-id"}, nil)
	e := c.envoy()
	s := c.open(e)
	reqTime := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC) // Envoy's clock, not the collector's

	// Send times are taken just before each send, so each precedes its
	// message's receipt.
	sent := map[string]time.Time{}
	before := func(name string) { sent[name] = time.Now() }

	before("request headers")
	mustSend(t, s.RequestHeaders(extproctest.Request{
		Method: "POST", Path: "/v1/chat/completions?api-key=" + secrets[0], Time: reqTime,
		Headers: []string{
			"x-request-id", "req-0001", "content-type", "application/json", "x-session-id", "conversation-7",
			"authorization", "Bearer " + secrets[0], "cookie", secrets[1], "x-api-key", secrets[2], "proxy-authorization", secrets[3],
			"x-gateway-destination-endpoint", "10.0.0.7:8000",
		},
	}))
	time.Sleep(2 * time.Millisecond)
	mustSend(t, s.RequestBody([]byte(chatBody[:40]), false))
	time.Sleep(2 * time.Millisecond)
	mustSend(t, s.RequestBody([]byte(chatBody[40:]), true))
	time.Sleep(5 * time.Millisecond)
	before("response headers")
	mustSend(t, s.ResponseHeaders(extproctest.Response{Status: 200, Headers: []string{"content-type", "text/event-stream", "set-cookie", secrets[1]}}))
	split := sseEvent(" world")
	chunks := []struct {
		name, data string
		eos        bool
	}{
		{"chunk 1", sseEvent("Hel"), false},
		{"chunk 2", sseEvent("lo") + sseEvent(","), false}, // two events, one receipt time
		{"chunk 3", split[:30], false},                     // an event cut in two...
		{"chunk 4", split[30:] + usageEvent, false},        // ...is timed by the chunk that completes it
		{"chunk 5", doneEvent, true},
	}
	for _, ch := range chunks {
		time.Sleep(3 * time.Millisecond)
		before(ch.name)
		mustSend(t, s.ResponseBody([]byte(ch.data), ch.eos))
	}
	// The collector ends the stream (status OK) once the response ended,
	// before Envoy's deferred close would.
	if err := s.Wait(); err != nil {
		t.Fatalf("stream end: %v", err)
	}
	recs := c.stop(false)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]

	if r.ID != "req-0001" || r.RequestID != "" || r.Source != capture.SourceExtProc {
		t.Errorf("id %q request_id %q source %q: want Envoy's x-request-id as the id, source ext_proc", r.ID, r.RequestID, r.Source)
	}
	if !r.Wall.Equal(reqTime) {
		t.Errorf("wall %v, want request.time %v", r.Wall, reqTime)
	}
	if r.Method != "POST" || r.Path != "/v1/chat/completions" || r.Model != "llama-3-8b" || !r.Stream || r.MaxTokens != 64 || r.NMessages != 2 {
		t.Errorf("request fields: %+v", r)
	}
	if len(r.HashIDs) == 0 || r.Session == "" || r.BodyTruncated {
		t.Errorf("hash ids %v, session %q, body_truncated %v", r.HashIDs, r.Session, r.BodyTruncated)
	}
	if r.Status != 200 || r.Aborted || r.Error != "" || r.Upstream != "10.0.0.7:8000" {
		t.Errorf("status %d aborted %v error %q upstream %q", r.Status, r.Aborted, r.Error, r.Upstream)
	}
	if r.FinishReason != "stop" || r.TokensSource != capture.TokensUsage || r.PromptTokens != 21 || r.OutputTokens != 4 {
		t.Errorf("finish %q tokens %s %d/%d", r.FinishReason, r.TokensSource, r.PromptTokens, r.OutputTokens)
	}

	// Timing: every time is a receipt time, so it follows the send it
	// belongs to (causal order; µs offsets are truncated, hence the 1 µs).
	arrival := c.origin.Add(time.Duration(r.T))
	at := func(ns int64) time.Time { return arrival.Add(time.Duration(ns)) }
	if arrival.Before(sent["request headers"]) {
		t.Errorf("arrival %v before the request headers were sent", arrival.Sub(sent["request headers"]))
	}
	if r.TTFBNs <= 0 || at(r.TTFBNs).Before(sent["response headers"]) {
		t.Errorf("ttfb %v: must be the response headers' receipt", time.Duration(r.TTFBNs))
	}
	if len(r.ChunksUS) != 4 {
		t.Fatalf("chunks_us %v: want 4 content events", r.ChunksUS)
	}
	var events []time.Time
	var off int64
	for _, d := range r.ChunksUS {
		off += d
		events = append(events, at(off*1000))
	}
	for i, ch := range []string{"chunk 1", "chunk 2", "chunk 2", "chunk 4"} {
		if events[i].Add(time.Microsecond).Before(sent[ch]) {
			t.Errorf("event %d at %v: before %s was sent", i+1, events[i].Sub(arrival), ch)
		}
	}
	if r.ChunksUS[2] != 0 {
		t.Errorf("events sharing a chunk have gap %d µs, want 0 (one receipt time)", r.ChunksUS[2])
	}
	if r.ChunksUS[3] <= 0 {
		t.Errorf("the split event has gap %d µs: it must take the receipt time of chunk 4, after chunk 2's", r.ChunksUS[3])
	}
	if r.TTFTNs/1000 != r.ChunksUS[0] {
		t.Errorf("ttft %d ns vs first chunk %d µs", r.TTFTNs, r.ChunksUS[0])
	}
	if r.E2ENs <= 0 || at(r.E2ENs).Before(sent["chunk 5"]) {
		t.Errorf("e2e %v: must be the last chunk's receipt", time.Duration(r.E2ENs))
	}

	text := captureBytes(t, c.w.Dir(), recs) + c.logText()
	for _, sec := range secrets {
		if strings.Contains(text, sec) {
			t.Errorf("secret %q reached the capture or the log", sec)
		}
	}
	if got := c.metric("reprise_extproc_records_total"); got != 1 {
		t.Errorf("records_total %v", got)
	}
}

// Responses that end otherwise: a non-streamed JSON body in chunks, a body
// ended by trailers (response_trailer_mode SEND), a response without body
// (headers with end_of_stream), a GET without request body. Each is one
// complete record; none is aborted.
func TestResponseEnds(t *testing.T) {
	c := startCollector(t, Config{}, nil)
	e := c.envoy()
	jsonResp := `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2}}`
	plain := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`

	type step func(s *extproctest.Stream) error
	cases := []struct {
		id     string
		steps  []step
		status int
		check  func(t *testing.T, r *capture.Record)
	}{
		{"json", []step{
			func(s *extproctest.Stream) error {
				return s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/chat/completions", Headers: []string{"x-request-id", "json"}})
			},
			func(s *extproctest.Stream) error { return s.RequestBody([]byte(plain), true) },
			func(s *extproctest.Stream) error {
				return s.ResponseHeaders(extproctest.Response{Status: 200, Headers: []string{"content-type", "application/json"}})
			},
			func(s *extproctest.Stream) error { return s.ResponseBody([]byte(jsonResp[:50]), false) },
			func(s *extproctest.Stream) error { return s.ResponseBody([]byte(jsonResp[50:]), true) },
		}, 200, func(t *testing.T, r *capture.Record) {
			if r.FinishReason != "stop" || r.OutputTokens != 2 || r.TokensSource != capture.TokensUsage || r.Model != "m" {
				t.Errorf("json: %+v", r)
			}
		}},
		{"trailers", []step{
			func(s *extproctest.Stream) error {
				return s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/chat/completions", Headers: []string{"x-request-id", "trailers"}})
			},
			func(s *extproctest.Stream) error { return s.RequestBody([]byte(plain), false) },
			func(s *extproctest.Stream) error { return s.RequestTrailers("x-checksum", "1") },
			func(s *extproctest.Stream) error {
				return s.ResponseHeaders(extproctest.Response{Status: 200, Headers: []string{"content-type", "text/event-stream"}})
			},
			func(s *extproctest.Stream) error { return s.ResponseBody([]byte(sseEvent("a")+sseEvent("b")), false) },
			func(s *extproctest.Stream) error { return s.ResponseTrailers("grpc-status", "0") },
		}, 200, func(t *testing.T, r *capture.Record) {
			if r.Model != "m" || r.BodyTruncated || len(r.ChunksUS) != 2 {
				t.Errorf("trailers: model %q truncated %v chunks %v", r.Model, r.BodyTruncated, r.ChunksUS)
			}
		}},
		{"no-body", []step{
			func(s *extproctest.Stream) error {
				return s.RequestHeaders(extproctest.Request{Method: "GET", Path: "/v1/models", EndOfStream: true, Headers: []string{"x-request-id", "no-body"}})
			},
			func(s *extproctest.Stream) error {
				return s.ResponseHeaders(extproctest.Response{Status: 204, EndOfStream: true})
			},
		}, 204, func(t *testing.T, r *capture.Record) {
			if r.Method != "GET" || r.Path != "/v1/models" || r.E2ENs != r.TTFBNs {
				t.Errorf("no-body: %+v", r)
			}
		}},
	}
	for _, tc := range cases {
		s := c.open(e)
		for _, st := range tc.steps {
			time.Sleep(time.Millisecond)
			mustSend(t, st(s))
		}
		if err := s.Wait(); err != nil {
			t.Fatalf("%s: stream end: %v", tc.id, err)
		}
	}
	recs := byID(t, c.stop(false))
	for _, tc := range cases {
		r := recs[tc.id]
		if r == nil {
			t.Errorf("%s: no record", tc.id)
			continue
		}
		if r.Status != tc.status || r.Aborted || r.Error != "" {
			t.Errorf("%s: status %d aborted %v error %q", tc.id, r.Status, r.Aborted, r.Error)
		}
		tc.check(t, r)
	}
}
