// Package frontends_test checks that Reprise's three front ends — the
// reverse proxy (internal/proxy), the Envoy ext_proc server
// (filters/extproc) and the proxy-wasm filter (filters/wasm/capturefilter)
// — are thin adapters over the same capture core: the same exchanges,
// driven through each with the same timing, give the same records.
package frontends_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/reprise-llm/reprise/filters/extproc"
	"github.com/reprise-llm/reprise/filters/extproc/extproctest"
	"github.com/reprise-llm/reprise/filters/wasm/filtertest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest"
	"github.com/reprise-llm/reprise/internal/proxy"
)

func TestMain(m *testing.M) {
	log.SetOutput(io.Discard) // proxytest logs every host call through the log package
	os.Exit(m.Run())
}

// All three front ends hash with the same key and block size, so hash_ids
// (remapped to small integers in first-seen order by each capture's
// Hasher) agree when the exchanges are seen in the same order.
const (
	block          = 64
	upstreamHeader = "x-gateway-destination-endpoint"
	upstreamAddr   = "10.0.0.7:8000"
)

// exchange is one request and its response, defined once and played
// through every front end.
type exchange struct {
	rid    string // x-request-id
	path   string
	body   []byte
	status int
	ctype  string        // response content-type
	think  time.Duration // upstream time before the response headers
	gap    time.Duration // before each response body chunk
	chunks [][]byte      // response body, as the upstream writes it
	// abort: the client goes away after the last chunk while the upstream
	// is still streaming (it stalls there, so every front end sees exactly
	// these chunks).
	abort bool
}

func ev(v any) []byte {
	b, _ := json.Marshal(v)
	return fmt.Appendf(nil, "data: %s\n\n", b)
}

func content(s string) []byte {
	return ev(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": s}}}})
}

func text(s string) []byte {
	return ev(map[string]any{"choices": []any{map[string]any{"index": 0, "text": s}}})
}

var (
	done   = []byte("data: [DONE]\n\n")
	system = strings.Repeat("You are a helpful assistant. ", 12) // several hash blocks, shared by the chats
)

func chatBody(user string, stream bool, extra string) []byte {
	m, _ := json.Marshal([]map[string]string{{"role": "system", "content": system}, {"role": "user", "content": user}})
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Appendf(nil, `{"model":"llama-3-8b","stream":%t,"max_tokens":64,"temperature":0.7,"top_p":0.9,"messages":%s%s}`, stream, m, extra)
}

func exchanges() []exchange {
	gap, think := 3*time.Millisecond, 5*time.Millisecond
	sse := "text/event-stream"
	return []exchange{
		{rid: "chat-usage", path: "/v1/chat/completions", status: 200, ctype: sse, think: think, gap: gap,
			body: chatBody("Say hello.", true, `"stream_options":{"include_usage":true}`),
			chunks: [][]byte{
				ev(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"role": "assistant"}}}}),
				content("Hel"), content("lo"), append(content(","), content(" world")...), // two events in one chunk
				ev(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "stop"}}}),
				ev(map[string]any{"choices": []any{}, "usage": map[string]any{"prompt_tokens": 71, "completion_tokens": 4,
					"prompt_tokens_details": map[string]any{"cached_tokens": 64}}}),
				done,
			}},
		{rid: "chat-no-usage", path: "/v1/chat/completions", status: 200, ctype: sse, think: think, gap: gap,
			body: chatBody("Say goodbye.", true, `"n":1`),
			chunks: [][]byte{
				content("Good"), content("bye"), content("!"),
				ev(map[string]any{"choices": []any{map[string]any{"index": 0, "delta": map[string]any{}, "finish_reason": "length"}}}),
				done,
			}},
		{rid: "completions", path: "/v1/completions", status: 200, ctype: sse, think: think, gap: gap,
			body: []byte(`{"model":"llama-3-8b","prompt":"Once upon a time","stream":true,"max_tokens":16}`),
			chunks: [][]byte{
				text(" there"), text(" was"), text(" a"),
				ev(map[string]any{"choices": []any{map[string]any{"index": 0, "text": " fox", "finish_reason": "stop"}},
					"usage": map[string]any{"prompt_tokens": 4, "completion_tokens": 4}}),
				done,
			}},
		{rid: "non-streamed", path: "/v1/chat/completions", status: 200, ctype: "application/json", think: 2 * think, gap: gap,
			body: chatBody("What is 2+2?", false, ""),
			chunks: func() [][]byte {
				b := []byte(`{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"4"},"finish_reason":"stop"}],"usage":{"prompt_tokens":70,"completion_tokens":1}}`)
				return [][]byte{b[:60], b[60:]}
			}()},
		{rid: "upstream-error", path: "/v1/chat/completions", status: 503, ctype: "application/json", think: think, gap: gap,
			body:   chatBody("Are you there?", true, ""),
			chunks: [][]byte{[]byte(`{"error":{"message":"no healthy endpoint","type":"server_error","code":503}}`)}},
		{rid: "client-abort", path: "/v1/chat/completions", status: 200, ctype: sse, think: think, gap: gap,
			body:   chatBody("Count to ten.", true, ""),
			chunks: [][]byte{content("one"), content(" two"), content(" three")}, abort: true},
	}
}

