package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/stats"
)

// BenchmarkMerge measures replay merge on SHARDS shards of REQUESTS
// requests each (defaults 8 × 1,000,000, issue 13's size; make
// bench-shard): wall time, results merged per second and the live heap's
// peak while merging. The shard files are written first (not timed): each
// request a streamed result with 8 chunks.
func BenchmarkMerge(b *testing.B) {
	shards, requests := envInt("SHARDS", 8), envInt("REQUESTS", 1_000_000)
	dir := b.TempDir()
	origin := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for i := range shards {
		writeSyntheticShard(b, filepath.Join(dir, fmt.Sprintf("shard-%d", i)), i, shards, requests, origin)
	}
	b.ResetTimer()
	for range b.N {
		stop := peakHeap()
		t0 := time.Now()
		f, err := Merge([]string{dir})
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		peak := stop()
		if got := f.Benchmarks[0].Metrics.Requests.Total; got != int64(shards*requests) {
			b.Fatalf("merged %d requests, want %d", got, shards*requests)
		}
		b.ReportMetric(d.Seconds(), "merge-s")
		b.ReportMetric(float64(shards*requests)/d.Seconds(), "results/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// writeSyntheticShard writes shard i of n: its state file and its
// benchmarks.json, requests results of a constant 1,000 req/s plan.
func writeSyntheticShard(b *testing.B, dir string, i, n, requests int, origin time.Time) {
	s := Shard{i, n}
	h := shardHeader{Format: shardFormat, Version: shardVersion, Shard: s.String(), Index: i, Count: n, Plan: "bench",
		Name: "candidate", Target: "http://bench", Profile: engine.ProfileConstant, Stats: shardStats{RequestedRate: 1000, OpenLoop: true, LagThresholdMs: 10}}
	w, err := newShardWriter(filepath.Join(dir, ShardFile), h)
	if err != nil {
		b.Fatal(err)
	}
	for k := range requests {
		idx := k*n + i
		at := time.Duration(idx) * time.Millisecond
		r := engine.Result{Index: idx, Endpoint: "chat", Stream: true, Intended: at, Sent: at + 50*time.Microsecond,
			FirstByte: at + 3*time.Millisecond, FirstToken: at + 5*time.Millisecond, Status: 200, PromptTokens: 100, OutputTokens: 8,
			TokensFromUsage: true, RequestedPromptTokens: 100, RequestedOutputTokens: 8}
		for c := range 8 {
			r.Chunks = append(r.Chunks, r.FirstToken+time.Duration(c)*time.Millisecond)
			r.ChunkTokens = append(r.ChunkTokens, 1)
		}
		r.LastToken, r.End = r.Chunks[7], r.Chunks[7]+time.Millisecond
		w.record(&r)
	}
	if err := w.finish(&engine.Run{Start: origin, StopReason: engine.StopMaxRequests}, stats.Distribution{}); err != nil {
		b.Fatal(err)
	}
	f := &report.File{Tool: "reprise", Benchmarks: []report.Benchmark{{Name: "candidate", Start: origin, Config: report.RunConfig{Shard: s.String(), Plan: "bench"}}}}
	if err := report.WriteFileAtomic(filepath.Join(dir, report.JSONFile), func(w io.Writer) error { return report.WriteJSON(w, f) }); err != nil {
		b.Fatal(err)
	}
}

// peakHeap samples the live heap every 10 ms until stop, which returns
// the peak.
func peakHeap() (stop func() uint64) {
	done := make(chan struct{})
	res := make(chan uint64)
	go func() {
		var peak uint64
		var m runtime.MemStats
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-done:
				res <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-res }
}
