package engine

import (
	"context"
	"maps"
	"testing"
	"testing/synctest"
	"time"
)

// Issue 13: N shards of an open-loop run walk the same global schedule
// and each sends only its part, so their intended send times, together,
// are the unsharded run's, request for request; MaxRequests and
// MaxSeconds bound the global plan. Sessions go whole to one shard.
func TestShardsUnionIsTheWholeSchedule(t *testing.T) {
	withSessions := func(n int) *sliceSource {
		s := evenly(n, 7*ms)
		for i := range s.reqs {
			if i%3 == 0 {
				s.reqs[i].Session = "s" + string(rune('a'+i%11)) // every third request in one of 11 sessions
			}
		}
		return s
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		src  func() *sliceSource
	}{
		{"constant", Config{Profile: ProfileConstant, Rate: 50, MaxRequests: 97}, func() *sliceSource { return evenly(500, 0) }},
		{"poisson", Config{Profile: ProfilePoisson, Rate: 80, MaxSeconds: 2, Seed: 7}, func() *sliceSource { return evenly(1000, 0) }},
		{"gamma", Config{Profile: ProfileGamma, Rate: 80, Burstiness: 0.5, MaxRequests: 150, Seed: 3}, func() *sliceSource { return evenly(1000, 0) }},
		{"trace", Config{Profile: ProfileTrace, TimeScale: 1, MaxSeconds: 1.5}, func() *sliceSource { return evenly(400, 11*ms) }},
		{"trace with sessions", Config{Profile: ProfileTrace, TimeScale: 1, MaxRequests: 120}, func() *sliceSource { return withSessions(400) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				whole := intendedByIndex(runFake(t, context.Background(), tc.cfg, tc.src(), ms))
				union := map[int]time.Duration{}
				sessionShard := map[string]int{}
				const n = 3
				for i := range n {
					cfg := tc.cfg
					cfg.ShardIndex, cfg.ShardCount = i, n
					src := tc.src()
					run := runFake(t, context.Background(), cfg, src, ms)
					for _, r := range run.Results {
						if _, dup := union[r.Index]; dup {
							t.Fatalf("request %d sent by two shards", r.Index)
						}
						union[r.Index] = r.Intended
						if s := src.reqs[r.Index].Session; s != "" {
							if j, ok := sessionShard[s]; ok && j != i {
								t.Errorf("session %s split across shards %d and %d", s, j, i)
							}
							sessionShard[s] = i
						}
					}
					if len(run.Results) == 0 || len(run.Results) > len(whole)/n+len(whole)/3 {
						t.Errorf("shard %d sent %d of %d requests", i, len(run.Results), len(whole))
					}
				}
				if !maps.Equal(union, whole) {
					t.Errorf("the shards' %d intended send times are not the unsharded run's %d", len(union), len(whole))
				}
			})
		})
	}
}

func intendedByIndex(run *Run) map[int]time.Duration {
	out := map[int]time.Duration{}
	for _, r := range run.Results {
		out[r.Index] = r.Intended
	}
	return out
}

// A closed loop has no schedule to share: sharding it is refused, naming
// the field.
func TestClosedLoopShardRefused(t *testing.T) {
	err := (&Config{Target: "http://x", Profile: ProfileConcurrent, Concurrency: 4, ShardIndex: 1, ShardCount: 2}).Validate()
	if err == nil || len(configErrorFields(err)) != 1 || configErrorFields(err)[0] != "Shard" {
		t.Errorf("%v, want one error on Shard", err)
	}
}
