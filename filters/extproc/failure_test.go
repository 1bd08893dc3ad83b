package extproc

import (
	"bytes"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/reprise-llm/reprise/filters/extproc/extproctest"
)

// Builders for the messages of a sequence, as the stand-in Envoy sends
// them.
type send func(s *extproctest.Stream) error

func reqHeaders(id string, eos bool) send {
	return func(s *extproctest.Stream) error {
		return s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/completions", EndOfStream: eos, Headers: []string{"x-request-id", id}})
	}
}

func reqBody(body string, eos bool) send {
	return func(s *extproctest.Stream) error { return s.RequestBody([]byte(body), eos) }
}

func respHeaders(status int, eos bool) send {
	return func(s *extproctest.Stream) error {
		return s.ResponseHeaders(extproctest.Response{Status: status, EndOfStream: eos, Headers: []string{"content-type", "text/event-stream"}})
	}
}

func respBody(body string, eos bool) send {
	return func(s *extproctest.Stream) error { return s.ResponseBody([]byte(body), eos) }
}

func closeSend(s *extproctest.Stream) error { return s.CloseSend() }

// emptyMessage carries no request or response part.
func emptyMessage(s *extproctest.Stream) error {
	return s.Send(&extprocv3.ProcessingRequest{ObservabilityMode: true})
}

const completionBody = `{"model":"m","prompt":"hello there","max_tokens":8}`

// Malformed ext_proc sequences, one stream each: every message out of
// sequence is ignored and counted by reason, the stream never panics the
// server, and a stream that still carries a request gets its record.
func TestMalformedSequencesAreCountedAndIgnored(t *testing.T) {
	c := startCollector(t, Config{}, nil)
	e := c.envoy()
	cases := []struct {
		name   string
		seq    []send
		reason string // protocol error counted once per message out of sequence
		record string // id of the record the stream yields, "" for none
		status int
		count  float64 // messages counted under reason; 0 means 1
	}{
		{"body before headers", []send{reqBody("early", false), reqHeaders("bbh", false), reqBody(completionBody, true), respHeaders(200, true)},
			"request_before_headers", "bbh", 200, 0},
		{"second request headers", []send{reqHeaders("srh-1", true), reqHeaders("srh-2", true), respHeaders(201, true)},
			"second_request_headers", "srh-1", 201, 0},
		{"response before request", []send{respHeaders(200, false), respBody("data: x\n\n", false), closeSend},
			"response_before_request", "", 0, 2},
		{"second response headers", []send{reqHeaders("sresp", true), respHeaders(202, false), respHeaders(500, false), respBody("", true)},
			"second_response_headers", "sresp", 202, 0},
		{"response body before headers", []send{reqHeaders("rbbh", true), respBody("data: x\n\n", false), respHeaders(203, true)},
			"response_body_before_headers", "rbbh", 203, 0},
		{"request body after its end", []send{reqHeaders("rbae", false), reqBody(completionBody, true), reqBody("more", true), respHeaders(200, true)},
			"request_after_end", "rbae", 200, 0},
		{"empty message", []send{emptyMessage, reqHeaders("empty", true), respHeaders(200, true)},
			"empty_message", "empty", 200, 0},
	}
	for _, tc := range cases {
		before := c.metric("reprise_extproc_protocol_errors_total", "reason", tc.reason)
		s := c.open(e)
		for _, step := range tc.seq {
			mustSend(t, step(s))
		}
		if err := s.Wait(); err != nil {
			t.Fatalf("%s: stream end: %v", tc.name, err)
		}
		want := max(tc.count, 1)
		if got := c.metric("reprise_extproc_protocol_errors_total", "reason", tc.reason) - before; got != want {
			t.Errorf("%s: %s counted %v times, want %v", tc.name, tc.reason, got, want)
		}
	}
	if got := c.metric("reprise_extproc_streams_without_request_total"); got != 1 {
		t.Errorf("streams without request %v, want 1", got)
	}
	recs := byID(t, c.stop(false))
	want := 0
	for _, tc := range cases {
		if tc.record == "" {
			continue
		}
		want++
		r := recs[tc.record]
		if r == nil {
			t.Errorf("%s: no record %q", tc.name, tc.record)
			continue
		}
		if r.Status != tc.status || r.Aborted {
			t.Errorf("%s: status %d aborted %v (%s), want %d", tc.name, r.Status, r.Aborted, r.Error, tc.status)
		}
	}
	if len(recs) != want {
		t.Errorf("%d records, want %d", len(recs), want)
	}
	if r := recs["bbh"]; r != nil && r.Model != "m" {
		t.Errorf("body before headers: the request body after them was not the one parsed: model %q", r.Model)
	}
	if !strings.Contains(c.logText(), "ext_proc message out of sequence, ignored") {
		t.Errorf("no log line for the protocol errors:\n%s", c.logText())
	}
}

