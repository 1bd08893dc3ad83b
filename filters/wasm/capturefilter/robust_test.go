package capturefilter_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/filters/wasm/capturefilter"
	"github.com/reprise-llm/reprise/filters/wasm/filtertest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest"
)

const mib = 1 << 20

// hugeRequest is a 64 MiB chat request: its first bytes are a valid
// request's start, the rest one prompt string, fed in 1 MiB chunks.
func hugeRequest() [][]byte {
	head := []byte(`{"model":"big","stream":true,"max_tokens":9,"messages":[{"role":"user","content":"`)
	first := append(head, bytes.Repeat([]byte("a"), mib-len(head))...)
	rest := bytes.Repeat([]byte("a"), mib)
	chunks := [][]byte{first}
	for range 63 {
		chunks = append(chunks, rest)
	}
	return chunks
}

// sixtyFour is 64 chunks of the same 1 MiB.
func sixtyFour(b byte) [][]byte {
	c := bytes.Repeat([]byte{b}, mib)
	out := make([][]byte, 64)
	for i := range out {
		out[i] = c
	}
	return out
}

// TestBadInput: 64 MiB bodies, a stream with no event boundary, events
// that are not JSON. Traffic passes (Do checks every answer), the filter
// does not panic, and the records say what could be known.
func TestBadInput(t *testing.T) {
	for _, r := range runners {
		t.Run(string(r), func(t *testing.T) {
			col := startCollector(t, r, ingest.Config{})
			h := startHost(t, r, pluginConfig(""), filtertest.Options{Collector: col.URL, Answer: true, Key: col.KeyJSON()})
			doAll(t, h, []filtertest.Exchange{
				{Method: "POST", Path: "/v1/chat/completions", Body: hugeRequest(), Status: 200, RespHeaders: sseHeaders, Chunks: sse("ok")},
				{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat("q", false, "")}, Status: 200,
					RespHeaders: [][2]string{{"content-type", "application/json"}}, Chunks: sixtyFour('x')},
				{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat("q", true, "")}, Status: 200,
					RespHeaders: sseHeaders, Chunks: sixtyFour('y')},
				{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat("q", true, "")}, Status: 200, RespHeaders: sseHeaders,
					Chunks: [][]byte{[]byte("data: not json\n\n: comment\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"k\"}}]}\n\n")}},
				{Method: "PUT", Path: "/upload", Body: sixtyFour('z'), Status: 201},
			})
			flush(t, h)
			recs := byID(col.Sink.Records())
			if len(recs) != 5 {
				t.Fatalf("collector wrote %d records, want 5", len(recs))
			}
			if got := counter(t, h, capturefilter.MetricPanics); got != 0 {
				t.Errorf("%d panics", got)
			}
			if big := recs["1"]; !big.BodyTruncated || big.Model != "big" || !big.Stream || big.MaxTokens != 9 || len(big.HashIDs) != 0 ||
				len(big.ChunksUS) != 1 {
				t.Errorf("64 MiB request: %+v", big)
			}
			if plain := recs["2"]; plain.Status != 200 || plain.OutputTokens != 0 || plain.Model != "m1" {
				t.Errorf("64 MiB JSON response: %+v", plain)
			}
			if s := recs["3"]; s.EventsDropped == 0 || len(s.ChunksUS) != 0 {
				t.Errorf("64 MiB stream without events: dropped %d, chunks %v", s.EventsDropped, s.ChunksUS)
			}
			if s := recs["4"]; len(s.ChunksUS) != 1 || s.OutputTokens != 1 {
				t.Errorf("stream with non-JSON events: chunks %v, output %d", s.ChunksUS, s.OutputTokens)
			}
			if u := recs["5"]; u.Status != 201 || u.Method != "PUT" || u.BodyTruncated {
				t.Errorf("64 MiB upload to another path: %+v", u)
			}
		})
	}
}

