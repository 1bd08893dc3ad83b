package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/workload"
)

// A closed loop's streams and request budget are dealt round robin: the
// shards' parts add up to the plan's, and its workload goes to the shards
// by the same Sharder as an open loop's.
func TestClosedLoopSplitAddsUp(t *testing.T) {
	for _, tc := range []struct {
		profile           string
		streams, requests int
	}{{engine.ProfileConcurrent, 10, 101}, {engine.ProfileThroughput, 64, 0}, {engine.ProfileConcurrent, 3, 7}} {
		sumStreams, sumRequests := 0, 0
		for i := range 3 {
			p := Plan{Shard: Shard{i, 3}}
			cfg := engine.Config{Profile: tc.profile, Concurrency: tc.streams, MaxConcurrency: tc.streams, MaxRequests: tc.requests}
			got, tr := p.forShard(cfg, workload.Transforms{})
			if tr.ShardIndex != i || tr.ShardCount != 3 || got.ShardCount != 0 {
				t.Errorf("%s shard %d: transforms %d/%d, engine %d/%d: a closed loop's workload is dealt by the transform",
					tc.profile, i, tr.ShardIndex, tr.ShardCount, got.ShardIndex, got.ShardCount)
			}
			if tc.profile == engine.ProfileConcurrent {
				sumStreams += got.Concurrency
			} else {
				sumStreams += got.MaxConcurrency
			}
			sumRequests += got.MaxRequests
		}
		if sumStreams != tc.streams || sumRequests != tc.requests {
			t.Errorf("%s: streams %d of %d, requests %d of %d", tc.profile, sumStreams, tc.streams, sumRequests, tc.requests)
		}
	}
	for _, c := range []struct {
		cfg  engine.Config
		want string
	}{
		{engine.Config{Profile: engine.ProfileSynchronous}, "one stream"},
		{engine.Config{Profile: engine.ProfileConcurrent, Concurrency: 2}, "cannot be split 3 ways"},
		{engine.Config{Profile: engine.ProfileConstant, Rate: 1, Warmup: engine.Portion{Count: 5}}, "not with a split run"},
		{engine.Config{Profile: engine.ProfileConstant, Rate: 1, Cooldown: engine.Portion{Duration: time.Second}}, "not with a split run"},
		{engine.Config{Profile: engine.ProfileConcurrent, Concurrency: 4, MaxRequests: 2}, "cannot be split 3 ways"},
	} {
		p := Plan{Engine: c.cfg, Shard: Shard{0, 3}, ShardState: "x"}
		if err := p.validateShard(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// Shards meeting at a start barrier all compute one start: the latest
// ready time plus the lead; a barrier directory holding another run's
// files is refused.
func TestStartBarrierAgreesOnOneInstant(t *testing.T) {
	dir := t.TempDir()
	const n = 3
	starts := make([]time.Time, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 30 * time.Millisecond) // shards become ready at different times
			r := &Runner{plan: Plan{Workload: "w", Shard: Shard{i, n}, StartBarrier: dir, BarrierLead: time.Second}}
			s, err := r.barrierStart(context.Background(), time.Now)
			if err != nil {
				t.Error(err)
			}
			starts[i] = s
		})
	}
	wg.Wait()
	for i := range starts {
		if !starts[i].Equal(starts[0]) || starts[i].IsZero() {
			t.Fatalf("starts %v: not one instant", starts)
		}
	}
	r := &Runner{plan: Plan{Workload: "another", Shard: Shard{0, n}, StartBarrier: dir}}
	if _, err := r.barrierStart(context.Background(), time.Now); err == nil || !strings.Contains(err.Error(), "of plan") {
		t.Errorf("another run's barrier files: %v", err)
	}
}

// A shard whose clock is off the target's Date header by more than the
// header's resolution, the round trip and the bound refuses to start; one
// in step gives its offset.
func TestClockCheck(t *testing.T) {
	for _, skew := range []time.Duration{0, 5 * time.Second, -5 * time.Second} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", time.Now().Add(skew).UTC().Format(http.TimeFormat))
			_, _ = io.WriteString(w, "{}")
		}))
		off, ok, err := clockCheck(context.Background(), srv.URL, nil, http.DefaultClient)
		srv.Close()
		switch {
		case !ok:
			t.Errorf("skew %v: no Date header seen", skew)
		case skew == 0 && (err != nil || off > 1.5 || off < -1.5):
			t.Errorf("in step: offset %.2f s, %v", off, err)
		case skew != 0 && (err == nil || !strings.Contains(err.Error(), "off the target's")):
			t.Errorf("skew %v: offset %.2f s, %v: want a refusal", skew, off, err)
		}
	}
}

