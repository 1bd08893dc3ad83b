package extproc

import (
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/reprise-llm/reprise/filters/extproc/extproctest"
)

// holdOn returns a hookHandle that stops the state machine on the first
// message matching stop: entered is closed when it is held, and it goes on
// when release is closed. Meanwhile the receive loop keeps receiving.
func holdOn(stop func(*extprocv3.ProcessingRequest) bool) (hook func(*extprocv3.ProcessingRequest), entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	held := false
	return func(m *extprocv3.ProcessingRequest) {
		if !held && stop(m) {
			held = true
			close(entered)
			<-release
		}
	}, entered, release
}

// A state machine that falls behind never slows the receive loop: past a
// stream's queue bound messages are dropped and counted, and the record
// says so (aborted, "processor overloaded") instead of looking complete.
// Here the response's last chunk itself is dropped: the record still ends
// at its receipt.
func TestFullStreamQueueDropsAndMarksTheRecord(t *testing.T) {
	hook, entered, release := holdOn(func(m *extprocv3.ProcessingRequest) bool { return m.GetResponseHeaders() != nil })
	c := startCollector(t, Config{QueueMessages: 4}, hook)
	s := c.open(c.envoy())
	mustSend(t, s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/chat/completions", Headers: []string{"x-request-id", "overload"}}))
	mustSend(t, s.RequestBody([]byte(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`), true))
	mustSend(t, s.ResponseHeaders(extproctest.Response{Status: 200, Headers: []string{"content-type", "text/event-stream"}}))
	<-entered // the queue is empty; the state machine is held
	for i := 0; i < 10; i++ {
		mustSend(t, s.ResponseBody([]byte(sseEvent("t")), false))
	}
	lastSent := time.Now()
	mustSend(t, s.ResponseBody([]byte(doneEvent), true))
	// 4 chunks queue; 6 chunks and the last one are dropped.
	waitUntil(t, "7 drops", func() bool { return c.srv.Stats().MessagesDropped == 7 })
	close(release)
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	recs := c.stop(false)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if !r.Aborted || r.Error != "processor overloaded: 7 ext_proc messages dropped" || r.Status != 200 || len(r.ChunksUS) != 4 {
		t.Errorf("record %+v", r)
	}
	if end := c.origin.Add(time.Duration(r.T + r.E2ENs)); end.Before(lastSent) {
		t.Errorf("e2e ends %v before the last chunk was sent: want its receipt", lastSent.Sub(end))
	}
	if got := c.metric("reprise_extproc_messages_dropped_total"); got != 7 {
		t.Errorf("messages_dropped_total %v", got)
	}
	if c.srv.Stats().QueuedBytes != 0 {
		t.Errorf("queued bytes %d after the stream", c.srv.Stats().QueuedBytes)
	}
	if !strings.Contains(c.logText(), "processor overloaded") {
		t.Errorf("log:\n%s", c.logText())
	}
}

// The byte budget bounds what waits across all streams: request body
// chunks beyond it are dropped, the request is recorded as truncated (its
// body was not whole) and the record as overloaded.
func TestQueueByteBudgetDropsRequestChunks(t *testing.T) {
	const chunk = 1000
	hook, entered, release := holdOn(func(m *extprocv3.ProcessingRequest) bool { return m.GetRequestHeaders() != nil })
	// The held headers message (msgOverhead) and two chunks fit.
	c := startCollector(t, Config{QueueBytes: msgOverhead + 2*(msgOverhead+chunk)}, hook)
	s := c.open(c.envoy())
	mustSend(t, s.RequestHeaders(extproctest.Request{Method: "POST", Path: "/v1/completions", Headers: []string{"x-request-id", "budget"}}))
	<-entered
	body := `{"model":"m","prompt":"` + strings.Repeat("p", 5*chunk) + `"}`
	for i := 0; i < 5; i++ {
		b := body[i*chunk : (i+1)*chunk]
		if i == 4 {
			b = body[i*chunk:]
		}
		mustSend(t, s.RequestBody([]byte(b), i == 4))
	}
	waitUntil(t, "3 drops", func() bool { return c.srv.Stats().MessagesDropped == 3 })
	close(release)
	waitUntil(t, "the queue to drain", func() bool { return c.srv.Stats().QueuedBytes == 0 })
	mustSend(t, s.ResponseHeaders(extproctest.Response{Status: 200, EndOfStream: true}))
	if err := s.Wait(); err != nil {
		t.Fatal(err)
	}
	recs := c.stop(false)
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	r := recs[0]
	if !r.Aborted || r.Error != "processor overloaded: 3 ext_proc messages dropped" || !r.BodyTruncated || r.Model != "m" || len(r.HashIDs) != 0 {
		t.Errorf("record %+v", r)
	}
}
