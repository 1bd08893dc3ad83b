package stats

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Online, fed concurrently, sums up to what Summarize computes over the
// same results.
func TestOnlineEqualsSummarize(t *testing.T) {
	var all []engine.Result
	for k := range 40 {
		for _, r := range fixture() {
			shift := time.Duration(k) * 700 * time.Millisecond
			r.Index += 5 * k
			r.Intended, r.Sent, r.End = r.Intended+shift, r.Sent+shift, r.End+shift
			if r.FirstByte > 0 {
				r.FirstByte += shift
			}
			if r.FirstToken > 0 {
				r.FirstToken, r.LastToken = r.FirstToken+shift, r.LastToken+shift
			}
			chunks := make([]time.Duration, len(r.Chunks))
			for i, c := range r.Chunks {
				chunks[i] = c + shift
			}
			r.Chunks = chunks
			all = append(all, r)
		}
	}
	opts := Options{SLO: &SLO{TTFTMs: 250}, RequestedRate: 7}
	on := NewOnline(opts)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(all); i += 8 {
				on.Record(&all[i])
			}
		})
	}
	wg.Wait()
	if g, w := on.Metrics(), Summarize(all, opts); !sameMetrics(t, g, w) {
		t.Errorf("online metrics differ:\n got %s\nwant %s", roundedJSON(t, g), roundedJSON(t, w))
	}
}

// Recorded as they end, with DiscardChunks: the run keeps no chunk
// offsets, only their count, and the metrics are those of the full
// results.
func TestOnlineWithDiscardedChunks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 5 {
			_, _ = fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"t%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer srv.Close()
	var mu sync.Mutex
	var full []engine.Result
	on := NewOnline(Options{})
	cfg := engine.Config{Target: srv.URL, Profile: engine.ProfileConcurrent, Concurrency: 4, MaxRequests: 40,
		DiscardChunks: true,
		OnResult: func(r engine.Result) {
			on.Record(&r)
			mu.Lock()
			full = append(full, r)
			mu.Unlock()
		}}
	src := &sliceSource{}
	for i := range 40 {
		src.reqs = append(src.reqs, workload.Request{Index: i, Endpoint: openai.Chat, Stream: true, OutputTokens: 5})
	}
	run, err := engine.Execute(context.Background(), cfg, src, chatBodies{})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 40 || len(full) != 40 {
		t.Fatalf("%d results, %d seen by OnResult", len(run.Results), len(full))
	}
	for _, r := range run.Results {
		if r.Chunks != nil || r.ChunkTokens != nil || r.ChunkCount != 5 || r.NumChunks() != 5 || !r.OK() {
			t.Fatalf("kept result: %d chunks, %d token counts, count %d, err %q", len(r.Chunks), len(r.ChunkTokens), r.ChunkCount, r.Err)
		}
	}
	m := on.Metrics()
	if g, w := m, Summarize(full, Options{}); !sameMetrics(t, g, w) {
		t.Errorf("online metrics differ from the full results':\n got %s\nwant %s", roundedJSON(t, g), roundedJSON(t, w))
	}
	if m.InterChunkLatency.Count != 40*4 {
		t.Errorf("inter-chunk gaps %d, want 160", m.InterChunkLatency.Count)
	}
}

type sliceSource struct {
	reqs []workload.Request
	i    int
}

func (s *sliceSource) Next() (workload.Request, error) {
	if s.i >= len(s.reqs) {
		return workload.Request{}, io.EOF
	}
	s.i++
	return s.reqs[s.i-1], nil
}

type chatBodies struct{}

func (chatBodies) Body(req *workload.Request, _ string) ([]byte, error) {
	return fmt.Appendf(nil, `{"model":"m","stream":true,"max_tokens":%d,"messages":[{"role":"user","content":"%d"}]}`, req.OutputTokens, req.Index), nil
}