// TestBoundedMemory: while a 64 MiB request and a 64 MiB JSON response
// pass, the filter holds at most about its parse cap (4 MiB) of each, not
// the bodies (measured: 5.0 MiB and 6.7 MiB with the emulator's chunk). The
// live heap is measured mid-stream, natively (proxytest's wazero wrapper
// does not expose the module's memory).
func TestBoundedMemory(t *testing.T) {
	h := startHost(t, filtertest.Native, pluginConfig(""), filtertest.Options{})
	req, resp := hugeRequest(), sixtyFour('x')
	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := live()
	id := h.InitializeHttpContext()
	h.CallOnRequestHeaders(id, [][2]string{{":method", "POST"}, {":path", "/v1/chat/completions"}, {"content-length", "67108864"}}, false)
	for _, c := range req[:len(req)-1] {
		h.CallOnRequestBody(id, c, false)
	}
	reqHeld := int64(live()) - int64(base)
	h.CallOnRequestBody(id, req[len(req)-1], true)
	h.CallOnResponseHeaders(id, [][2]string{{":status", "200"}, {"content-type", "application/json"}}, false)
	for _, c := range resp {
		h.CallOnResponseBody(id, c, false)
	}
	respHeld := int64(live()) - int64(base)
	h.CallOnResponseBody(id, nil, true)
	h.CompleteHttpContext(id)
	// The parse cap (4 MiB), the growth slack of the Tracker's response
	// buffer (append), and the emulator's own copy of the current chunk.
	const bound = 8 * mib
	if reqHeld > bound || respHeld > bound {
		t.Errorf("held %d bytes of the request, %d of the response; want at most %d each", reqHeld, respHeld, bound)
	}
	runtime.KeepAlive(req)
	runtime.KeepAlive(resp)
}

// TestSlowCollector: a collector that never answers (its calls stay in
// flight: both runners) holds no request; once the batches in flight and
// the queue are full, records are dropped and counted exactly, and the
// log says so once per episode (the ticks drained the queue in between).
func TestSlowCollector(t *testing.T) {
	for _, r := range runners {
		t.Run(string(r), func(t *testing.T) {
			h := startHost(t, r, pluginConfig(`"max_queue": 8, "max_batch": 4`), filtertest.Options{})
			one := filtertest.Exchange{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat("q", true, "")},
				Status: 200, RespHeaders: sseHeaders, Chunks: sse("a")}
			for range 30 {
				doAll(t, h, []filtertest.Exchange{one})
			}
			h.Tick() // two batches of 4 go out and are never answered
			h.Tick() // at most two in flight: nothing more goes out
			for range 10 {
				doAll(t, h, []filtertest.Exchange{one})
			}
			// 30: 8 queued, 22 dropped; the ticks take 8; 10 more: 8 queued, 2 dropped.
			if got := counter(t, h, capturefilter.MetricDroppedQueueFull); got != 24 {
				t.Errorf("%s = %d, want 24", capturefilter.MetricDroppedQueueFull, got)
			}
			if got := counter(t, h, capturefilter.MetricQueued); got != 16 {
				t.Errorf("%s = %d, want 16", capturefilter.MetricQueued, got)
			}
			if n := len(h.GetCalloutAttributesFromContext(1)); n != 3 { // the key request and two batches
				t.Errorf("%d calls to the collector, want 3", n)
			}
			if got, err := h.GetGaugeMetric(capturefilter.MetricQueueLength); err != nil || got != 8 {
				t.Errorf("%s = %d (%v), want 8", capturefilter.MetricQueueLength, got, err)
			}
			if n := countLogs(h.GetWarnLogs(), "queue full"); n != 2 {
				t.Errorf("%d 'queue full' warnings, want 2 (30 requests, then 10 after the ticks)", n)
			}
			if n := countLogs(h.GetInfoLogs(), "queue drained"); n != 1 {
				t.Errorf("%d 'queue drained' notes, want 1", n)
			}
		})
	}
}

