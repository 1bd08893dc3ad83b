// Command wasmbench measures the proxy-wasm capture filter (make
// bench-wasm): the module's size; CPU per request in the filter compiled
// to wasm and run by wazero on the SDK's proxytest host, against the same
// filter run natively on the same host as the in-run baseline; and heap
// allocation per request.
//
// Each request is a streamed chat completion: an 8 KiB prompt (4 hash
// blocks, hashing on), 128 SSE events and a usage event, every event its
// own response chunk. Every cell is measured with the filter capturing and
// with it sampling nothing (sample 0: the host emulator, the SDK and the
// callbacks' dispatch), and "filter" is the difference: what capture costs.
// Runs interleave (native, wasm, ...) over rounds; medians are printed.
// Allocations inside the module are read from the Go runtime in the module
// (a reprise_benchstats build logs them on each tick); natively, from this
// process, minus the sample-0 run's.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/reprise-llm/reprise/filters/wasm/capturefilter"
	"github.com/reprise-llm/reprise/filters/wasm/filtertest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/ingest/wire"
)

const (
	requests = 2000 // per measured run
	warmup   = 100
	rounds   = 3
	events   = 128
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wasmbench:", err)
		os.Exit(1)
	}
}

// result is one measured run.
type result struct {
	cpu, wall      time.Duration // per request
	allocs, bytes  float64       // per request
	sent, expected int
}

