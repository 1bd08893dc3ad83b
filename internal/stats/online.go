package stats

import (
	"runtime"
	"sync"

	"github.com/reprise-llm/reprise/internal/engine"
)

// Online records results as they end, from many goroutines at once (an
// engine.Config.OnResult hook): a few Recorders, each behind its own
// mutex, that a request's index picks between, merged when Metrics is
// called. With engine.Config.DiscardChunks, a run's memory then follows
// its requests in flight, not its length: each request's chunk offsets
// are folded into histograms and time buckets as it ends.
//
// Results are recorded as given: warmup and cooldown, which the engine
// marks once the run is over, are not known to it. Use Summarize over
// Run.Results when the run has them.
type Online struct {
	opts   Options
	shards []onlineShard
}

type onlineShard struct {
	mu  sync.Mutex
	rec *Recorder
	_   [48]byte // keep shards' mutexes on separate cache lines (8 + 8 + 48 = 64 bytes)
}

// NewOnline returns an empty Online with one shard per processor (at
// most 16).
func NewOnline(opts Options) *Online {
	return newOnline(opts, min(max(runtime.GOMAXPROCS(0), 1), 16))
}

func newOnline(opts Options, n int) *Online {
	o := &Online{opts: opts, shards: make([]onlineShard, n)}
	recs := make([]*Recorder, n)
	for i := range o.shards {
		recs[i] = NewRecorder(opts)
		o.shards[i].rec = recs[i]
	}
	shareExactBudgets(recs) // ExactLimit exact values per metric in all, not per shard
	return o
}

// Record adds one result; safe for concurrent use.
func (o *Online) Record(r *engine.Result) {
	s := &o.shards[uint(r.Index)%uint(len(o.shards))]
	s.mu.Lock()
	s.rec.Record(r)
	s.mu.Unlock()
}

// Metrics merges the shards into the summary of everything recorded so
// far, as Summarize would compute it over the same results.
func (o *Online) Metrics() Metrics {
	all := NewRecorder(o.opts)
	for i := range o.shards {
		s := &o.shards[i]
		s.mu.Lock()
		all.Merge(s.rec)
		s.mu.Unlock()
	}
	return all.Metrics()
}