func countLogs(logs []string, substr string) int {
	n := 0
	for _, l := range logs {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// TestDeadCollectorRecovers: batches to a collector that is down are
// dropped and counted, the first failure logged; when it is back, records
// flow and the log says how many were lost meanwhile.
func TestDeadCollectorRecovers(t *testing.T) {
	h := startHost(t, filtertest.Native, pluginConfig(`"max_batch": 4`), filtertest.Options{Answer: true})
	one := filtertest.Exchange{Method: "POST", Path: "/v1/completions", Body: [][]byte{[]byte(`{"model":"m","prompt":"p"}`)}, Status: 200}
	for range 6 {
		doAll(t, h, []filtertest.Exchange{one})
	}
	flush(t, h) // key request and two batches: no answers
	flush(t, h) // the key request again; nothing queued
	if got := counter(t, h, capturefilter.MetricDroppedCollector); got != 6 {
		t.Errorf("%s = %d, want 6", capturefilter.MetricDroppedCollector, got)
	}
	if got := counter(t, h, capturefilter.MetricBatchesFailed); got != 2 {
		t.Errorf("%s = %d, want 2", capturefilter.MetricBatchesFailed, got)
	}
	if n := countLogs(h.GetWarnLogs(), "did not take a batch"); n != 1 {
		t.Errorf("%d 'did not take a batch' warnings, want 1: %q", n, h.GetWarnLogs())
	}
	if n := countLogs(h.GetWarnLogs(), "no hash key from the collector yet"); n != 1 {
		t.Errorf("%d 'no hash key' warnings, want 1 (one per distinct reason)", n)
	}

	col := startCollector(t, filtertest.Native, ingest.Config{})
	h.Collector = col.URL
	doAll(t, h, []filtertest.Exchange{one, one})
	flush(t, h) // the key arrives; the two records (started before it) go out
	if got := counter(t, h, capturefilter.MetricSent); got != 2 || len(col.Sink.Records()) != 2 {
		t.Errorf("%s = %d, collector has %d records; want 2", capturefilter.MetricSent, got, len(col.Sink.Records()))
	}
	if n := countLogs(h.GetInfoLogs(), "collector takes batches again; 6 records were dropped"); n != 1 {
		t.Errorf("recovery not logged: %q", h.GetInfoLogs())
	}
	if got := counter(t, h, capturefilter.MetricUnhashed); got != 8 {
		t.Errorf("%s = %d, want 8 (every record started before the key)", capturefilter.MetricUnhashed, got)
	}
	doAll(t, h, []filtertest.Exchange{one})
	flush(t, h)
	recs := col.Sink.Records()
	if last := recs[len(recs)-1]; len(last.HashIDs) != 1 {
		t.Errorf("a record after the key arrived has hash ids %v, want one block", last.HashIDs)
	}
}

// TestCollectorFullOrForeign: a collector whose capture queue is full
// answers how many it dropped, and the filter counts them; a cluster that
// is not an ingest endpoint (answers without a result) costs the batch.
func TestCollectorFullOrForeign(t *testing.T) {
	col := startCollector(t, filtertest.Native, ingest.Config{})
	col.Sink.SetFull(true)
	h := startHost(t, filtertest.Native, pluginConfig(""), filtertest.Options{Collector: col.URL, Answer: true, Key: col.KeyJSON()})
	one := filtertest.Exchange{Method: "POST", Path: "/v1/completions", Body: [][]byte{[]byte(`{"model":"m","prompt":"p"}`)}, Status: 200}
	doAll(t, h, []filtertest.Exchange{one, one, one})
	flush(t, h)
	if got := counter(t, h, capturefilter.MetricCollectorFull); got != 3 {
		t.Errorf("%s = %d, want 3", capturefilter.MetricCollectorFull, got)
	}
	if st := col.Handler.Stats(); st.Dropped != 3 || st.Written != 0 {
		t.Errorf("collector stats %+v", st)
	}

	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>not here</html>"))
	}))
	defer foreign.Close()
	h.Collector = foreign.URL
	doAll(t, h, []filtertest.Exchange{one, one})
	flush(t, h)
	if got := counter(t, h, capturefilter.MetricDroppedCollector); got != 2 {
		t.Errorf("%s = %d, want 2", capturefilter.MetricDroppedCollector, got)
	}
	if n := countLogs(h.GetWarnLogs(), "without an ingest result"); n != 1 {
		t.Errorf("foreign answer not logged: %q", h.GetWarnLogs())
	}
}

// TestKeyRotation: when the collector restarts with another key, the
// batch hashed with the old one loses its keyed fields at the collector,
// and the filter fetches the new key for the next requests.
func TestKeyRotation(t *testing.T) {
	a := startCollector(t, filtertest.Native, ingest.Config{})
	other := []byte("another-collector-key-of-32-byte")
	b := startCollector(t, filtertest.Native, ingest.Config{Hasher: capture.NewHasher(other, 0), Key: other})
	h := startHost(t, filtertest.Native, pluginConfig(""), filtertest.Options{Collector: a.URL, Answer: true})
	one := filtertest.Exchange{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat("rotate", false, `"user":"carol"`)}, Status: 200}
	flush(t, h) // key a
	h.Collector = b.URL
	doAll(t, h, []filtertest.Exchange{one})
	flush(t, h) // hashed with a: b keeps the record, not its keyed fields
	if n := countLogs(h.GetWarnLogs(), "hash key changed"); n != 1 {
		t.Errorf("key change not logged: %q", h.GetWarnLogs())
	}
	flush(t, h) // fetches key b
	doAll(t, h, []filtertest.Exchange{one})
	flush(t, h)
	recs := b.Sink.Records()
	if len(recs) != 2 {
		t.Fatalf("collector b wrote %d records, want 2", len(recs))
	}
	if recs[0].Session != "" || len(recs[0].HashIDs) != 0 {
		t.Errorf("a record hashed with the old key kept session %q, ids %v", recs[0].Session, recs[0].HashIDs)
	}
	if want := b.Hasher.Session("carol"); recs[1].Session != want || len(recs[1].HashIDs) != 1 {
		t.Errorf("after the new key: session %q (want %q), ids %v", recs[1].Session, want, recs[1].HashIDs)
	}
}

