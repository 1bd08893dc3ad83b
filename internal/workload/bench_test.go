package workload

import (
	"errors"
	"io"
	"path/filepath"
	"testing"
)

// BenchmarkMooncake reads the public Mooncake conversation trace; records/s
// is the figure that matters (the target is 500,000 on one core).
func BenchmarkMooncake(b *testing.B) {
	path := filepath.Join(traces(b), "mooncake-conversation.jsonl")
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		src, err := OpenMooncake(path, OpenOptions{})
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
		src.Close()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
