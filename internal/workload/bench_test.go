package workload

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/reprise-llm/reprise/internal/tracestest"
)

// benchSource reads a whole trace per iteration and reports records/s (wall
// clock), records per CPU second (the speed of one core, whatever else the
// machine runs; the process's CPU time includes the GC) and the bytes
// allocated per record (which must not grow with the file:
// TestStreamingMemory checks the heap itself).
func benchSource(b *testing.B, open func() (Source, error)) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := cpuTime()
	n := 0
	for b.Loop() {
		src, err := open()
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := src.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		closeSource(src)
	}
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	if cpu > 0 {
		b.ReportMetric(float64(n)/cpu.Seconds(), "records/cpu-s")
	}
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(max(n, 1)), "B/record")
}

// BenchmarkMooncake reads the public Mooncake conversation trace (12,031
// rows of about 24 hash ids); the target is 500,000 records/s on one core.
func BenchmarkMooncake(b *testing.B) {
	path := filepath.Join(tracestest.Dir(b), tracestest.Mooncake)
	benchSource(b, func() (Source, error) { return OpenMooncake(path, OpenOptions{}) })
}

// BenchmarkAzure reads the public Azure 2023 code trace (8,819 rows).
func BenchmarkAzure(b *testing.B) {
	path := filepath.Join(tracestest.Dir(b), tracestest.Azure)
	benchSource(b, func() (Source, error) { return OpenAzure(path, OpenOptions{}) })
}

// BenchmarkMooncakeTransformed reads the Mooncake trace through a window,
// a sample, a time scale, caps, a model map and a shard (records/s counts
// the requests read from the file, kept or not): transforms must not be
// what limits reading.
func BenchmarkMooncakeTransformed(b *testing.B) {
	path := filepath.Join(tracestest.Dir(b), tracestest.Mooncake)
	tr := Transforms{WindowEnd: 1 << 62, Fraction: 0.9, TimeScale: 0.5, MaxPromptTokens: 4096, MaxOutputTokens: 256,
		ModelMap: map[string]string{"*": "m"}, ShardIndex: 1, ShardCount: 2}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		raw, err := OpenMooncake(path, OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		counted := Map(raw, func(*Request) { n++ })
		src, err := tr.Apply(func() (Source, error) { return counted, nil })
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := src.Next(); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		closeSource(src)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkPromptsJSONL reads a file of 10,000 prompts.
func BenchmarkPromptsJSONL(b *testing.B) {
	path := filepath.Join(b.TempDir(), "p.jsonl")
	writeLines(b, path, 10000, func(i int) string {
		return `{"prompt":"Summarise the following text in three sentences: lorem ipsum dolor sit amet","output_tokens":128}`
	})
	benchSource(b, func() (Source, error) { return OpenPrompts(path, OpenOptions{}) })
}

// BenchmarkMooncakeConcatenated reads the public Mooncake trace from a file
// holding it once (x1) and twenty times over (x20, about 60 MB), and reports
// records/s with the largest live heap seen while reading (after a GC, at
// eight points of an untimed pass) and the process's peak RSS so far. x20
// runs after x1: equal heaps and an RSS that x20 does not raise show that
// memory does not depend on the file's size.
func BenchmarkMooncakeConcatenated(b *testing.B) {
	trace, err := os.ReadFile(filepath.Join(tracestest.Dir(b), tracestest.Mooncake))
	if err != nil {
		b.Fatal(err)
	}
	for _, copies := range []int{1, 20} {
		b.Run(fmt.Sprintf("x%d", copies), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "concat.jsonl")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			for range copies {
				if _, err := f.Write(trace); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			open := func() (Source, error) { return OpenMooncake(path, OpenOptions{}) }
			benchSource(b, open)
			b.StopTimer()
			heap, n := peakLiveHeap(b, open)
			b.ReportMetric(float64(heap)/(1<<10), "peak-live-heap-KB")
			b.ReportMetric(float64(maxRSS())/(1<<20), "max-RSS-MB")
			b.ReportMetric(float64(n), "records/pass")
		})
	}
}

// peakLiveHeap reads open's source once and returns the largest live heap
// (HeapAlloc after a GC) at eight evenly spaced points, and the records read.
func peakLiveHeap(b *testing.B, open func() (Source, error)) (uint64, int) {
	src, err := open()
	if err != nil {
		b.Fatal(err)
	}
	defer closeSource(src)
	total, _, err := Measure(openOrFail(b, open))
	if err != nil {
		b.Fatal(err)
	}
	step := max(total/8, 1)
	var peak uint64
	for n := 1; ; n++ {
		if _, err := src.Next(); errors.Is(err, io.EOF) {
			return peak, n - 1
		} else if err != nil {
			b.Fatal(err)
		}
		if n%step == 0 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
		}
	}
}

func openOrFail(b *testing.B, open func() (Source, error)) Source {
	src, err := open()
	if err != nil {
		b.Fatal(err)
	}
	return src
}
