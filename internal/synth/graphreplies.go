package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

var _ engine.ReplyObserver = (*Builder)(nil)

// graphReplies puts the target's own replies into an agentic
// conversation's recorded messages (issue 14: closed loop on the target's
// replies where the trace holds text). A chat call of a conversation graph
// whose recorded reply had text (workload.GraphNode.Reply) has its reply
// kept (ObserveReply); a later call that quotes that reply — an assistant
// message whose content is the recorded text, in the messages of a call
// after it in the graph — is sent with the target's reply in its place.
// Every later call quoting it gets the same text, so the conversation's
// prefix stays byte-identical from call to call, as it was in production.
//
// Which call an assistant message quotes is decided among the calls the
// quoting one came after, directly or not (its ancestors in the graph),
// never a parallel branch's. The messages with text T are matched from
// the last back to the ancestors whose recorded reply is T, latest first,
// the quoting call's own agent's before the others' (an agent's input
// holds its own history; a sub-agent's seldom holds its parent's). So an
// agent that said "OK." twice gets each of its two replies back in place,
// and a parent's "OK." is not taken for its sub-agent's.
//
// Only text is replaced: an assistant message's tool calls stay the
// recorded ones, since the recorded tool results that follow answer those
// calls and no others. A call whose reply failed or had no text leaves the
// recorded reply in place. Text completions are sent as recorded. What is
// kept (every graph call's place, the recorded and the target's reply text
// of those with text) lives as long as the Builder, as a session's history
// does.
type graphReplies struct {
	mu    sync.Mutex
	convs map[string]*graphConv
}

// graphConv is one conversation's calls, by node.
type graphConv struct {
	nodes map[string]*graphCall
	seq   int // calls noted so far: each call's order
}

// graphCall is what a conversation keeps of one of its calls.
type graphCall struct {
	after    []string // the nodes it came after
	agent    string
	seq      int
	recorded string // its recorded reply text ("" when none)
	reply    string // the target's reply text, once it arrived with text
}

func (g *graphReplies) conv(key string) *graphConv {
	if g.convs == nil {
		g.convs = map[string]*graphConv{}
	}
	c := g.convs[key]
	if c == nil {
		c = &graphConv{nodes: map[string]*graphCall{}}
		g.convs[key] = c
	}
	return c
}

// graphChat reports whether req is a chat call of a conversation graph
// with a node name.
func graphChat(req *workload.Request) bool {
	return req.Graph != nil && req.Graph.Node != "" && req.Endpoint != openai.Completions
}

// keepsReply reports whether req is a graph call whose reply a later call
// may quote: a chat call with a recorded reply text.
func keepsReply(req *workload.Request) bool {
	return graphChat(req) && req.Graph.Reply != ""
}

// quotesReplies reports whether req is a graph call whose recorded
// messages may quote an earlier call's reply: its body is then built when
// it is sent, after the calls it came after have ended.
func quotesReplies(req *workload.Request) bool {
	return graphChat(req) && len(req.Graph.After) > 0 && bytes.Contains(req.Messages, []byte(`"assistant"`))
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

// note registers req's place in its conversation (the nodes it came
// after, its order, its recorded reply) once, when its body is first
// built; a later call's ancestry goes through it.
func (g *graphReplies) note(req *workload.Request) {
	if !graphChat(req) {
		return
	}
	n := req.Graph
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.conv(n.Conversation)
	if _, ok := c.nodes[n.Node]; ok {
		return
	}
	c.seq++
	c.nodes[n.Node] = &graphCall{after: n.After, agent: n.Agent, seq: c.seq, recorded: n.Reply}
}

// observe keeps the target's reply to a graph call.
func (g *graphReplies) observe(req *workload.Request, text string) {
	if !keepsReply(req) || text == "" {
		return
	}
	n := req.Graph
	g.mu.Lock()
	defer g.mu.Unlock()
	if call := g.conv(n.Conversation).nodes[n.Node]; call != nil {
		call.reply = text
	}
}

// messages returns req's recorded messages with every assistant message
// that quotes an ancestor's recorded reply given the target's reply to
// that ancestor instead; the recorded bytes when nothing is replaced.
func (g *graphReplies) messages(req *workload.Request) ([]byte, error) {
	if !quotesReplies(req) {
		return req.Messages, nil
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(req.Messages, &msgs); err != nil {
		return nil, fmt.Errorf("request %d: recorded messages are not a JSON array: %w", req.Index, err)
	}
	var texts []string // each message's text when it is an assistant message with text, else ""
	for _, raw := range msgs {
		var m struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		var text string
		if json.Unmarshal(raw, &m) != nil || m.Role != "assistant" || json.Unmarshal(m.Content, &text) != nil {
			text = ""
		}
		texts = append(texts, text)
	}
	replies := g.quoted(req.Graph, texts)
	if replies == nil {
		return req.Messages, nil
	}
	for i, reply := range replies {
		if reply == "" {
			continue
		}
		q, err := json.Marshal(reply) // escaped as the recorded messages are (workload's jsonStringOf)
		if err != nil {
			return nil, fmt.Errorf("request %d: message %d: %w", req.Index, i, err)
		}
		if msgs[i], err = withContent(msgs[i], q); err != nil {
			return nil, fmt.Errorf("request %d: message %d: %w", req.Index, i, err)
		}
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

// quoted returns, for each of a call's messages (texts: an assistant
// message's text, else ""), the target's reply it should carry instead
// ("" to keep it), or nil when none changes. See graphReplies for the
// rule.
func (g *graphReplies) quoted(n *workload.GraphNode, texts []string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.convs[n.Conversation]
	if c == nil {
		return nil
	}
	// The ancestors with a recorded reply, by text, in the order they
	// were sent.
	byText := map[string][]*graphCall{}
	seen := map[string]bool{}
	queue := slices.Clone(n.After)
	for len(queue) > 0 {
		node := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if seen[node] {
			continue
		}
		seen[node] = true
		call := c.nodes[node]
		if call == nil {
			continue
		}
		if call.recorded != "" {
			byText[call.recorded] = append(byText[call.recorded], call)
		}
		queue = append(queue, call.after...)
	}
	if len(byText) == 0 {
		return nil
	}
	for _, calls := range byText {
		// Preferred last: other agents' calls, then the call's own
		// agent's, each in the order they were sent.
		slices.SortFunc(calls, func(a, b *graphCall) int {
			if ao, bo := a.agent == n.Agent, b.agent == n.Agent; ao != bo {
				if ao {
					return 1
				}
				return -1
			}
			return a.seq - b.seq
		})
	}
	out := make([]string, len(texts))
	used := map[string]int{}
	changed := false
	for i := len(texts) - 1; i >= 0; i-- {
		text := texts[i]
		if text == "" {
			continue
		}
		calls := byText[text]
		k := len(calls) - 1 - used[text]
		used[text]++
		if k >= 0 && calls[k].reply != "" {
			out[i], changed = calls[k].reply, true
		}
	}
	if !changed {
		return nil
	}
	return out
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
		k, _ := json.Marshal(key) // a string always marshals
		out = append(append(out, k...), ':')
		if key == "content" {
			v = content
		}
		out = append(out, v...)
	}
	return append(out, '}'), nil
}
