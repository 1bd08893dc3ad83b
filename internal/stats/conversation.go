package stats

import (
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

// Issue 14: an agentic conversation is judged by the time it takes as a
// whole, and by each kind of call in it, not only per request. A
// conversation is a conversation graph's (engine.Result.Conversation: an
// OTel trace, a WEKA conversation) or else a multi-turn session's
// (Result.Session); its latency is from its first call's intended send
// to its last call's end — the time a user (or an agent) waited for the
// whole exchange. Only conversations whose every call succeeded count: a
// failed call ends a conversation early.

// convAcc is one conversation's span so far.
type convAcc struct {
	first, last time.Duration
	failed      bool
}

// conversationKey is the conversation r belongs to ("" for none).
func conversationKey(r *engine.Result) string {
	if r.Conversation != "" {
		return "g\x00" + r.Conversation
	}
	if r.Session != "" {
		return "s\x00" + r.Session
	}
	return ""
}

// recordConversation adds r to its conversation and its call kind.
func (rec *Recorder) recordConversation(r *engine.Result) {
	if r.TurnKind != "" {
		h := rec.turnKinds[r.TurnKind]
		if h == nil {
			h = NewLatencyHistogram()
			rec.turnKinds[r.TurnKind] = h
		}
		if r.OK() {
			h.RecordDuration(max(r.End-r.Sent, 0))
		}
	}
	key := conversationKey(r)
	if key == "" {
		return
	}
	c := rec.conversations[key]
	if c == nil {
		c = &convAcc{first: r.Intended, last: r.End}
		rec.conversations[key] = c
	}
	c.first, c.last = min(c.first, r.Intended), max(c.last, r.End)
	c.failed = c.failed || !r.OK()
}

// mergeConversations adds o's conversations and call kinds to rec's.
func (rec *Recorder) mergeConversations(o *Recorder) {
	for k, h := range o.turnKinds {
		if mine := rec.turnKinds[k]; mine != nil {
			mine.Merge(h)
		} else {
			c := NewLatencyHistogram()
			c.Merge(h)
			rec.turnKinds[k] = c
		}
	}
	for k, oc := range o.conversations {
		c := rec.conversations[k]
		if c == nil {
			cp := *oc
			rec.conversations[k] = &cp
			continue
		}
		c.first, c.last, c.failed = min(c.first, oc.first), max(c.last, oc.last), c.failed || oc.failed
	}
}

// conversationMetrics fills m's conversation and call-kind figures.
func (rec *Recorder) conversationMetrics(m *Metrics) {
	if len(rec.conversations) > 0 {
		h := NewLatencyHistogram()
		for _, c := range rec.conversations {
			if !c.failed {
				h.RecordDuration(max(c.last-c.first, 0))
			}
		}
		d := h.Distribution()
		m.ConversationLatency = &d
		m.Conversations = int64(len(rec.conversations))
	}
	if len(rec.turnKinds) > 0 {
		m.LatencyByTurnKind = map[string]Distribution{}
		for k, h := range rec.turnKinds {
			m.LatencyByTurnKind[k] = h.Distribution()
		}
	}
}
