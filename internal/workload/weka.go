package workload

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

// WEKA reads WEKA agentic traces (callanjfox/agentic-coding-analysis,
// docs/TRACE_FORMAT.md: Claude Code sessions anonymised to lengths and
// prefix-block hashes), the format GuideLLM 0.8.1 reads as kind "weka".
// One conversation a line (or one JSON document, or an array of them):
// {"id", "block_size", "hash_id_scope", "requests": [...]}, each request
// {"t" (seconds), "in", "out" (tokens), "hash_ids" (one per block_size
// tokens, full blocks; GuideLLM also takes a last partial one), "model",
// "stop", "input_types", "api_time" (seconds), "think_time"}, or a
// sub-agent group {"type": "subagent", "agent_id", "t", "requests": [...]}
// whose requests' t are relative to its spawn when the first is earlier
// than the spawn time (else on the parent's timeline), as GuideLLM decides.
//
// Every request is sent as a whole-context row (ConventionWhole): exactly
// "in" tokens, built from its hash_ids so the blocks it shares with earlier
// requests are byte-identical and a prefix cache hits them; "out" is forced
// (0 is sent as 1, warned about). GuideLLM instead sends each turn after
// the conversation's earlier turns and live replies (its "full" history),
// so a whole-context row's context goes out twice.
//
// Timing: Offset is t from the earliest t of the file's first conversation
// (published traces start every conversation at t=0, so they start
// together, as in GuideLLM). Each agent's requests are a session: a turn
// waits for its previous turn's end plus Delay, the recorded gap: t minus
// the previous turn's t and api_time (GuideLLM counts turns as
// instantaneous, so its gap includes api_time); think_time when the
// previous turn has no api_time; else the gap between the two t.
//
// Graphs, as GuideLLM builds them: the main chain's nodes are main_0,
// main_1, ...; a sub-agent group is a chain of its own, sa_N_0, ..., and a
// Session of its own (id/agent_id), spawned from the parent's latest turn
// and joined by the parent's next turn; several groups between the same
// two parent turns run in parallel. stop "tool_use" makes a tool-call
// turn, input_types "tool_result" (or none, right after a tool_use stop) a
// tool-result turn. All of it is kept in Request.Graph; see GraphNode for
// what the engine does not honour.
//
// Prefix-block ids are renumbered: hash_id_scope "local" ids belong to
// their conversation only (odd numbers), "global" or absent ones are shared
// by the file (even numbers), as GuideLLM scopes its block table.
//
// Requests come out in start order through a heap holding the requests of
// conversations that overlap in time: published traces, whose
// conversations all start at t=0, are held whole (tens of bytes a request
// plus 4 bytes a block id).
type WEKA struct {
	*lineFile
	doc     *json.Decoder // a file that is one document (or array), not JSONL
	inArray bool
	pending otelHeap
	seq     int64
	mark    float64 // seconds: requests at or before it are released
	hasMark bool
	origin  float64
	hasOrig bool
	last    float64
	eof     bool
	n       int
	convs   int
	local   uint32 // local-scope block ids handed out

	zeroOut, mismatch, backwards, overlaps, roots int
	reordered                                     int // calls moved after a node they came after (readConversation)
	done                                          bool
}

var _ Source = (*WEKA)(nil)

// wekaBlockTokens is GuideLLM's hash_id_block_size default, the block size
// the format's authors recommend.
const wekaBlockTokens = 64

// OpenWEKA opens a WEKA trace.
func OpenWEKA(path string, opts OpenOptions) (*WEKA, error) {
	l, err := openLines("weka", path, opts)
	if err != nil {
		return nil, err
	}
	w := &WEKA{lineFile: l}
	first := bytes.TrimSpace(firstLine(path))
	if len(first) > 0 && (first[0] == '[' || !json.Valid(first)) {
		// A pretty-printed document, or an array of conversations: read
		// value by value, never whole.
		w.doc = json.NewDecoder(bufio.NewReaderSize(l.f, 256<<10))
		if first[0] == '[' {
			if _, err := w.doc.Token(); err != nil {
				l.Close()
				return nil, fmt.Errorf("weka %s: %w", path, err)
			}
			w.inArray = true
		}
	}
	return w, nil
}

