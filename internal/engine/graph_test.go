package engine

import (
	"context"
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
		node := func(i int, agent, name string, at time.Duration, after ...string) workload.Request {
			return workload.Request{Index: i, Offset: at, Session: "c1/" + agent, Stream: true, PromptTokens: 10, OutputTokens: 3, Delay: 10 * ms,
				Graph: &workload.GraphNode{Conversation: "c1", Node: name, Agent: agent, After: after}}
		}
		src := &sliceSource{reqs: []workload.Request{
			node(0, "", "main_0", 0),
			node(1, "sa_0", "sa_0_0", 5*ms, "main_0"),       // spawned by main_0 (ends at 100 ms)
			node(2, "sa_1", "sa_1_0", 5*ms, "main_0"),       // a parallel branch
			node(3, "sa_1", "sa_1_1", 6*ms, "sa_1_0"),       // the branch's second call
			node(4, "", "main_1", 7*ms, "sa_0_0", "sa_1_1"), // joins both branches
		}}
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
