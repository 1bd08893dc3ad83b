package bench

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/workload"
	"github.com/reprise-llm/reprise/internal/workload/workloadtest"
)

// Issue 14, on the simulator: the WEKA agentic trace replayed open loop
// and closed loop (one stream and three) sends every call after every node
// it came after has ended — sub-agents after the call that spawned them,
// joins after every sub-agent — and no wait is left unresolved.
func TestAgenticTraceWaitsForItsGraphInEveryLoop(t *testing.T) {
	const path = "../workload/testdata/weka/agentic.jsonl"
	graph := map[int]*workload.GraphNode{}
	for _, r := range workloadtest.Read(t, "weka:"+path) {
		graph[r.Index] = r.Graph
	}
	url := cachedSim(t, func(c *sim.Config) { c.PrefillPerToken, c.ITLBase = 10*time.Microsecond, 100*time.Microsecond })
	for _, tc := range []struct {
		profile string
		streams int
	}{{engine.ProfileTrace, 0}, {engine.ProfileConcurrent, 1}, {engine.ProfileConcurrent, 3}} {
		plan := testPlan(url, "weka:"+path, func(p *Plan) {
			p.Engine.Profile, p.Engine.TimeScale, p.Engine.MaxRequests, p.Engine.Rate, p.Engine.Concurrency = tc.profile, 0.01, 0, 0, tc.streams
		})
		r, err := NewRunner(plan, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		o, err := r.Run(context.Background(), plan.Engine, "weka", 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		res := o.Run.Results
		if len(res) != len(graph) || o.Run.UnresolvedAfter != 0 {
			t.Fatalf("%s/%d: %d results of %d calls, %d unresolved waits", tc.profile, tc.streams, len(res), len(graph), o.Run.UnresolvedAfter)
		}
		end := map[string]time.Duration{}
		for _, x := range res {
			if !x.OK() {
				t.Fatalf("%s/%d: call %d failed: %s", tc.profile, tc.streams, x.Index, x.Err)
			}
			g := graph[x.Index]
			end[g.Conversation+"/"+g.Node] = x.End
		}
		waits := 0
		for _, x := range res {
			g := graph[x.Index]
			for _, a := range g.After {
				waits++
				if e, ok := end[g.Conversation+"/"+a]; !ok || x.Sent < e {
					t.Errorf("%s/%d: %s/%s sent at %v, before %s it came after ended (%v, %v)", tc.profile, tc.streams, g.Conversation, g.Node, x.Sent, a, e, ok)
				}
			}
		}
		if waits == 0 {
			t.Fatalf("the trace has no graph edges")
		}
	}
}