// TestContentModes: the filter's content mode decides what leaves the
// gateway, and the collector's what is kept.
func TestContentModes(t *testing.T) {
	one := filtertest.Exchange{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat("secret prompt", false, `"user":"dan"`)}, Status: 200}
	for _, tc := range []struct {
		filter, collector string
		prompt, ids       bool
	}{
		{capture.ContentFull, capture.ContentFull, true, true},
		{capture.ContentFull, capture.ContentHashed, false, true},
		{capture.ContentHashed, capture.ContentFull, false, true},
		{capture.ContentNone, capture.ContentFull, false, false},
		{capture.ContentFull, capture.ContentNone, false, false},
	} {
		t.Run(tc.filter+"-to-"+tc.collector, func(t *testing.T) {
			col := startCollector(t, filtertest.Native, ingest.Config{Content: tc.collector})
			h := startHost(t, filtertest.Native, pluginConfig(`"content": "`+tc.filter+`"`),
				filtertest.Options{Collector: col.URL, Answer: true, Key: col.KeyJSON()})
			defer h.Close()
			doAll(t, h, []filtertest.Exchange{one})
			if err := h.Flush(); err != nil {
				t.Fatal(err)
			}
			sent := h.GetCalloutAttributesFromContext(1)
			if leaked := bytes.Contains(sent[len(sent)-1].Body, []byte("secret prompt")); leaked != (tc.filter == capture.ContentFull) {
				t.Errorf("prompt text in the batch: %v, filter content %s", leaked, tc.filter)
			}
			rec := col.Sink.Records()[0]
			if (rec.Prompt != "") != tc.prompt || (len(rec.HashIDs) > 0) != tc.ids {
				t.Errorf("prompt %q, hash ids %v", rec.Prompt, rec.HashIDs)
			}
			if rec.Session != col.Hasher.Session("dan") {
				t.Errorf("session %q: a keyed hash is recorded in every mode", rec.Session)
			}
		})
	}
}

// TestUnusableConfig: a configuration with mistakes is logged, problem by
// problem, and traffic passes uncaptured; the filter never fails to start.
func TestUnusableConfig(t *testing.T) {
	for _, r := range runners {
		t.Run(string(r), func(t *testing.T) {
			h := startHost(t, r, `{"collector_cluster": "", "sampel": 0.5, "content": "ful"}`, filtertest.Options{})
			doAll(t, h, script())
			h.Tick()
			if n := len(h.GetCalloutAttributesFromContext(1)); n != 0 {
				t.Errorf("%d calls without a collector", n)
			}
			if got := counter(t, h, capturefilter.MetricRequests); got != uint64(len(script())) {
				t.Errorf("%s = %d", capturefilter.MetricRequests, got)
			}
			logs := strings.Join(h.GetErrorLogs(), "\n")
			for _, want := range []string{`unknown key "sampel"`, `content: "ful"`, "collector_cluster: must not be empty", "capturing nothing"} {
				if !strings.Contains(logs, want) {
					t.Errorf("error logs lack %q:\n%s", want, logs)
				}
			}
		})
	}
}

// TestSampling: sample 0 captures nothing and counts every request.
func TestSampling(t *testing.T) {
	h := startHost(t, filtertest.Native, pluginConfig(`"sample": 0`), filtertest.Options{})
	doAll(t, h, script())
	if got := counter(t, h, capturefilter.MetricUnsampled); got != uint64(len(script())) {
		t.Errorf("%s = %d, want %d", capturefilter.MetricUnsampled, got, len(script()))
	}
	if got := counter(t, h, capturefilter.MetricQueued); got != 0 {
		t.Errorf("%s = %d, want 0", capturefilter.MetricQueued, got)
	}
}
