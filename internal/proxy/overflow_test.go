package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// overlongBackend streams three content events, one whose data line is
// longer than the SSE decoder's 1 MiB line cap, two more content events,
// then the finish, the usage and [DONE].
func overlongBackend(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/event-stream")
	fl := w.(http.Flusher)
	for i := 0; i < 3; i++ {
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"}}]}\n\n", i)
		fl.Flush()
	}
	fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"}}]}\n\n", strings.Repeat("x", 1<<20+10))
	fl.Flush()
	for i := 3; i < 5; i++ {
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"}}]}\n\n", i)
		fl.Flush()
	}
	fmt.Fprint(w, "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
	fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":6}}\n\n")
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// An event past the decoder's line cap reaches the client unchanged but
// cannot be parsed: the record carries the events it could parse and says
// how many it dropped, so that its chunk timings are known to be partial.
func TestOverlongSSEEventIsCountedInTheRecord(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(overlongBackend))
	defer backend.Close()
	normal := httptest.NewServer(sseBackend(3, 0))
	defer normal.Close()
	out := &memWriter{}
	p, px := newTestProxy(t, backend.URL, out, nil)

	_, direct := post(t, backend.URL, chatBody, nil)
	_, via := post(t, px.URL, chatBody, nil)
	p.Wait()
	if !bytes.Equal(direct, via) {
		t.Fatalf("the proxy changed the stream: %d bytes through it, %d direct", len(via), len(direct))
	}
	recs := out.records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	rec := recs[0]
	if rec.EventsDropped != 1 {
		t.Errorf("events_dropped = %d, want 1", rec.EventsDropped)
	}
	if len(rec.ChunkTokens) != 5 || rec.Aborted || rec.Status != 200 || rec.FinishReason != "stop" ||
		rec.OutputTokens != 6 || rec.TokensSource != "usage" {
		t.Errorf("record: chunks %v aborted %v status %d finish %q output %d (%s)",
			rec.ChunkTokens, rec.Aborted, rec.Status, rec.FinishReason, rec.OutputTokens, rec.TokensSource)
	}

	// A stream within the cap has no events_dropped.
	p2, px2 := newTestProxy(t, normal.URL, out, nil)
	post(t, px2.URL, chatBody, nil)
	p2.Wait()
	recs = out.records()
	if len(recs) != 2 || recs[1].EventsDropped != 0 || len(recs[1].ChunkTokens) != 3 {
		t.Fatalf("normal stream record: %+v", recs[len(recs)-1])
	}
}