// sink keeps records in memory: the RecordWriter of the proxy and ext_proc.
type sink struct {
	mu   sync.Mutex
	recs []*capture.Record
}

func (s *sink) Write(r *capture.Record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, r)
	return true
}

func (s *sink) records() []*capture.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*capture.Record(nil), s.recs...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// viaProxy drives the exchanges through the reverse proxy in front of an
// upstream that writes each chunk after its gap and flushes it.
func viaProxy(t *testing.T, exs []exchange) []*capture.Record {
	byRID := map[string]exchange{}
	for _, ex := range exs {
		byRID[ex.rid] = ex
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		ex := byRID[r.Header.Get("X-Request-Id")]
		time.Sleep(ex.think)
		w.Header().Set("Content-Type", ex.ctype)
		w.Header().Set(upstreamHeader, upstreamAddr)
		w.WriteHeader(ex.status)
		fl := w.(http.Flusher)
		fl.Flush()
		for _, c := range ex.chunks {
			time.Sleep(ex.gap)
			_, _ = w.Write(c)
			fl.Flush()
		}
		if ex.abort {
			select { // stall until the proxy gives up on us
			case <-r.Context().Done():
			case <-time.After(20 * time.Second):
			}
		}
	}))
	defer upstream.Close()
	out := &sink{}
	p, err := proxy.New(proxy.Config{Upstream: upstream.URL, UpstreamHeader: upstreamHeader}, out,
		capture.NewHasher(filtertest.TestKey, block), time.Now(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(p)
	defer px.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	for i, ex := range exs {
		req, _ := http.NewRequest("POST", px.URL+ex.path, bytes.NewReader(ex.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", ex.rid)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("proxy %s: %v", ex.rid, err)
		}
		if ex.abort {
			want := 0
			for _, c := range ex.chunks {
				want += len(c)
			}
			if _, err := io.ReadFull(resp.Body, make([]byte, want)); err != nil {
				t.Fatalf("proxy %s: reading the chunks before the abort: %v", ex.rid, err)
			}
			resp.Body.Close() // the client goes away mid-stream
		} else {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != ex.status {
				t.Fatalf("proxy %s: status %d, %v", ex.rid, resp.StatusCode, err)
			}
		}
		// One exchange at a time, as in the other front ends, so hash ids
		// are assigned in the same order.
		waitFor(t, "proxy record "+ex.rid, func() bool { return len(out.records()) == i+1 })
	}
	p.Wait()
	return out.records()
}

// viaExtProc drives the exchanges through the ext_proc server as Envoy
// does in observability mode: request headers and body, then (after the
// upstream's think time) response headers and each body chunk after its
// gap, message by message. A client abort is Envoy closing the stream
// before the response ended: half-close, then reset.
func viaExtProc(t *testing.T, exs []exchange) []*capture.Record {
	out := &sink{}
	srv, err := extproc.New(extproc.Config{Capture: capture.Options{Hasher: capture.NewHasher(filtertest.TestKey, block)},
		UpstreamHeader: upstreamHeader}, out, time.Now(), zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := extproc.NewGRPCServer(srv)
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(ln) }()
	defer func() { gs.Stop(); <-served }()
	envoy, err := extproctest.Dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer envoy.Close()
	must := func(ex exchange, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("ext_proc %s: %v", ex.rid, err)
		}
	}
	for i, ex := range exs {
		s, err := envoy.Open(context.Background())
		must(ex, err)
		must(ex, s.RequestHeaders(extproctest.Request{Method: "POST", Path: ex.path, Time: time.Now(), Headers: []string{
			"x-request-id", ex.rid, "content-type", "application/json", "content-length", strconv.Itoa(len(ex.body))}}))
		must(ex, s.RequestBody(ex.body, true))
		time.Sleep(ex.think)
		must(ex, s.ResponseHeaders(extproctest.Response{Status: ex.status,
			Headers: []string{"content-type", ex.ctype, upstreamHeader, upstreamAddr}}))
		for j, c := range ex.chunks {
			time.Sleep(ex.gap)
			must(ex, s.ResponseBody(c, j == len(ex.chunks)-1 && !ex.abort))
		}
		if ex.abort {
			_ = s.CloseSend()
			time.Sleep(time.Millisecond)
			s.Reset()
		} else {
			must(ex, s.Wait())
		}
		waitFor(t, "ext_proc record "+ex.rid, func() bool { return len(out.records()) == i+1 })
	}
	srv.Wait()
	return out.records()
}

// viaWasm drives the exchanges through the wasm filter on the SDK's
// proxytest host, natively (TestRunnersAgree checks the compiled module
// against the native filter), with the same calls and gaps, and collects
// the records at a real ingest collector.
func viaWasm(t *testing.T, exs []exchange) []*capture.Record {
	hasher := capture.NewHasher(filtertest.TestKey, block)
	col, err := filtertest.NewCollector(ingest.Config{Hasher: hasher, Key: filtertest.TestKey})
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	vm, closer, err := filtertest.VM(filtertest.Native, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"collector_cluster": "collector", "collector_authority": "collector.test", "upstream_header": "` + upstreamHeader + `"}`
	h, err := filtertest.NewHost(filtertest.Native, vm, closer, []byte(cfg),
		filtertest.Options{Collector: col.URL, Answer: true, Key: col.KeyJSON()})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close() // the emulator is a process-wide singleton
	for _, ex := range exs {
		id := h.InitializeHttpContext()
		h.CallOnRequestHeaders(id, [][2]string{{":method", "POST"}, {":path", ex.path}, {"x-request-id", ex.rid},
			{"content-type", "application/json"}, {"content-length", strconv.Itoa(len(ex.body))}}, false)
		h.CallOnRequestBody(id, ex.body, true)
		time.Sleep(ex.think)
		h.CallOnResponseHeaders(id, [][2]string{{":status", strconv.Itoa(ex.status)}, {"content-type", ex.ctype},
			{upstreamHeader, upstreamAddr}}, false)
		for j, c := range ex.chunks {
			time.Sleep(ex.gap)
			h.CallOnResponseBody(id, c, j == len(ex.chunks)-1 && !ex.abort)
		}
		h.CompleteHttpContext(id) // with abort: the stream ends before the response did
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "wasm records", func() bool { return len(col.Sink.Records()) == len(exs) })
	return col.Sink.Records()
}

// requestID is the client's x-request-id as each front end keeps it: the
// proxy and the wasm filter in request_id (with an id of their own), the
// ext_proc server as the id itself (Envoy's x-request-id is unique).
func requestID(r *capture.Record) string {
	if r.RequestID != "" {
		return r.RequestID
	}
	return r.ID
}

// untimed is r reduced to what must agree exactly across front ends.
// Left out, because they legitimately differ by front end:
//   - id: each front end's own (ext_proc takes the x-request-id, the proxy
//     and the filter mint one and keep the x-request-id as request_id);
//     compared through requestID instead.
//   - wall, t: each front end's clock and capture origin, and each run's
//     arrival moment.
//   - source: names the front end ("" for the proxy, "ext_proc", "wasm").
//   - error, of an aborted record only: its text is the front end's view
//     of how the exchange broke (the proxy's "context canceled" from the
//     client going away, ext_proc's "ext_proc stream ended before the
//     response did", the filter's "stream ended before its response did");
//     only its presence is compared. An upstream's error (the 5xx body's
//     message) is compared exactly.
//
// Timings (ttfb, ttft, e2e, chunk gaps) are compared by checkTimings; here
// only the number of chunks is kept.
func untimed(r *capture.Record) capture.Record {
	c := *r
	c.ID, c.RequestID = "", requestID(r)
	c.Wall, c.T, c.Source = time.Time{}, 0, ""
	if c.Aborted && c.Error != "" {
		c.Error = "(present)"
	}
	c.TTFBNs, c.TTFTNs, c.E2ENs = 0, 0, 0
	c.ChunksUS = make([]int64, len(r.ChunksUS))
	return c
}

// Timing tolerance. This is a consistency check, not a precision claim
// (precision is measured by the benchmarks under bench/): every front end
// must record each timing in the same places, and the three values must be
// within max(toleranceAbs, toleranceRel × the larger) of each other — loose
// enough never to flake on a loaded 2-core machine under -race, tight
// enough to catch a timing taken at the wrong event (the exchanges' think
// times and gaps add up to tens of ms).
const (
	toleranceAbs = 50 * time.Millisecond
	toleranceRel = 0.5
)

func within(a, b int64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return time.Duration(d) <= max(toleranceAbs, time.Duration(toleranceRel*float64(max(a, b))))
}

// timings are a record's timings from arrival, in ns: ttfb, ttft, e2e, then
// each output event's offset (the running sum of chunks_us).
func timings(r *capture.Record) []int64 {
	ts := []int64{r.TTFBNs, r.TTFTNs, r.E2ENs}
	var off int64
	for _, d := range r.ChunksUS {
		off += d
		ts = append(ts, off*1000)
	}
	return ts
}

var timingNames = []string{"ttfb", "ttft", "e2e"}

func timingName(i int) string {
	if i < len(timingNames) {
		return timingNames[i]
	}
	return fmt.Sprintf("chunk %d offset", i-len(timingNames))
}

func TestFrontEndsRecordTheSame(t *testing.T) {
	exs := exchanges()
	runs := []struct {
		name string
		recs []*capture.Record
	}{
		{"proxy", viaProxy(t, exs)},
		{"ext_proc", viaExtProc(t, exs)},
		{"wasm", viaWasm(t, exs)},
	}
	byFE := make([]map[string]*capture.Record, len(runs))
	for i, run := range runs {
		byFE[i] = map[string]*capture.Record{}
		for _, r := range run.recs {
			if byFE[i][requestID(r)] != nil {
				t.Fatalf("%s: two records for %s", run.name, requestID(r))
			}
			byFE[i][requestID(r)] = r
		}
		if len(run.recs) != len(exs) {
			t.Errorf("%s: %d records, want %d", run.name, len(run.recs), len(exs))
		}
	}
	for _, ex := range exs {
		t.Run(ex.rid, func(t *testing.T) {
			recs := make([]*capture.Record, len(runs))
			for i, run := range runs {
				if recs[i] = byFE[i][ex.rid]; recs[i] == nil {
					t.Fatalf("%s: no record", run.name)
				}
			}
			checkExpected(t, ex, runs[0].name, recs[0])
			for i, run := range runs {
				b, _ := json.Marshal(recs[i])
				t.Logf("%-8s %s", run.name, b)
			}
			base := untimed(recs[0])
			for i := 1; i < len(runs); i++ {
				if got := untimed(recs[i]); !reflect.DeepEqual(base, got) {
					a, _ := json.Marshal(base)
					b, _ := json.Marshal(got)
					t.Errorf("records differ beyond timings:\n%-8s %s\n%-8s %s", runs[0].name, a, runs[i].name, b)
				}
			}
			ts := make([][]int64, len(runs))
			for i := range runs {
				ts[i] = timings(recs[i])
			}
			for i := 0; i < len(runs); i++ {
				for j := i + 1; j < len(runs); j++ {
					if len(ts[i]) != len(ts[j]) {
						continue // chunk counts differ: reported above
					}
					for k := range ts[i] {
						a, b := ts[i][k], ts[j][k]
						switch {
						case (a > 0) != (b > 0):
							t.Errorf("%s: %s %v, %s %v: present in one only", timingName(k), runs[i].name, time.Duration(a), runs[j].name, time.Duration(b))
						case !within(a, b):
							t.Errorf("%s: %s %v, %s %v: beyond max(%v, %.0f%%)", timingName(k), runs[i].name, time.Duration(a),
								runs[j].name, time.Duration(b), toleranceAbs, toleranceRel*100)
						}
					}
				}
			}
		})
	}
}

// checkExpected pins what the exchange must give, so that three front ends
// agreeing on a wrong record fails too.
func checkExpected(t *testing.T, ex exchange, name string, r *capture.Record) {
	t.Helper()
	if r.Path != ex.path || r.Method != "POST" || r.Model != "llama-3-8b" || r.Status != ex.status {
		t.Errorf("%s: path %q method %q model %q status %d", name, r.Path, r.Method, r.Model, r.Status)
	}
	if ex.abort != r.Aborted {
		t.Errorf("%s: aborted %v, want %v", name, r.Aborted, ex.abort)
	}
	if (ex.abort || ex.status >= 500) != (r.Error != "") {
		t.Errorf("%s: error %q", name, r.Error)
	}
	if r.TTFBNs <= 0 || r.E2ENs < r.TTFBNs {
		t.Errorf("%s: ttfb %d e2e %d", name, r.TTFBNs, r.E2ENs)
	}
}
