package workload

import (
	"errors"
	"io"
	"path/filepath"
	"testing"
)

// benchSource reads a whole trace per iteration and reports records/s.
func benchSource(b *testing.B, open func() (Source, error)) {
	b.ReportAllocs()
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
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
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
