package workload

import (
	"errors"
	"io"
	"path/filepath"
	"runtime"
	"testing"
)

// benchSource reads a whole trace per iteration and reports records/s and
// the bytes allocated per record (which must not grow with the file:
// TestStreamingMemory checks the heap itself).
func benchSource(b *testing.B, open func() (Source, error)) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
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
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(max(n, 1)), "B/record")
}

// BenchmarkMooncake reads the public Mooncake conversation trace (12,031
// rows of about 24 hash ids); the target is 500,000 records/s on one core.
func BenchmarkMooncake(b *testing.B) {
	path := filepath.Join(traces(b), "mooncake-conversation.jsonl")
	benchSource(b, func() (Source, error) { return OpenMooncake(path, OpenOptions{}) })
}

// BenchmarkAzure reads the public Azure 2023 code trace (8,819 rows).
func BenchmarkAzure(b *testing.B) {
	path := filepath.Join(traces(b), "azure-2023-code.csv")
	benchSource(b, func() (Source, error) { return OpenAzure(path, OpenOptions{}) })
}

// BenchmarkMooncakeTransformed reads the Mooncake trace through a window,
// a sample, a time scale, caps, a model map and a shard (records/s counts
// the requests read from the file, kept or not): transforms must not be
// what limits reading.
func BenchmarkMooncakeTransformed(b *testing.B) {
	path := filepath.Join(traces(b), "mooncake-conversation.jsonl")
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