// Next returns the next request in start order.
func (w *WEKA) Next() (Request, error) {
	for {
		if w.pending.Len() > 0 && (w.eof || (w.hasMark && float64(w.pending[0].start)/1e9 <= w.mark)) {
			return w.emit(heap.Pop(&w.pending).(*otelPending)), nil
		}
		if w.eof {
			w.finish()
			return Request{}, io.EOF
		}
		if err := w.readConversation(); err != nil {
			return Request{}, err
		}
	}
}

// readConversation reads one conversation and queues its requests.
func (w *WEKA) readConversation() error {
	raw, p, err := w.nextValue()
	if err != nil || raw == nil {
		return err
	}
	var c wekaConv
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return w.invalidAt(p, fmt.Errorf("want a conversation object {\"id\", \"requests\": [...]}, got %s", excerpt(t)))
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return w.invalidAt(p, jsonError(err))
	}
	reqs, err := w.build(&c)
	if err != nil {
		return w.invalidAt(p, err)
	}
	if len(reqs) == 0 {
		return nil
	}
	minT := math.Inf(1)
	for _, r := range reqs {
		minT = min(minT, r.t)
	}
	if !w.hasOrig {
		w.origin, w.last, w.hasOrig = minT, minT, true
	}
	// A call comes out no earlier than the calls it came after (a row
	// whose t is earlier than a sub-agent's it joins, in a skewed trace):
	// the engine waits for the nodes of After it has seen, so each must be
	// seen first. Rows are built in file order, which puts every node
	// after the nodes it lists.
	key := make(map[string]int64, len(reqs))
	for _, r := range reqs {
		start := int64(math.Round(r.t * 1e9))
		if g := r.req.Graph; g != nil {
			for _, a := range g.After {
				if k, ok := key[a]; ok && k > start {
					start = k
					w.reordered++
				}
			}
			key[g.Node] = start
		}
		w.seq++
		heap.Push(&w.pending, &otelPending{start: start, seq: w.seq, req: r.req})
	}
	// Conversations come in start order: none read later starts earlier.
	if !w.hasMark || minT > w.mark {
		w.mark, w.hasMark = minT, true
	}
	return nil
}

// nextValue returns the next conversation's JSON and where it is (its line
// in a JSONL file, else its byte offset); nil at the end.
func (w *WEKA) nextValue() (json.RawMessage, wekaPos, error) {
	if w.doc == nil {
		line, ok, err := w.next()
		if err != nil {
			return nil, wekaPos{}, err
		}
		if !ok {
			w.eof = true
			return nil, wekaPos{}, nil
		}
		return line, wekaPos{line: w.line}, nil
	}
	if w.inArray && !w.doc.More() {
		if _, err := w.doc.Token(); err != nil { // the closing ]
			return nil, wekaPos{}, w.fatal(err)
		}
		w.inArray = false
	}
	pos := w.doc.InputOffset()
	var raw json.RawMessage
	if err := w.doc.Decode(&raw); errors.Is(err, io.EOF) && !w.inArray {
		w.eof = true
		return nil, wekaPos{}, nil
	} else if err != nil {
		return nil, wekaPos{}, w.fatal(err)
	}
	return raw, wekaPos{pos: pos}, nil
}

// wekaPos is where a conversation is: a line, or a byte offset whose line
// is counted only for an error.
type wekaPos struct {
	line int
	pos  int64
}

func (w *WEKA) lineOf(p wekaPos) int {
	if p.line > 0 {
		return p.line
	}
	return lineAtOffset(w.path, p.pos)
}

// fatal is a syntax error the decoder cannot read past.
func (w *WEKA) fatal(err error) error {
	return fmt.Errorf("weka %s line %d: %w", w.path, lineAtOffset(w.path, w.doc.InputOffset()), jsonError(err))
}