// sameMetrics says a and b are equal up to the last bits of float sums:
// the online recorders add the same values in another order (per shard,
// then merged), so a mean may differ by an ulp, which rounding to a fixed
// number of places can turn into a visible digit.
func sameMetrics(t *testing.T, a, b Metrics) bool {
	t.Helper()
	var x, y any
	for _, p := range []struct {
		m   Metrics
		out *any
	}{{a, &x}, {b, &y}} {
		raw, err := json.Marshal(p.m)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, p.out); err != nil {
			t.Fatal(err)
		}
	}
	var same func(x, y any) bool
	same = func(x, y any) bool {
		switch x := x.(type) {
		case float64:
			y, ok := y.(float64)
			return ok && math.Abs(x-y) <= 1e-9*max(1, math.Abs(x), math.Abs(y))
		case map[string]any:
			y, ok := y.(map[string]any)
			if !ok || len(x) != len(y) {
				return false
			}
			for k, e := range x {
				if !same(e, y[k]) {
					return false
				}
			}
			return true
		case []any:
			y, ok := y.([]any)
			if !ok || len(x) != len(y) {
				return false
			}
			for i := range x {
				if !same(x[i], y[i]) {
					return false
				}
			}
			return true
		}
		return reflect.DeepEqual(x, y)
	}
	return same(x, y)
}

// The shards of an Online share one ExactLimit of exact values per metric:
// up to it the merged percentiles are the exact ones Summarize computes,
// past it both are the HDR histogram's, and the shards together never hold
// more than ExactLimit exact values of a metric (8 shards used to hold up
// to 8 × ExactLimit before any went inexact).
func TestOnlineShardsShareTheExactLimit(t *testing.T) {
	const shards = 8
	results := make([]engine.Result, 2*ExactLimit)
	for i := range results {
		// Distinct TTFTs in a scrambled order, so the exact and the HDR
		// percentiles differ in the last digits.
		sent := time.Duration(i) * time.Millisecond
		ttft := time.Duration((i*7919)%100_003)*time.Microsecond + 3*time.Millisecond + time.Duration(i%997)*time.Nanosecond
		results[i] = engine.Result{Index: i, Stream: true, Intended: sent, Sent: sent, FirstByte: sent + ttft/2,
			FirstToken: sent + ttft, LastToken: sent + ttft, End: sent + ttft + time.Millisecond, Status: 200, OutputTokens: 1}
	}
	heldExact := func(on *Online) (n int, inexact int) {
		for i := range on.shards {
			h := on.shards[i].rec.ttft
			n += len(h.exact)
			if h.inexact {
				inexact++
			}
		}
		return n, inexact
	}
	for _, count := range []int{ExactLimit, ExactLimit + 1, 2 * ExactLimit} {
		on := newOnline(Options{}, shards)
		for i := range count {
			on.Record(&results[i])
			if i%4096 == 0 {
				if n, _ := heldExact(on); n > ExactLimit {
					t.Fatalf("after %d results the shards hold %d exact TTFTs, more than ExactLimit", i+1, n)
				}
			}
		}
		got, want := on.Metrics().TimeToFirstToken, Summarize(results[:count], Options{}).TimeToFirstToken
		if got.P50 != want.P50 || got.P99 != want.P99 || got.P999 != want.P999 || got.Count != want.Count {
			t.Errorf("%d results: online TTFT p50/p99/p99.9 %v/%v/%v, Summarize %v/%v/%v", count,
				got.P50, got.P99, got.P999, want.P50, want.P99, want.P999)
		}
		n, inexact := heldExact(on)
		switch {
		case count <= ExactLimit && (n != count || inexact != 0):
			t.Errorf("%d results: %d exact TTFTs held, %d shards inexact; want all %d exact", count, n, inexact, count)
		case count == 2*ExactLimit && (n != 0 || inexact != shards):
			t.Errorf("%d results: %d exact TTFTs still held, %d of %d shards inexact", count, n, inexact, shards)
		}
	}
}
