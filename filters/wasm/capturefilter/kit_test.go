package capturefilter_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/filters/wasm/filtertest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest"
)

// The compiled module, built once for the package (TestMain removes it).
var (
	moduleOnce sync.Once
	moduleDir  string
	module     []byte
	moduleErr  error
)

func TestMain(m *testing.M) {
	log.SetOutput(io.Discard) // proxytest logs every host call and batch through the log package
	code := m.Run()
	if moduleDir != "" {
		_ = os.RemoveAll(moduleDir)
	}
	os.Exit(code)
}

// wasmModule builds the filter with the go command, once per test binary.
func wasmModule(t testing.TB) []byte {
	t.Helper()
	moduleOnce.Do(func() {
		if moduleDir, moduleErr = os.MkdirTemp("", "reprise-wasm-filter-"); moduleErr != nil {
			return
		}
		module, moduleErr = filtertest.Build(moduleDir)
	})
	if moduleErr != nil {
		t.Fatal(moduleErr)
	}
	return module
}

// runners are the two ways every behaviour test runs the filter.
var runners = []filtertest.Runner{filtertest.Native, filtertest.Wasm}

// startHost starts the filter on r with config, closing it at the test's end.
func startHost(t *testing.T, r filtertest.Runner, config string, o filtertest.Options) *filtertest.Host {
	t.Helper()
	var mod []byte
	if r == filtertest.Wasm {
		mod = wasmModule(t)
	}
	vm, closer, err := filtertest.VM(r, mod)
	if err != nil {
		t.Fatal(err)
	}
	h, err := filtertest.NewHost(r, vm, closer, []byte(config), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// startCollector serves an ingest endpoint for the test. wasm collectors
// judge wall times by wazero's fake clock.
func startCollector(t *testing.T, r filtertest.Runner, cfg ingest.Config) *filtertest.Collector {
	t.Helper()
	if r == filtertest.Wasm && cfg.Now == nil {
		cfg.Now = func() time.Time { return filtertest.WazeroEpoch }
	}
	c, err := filtertest.NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// pluginConfig is a filter configuration for the collector cluster
// "collector", with extra members.
func pluginConfig(extra string) string {
	if extra != "" {
		extra = ", " + extra
	}
	return `{"collector_cluster": "collector", "collector_authority": "collector.test"` + extra + `}`
}

func counter(t *testing.T, h *filtertest.Host, name string) uint64 {
	t.Helper()
	v, err := h.GetCounterMetric(name)
	if err != nil {
		t.Fatalf("metric %s: %v", name, err)
	}
	return v
}

// doAll drives the exchanges, failing on any that the filter held.
func doAll(t *testing.T, h *filtertest.Host, ex []filtertest.Exchange) {
	t.Helper()
	for _, e := range ex {
		if err := h.Do(e); err != nil {
			t.Fatal(err)
		}
	}
}

func flush(t *testing.T, h *filtertest.Host) {
	t.Helper()
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
}

// sse is an event stream of chat completion chunks, one per content
// piece, then a finish chunk with usage and [DONE]: one response chunk
// per event.
func sse(pieces ...string) [][]byte {
	var out [][]byte
	for _, p := range pieces {
		b, _ := json.Marshal(p)
		out = append(out, fmt.Appendf(nil, `data: {"choices":[{"index":0,"delta":{"content":%s}}]}`+"\n\n", b))
	}
	out = append(out, []byte(`data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":`+
		fmt.Sprint(len(pieces))+`}}`+"\n\n"), []byte("data: [DONE]\n\n"))
	return out
}

// chat is a chat completions request body.
func chat(prompt string, stream bool, extra string) []byte {
	b, _ := json.Marshal(prompt)
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Appendf(nil, `{"model":"m1","stream":%t,"max_tokens":64,"messages":[{"role":"user","content":%s}]%s}`, stream, b, extra)
}

var sseHeaders = [][2]string{{"content-type", "text/event-stream"}}

// script is the traffic both runners must capture alike: streamed and
// plain chat, completions, embeddings, another path, a body that is not
// JSON, an aborted stream, a request split over chunks, an encoded
// response, and shared prefixes.
func script() []filtertest.Exchange {
	long := strings.Repeat("You are a helpful assistant. ", 200) // several hash blocks
	return []filtertest.Exchange{
		{Method: "POST", Path: "/v1/chat/completions", Headers: [][2]string{{"x-request-id", "req-1"}, {"x-session", "alice"},
			{"authorization", "Bearer sk-secret-never-recorded"}},
			Body: [][]byte{chat(long+"first question", true, "")}, Status: 200,
			RespHeaders: append([][2]string{{"x-gateway-destination-endpoint", "10.0.0.7:8000"}}, sseHeaders...),
			Chunks:      sse("Hel", "lo", " there")},
		{Method: "POST", Path: "/v1/chat/completions?api-version=1", Headers: [][2]string{{"x-session", "alice"}},
			Body:   splitBody(chat(long+"second question", true, `"user":"ignored-when-header"`), 3),
			Status: 200, RespHeaders: sseHeaders, Chunks: sse("a", "b")},
		{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat("short", false, `"user":"bob"`)}, Status: 200,
			RespHeaders: [][2]string{{"content-type", "application/json"}},
			Chunks: [][]byte{[]byte(`{"choices":[{"index":0,"message":{"role":"assistant","content":"hi!"},"finish_reason":"stop"}],`),
				[]byte(`"usage":{"prompt_tokens":3,"completion_tokens":2}}`)}},
		{Method: "POST", Path: "/v1/completions", Body: [][]byte{[]byte(`{"model":"m2","prompt":"Once upon","max_tokens":5,"stream":true}`)},
			Status: 200, RespHeaders: sseHeaders,
			Chunks: [][]byte{[]byte("data: {\"choices\":[{\"text\":\" a\"}]}\n\ndata: {\"choices\":[{\"text\":\" time\",\"finish_reason\":\"length\"}]}\n\n"),
				[]byte("data: [DONE]\n\n")}},
		{Method: "POST", Path: "/v1/embeddings", Body: [][]byte{[]byte(`{"model":"e1","input":"embed me"}`)}, Status: 200,
			RespHeaders: [][2]string{{"content-type", "application/json"}},
			Chunks:      [][]byte{[]byte(`{"data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":2,"total_tokens":2}}`)}},
		{Method: "GET", Path: "/v1/models", Status: 200, RespHeaders: [][2]string{{"content-type", "application/json"}},
			Chunks: [][]byte{[]byte(`{"data":[]}`)}},
		{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{[]byte("this is not JSON {")}, Status: 400,
			RespHeaders: [][2]string{{"content-type", "application/json"}},
			Chunks:      [][]byte{[]byte(`{"error":{"message":"bad request, key sk-abcdefghijklmnopqrstuvwx"}}`)}},
		{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat(long+"third", true, "")}, Status: 200,
			RespHeaders: sseHeaders, Chunks: sse("x", "y", "z")[:2], Abort: true},
		{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat("zipped", true, "")}, Status: 200,
			RespHeaders: [][2]string{{"content-type", "text/event-stream"}, {"content-encoding", "gzip"}},
			Chunks:      [][]byte{{0x1f, 0x8b, 0x08, 0x00}}},
		{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{chat("never answered", true, "")}, Abort: true},
	}
}

// splitBody cuts b into n chunks.
func splitBody(b []byte, n int) [][]byte {
	var out [][]byte
	step := (len(b) + n - 1) / n
	for len(b) > 0 {
		k := min(step, len(b))
		out = append(out, b[:k])
		b = b[k:]
	}
	return out
}

// byID orders records by their sequence number (the id's suffix), the
// order the filter finished them in.
func byID(recs []*capture.Record) map[string]*capture.Record {
	m := make(map[string]*capture.Record, len(recs))
	for _, r := range recs {
		_, seq, _ := strings.Cut(r.ID, "-")
		m[seq] = r
	}
	return m
}