// invalidAt reports a bad conversation: an error, or a count when skipping.
func (w *WEKA) invalidAt(p wekaPos, reason error) error {
	if w.skip {
		w.skipped++
		return nil
	}
	return fmt.Errorf("weka %s line %d: %w", w.path, w.lineOf(p), reason)
}

// wekaConv is one conversation.
type wekaConv struct {
	ID        json.RawMessage   `json:"id"`
	BlockSize json.RawMessage   `json:"block_size"`
	Scope     json.RawMessage   `json:"hash_id_scope"`
	Requests  []json.RawMessage `json:"requests"`
}

// wekaRow is a request, or a sub-agent group (Type "subagent").
type wekaRow struct {
	T          json.RawMessage   `json:"t"`
	Type       json.RawMessage   `json:"type"`
	Model      json.RawMessage   `json:"model"`
	In         json.RawMessage   `json:"in"`
	Out        json.RawMessage   `json:"out"`
	HashIDs    []int64           `json:"hash_ids"`
	InputTypes json.RawMessage   `json:"input_types"`
	Stop       json.RawMessage   `json:"stop"`
	APITime    json.RawMessage   `json:"api_time"`
	ThinkTime  json.RawMessage   `json:"think_time"`
	AgentID    json.RawMessage   `json:"agent_id"`
	Requests   []json.RawMessage `json:"requests"`
}

// wekaReq is a built request with its absolute time in seconds.
type wekaReq struct {
	t   float64
	req Request
}

// wekaChain is what building one agent's chain needs to carry along.
type wekaChain struct {
	conv      string
	session   string
	agent     string
	prefix    string // node id prefix: "main", "sa_0", ...
	parent    string // the node a sub-agent was spawned from ("" for roots)
	transform func(float64) float64
}

// wekaBuild is the state of building one conversation.
type wekaBuild struct {
	w      *WEKA
	block  int
	local  map[int64]uint32 // local-scope ids → renumbered ids
	spawns int
	out    []wekaReq
}

// build turns a conversation into requests.
func (w *WEKA) build(c *wekaConv) ([]wekaReq, error) {
	w.convs++
	id := scalarText(c.ID)
	if id == "" {
		id = "conversation " + strconv.Itoa(w.convs)
	}
	b := &wekaBuild{w: w, block: wekaBlockTokens}
	if !isNull(c.BlockSize) {
		v, err := strconv.Atoi(scalarText(c.BlockSize))
		if err != nil || v <= 0 || v > 1<<20 {
			return nil, fmt.Errorf("block_size %s: want a positive whole number of tokens", excerpt(c.BlockSize))
		}
		b.block = v
	}
	switch scope := scalarText(c.Scope); scope {
	case "", "global":
	case "local":
		b.local = map[int64]uint32{}
	default:
		return nil, fmt.Errorf("hash_id_scope %q: want \"global\" or \"local\"", scope)
	}
	if c.Requests == nil {
		return nil, errors.New("no requests list")
	}
	_, err := b.chain(c.Requests, wekaChain{conv: id, session: id, prefix: "main", transform: func(t float64) float64 { return t }}, "requests")
	return b.out, err
}