// A message after the response's end (Envoy sends none) is counted, not
// handled: the record is the complete one.
func TestMessageAfterResponseEnd(t *testing.T) {
	release := make(chan struct{})
	var c *collector
	c = startCollector(t, Config{}, func(m *extprocv3.ProcessingRequest) {
		if m.GetResponseHeaders() != nil {
			<-release // hold the state machine until the extra message arrived
		}
	})
	s := c.open(c.envoy())
	mustSend(t, reqHeaders("after", true)(s))
	mustSend(t, respHeaders(200, true)(s))
	mustSend(t, respBody("data: late\n\n", true)(s))
	waitUntil(t, "the third message", func() bool { return c.srv.Stats().Messages == 3 })
	close(release)
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	recs := c.stop(false)
	if len(recs) != 1 || recs[0].Aborted || recs[0].Status != 200 {
		t.Fatalf("records %+v", recs)
	}
	if got := c.metric("reprise_extproc_protocol_errors_total", "reason", "after_response_end"); got != 1 {
		t.Errorf("after_response_end %v, want 1", got)
	}
}

// Bodies that cannot be parsed give records with what is known (method,
// path, status, timings) and a parse failure counted by reason: a request
// that is not JSON, and bodies with a Content-Encoding.
func TestUnparsableBodies(t *testing.T) {
	c := startCollector(t, Config{}, nil)
	e := c.envoy()
	s := c.open(e)
	mustSend(t, s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/chat/completions", Headers: []string{"x-request-id", "notjson"}}))
	mustSend(t, s.RequestBody([]byte("this is not JSON {"), true))
	mustSend(t, s.ResponseHeaders(extproctest.Response{Status: 400, Headers: []string{"content-type", "application/json"}}))
	mustSend(t, s.ResponseBody([]byte(`{"error":{"message":"bad request"}}`), true))
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	s = c.open(e)
	mustSend(t, s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/chat/completions", Headers: []string{"x-request-id", "gzip", "content-encoding", "gzip"}}))
	mustSend(t, s.RequestBody([]byte("\x1f\x8b\x08\x00binary"), true))
	mustSend(t, s.ResponseHeaders(extproctest.Response{Status: 200, Headers: []string{"content-type", "text/event-stream", "content-encoding", "gzip"}}))
	mustSend(t, s.ResponseBody([]byte("\x1f\x8b\x08\x00more binary"), true))
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	recs := byID(t, c.stop(false))
	if r := recs["notjson"]; r == nil || r.Status != 400 || r.Model != "" || r.Aborted || r.Path != "/v1/chat/completions" || r.E2ENs <= 0 {
		t.Errorf("not JSON: %+v", r)
	}
	if r := recs["gzip"]; r == nil || r.Status != 200 || len(r.ChunksUS) != 0 || r.Aborted {
		t.Errorf("gzip: %+v", r)
	}
	if got := c.metric("reprise_extproc_parse_failures_total", "reason", "request"); got != 1 {
		t.Errorf("request parse failures %v, want 1", got)
	}
	if got := c.metric("reprise_extproc_parse_failures_total", "reason", "encoded"); got != 2 {
		t.Errorf("encoded parse failures %v, want 2 (request and response)", got)
	}
}

// A 64 MiB request body, streamed in 1 MiB chunks as Envoy does: the
// collector keeps only --max-parse-bytes of it, the record is
// body_truncated with the fields its start holds, and nothing stays queued.
func TestHugeRequestBodyIsBounded(t *testing.T) {
	c := startCollector(t, Config{QueueBytes: 256 << 20}, nil) // room for all of it: no drop, whatever the scheduling
	s := c.open(c.envoy())
	mustSend(t, s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/chat/completions", Headers: []string{"x-request-id", "huge"}}))
	const mib = 1 << 20
	chunk := bytes.Repeat([]byte("x"), mib)
	head := []byte(`{"model":"big","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"`)
	for i := 0; i < 64; i++ {
		b := chunk
		if i == 0 {
			b = append(append([]byte{}, head...), chunk[len(head):]...)
		}
		mustSend(t, s.RequestBody(b, i == 63))
	}
	mustSend(t, s.ResponseHeaders(extproctest.Response{Status: 413, EndOfStream: true}))
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	recs := c.stop(false)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if !r.BodyTruncated || r.Model != "big" || !r.Stream || r.MaxTokens != 5 || len(r.HashIDs) != 0 || r.Aborted || r.Status != 413 {
		t.Errorf("record %+v", r)
	}
	if st := c.srv.Stats(); st.QueuedBytes != 0 || st.MessagesDropped != 0 {
		t.Errorf("queued %d bytes, dropped %d after the stream", st.QueuedBytes, st.MessagesDropped)
	}
}

// A stream Envoy closes before the response ended (the client went away:
// Envoy half-closes then resets the side stream after
// deferred_close_timeout; or resets it at once) gives an aborted record
// with what arrived, ended at the last message.
func TestStreamClosedEarlyIsAborted(t *testing.T) {
	c := startCollector(t, Config{}, nil)
	e := c.envoy()
	ends := map[string]func(s *extproctest.Stream){
		"half-close": func(s *extproctest.Stream) { _ = s.CloseSend(); time.Sleep(time.Millisecond); s.Reset() },
		"reset":      func(s *extproctest.Stream) { s.Reset() },
	}
	for id, end := range ends {
		s := c.open(e)
		mustSend(t, reqHeaders(id, false)(s))
		mustSend(t, reqBody(`{"model":"m","prompt":"p","stream":true}`, true)(s))
		mustSend(t, respHeaders(200, false)(s))
		mustSend(t, respBody(`data: {"choices":[{"text":"a"}]}`+"\n\n", false)(s))
		time.Sleep(2 * time.Millisecond)
		mustSend(t, respBody(`data: {"choices":[{"text":"b"}]}`+"\n\n", false)(s))
		end(s)
	}
	waitUntil(t, "both records", func() bool { return c.srv.Stats().Records == 2 })
	recs := byID(t, c.stop(false))
	for id := range ends {
		r := recs[id]
		if r == nil {
			t.Fatalf("%s: no record", id)
		}
		if !r.Aborted || !strings.Contains(r.Error, "ext_proc stream ended before the response did") || r.Status != 200 || len(r.ChunksUS) != 2 {
			t.Errorf("%s: %+v", id, r)
		}
		var sum int64
		for _, d := range r.ChunksUS {
			sum += d
		}
		if r.E2ENs/1000 != sum {
			t.Errorf("%s: e2e %d ns, want the last message's receipt (%d µs)", id, r.E2ENs, sum)
		}
	}
	if got := c.metric("reprise_extproc_aborted_total"); got != 2 {
		t.Errorf("aborted_total %v", got)
	}
	if !strings.Contains(c.logText(), "ext_proc request did not end normally") {
		t.Errorf("no log line for the aborted request:\n%s", c.logText())
	}
}

// A stream that never ends (Envoy sends nothing more and keeps it open)
// is ended by the collector after --extproc-idle-timeout: its record is
// aborted and the stream closed with status OK.
func TestIdleStreamIsEnded(t *testing.T) {
	c := startCollector(t, Config{IdleTimeout: 50 * time.Millisecond}, nil)
	s := c.open(c.envoy())
	mustSend(t, reqHeaders("idle", true)(s))
	mustSend(t, respHeaders(200, false)(s))
	if err := s.Wait(); err != nil { // returns once the collector ends the stream
		t.Fatal(err)
	}
	recs := c.stop(false)
	if len(recs) != 1 || !recs[0].Aborted || !strings.Contains(recs[0].Error, "no ext_proc message for 50ms (--extproc-idle-timeout)") {
		t.Fatalf("records %+v", recs)
	}
}

// An Envoy without observability_mode waits for an answer to every
// message; the collector closes such a stream at once (status OK, so Envoy
// carries on without it), records nothing, and counts and logs it.
func TestNotObservabilityModeIsClosedAtOnce(t *testing.T) {
	c := startCollector(t, Config{}, nil)
	s := c.open(c.envoy())
	s.Observability = false
	mustSend(t, reqHeaders("blocking", false)(s))
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	if recs := c.stop(false); len(recs) != 0 {
		t.Errorf("records %+v", recs)
	}
	if got := c.metric("reprise_extproc_protocol_errors_total", "reason", "not_observability_mode"); got != 1 {
		t.Errorf("not_observability_mode %v", got)
	}
	if !strings.Contains(c.logText(), "set observability_mode: true") {
		t.Errorf("log:\n%s", c.logText())
	}
}

// A capture writer that refuses records (closed, or its queue full) never
// affects the streams: the records are counted as dropped.
func TestWriterRefusingRecordsIsCounted(t *testing.T) {
	c := startCollector(t, Config{}, nil)
	if err := c.w.Close(); err != nil {
		t.Fatal(err)
	}
	s := c.open(c.envoy())
	mustSend(t, reqHeaders("refused", true)(s))
	mustSend(t, respHeaders(200, true)(s))
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	if st := c.srv.Stats(); st.RecordsDropped != 1 || st.Records != 0 {
		t.Errorf("stats %+v", st)
	}
	if got := c.metric("reprise_extproc_records_dropped_total"); got != 1 {
		t.Errorf("records_dropped_total %v", got)
	}
}

// At shutdown, streams still open when the drain bound passes are cut:
// their records are written as aborted with what they saw, their streams
// end with status OK, and a stream that completed before is untouched.
func TestCutAtDrainBound(t *testing.T) {
	c := startCollector(t, Config{}, nil)
	e := c.envoy()
	done := c.open(e)
	mustSend(t, reqHeaders("done", true)(done))
	mustSend(t, respHeaders(200, true)(done))
	if err := done.Wait(); err != nil {
		t.Fatal(err)
	}
	mid := c.open(e)
	mustSend(t, reqHeaders("mid", false)(mid))
	mustSend(t, reqBody(`{"model":"m","prompt":"p","stream":true}`, true)(mid))
	mustSend(t, respHeaders(200, false)(mid))
	mustSend(t, respBody(`data: {"choices":[{"text":"a"}]}`+"\n\n", false)(mid))
	early := c.open(e)
	mustSend(t, reqHeaders("early", false)(early))
	waitUntil(t, "the messages", func() bool { return c.srv.Stats().Messages == 7 })

	ended := make(chan error, 2)
	go func() { ended <- mid.Wait() }()
	go func() { ended <- early.Wait() }()
	recs := byID(t, c.stop(true))
	for range 2 {
		if err := <-ended; err != nil {
			t.Errorf("cut stream ended with %v, want status OK", err)
		}
	}
	if r := recs["done"]; r == nil || r.Aborted {
		t.Errorf("done: %+v", r)
	}
	for _, id := range []string{"mid", "early"} {
		if r := recs[id]; r == nil || !r.Aborted || r.Error != ErrDrainCut.Error() {
			t.Errorf("%s: %+v", id, r)
		}
	}
	if r := recs["mid"]; r != nil && (r.Model != "m" || len(r.ChunksUS) != 1 || r.Status != 200) {
		t.Errorf("mid lost what it saw: %+v", r)
	}
	if len(recs) != 3 {
		t.Errorf("%d records", len(recs))
	}
}
