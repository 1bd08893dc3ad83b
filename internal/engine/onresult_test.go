package engine

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// OnResult sees every request once, as it ends, with the Result the run keeps.
func TestOnResultSeesEveryRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		seen := map[int]time.Duration{}
		cfg := Config{Target: "http://127.0.0.1:1", Profile: ProfileTrace, OnResult: func(r Result) {
			mu.Lock()
			seen[r.Index] = r.End
			mu.Unlock()
		}}
		c := cfg.withDefaults()
		origin := time.Now()
		run, err := execute(context.Background(), c, evenly(5, 10*time.Millisecond), origin, fakeSend(50*time.Millisecond, origin))
		if err != nil {
			t.Fatal(err)
		}
		if len(seen) != 5 || len(run.Results) != 5 {
			t.Fatalf("seen %d, results %d", len(seen), len(run.Results))
		}
		for _, r := range run.Results {
			if seen[r.Index] != r.End {
				t.Errorf("request %d: hook saw end %v, run has %v", r.Index, seen[r.Index], r.End)
			}
		}
	})
}