// chain builds one agent's requests (and its sub-agents') in file order,
// which is the graph's order (GuideLLM does not sort by time). It returns
// the chain's last node.
func (b *wekaBuild) chain(rows []json.RawMessage, ch wekaChain, path string) (string, error) {
	var last, prevStop string
	var prevT, prevAPI float64
	hasPrevAPI := false
	var joins []string
	idx := 0
	for i, raw := range rows {
		where := fmt.Sprintf("%s[%d]", path, i)
		var r wekaRow
		if err := json.Unmarshal(raw, &r); err != nil {
			return "", fmt.Errorf("%s: %w", where, jsonError(err))
		}
		if scalarText(r.Type) == "subagent" {
			if len(r.Requests) == 0 {
				continue
			}
			node, err := b.subAgent(&r, ch, last, where)
			if err != nil {
				return "", err
			}
			if node != "" {
				joins = append(joins, node)
			}
			continue
		}
		req, t, err := b.row(&r, where, ch)
		if err != nil {
			return "", err
		}
		g := req.Graph
		g.Node = ch.prefix + "_" + strconv.Itoa(idx)
		switch {
		case last != "":
			g.After = append(g.After, last)
		case ch.parent != "":
			g.After = append(g.After, ch.parent)
		}
		g.After = append(g.After, joins...)
		joins = nil
		input := wekaStrings(r.InputTypes)
		stop := scalarText(r.Stop)
		toolResult := contains(input, "tool_result") || (len(input) == 0 && prevStop == "tool_use")
		switch {
		case toolResult:
			g.Kind = TurnToolResult
		case stop == "tool_use":
			g.Kind = TurnToolCall
		}
		req.Turn = idx
		if idx > 0 {
			switch think, hasThink := optSeconds(r.ThinkTime); {
			case hasPrevAPI:
				req.Delay = time.Duration(math.Round(max(t-prevT-prevAPI, 0) * 1e9))
				if t < prevT+prevAPI {
					b.w.overlaps++
				}
			case hasThink:
				req.Delay = time.Duration(math.Round(think * 1e9))
			default:
				req.Delay = time.Duration(math.Round(max(t-prevT, 0) * 1e9))
			}
		}
		prevT, prevStop = t, stop
		prevAPI, hasPrevAPI = optSeconds(r.APITime)
		last = g.Node
		idx++
		b.out = append(b.out, wekaReq{t: t, req: req})
	}
	return last, nil
}

// subAgent builds a sub-agent group as a chain of its own, spawned from
// the parent's latest node; it returns the group's last node.
func (b *wekaBuild) subAgent(r *wekaRow, parent wekaChain, from, where string) (string, error) {
	spawn, err := seconds0(r.T)
	if err != nil {
		return "", fmt.Errorf("%s: t: %w", where, err)
	}
	id := b.spawns
	b.spawns++
	agent := truthy(r.AgentID)
	if agent == "" {
		agent = "sa_" + strconv.Itoa(id)
	}
	if from == "" {
		b.w.roots++ // GuideLLM replays it as an independent root, and warns
	}
	// Inner times are relative to the spawn when the first is earlier
	// than it (the format's rule), else on the parent's timeline.
	var first wekaRow
	_ = json.Unmarshal(r.Requests[0], &first) // errors are reported when the row is built
	firstT, _ := seconds0(first.T)
	transform := parent.transform
	if firstT < spawn {
		outer := parent.transform
		transform = func(t float64) float64 { return outer(spawn + t) }
	}
	return b.chain(r.Requests, wekaChain{
		conv: parent.conv, session: parent.conv + "/" + agent, agent: agent,
		prefix: "sa_" + strconv.Itoa(id), parent: from, transform: transform,
	}, where+".requests")
}

