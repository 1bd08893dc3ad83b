package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// histories holds the conversations of History requests, by session: the
// turns that got a reply, each user turn followed by the target's reply,
// and the turn now in flight. A conversation lives as long as the Builder
// (one run, or the runs of one invocation that share it).
type histories struct {
	mu    sync.Mutex
	convs map[string]*conversation
}

// conversation is one session's history.
type conversation struct {
	msgs    [][]byte // chat: JSON message objects, comma-joined when sent
	text    []byte   // completions: earlier prompts and replies, concatenated
	pending *turnText
	// whole marks a whole-context session (workload.ConventionWhole): its
	// rows carry the conversation themselves, so nothing is kept for it.
	whole bool
}

// turnText is a turn's own content, kept until its reply arrives.
type turnText struct {
	chat bool
	msgs []byte // chat: its message objects, comma-separated, no brackets
	text string // completions: its prompt
}

// conv returns session's conversation, creating it; call under h.mu.
func (h *histories) conv(session string) *conversation {
	if h.convs == nil {
		h.convs = map[string]*conversation{}
	}
	c := h.convs[session]
	if c == nil {
		c = &conversation{}
		h.convs[session] = c
	}
	return c
}

// ObserveReply adds a History request's turn and the target's reply text
// to its session's history (engine.ReplyObserver); a conversation graph's
// call's reply is kept for the later calls that quote it (graphReplies). A turn that got no
// reply (it failed, or produced no text) is left out: the next turn
// continues from the last exchange that completed, so user and assistant
// messages still alternate.
func (b *Builder) ObserveReply(req *workload.Request, text string) {
	if !req.History || req.Session == "" {
		b.graphs.observe(req, text)
		return
	}
	h := &b.history
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.conv(req.Session)
	t := c.pending
	c.pending = nil
	if t == nil || text == "" || c.whole {
		return
	}
	if !t.chat {
		c.text = append(append(c.text, t.text...), text...)
		return
	}
	if len(t.msgs) > 0 {
		c.msgs = append(c.msgs, t.msgs)
	}
	reply := appendJSONString([]byte(`{"role":"assistant","content":`), text)
	c.msgs = append(c.msgs, append(reply, '}'))
}

// forgetHistory marks session whole-context: the history its first turn
// left (sent before the convention was known) is dropped, and nothing more
// is kept for it. Only the mark stays, so that a first turn's reply that
// arrives later is not kept either.
func (b *Builder) forgetHistory(session string) {
	h := &b.history
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.conv(session)
	if !c.whole {
		*c = conversation{whole: true}
	}
}

// historyBody builds a History request's body: the session's history, then
// this turn (see Body for the rest of the fields). The turn is kept as the
// session's pending one until ObserveReply.
func (b *Builder) historyBody(out []byte, req *workload.Request) ([]byte, error) {
	t := turnText{chat: req.Endpoint != openai.Completions}
	switch {
	case req.Endpoint == openai.Completions:
		if req.Prompt == "" && len(req.Messages) > 0 {
			return nil, fmt.Errorf("request %d: a completions request needs a prompt, the workload has chat messages", req.Index)
		}
		t.text = req.Prompt
		if t.text == "" {
			p, err := b.Prompt(req)
			if err != nil {
				return nil, err
			}
			t.text = p
		}
	case len(req.Messages) > 0:
		var arr []json.RawMessage
		if err := json.Unmarshal(req.Messages, &arr); err != nil {
			return nil, fmt.Errorf("request %d: recorded messages are not a JSON array: %w", req.Index, err)
		}
		t.msgs = bytes.Join(compactAll(arr), []byte{','})
	default:
		m := append(make([]byte, 0, b.sizeHint(req)+len(req.Prompt)+64), `{"role":"user","content":`...)
		m, err := b.appendPromptString(m, req)
		if err != nil {
			return nil, err
		}
		t.msgs = append(m, '}')
	}
	h := &b.history
	h.mu.Lock()
	c := h.conv(req.Session)
	if !c.whole {
		c.pending = &t
	}
	// The history is only ever appended to, so what these cover never
	// changes: the body is built outside the lock every session shares.
	text, msgs := c.text, c.msgs
	h.mu.Unlock()
	if req.Endpoint == openai.Completions {
		out = append(out, `,"prompt":`...)
		return appendJSONString(out, string(text)+t.text), nil
	}
	out = append(out, `,"messages":[`...)
	for _, m := range msgs {
		out = append(append(out, m...), ',')
	}
	if len(t.msgs) == 0 && len(out) > 0 && out[len(out)-1] == ',' {
		out = out[:len(out)-1]
	}
	out = append(out, t.msgs...)
	return append(out, ']'), nil
}

// compactAll returns each raw JSON value without insignificant space.
func compactAll(vals []json.RawMessage) [][]byte {
	out := make([][]byte, 0, len(vals))
	for _, v := range vals {
		var buf bytes.Buffer
		if json.Compact(&buf, v) == nil {
			out = append(out, buf.Bytes())
		}
	}
	return out
}