// A ready file far older than this shard's (an earlier run with the same
// plan and the same directory) is refused, not joined.
func TestStartBarrierRefusesAnEarlierRunsFiles(t *testing.T) {
	dir := t.TempDir()
	old := &Runner{plan: Plan{Workload: "w", Shard: Shard{1, 2}, StartBarrier: dir}}
	long := func() time.Time { return time.Now().Add(-2 * barrierTimeout) }
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _ = old.barrierStart(ctx, long) // writes its ready file, then times out waiting for shard 0
	r := &Runner{plan: Plan{Workload: "w", Shard: Shard{0, 2}, StartBarrier: dir}}
	if _, err := r.barrierStart(context.Background(), time.Now); err == nil || !strings.Contains(err.Error(), "earlier run") {
		t.Errorf("%v, want the earlier run's file refused", err)
	}
}

// A barrier directory still holding another run's ready files (a rerun
// under the same name) is refused when the runs are told apart by their
// run id, instead of starting the shards at different instants.
func TestStartBarrierRefusesAnotherRunsID(t *testing.T) {
	dir := t.TempDir()
	old := &Runner{plan: Plan{Workload: "w", Shard: Shard{1, 2}, StartBarrier: dir, RunID: "job-1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _ = old.barrierStart(ctx, time.Now) // writes its ready file, then gives up waiting for shard 0
	r := &Runner{plan: Plan{Workload: "w", Shard: Shard{0, 2}, StartBarrier: dir, RunID: "job-2"}}
	if _, err := r.barrierStart(context.Background(), time.Now); err == nil || !strings.Contains(err.Error(), `is of run "job-1"`) {
		t.Errorf("%v, want the other run's file refused", err)
	}
}

// A shard writer whose queue is full makes record wait rather than lose a
// result: with a one-slot queue, a writer held back until the producers
// have filled it, and 16 concurrent producers, every result is written,
// in the trailer's count and in the file, and the waits are counted.
func TestShardWriterFullQueueLosesNothing(t *testing.T) {
	path := t.TempDir() + "/" + ShardFile
	h := shardHeader{Format: shardFormat, Version: shardVersion, Shard: "0/2", Index: 0, Count: 2, Plan: "p", Name: "n", Target: "http://t"}
	hold := make(chan struct{})
	w, err := newShardWriterQueue(path, h, 1, time.Hour, hold)
	if err != nil {
		t.Fatal(err)
	}
	const producers, each = 16, 500
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for k := range each {
				r := engine.Result{Index: p*each + k, Status: 200, Chunks: []time.Duration{time.Millisecond}, ChunkTokens: []int{1}}
				w.record(&r)
			}
		})
	}
	for stalled := 0; stalled < producers-1; { // one result fills the slot; every other producer then waits
		time.Sleep(time.Millisecond)
		w.mu.Lock()
		stalled = w.stalls
		w.mu.Unlock()
	}
	close(hold)
	wg.Wait()
	if err := w.finish(&engine.Run{}, stats.Distribution{}); err != nil {
		t.Fatal(err)
	}
	r, err := openShard(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	seen := map[int]bool{}
	tr, err := r.each(func(res *engine.Result) { seen[res.Index] = true })
	if err != nil {
		t.Fatal(err)
	}
	if tr.Requests != producers*each || len(seen) != producers*each {
		t.Fatalf("trailer counts %d results, file holds %d distinct; want %d", tr.Requests, len(seen), producers*each)
	}
	if tr.Stalls < producers-1 {
		t.Fatalf("%d stalls counted, want at least %d", tr.Stalls, producers-1)
	}
}

// A writer that makes no room within the stall limit (a hung disk) loses
// the result rather than hang the run, and the shard then fails, saying
// so, instead of being merged short.
func TestShardWriterStuckFailsTheShard(t *testing.T) {
	path := t.TempDir() + "/" + ShardFile
	h := shardHeader{Format: shardFormat, Version: shardVersion, Shard: "0/2", Index: 0, Count: 2, Plan: "p", Name: "n", Target: "http://t"}
	hold := make(chan struct{})
	w, err := newShardWriterQueue(path, h, 1, 20*time.Millisecond, hold)
	if err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		w.record(&engine.Result{Index: k, Status: 200})
	}
	close(hold)
	err = w.finish(&engine.Run{}, stats.Distribution{})
	if err == nil || !strings.Contains(err.Error(), "2 results could not be written") || !strings.Contains(err.Error(), "cannot be merged") {
		t.Fatalf("finish: %v", err)
	}
}