// row builds one request (its absolute time in seconds too).
func (b *wekaBuild) row(r *wekaRow, where string, ch wekaChain) (Request, float64, error) {
	var errs []error
	raw, err := seconds0(r.T)
	if err != nil {
		errs = append(errs, fmt.Errorf("t: %w", err))
	}
	in, err1 := wekaTokens("in", r.In)
	out, err2 := wekaTokens("out", r.Out)
	errs = append(errs, err1, err2)
	if r.HashIDs == nil {
		errs = append(errs, errors.New("no hash_ids"))
	} else if err1 == nil {
		// GuideLLM takes full blocks only, or one more for a partial last block.
		n, blocks := len(r.HashIDs), float64(in)/float64(b.block)
		if n != int(math.Floor(blocks)) && n != int(math.Ceil(blocks)) {
			errs = append(errs, fmt.Errorf("%d hash_ids for in %d: want %d full blocks of %d tokens (or %d with a partial last block)",
				n, in, int(math.Floor(blocks)), b.block, int(math.Ceil(blocks))))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Request{}, 0, fmt.Errorf("%s: %w", where, err)
	}
	ids := make([]uint32, len(r.HashIDs))
	for i, id := range r.HashIDs {
		if id < 0 || id >= 1<<31 {
			return Request{}, 0, fmt.Errorf("%s: hash_ids[%d] %d: want an id in [0, 2^31)", where, i, id)
		}
		if b.local == nil {
			ids[i] = uint32(id) * 2
			continue
		}
		v, ok := b.local[id]
		if !ok {
			if b.w.local >= 1<<31-1 {
				return Request{}, 0, fmt.Errorf("%s: more than 2^31 local-scope block ids in the file", where)
			}
			v = b.w.local*2 + 1
			b.w.local++
			b.local[id] = v
		}
		ids[i] = v
	}
	req := Request{
		Endpoint: openai.Chat, Stream: true, PromptTokens: int(in), OutputTokens: int(out),
		HashIDs: ids, BlockTokens: b.block, Session: ch.session, Convention: ConventionWhole,
		TraceModel: scalarText(r.Model),
		Graph:      &GraphNode{Conversation: ch.conv, Agent: ch.agent},
	}
	if api, ok := optSeconds(r.APITime); ok {
		req.Graph.Duration = time.Duration(math.Round(api * 1e9))
	}
	if out == 0 {
		req.OutputTokens = 1
		b.w.zeroOut++
	}
	return req, ch.transform(raw), nil
}

// emit numbers a request and sets its offset.
func (w *WEKA) emit(p *otelPending) Request {
	req := p.req
	t := float64(p.start) / 1e9
	if t < w.last {
		w.backwards++
	} else {
		w.last = t
	}
	req.Offset = time.Duration(max(p.start-int64(math.Round(w.origin*1e9)), 0))
	req.Index = w.n
	req.ID = req.Graph.Conversation + "/" + req.Graph.Node
	w.n++
	return req
}

func (w *WEKA) finish() {
	if w.done {
		return
	}
	w.done = true
	if w.zeroOut > 0 {
		w.addWarning(zeroOutputWarning("weka", w.path, "out", w.zeroOut))
	}
	if w.roots > 0 {
		w.addWarning(fmt.Sprintf("weka %s: %d sub-agent groups come before any request of their parent: replayed as independent roots", w.path, w.roots))
	}
	if w.overlaps > 0 {
		w.addWarning(fmt.Sprintf("weka %s: %d requests start before the previous request of their agent ended (t + api_time): sent after it, with no think time", w.path, w.overlaps))
	}
	if w.reordered > 0 {
		w.addWarning(fmt.Sprintf("weka %s: %d requests start before a request they come after (a sub-agent's call they join, the call that spawned them): sent after it instead", w.path, w.reordered))
	}
	if w.backwards > 0 {
		w.addWarning(fmt.Sprintf("weka %s: %d requests start before requests of conversations read earlier: conversations are expected in start order; they are sent when reached, late", w.path, w.backwards))
	}
}

// seconds0 reads a required time in seconds (a number).
func seconds0(raw json.RawMessage) (float64, error) {
	if isNull(raw) {
		return 0, errors.New("missing")
	}
	f, err := strconv.ParseFloat(scalarText(raw), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) >= 1<<33 {
		return 0, fmt.Errorf("%s: want seconds", excerpt(raw))
	}
	return f, nil
}

// optSeconds reads an optional duration in seconds >= 0.
func optSeconds(raw json.RawMessage) (float64, bool) {
	if isNull(raw) {
		return 0, false
	}
	f, err := strconv.ParseFloat(scalarText(raw), 64)
	if err != nil || !(f >= 0) || f >= 1<<33 {
		return 0, false
	}
	return f, true
}

// wekaTokens reads a token count: a whole number >= 0.
func wekaTokens(name string, raw json.RawMessage) (int64, error) {
	if isNull(raw) {
		return 0, fmt.Errorf("no %s", name)
	}
	v, ok, err := firstTokens(name, raw, name, nil)
	if err == nil && !ok {
		err = fmt.Errorf("no %s", name)
	}
	return v, err
}

func wekaStrings(raw json.RawMessage) []string {
	var out []string
	_ = json.Unmarshal(raw, &out) // anything but a list of strings counts as none, as in GuideLLM
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