func run(out io.Writer) error {
	log.SetOutput(io.Discard) // the emulator logs every host call
	dir, err := os.MkdirTemp("", "wasmbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	prod, err := filtertest.Build(dir)
	if err != nil {
		return err
	}
	build := time.Since(t0)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	_, _ = zw.Write(prod)
	_ = zw.Close()
	statsDir := dir + "/stats"
	if err := os.Mkdir(statsDir, 0o755); err != nil {
		return err
	}
	mod, err := filtertest.Build(statsDir, "reprise_benchstats")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "module: %d bytes (%.2f MiB; gzip -9 %.2f MiB), built in %v (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared -trimpath, %s)\n",
		len(prod), float64(len(prod))/(1<<20), float64(gz.Len())/(1<<20), build.Round(time.Millisecond), runtime.Version())

	key, _ := json.Marshal(wire.Key{Key: filtertest.TestKey, KeyID: capture.NewHasher(filtertest.TestKey, 0).KeyID(), Block: capture.DefaultBlockChars})
	ex := exchange()
	cells := map[string][]result{}
	for range rounds {
		for _, r := range []filtertest.Runner{filtertest.Native, filtertest.Wasm} {
			for _, sample := range []string{"1", "0"} {
				res, err := measure(r, mod, key, sample, ex)
				if err != nil {
					return fmt.Errorf("%s, sample %s: %w", r, sample, err)
				}
				name := string(r) + "/" + sample
				cells[name] = append(cells[name], res)
			}
		}
	}
	med := func(name string, f func(result) float64) float64 {
		var v []float64
		for _, r := range cells[name] {
			v = append(v, f(r))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	cpu := func(r result) float64 { return float64(r.cpu) / 1e3 }
	wall := func(r result) float64 { return float64(r.wall) / 1e3 }
	fmt.Fprintf(out, "per request (streamed chat: 8 KiB prompt, %d events; %d requests x %d rounds, medians), microseconds:\n", events, requests, rounds)
	fmt.Fprintf(out, "  %-34s %10s %14s %7s\n", "", "native", "wasm (wazero)", "ratio")
	row := func(label string, n, w float64) {
		fmt.Fprintf(out, "  %-34s %10.1f %14.1f %6.1fx\n", label, n, w, w/n)
	}
	nc, wc := med("native/1", cpu), med("wasm/1", cpu)
	np, wp := med("native/0", cpu), med("wasm/0", cpu)
	row("CPU, capturing", nc, wc)
	row("CPU, sampling nothing (host+SDK)", np, wp)
	row("CPU of the filter (difference)", nc-np, wc-wp)
	row("wall, capturing", med("native/1", wall), med("wasm/1", wall))
	alloc := func(name string) (float64, float64) {
		return med(name, func(r result) float64 { return r.allocs }), med(name, func(r result) float64 { return r.bytes })
	}
	na, nb := alloc("native/1")
	pa, pb := alloc("native/0")
	wa, wb := alloc("wasm/1")
	fmt.Fprintf(out, "heap allocation per request: native filter %.0f allocs, %.1f KiB (sample-0 run subtracted); in the wasm module %.0f allocs, %.1f KiB (its Go runtime's count)\n",
		na-pa, (nb-pb)/1024, wa, wb/1024)
	for name, rs := range cells {
		for _, r := range rs {
			if r.sent != r.expected {
				return fmt.Errorf("%s: %d records queued, want %d", name, r.sent, r.expected)
			}
		}
	}
	return nil
}

// exchange is the measured request.
func exchange() filtertest.Exchange {
	prompt := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 8192/45)
	body, _ := json.Marshal(map[string]any{"model": "bench", "stream": true, "max_tokens": 256,
		"messages": []map[string]string{{"role": "user", "content": prompt}}})
	var chunks [][]byte
	for i := range events {
		chunks = append(chunks, fmt.Appendf(nil, `data: {"id":"c","choices":[{"index":0,"delta":{"content":"tok%d "}}]}`+"\n\n", i))
	}
	chunks = append(chunks, []byte(`data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":2000,"completion_tokens":128}}`+"\n\n"),
		[]byte("data: [DONE]\n\n"))
	return filtertest.Exchange{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{body},
		Headers: [][2]string{{"x-request-id", "bench"}}, Status: 200,
		RespHeaders: [][2]string{{"content-type", "text/event-stream"}}, Chunks: chunks}
}

// measure runs warmup then requests exchanges through the filter on r.
func measure(r filtertest.Runner, mod, key []byte, sample string, ex filtertest.Exchange) (result, error) {
	vm, closer, err := filtertest.VM(r, mod)
	if err != nil {
		return result{}, err
	}
	cfg := `{"collector_cluster":"collector","max_queue":65536,"sample":` + sample + `}`
	h, err := filtertest.NewHost(r, vm, closer, []byte(cfg), filtertest.Options{Key: key})
	if err != nil {
		return result{}, err
	}
	defer h.Close()
	for range warmup {
		if err := h.Do(ex); err != nil {
			return result{}, err
		}
	}
	h.Tick() // the benchstats line before; the warm-up's records go out
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0, w0 := cpuTime(), time.Now()
	for range requests {
		if err := h.Do(ex); err != nil {
			return result{}, err
		}
	}
	c1, w1 := cpuTime(), time.Now()
	runtime.ReadMemStats(&m1)
	h.Tick() // the benchstats line after
	res := result{cpu: (c1 - c0) / requests, wall: w1.Sub(w0) / requests,
		allocs: float64(m1.Mallocs-m0.Mallocs) / requests, bytes: float64(m1.TotalAlloc-m0.TotalAlloc) / requests}
	if r == filtertest.Wasm {
		a, b, err := moduleAllocs(h.GetInfoLogs())
		if err != nil {
			err = fmt.Errorf("%w; info %q; errors %q", err, h.GetInfoLogs(), h.GetErrorLogs())
		}
		if err != nil {
			return result{}, err
		}
		res.allocs, res.bytes = a/requests, b/requests
	}
	q, err := h.GetCounterMetric(capturefilter.MetricQueued)
	if err != nil {
		return result{}, err
	}
	res.sent = int(q)
	if sample == "1" {
		res.expected = warmup + requests
	}
	return res, nil
}

// moduleAllocs is the difference between the last two benchstats lines.
func moduleAllocs(logs []string) (allocs, bytes float64, err error) {
	var lines [][2]float64
	for _, l := range logs {
		if rest, ok := strings.CutPrefix(l, capturefilter.BenchStatsPrefix); ok {
			var m, t, s uint64
			if _, err := fmt.Sscanf(rest, "mallocs=%d total_alloc=%d heap_sys=%d", &m, &t, &s); err != nil {
				return 0, 0, fmt.Errorf("benchstats line %q: %w", l, err)
			}
			lines = append(lines, [2]float64{float64(m), float64(t)})
		}
	}
	if len(lines) < 2 {
		return 0, 0, fmt.Errorf("the module logged %d benchstats lines, want 2: built without the reprise_benchstats tag? (%d info lines)", len(lines), len(logs))
	}
	a, b := lines[len(lines)-2], lines[len(lines)-1]
	return b[0] - a[0], b[1] - a[1], nil
}

// cpuTime is this process's user+system CPU time: wazero runs the module
// in-process, so it counts the module too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
