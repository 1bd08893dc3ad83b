package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// graphReplies puts the target's own replies into an agentic
// conversation's recorded messages (issue 14: closed loop on the target's
// replies where the trace holds text). A chat call of a conversation graph
// whose recorded reply had text (workload.GraphNode.Reply) has its reply
// kept (ObserveReply); a later call of the conversation whose recorded
// messages quote that reply as an assistant message, content equal to it,
// is sent with the target's reply in its place. Every later call quoting
// it gets the same text, so the conversation's prefix stays byte-identical
// from call to call, as it was in production.
//
// Only text is replaced: an assistant message's tool calls stay the
// recorded ones, since the recorded tool results that follow answer those
// calls and no others. A call whose reply failed or had no text leaves the
// recorded reply in place. Text completions are sent as recorded.
type graphReplies struct {
	mu    sync.Mutex
	convs map[string]*graphConv
}

// graphConv is one conversation's replies: recorded reply text → the node
// that gave it, and node → the target's reply to it.
type graphConv struct {
	recorded map[string]string
	replies  map[string]string
}

func (g *graphReplies) conv(key string) *graphConv {
	if g.convs == nil {
		g.convs = map[string]*graphConv{}
	}
	c := g.convs[key]
	if c == nil {
		c = &graphConv{recorded: map[string]string{}, replies: map[string]string{}}
		g.convs[key] = c
	}
	return c
}

// keepsReply reports whether req is a graph call whose reply a later call
// may quote: a chat call with a recorded reply text.
func keepsReply(req *workload.Request) bool {
	g := req.Graph
	return g != nil && g.Reply != "" && g.Node != "" && req.Endpoint != openai.Completions
}

// quotesReplies reports whether req is a graph call whose recorded
// messages may quote an earlier call's reply: its body is then built when
// it is sent, after the calls it came after have ended.
func quotesReplies(req *workload.Request) bool {
	return req.Graph != nil && req.Endpoint != openai.Completions && bytes.Contains(req.Messages, []byte(`"assistant"`))
}

// NeedsReplies reports whether req's body depends on replies to earlier
// requests (engine.ReplyObserver): a session turn sent with its history,
// or an agentic call quoting an earlier call's reply. Such a body is built
// when the request is sent, never ahead of time.
func (b *Builder) NeedsReplies(req *workload.Request) bool {
	return req.History && req.Session != "" || quotesReplies(req)
}

// KeepsReply reports whether ObserveReply wants req's reply text: a
// session turn's (History) or an agentic call's that a later call may
// quote.
func (b *Builder) KeepsReply(req *workload.Request) bool {
	return req.History && req.Session != "" || keepsReply(req)
}

// noteRecorded registers req's recorded reply as its node's, so that a
// later call quoting it is recognised.
func (g *graphReplies) noteRecorded(req *workload.Request) {
	if !keepsReply(req) {
		return
	}
	n := req.Graph
	g.mu.Lock()
	g.conv(n.Conversation).recorded[n.Reply] = n.Node
	g.mu.Unlock()
}

// observe keeps the target's reply to a graph call.
func (g *graphReplies) observe(req *workload.Request, text string) {
	if !keepsReply(req) || text == "" {
		return
	}
	n := req.Graph
	g.mu.Lock()
	c := g.conv(n.Conversation)
	c.recorded[n.Reply] = n.Node
	c.replies[n.Node] = text
	g.mu.Unlock()
}

// messages returns req's recorded messages with every assistant message
// quoting an earlier call's recorded reply given the target's reply
// instead; the recorded bytes when nothing is replaced.
func (g *graphReplies) messages(req *workload.Request) ([]byte, error) {
	if !quotesReplies(req) {
		return req.Messages, nil
	}
	g.mu.Lock()
	c := g.convs[req.Graph.Conversation]
	none := c == nil || len(c.replies) == 0
	g.mu.Unlock()
	if none { // nothing to quote yet: no need to read the messages
		return req.Messages, nil
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(req.Messages, &msgs); err != nil {
		return nil, fmt.Errorf("request %d: recorded messages are not a JSON array: %w", req.Index, err)
	}
	quoted := map[int]string{} // message index → its text, for assistant messages with text
	for i, raw := range msgs {
		var m struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		var text string
		if json.Unmarshal(raw, &m) == nil && m.Role == "assistant" && json.Unmarshal(m.Content, &text) == nil && text != "" {
			quoted[i] = text
		}
	}
	g.mu.Lock()
	for i, text := range quoted {
		if reply, ok := c.replies[c.recorded[text]]; ok {
			quoted[i] = reply
		} else {
			delete(quoted, i)
		}
	}
	g.mu.Unlock()
	if len(quoted) == 0 {
		return req.Messages, nil
	}
	for i, reply := range quoted {
		m, err := withContent(msgs[i], appendJSONString(nil, reply))
		if err != nil {
			return nil, fmt.Errorf("request %d: message %d: %w", req.Index, i, err)
		}
		msgs[i] = m
	}
	out := append(make([]byte, 0, len(req.Messages)+256), '[')
	for i, m := range msgs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, m...)
	}
	return append(out, ']'), nil
}

// withContent returns the JSON object msg with its "content" value
// replaced by content, its other members and their order as they were.
func withContent(msg json.RawMessage, content []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	out := append(make([]byte, 0, len(msg)+len(content)), '{')
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string) // an object's member names are strings
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(appendJSONString(out, key), ':')
		if key == "content" {
			v = content
		}
		out = append(out, v...)
	}
	return append(out, '}'), nil
}
