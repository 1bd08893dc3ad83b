package synth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/jsonscan"
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
	nodes   map[string]*graphCall
	seq     int // calls noted so far: each call's order
	replies int // calls with the target's reply kept
}

// graphCall is what a conversation keeps of one of its calls.
type graphCall struct {
	after    []string // the nodes it came after
	agent    string
	index    int    // the request's; only its own reply is kept
	seq      int    // the order its body was first built in: for the calls one call came after, the order they were sent
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
// built; a later call's ancestry goes through it, so every graph call is
// noted, text completions included. A call never scheduled (filtered out)
// is not, and the ancestry stops there: the calls before it are not
// matched (Run.UnresolvedAfter counts that edge).
func (g *graphReplies) note(req *workload.Request) {
	n := req.Graph
	if n == nil || n.Node == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.conv(n.Conversation)
	if _, ok := c.nodes[n.Node]; ok {
		return
	}
	c.seq++
	call := &graphCall{after: n.After, agent: n.Agent, index: req.Index, seq: c.seq}
	if graphChat(req) {
		call.recorded = n.Reply
	}
	c.nodes[n.Node] = call
}

// observe keeps the target's reply to a graph call.
func (g *graphReplies) observe(req *workload.Request, text string) {
	if !keepsReply(req) || text == "" {
		return
	}
	n := req.Graph
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.conv(n.Conversation)
	if call := c.nodes[n.Node]; call != nil && call.index == req.Index { // a node named twice: the first call's
		if call.reply == "" {
			c.replies++
		}
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
	g.mu.Lock()
	c := g.convs[req.Graph.Conversation]
	none := c == nil || c.replies == 0
	g.mu.Unlock()
	if none { // no reply to quote yet: the messages need not be read
		return req.Messages, nil
	}
	quotes, err := assistantTexts(req.Messages)
	if err != nil {
		return nil, fmt.Errorf("request %d: recorded messages: %w", req.Index, err)
	}
	texts := make([]string, len(quotes))
	for i, q := range quotes {
		texts[i] = q.text
	}
	replies := g.quoted(req.Graph, texts)
	if replies == nil {
		return req.Messages, nil
	}
	// Splice: each replaced content value gives way to the reply, every
	// other byte as recorded.
	out := make([]byte, 0, len(req.Messages)+256)
	last := 0
	for i, reply := range replies {
		if reply == "" {
			continue
		}
		q, err := json.Marshal(reply) // escaped as the recorded messages are (workload's jsonStringOf)
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", req.Index, err)
		}
		out = append(append(out, req.Messages[last:quotes[i].start]...), q...)
		last = quotes[i].end
	}
	return append(out, req.Messages[last:]...), nil
}

// quote is an assistant message's text content in a messages array: its
// decoded text and where its JSON string lies.
type quote struct {
	text       string
	start, end int
}

// assistantTexts finds the assistant messages with text content in a
// chat messages array, in order, reading it once (internal/jsonscan).
func assistantTexts(msgs []byte) ([]quote, error) {
	s := jsonscan.New(msgs)
	if s.Peek() == 'n' { // null: no messages, as encoding/json reads it
		if _, ok := s.Null(); !ok || !s.End() {
			return nil, s.Err()
		}
		return nil, nil
	}
	var out []quote
	empty, ok := s.OpenArray()
	for ok && !empty {
		if s.Peek() != '{' {
			ok = s.Skip()
		} else {
			var q quote
			var role string
			var objEmpty bool
			objEmpty, ok = s.OpenObject()
			for ok && !objEmpty {
				var k jsonscan.String
				if k, ok = s.Key(); !ok {
					break
				}
				switch k.String() {
				case "role":
					role = ""
					if s.Peek() == '"' {
						var r jsonscan.String
						r, ok = s.Str()
						role = r.String()
					} else {
						ok = s.Skip() // not a role a message is sent with
					}
				case "content":
					if s.Peek() == '"' {
						q.start = s.Pos()
						var c jsonscan.String
						c, ok = s.Str()
						q.text, q.end = c.String(), s.Pos()
					} else {
						q = quote{}
						ok = s.Skip()
					}
				default:
					ok = s.Skip()
				}
				if ok {
					var more bool
					more, ok = s.NextMember()
					objEmpty = !more
				}
			}
			if ok && role == "assistant" && q.text != "" {
				out = append(out, q)
			}
		}
		if ok {
			var more bool
			more, ok = s.NextElement()
			empty = !more
		}
	}
	if !ok || !s.End() {
		return nil, s.Err()
	}
	return out, nil
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
	// The ancestors with a recorded reply, by text, in the order they were
	// sent (seq).
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
