package workload

import (
	"container/heap"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// otelPending is a call read and waiting for its turn in start order.
type otelPending struct {
	start, end int64 // Unix ns
	seq        int64 // read order, to keep ties stable
	req        Request
}

type otelHeap []*otelPending

func (h otelHeap) Len() int { return len(h) }
func (h otelHeap) Less(i, j int) bool {
	if h[i].start != h[j].start {
		return h[i].start < h[j].start
	}
	return h[i].seq < h[j].seq
}
func (h otelHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *otelHeap) Push(x any)   { *h = append(*h, x.(*otelPending)) }
func (h *otelHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return x
}

// close turns a whole conversation into pending calls. In the JSONL
// layouts conversations come in start order, so every call that starts
// no later than this conversation's first can go out.
func (o *OTel) close(c *otelConv) {
	calls := make([]int, 0, len(c.spans))
	for i := range c.spans {
		s := &c.spans[i]
		switch {
		case s.failed:
			o.failed++
		case s.call == nil:
			// not an LLM call: its time is part of the waits around the calls
		case s.call.messages == nil && s.call.prompt == "" && !s.call.hasIn:
			o.noPrompt++
		default:
			calls = append(calls, i)
		}
	}
	if len(calls) == 0 {
		if !o.otlp { // an OTLP trace read in pieces may have its calls in another piece
			o.empty++
		}
		return
	}
	sort.SliceStable(calls, func(a, b int) bool { return c.spans[calls[a]].start < c.spans[calls[b]].start })
	g := newOTelGraph(c)
	reqs := make([]*otelPending, len(calls))
	for k, i := range calls {
		s := &c.spans[i]
		reqs[k] = o.pendingCall(c, s, g.session(i), g.node(i), g.agentName(i))
	}
	g.link(calls, reqs)
	o.turns(reqs)
	for _, p := range reqs {
		heap.Push(&o.pending, p)
	}
	if first := reqs[0].start; !o.otlp && (!o.hasMark || first > o.mark) {
		o.mark, o.hasMark = first, true
	}
}

// pendingCall builds the request of LLM call s.
func (o *OTel) pendingCall(c *otelConv, s *otelSpan, session, node, agent string) *otelPending {
	call := s.call
	req := Request{
		ID: s.spanID, Endpoint: call.endpoint, Stream: call.stream,
		PromptTokens: int(call.in), OutputTokens: int(call.out),
		Prompt: call.prompt, Messages: call.messages,
		Session: session, TraceModel: call.model,
		Graph: &GraphNode{Conversation: c.key, Node: node, Agent: agent, Kind: call.kind, Tools: call.tools,
			Duration: time.Duration(max(s.dur, 0)), Reply: call.reply},
	}
	if call.messages == nil && call.prompt == "" && len(call.hashIDs) > 0 {
		req.HashIDs, req.BlockTokens = call.hashIDs, call.block
	}
	switch {
	case !call.hasOut:
		o.noOutput++
	case call.out == 0:
		req.OutputTokens = 1
		o.zeroOut++
	}
	o.dropped += call.dropped
	if call.tools != nil {
		o.withTools++
	}
	o.seq++
	return &otelPending{start: s.start, end: s.end(), seq: o.seq, req: req}
}

// emit numbers a call and times it against its session.
func (o *OTel) emit(p *otelPending) Request {
	req := p.req
	if !o.started {
		o.origin, o.last, o.started = p.start, p.start, true
	}
	if p.start < o.last {
		// A conversation that starts before calls already sent (the file
		// is not in start order): sent now, late.
		o.backwards++
		o.backBy = max(o.backBy, time.Duration(o.last-p.start))
	} else {
		o.last = p.start
	}
	req.Offset = time.Duration(max(p.start-o.origin, 0))
	req.Index = o.n
	o.n++
	return req
}

// turns numbers a conversation's calls within their sessions, in start
// order, and sets each Delay: its start minus the end of its session's
// previous call (0 when they overlap). An OTLP trace read in pieces
// carries its sessions on from piece to piece.
func (o *OTel) turns(reqs []*otelPending) {
	local := map[string]*otelSession{}
	for _, p := range reqs {
		r := &p.req
		st := local[r.Session]
		if st == nil {
			st = &otelSession{}
			if prev, ok := o.cont[r.Session]; ok {
				*st = *prev
			}
			local[r.Session] = st
		}
		if st.turns > 0 {
			r.Delay = time.Duration(max(p.start-st.lastEnd, 0))
		}
		r.Turn = st.turns
		st.turns++
		st.lastEnd = p.end
	}
	if o.otlp {
		for k, st := range local {
			o.cont[k] = st
		}
	}
}

// finish adds the end-of-file warnings once.
func (o *OTel) finish() {
	if o.done {
		return
	}
	o.done = true
	w := func(format string, args ...any) {
		o.addWarning(fmt.Sprintf("otel %s: ", o.path) + fmt.Sprintf(format, args...))
	}
	if o.failed > 0 {
		w("%d spans with status ERROR left out (failed calls and retries are not replayed as load, as GuideLLM does)", o.failed)
	}
	if o.noPrompt > 0 {
		w("%d LLM spans record neither gen_ai.input.messages nor gen_ai.usage.input_tokens: left out, nothing says what to send", o.noPrompt)
	}
	if o.noOutput > 0 {
		w("%d LLM calls record no gen_ai.usage.output_tokens: sent without max_tokens, the server decides the length (GuideLLM skips such spans)", o.noOutput)
	}
	if o.zeroOut > 0 {
		o.addWarning(zeroOutputWarning("otel", o.path, "gen_ai.usage.output_tokens", o.zeroOut))
	}
	if o.dropped > 0 {
		w("%d message parts of types other than text, tool_call and tool_call_response (blobs, files, reasoning) are not sent", o.dropped)
	}
	if o.withTools > 0 {
		w("%d calls record gen_ai.tool.definitions: kept with the request (Graph.Tools) but not sent yet, so tool-call turns are replayed as plain chat requests of the recorded lengths", o.withTools)
	}
	if o.empty > 0 {
		w("%d conversations have no LLM call to replay", o.empty)
	}
	if o.split > 0 {
		w("%d times a trace_id's spans come back after other traces' lines: the same session, but each run of lines is read on its own (turns counted afresh; GuideLLM makes it another conversation); sort the file by trace_id to keep a trace whole", o.split)
	}
	if o.notObjects > 0 {
		w("%d entries of session spans lists are not objects: passed over, as GuideLLM does", o.notObjects)
	}
	if o.backwards > 0 {
		w("%d calls start before calls read earlier in the file (by up to %v): conversations are expected in start order; they are sent when reached, late", o.backwards, o.backBy)
	}
}

// otelGraph finds a conversation's agents and links its calls.
type otelGraph struct {
	c      *otelConv
	byID   map[string]int // span id → index of its first span
	agents map[int][]int  // call index → its invoke_agent ancestors, nearest first
}

func newOTelGraph(c *otelConv) *otelGraph {
	g := &otelGraph{c: c, byID: make(map[string]int, len(c.spans)), agents: map[int][]int{}}
	for i := range c.spans {
		if id := c.spans[i].spanID; id != "" {
			if _, dup := g.byID[id]; !dup {
				g.byID[id] = i
			}
		}
	}
	return g
}

// ancestors returns span i's invoke_agent ancestors, nearest first.
func (g *otelGraph) ancestors(i int) []int {
	if a, ok := g.agents[i]; ok {
		return a
	}
	var out []int
	seen := map[int]bool{i: true}
	for p := g.c.spans[i].parentID; p != ""; {
		j, ok := g.byID[p]
		if !ok || seen[j] { // a parent outside the file, or a cycle
			break
		}
		seen[j] = true
		if g.c.spans[j].op == "invoke_agent" {
			out = append(out, j)
		}
		p = g.c.spans[j].parentID
	}
	g.agents[i] = out
	return out
}

// subAgent is the nested agent span a call runs under, or -1 for the
// conversation's main agent (no agent, or only the outermost).
func (g *otelGraph) subAgent(i int) int {
	if a := g.ancestors(i); len(a) >= 2 {
		return a[0]
	}
	return -1
}

// agentSession is the session of the agent span a (-1: the main agent).
func (g *otelGraph) agentSession(a int) string {
	if a < 0 {
		return g.c.key
	}
	return g.c.key + "/" + g.node(a)
}

func (g *otelGraph) session(i int) string { return g.agentSession(g.subAgent(i)) }

// parentSession is the session of the agent that spawned agent span a.
func (g *otelGraph) parentSession(a int) string {
	up := g.ancestors(a) // a's own invoke_agent ancestors
	if len(up) >= 2 {
		return g.agentSession(up[0])
	}
	return g.c.key
}

// node names span i in its conversation: its span id, else its place.
func (g *otelGraph) node(i int) string {
	s := &g.c.spans[i]
	if s.spanID != "" && g.byID[s.spanID] == i {
		return s.spanID
	}
	return "#" + strconv.Itoa(i)
}

func (g *otelGraph) agentName(i int) string {
	a := g.subAgent(i)
	if a < 0 {
		return ""
	}
	if n := g.c.spans[a].agent; n != "" {
		return n
	}
	return g.node(a)
}

// link fills every call's After: the previous call of its session; on a
// sub-agent's first call, the parent's latest call started before the
// sub-agent's span (spawn); on the parent's first call starting after a
// sub-agent ended, the sub-agent's last call (join).
func (g *otelGraph) link(calls []int, reqs []*otelPending) {
	lastOf := map[string]int{} // session → index into reqs of its latest call
	type sub struct {
		agent       int
		first, last int
	}
	subs := map[string]*sub{}
	var order []string
	for k, i := range calls {
		r := &reqs[k].req
		if prev, ok := lastOf[r.Session]; ok {
			r.Graph.After = append(r.Graph.After, reqs[prev].req.Graph.Node)
		} else if a := g.subAgent(i); a >= 0 {
			parent := g.parentSession(a)
			if p, ok := lastOf[parent]; ok && reqs[p].start <= g.c.spans[a].start {
				r.Graph.After = append(r.Graph.After, reqs[p].req.Graph.Node)
			}
			subs[r.Session] = &sub{agent: a, first: k}
			order = append(order, r.Session)
		}
		if s := subs[r.Session]; s != nil {
			s.last = k
		}
		lastOf[r.Session] = k
	}
	for _, name := range order {
		s := subs[name]
		end := max(reqs[s.last].end, g.c.spans[s.agent].end())
		parent := g.parentSession(s.agent)
		for k := s.last + 1; k < len(reqs); k++ {
			if r := &reqs[k].req; r.Session == parent && reqs[k].start >= end {
				r.Graph.After = append(r.Graph.After, reqs[s.last].req.Graph.Node)
				break
			}
		}
	}
}
