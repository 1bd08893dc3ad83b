package workload

import (
	"bufio"
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// benchSpan is one span of the generated benchmark traces.
type benchSpan struct {
	trace, id, parent int
	op                string
	start, end        time.Duration // from the first trace's start
	in, out           int
}

// benchTraces makes n spans of agent traces as a gateway records them
// without content: every 50 ms an agent run starts (an invoke_agent span
// around six chat calls of 200 to 4,000 prompt tokens, with three tool
// executions between them) and lasts about 20 s, so some 400 runs overlap.
// It calls emit with each trace's spans in start order.
func benchTraces(n int, emit func([]benchSpan)) {
	rng := rand.New(rand.NewPCG(1, 2))
	id := 0
	for trace := 0; id < n; trace++ {
		at := time.Duration(trace) * 50 * time.Millisecond
		root := benchSpan{trace: trace, id: id, parent: -1, op: "invoke_agent", start: at}
		id++
		spans := []benchSpan{root}
		t := at + 5*time.Millisecond
		for k := 0; k < 6 && id < n; k++ {
			d := time.Duration(300+rng.IntN(2500)) * time.Millisecond
			spans = append(spans, benchSpan{trace: trace, id: id, parent: root.id, op: "chat", start: t, end: t + d,
				in: 200 + rng.IntN(3800), out: 20 + rng.IntN(400)})
			id++
			t += d
			if k%2 == 0 && id < n {
				d := time.Duration(100+rng.IntN(900)) * time.Millisecond
				spans = append(spans, benchSpan{trace: trace, id: id, parent: root.id, op: "execute_tool", start: t, end: t + d})
				id++
				t += d
			}
		}
		spans[0].end = t
		emit(spans)
	}
}

var benchBase = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// appendBenchSpanLine writes a span in GuideLLM's span-per-line layout.
func appendBenchSpanLine(b []byte, s *benchSpan) []byte {
	b = fmt.Appendf(b, `{"trace_id":"%032x","span_id":"%016x",`, s.trace+1, s.id+1)
	if s.parent >= 0 {
		b = fmt.Appendf(b, `"parent_span_id":"%016x",`, s.parent+1)
	}
	b = append(b, `"name":"`...)
	b = append(b, s.op...)
	b = append(b, `","start_time":"`...)
	b = benchBase.Add(s.start).AppendFormat(b, "2006-01-02T15:04:05.000000Z")
	b = append(b, `","duration":`...)
	b = strconv.AppendFloat(b, (s.end - s.start).Seconds(), 'f', 3, 64)
	b = append(b, `,"status":{"code":0},"attributes":{"gen_ai.operation.name":"`...)
	b = append(b, s.op...)
	b = append(b, '"')
	if s.op == "chat" {
		b = fmt.Appendf(b, `,"gen_ai.request.model":"llama-3-8b","gen_ai.usage.input_tokens":%d,"gen_ai.usage.output_tokens":%d,"gen_ai.response.finish_reasons":["stop"]`, s.in, s.out)
	}
	return append(b, "}}\n"...)
}

// appendBenchOTLPSpan writes a span as OTLP/JSON.
func appendBenchOTLPSpan(b []byte, s *benchSpan) []byte {
	b = fmt.Appendf(b, `{"traceId":"%032x","spanId":"%016x",`, s.trace+1, s.id+1)
	if s.parent >= 0 {
		b = fmt.Appendf(b, `"parentSpanId":"%016x",`, s.parent+1)
	}
	b = fmt.Appendf(b, `"name":"%s","kind":3,"startTimeUnixNano":"%d","endTimeUnixNano":"%d","status":{},"attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"%s"}}`,
		s.op, benchBase.Add(s.start).UnixNano(), benchBase.Add(s.end).UnixNano(), s.op)
	if s.op == "chat" {
		b = fmt.Appendf(b, `,{"key":"gen_ai.request.model","value":{"stringValue":"llama-3-8b"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"%d"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"%d"}},{"key":"gen_ai.response.finish_reasons","value":{"arrayValue":{"values":[{"stringValue":"stop"}]}}}`, s.in, s.out)
	}
	return append(b, "]}"...)
}

// endHeap orders spans by end, as exporters send them.
type endHeap []benchSpan

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i].end < h[j].end }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(benchSpan)) }
func (h *endHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// writeOTelBench writes n spans to a file in the layout ("spans": one a
// line, each trace's lines together; "otlp": ExportTraceServiceRequest
// lines of 512 spans in end order, traces interleaved as an SDK's batch
// exporter sends them).
func writeOTelBench(b *testing.B, layout string, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), layout+".jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	var ended endHeap
	var batch []benchSpan
	flush := func() {
		buf = append(buf[:0], `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"gateway"}}]},"scopeSpans":[{"scope":{"name":"bench"},"spans":[`...)
		for i := range batch {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendBenchOTLPSpan(buf, &batch[i])
		}
		buf = append(buf, "]}]}]}\n"...)
		w.Write(buf)
		batch = batch[:0]
	}
	benchTraces(n, func(spans []benchSpan) {
		if layout == "spans" {
			for i := range spans {
				buf = appendBenchSpanLine(buf[:0], &spans[i])
				w.Write(buf)
			}
			return
		}
		for _, s := range spans {
			heap.Push(&ended, s)
		}
		for ended.Len() > 0 && ended[0].end <= spans[0].start {
			if batch = append(batch, heap.Pop(&ended).(benchSpan)); len(batch) == 512 {
				flush()
			}
		}
	})
	for ended.Len() > 0 {
		if batch = append(batch, heap.Pop(&ended).(benchSpan)); len(batch) == 512 {
			flush()
		}
	}
	if len(batch) > 0 {
		flush()
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkOTel reads generated OTel GenAI span files of 100,000 and
// 1,000,000 spans, in GuideLLM's span-per-line layout and as OTLP/JSON,
// and reports spans/s (wall clock) and spans per CPU second, then the
// largest live heap seen while reading (after a GC, at eight points of an
// untimed pass) and the process's peak RSS. Ten times the spans must not
// raise the heap: the reader holds the conversations that overlap in time,
// never the file.
func BenchmarkOTel(b *testing.B) {
	for _, layout := range []string{"spans", "otlp"} {
		for _, n := range []int{100_000, 1_000_000} {
			b.Run(fmt.Sprintf("%s/spans=%d", layout, n), func(b *testing.B) {
				path := writeOTelBench(b, layout, n)
				st, err := os.Stat(path)
				if err != nil {
					b.Fatal(err)
				}
				open := func() (Source, error) { return OpenOTel(path, OpenOptions{}) }
				b.ReportAllocs()
				cpu0 := cpuTime()
				passes, calls := 0, 0
				for b.Loop() {
					src, err := open()
					if err != nil {
						b.Fatal(err)
					}
					calls = 0
					for {
						_, err := src.Next()
						if errors.Is(err, io.EOF) {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
						calls++
					}
					closeSource(src)
					passes++
				}
				cpu := cpuTime() - cpu0
				b.ReportMetric(float64(n*passes)/b.Elapsed().Seconds(), "spans/s")
				if cpu > 0 {
					b.ReportMetric(float64(n*passes)/cpu.Seconds(), "spans/cpu-s")
				}
				b.StopTimer()
				heapPeak, _ := peakLiveHeap(b, open)
				b.ReportMetric(float64(heapPeak)/(1<<10), "peak-live-heap-KB")
				b.ReportMetric(float64(maxRSS())/(1<<20), "max-RSS-MB")
				b.ReportMetric(float64(st.Size())/(1<<20), "file-MB")
				b.ReportMetric(float64(calls), "calls/pass")
			})
		}
	}
}
