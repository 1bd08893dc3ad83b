package engine

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// Issue 14: an agentic conversation is a graph, and a call waits for
// exactly what it waited for in production: a sub-agent's first call for
// the parent call that spawned it, the parent's next call (the join) for
// every sub-agent's last call, plus its think time after the last of
// them — not merely for its own session's previous turn.
func TestConversationGraphWaitsForItsPredecessors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := agentGraph()
		run := runFake(t, context.Background(), Config{Profile: ProfileTrace, TimeScale: 1}, src, 100*ms)
		got := map[int]time.Duration{}
		for _, r := range run.Results {
			got[r.Index] = r.Intended
		}
		// main_0: 0 → 100; the sub-agents' first calls 110 → 210; sa_1's
		// second 220 → 320; the join after the later branch: 330.
		want := map[int]time.Duration{0: 0, 1: 110 * ms, 2: 110 * ms, 3: 220 * ms, 4: 330 * ms}
		for i, w := range want {
			if got[i] != w {
				t.Errorf("node %d intended at %v, want %v (all: %v)", i, got[i], w, got)
			}
		}
	})
}

// A closed loop honours the same graph: a call waits for every node it
// came after plus its think time, parallel sub-agents take whichever loops
// are free (in parallel with three loops, one after the other with one),
// and the join waits for both branches.
func TestClosedLoopConversationGraphWaitsForItsPredecessors(t *testing.T) {
	for _, tc := range []struct {
		loops int
		want  map[int]time.Duration
	}{
		// main_0 0 → 100; both branches' first calls at 110; sa_1's second
		// at 220; the join at 330, after the later branch.
		{3, map[int]time.Duration{0: 0, 1: 110 * ms, 2: 110 * ms, 3: 220 * ms, 4: 330 * ms}},
		// One loop: sa_1_0 waits for the loop (sa_0_0 holds it until 210),
		// sa_1_1 at 320, the join at 430.
		{1, map[int]time.Duration{0: 0, 1: 110 * ms, 2: 210 * ms, 3: 320 * ms, 4: 430 * ms}},
	} {
		synctest.Test(t, func(t *testing.T) {
			run := runFake(t, context.Background(), Config{Profile: ProfileConcurrent, Concurrency: tc.loops}, agentGraph(), 100*ms)
			got := map[int]time.Duration{}
			for _, r := range run.Results {
				got[r.Index] = r.Sent
			}
			for i, w := range tc.want {
				if got[i] != w {
					t.Errorf("%d loops: node %d sent at %v, want %v (all: %v)", tc.loops, i, got[i], w, got)
				}
			}
			if run.UnresolvedAfter != 0 || run.Dropped != 0 {
				t.Errorf("%d loops: %d unresolved edges, %d dropped", tc.loops, run.UnresolvedAfter, run.Dropped)
			}
		})
	}
}

// A call whose earlier node was never scheduled (filtered out here) does
// not wait for it, and the run counts the edge, in both loops.
func TestUnresolvedGraphEdgesAreCounted(t *testing.T) {
	for _, profile := range []string{ProfileTrace, ProfileConcurrent} {
		synctest.Test(t, func(t *testing.T) {
			g := agentGraph()
			g.reqs = slices.Delete(g.reqs, 1, 2) // sa_0_0 filtered out: the join has one edge left unresolved
			run := runFake(t, context.Background(), Config{Profile: profile, TimeScale: 1, Concurrency: 3}, g, 100*ms)
			if run.UnresolvedAfter != 1 || len(run.Results) != 4 {
				t.Errorf("%s: %d unresolved edges, %d results; want 1 and 4", profile, run.UnresolvedAfter, len(run.Results))
			}
		})
	}
}

// agentGraph is a conversation whose main agent spawns two sub-agents
// after its first call and joins them in its second; sub-agent sa_1 makes
// two calls. Every call has 10 ms of think time after what it waits for.
func agentGraph() *sliceSource {
	node := func(i int, agent, name string, at time.Duration, after ...string) workload.Request {
		return workload.Request{Index: i, Offset: at, Session: "c1/" + agent, Stream: true, PromptTokens: 10, OutputTokens: 3, Delay: 10 * ms,
			Graph: &workload.GraphNode{Conversation: "c1", Node: name, Agent: agent, After: after}}
	}
	return &sliceSource{reqs: []workload.Request{
		node(0, "", "main_0", 0),
		node(1, "sa_0", "sa_0_0", 5*ms, "main_0"),
		node(2, "sa_1", "sa_1_0", 5*ms, "main_0"),
		node(3, "sa_1", "sa_1_1", 6*ms, "sa_1_0"),
		node(4, "", "main_1", 7*ms, "sa_0_0", "sa_1_1"),
	}}
}
