package stats

import (
	"math"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

// A conversation's latency is from its first call's intended send to its
// last call's end; a conversation with a failed call is left out; calls
// are also summarised by their kind. Merged recorders (Online's shards)
// give the same figures as one.
func TestConversationLatencyAndTurnKinds(t *testing.T) {
	ms := time.Millisecond
	call := func(i int, conv, kind string, intended, end time.Duration, status int) engine.Result {
		return engine.Result{Index: i, Conversation: conv, TurnKind: kind, Intended: intended, Sent: intended, FirstToken: intended + ms,
			LastToken: end, End: end, Status: status, PromptTokens: 5, OutputTokens: 2}
	}
	results := []engine.Result{
		call(0, "a", "tool_call", 0, 100*ms, 200),
		call(1, "a", "tool_result", 150*ms, 400*ms, 200), // a: 400 ms
		call(2, "b", "plain", 10*ms, 60*ms, 200),         // b: 50 ms
		call(3, "c", "plain", 0, 30*ms, 200),
		call(4, "c", "tool_call", 40*ms, 90*ms, 503), // c failed: left out
		{Index: 5, Session: "s", Intended: 0, Sent: 0, FirstToken: ms, LastToken: 20 * ms, End: 20 * ms, Status: 200, OutputTokens: 2},
		{Index: 6, Session: "s", Intended: 30 * ms, Sent: 30 * ms, FirstToken: 31 * ms, LastToken: 80 * ms, End: 80 * ms, Status: 200, OutputTokens: 2}, // s: 80 ms
	}
	m := Summarize(results, Options{})
	if m.Conversations != 4 || m.ConversationLatency == nil || m.ConversationLatency.Count != 3 || m.ConversationLatency.Max != 400 || m.ConversationLatency.Min != 50 {
		t.Fatalf("conversations %d, latency %+v", m.Conversations, m.ConversationLatency)
	}
	if k := m.LatencyByTurnKind; k["tool_call"].Count != 1 || k["tool_result"].Count != 1 || k["tool_result"].Max != 250 || k["plain"].Count != 2 {
		t.Errorf("by kind %+v", k)
	}
	a, b := NewRecorder(Options{}), NewRecorder(Options{})
	for i := range results {
		if i%2 == 0 {
			a.Record(&results[i])
		} else {
			b.Record(&results[i])
		}
	}
	a.Merge(b)
	got := a.Metrics()
	g, w := got.ConversationLatency, m.ConversationLatency
	if g.Count != w.Count || g.P50 != w.P50 || g.P99 != w.P99 || g.Min != w.Min || g.Max != w.Max || math.Abs(g.Mean-w.Mean) > 1e-9 || got.Conversations != m.Conversations {
		t.Errorf("merged %+v, one recorder %+v", got.ConversationLatency, m.ConversationLatency)
	}
}
