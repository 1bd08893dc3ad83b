package workload

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"strconv"
	"time"
)

// OTel reads OpenTelemetry GenAI spans (the gen_ai.* semantic conventions)
// as a workload, in the layouts GuideLLM 0.8.1 reads and in OTLP's own:
//
//   - span-per-line JSONL: one span a line (trace_id, span_id,
//     parent_span_id, start_time as ISO 8601, optional duration in seconds
//     or end_time, status, attributes as an object); consecutive lines with
//     the same trace_id are one conversation, as GuideLLM groups them (a
//     trace_id that comes back after other traces' lines is a conversation
//     of its own for GuideLLM; for Reprise it is the same session, whose
//     turns start counting again, and it is warned about);
//   - session-per-line JSONL: one conversation a line, {"spans": [...]};
//   - OTLP JSON: ExportTraceServiceRequest objects ({"resourceSpans":
//     [{"scopeSpans": [{"spans": [...]}]}]}, startTimeUnixNano and
//     endTimeUnixNano, attributes as key/value lists), one document or one
//     a line as the Collector's file exporter writes them. Exporters send
//     spans as they end, batch by batch, so a trace's spans are spread and
//     interleaved with others': a trace is one conversation, gathered until
//     its root span comes (SDKs end it last) or the file's spans have ended
//     otlpQuiet past its last one (a trace that comes back later continues
//     the same session). Calls go out once every span that could start
//     before them has been read: otlpQuiet behind the latest end read.
//
// A JSON span line may also use OTLP's field names, and attributes as
// key/value lists. Every LLM call is one request:
//
//   - an LLM call is a span that did not fail (status ERROR is dropped,
//     counted, as GuideLLM drops it) whose gen_ai.operation.name is chat,
//     generate, text_completion or generate_content, or any other span but
//     invoke_agent, execute_tool and embeddings that records both usage
//     token counts; other spans (agents, tools, retrieval) are not sent:
//     their time is kept as the waits around the calls;
//   - its messages (gen_ai.input.messages, with gen_ai.system_instructions
//     first) are sent verbatim in OpenAI's chat shape (see otelmessages.go)
//     when recorded; a text_completion is sent to /v1/completions with its
//     messages' text as the prompt; without content, a prompt of
//     gen_ai.usage.input_tokens tokens is synthesised;
//   - max_tokens is gen_ai.usage.output_tokens (0 is sent as 1 and warned
//     about; without it the server decides, and that too is warned about:
//     GuideLLM skips such spans);
//   - the model the span names is TraceModel (informational; --model or
//     --model-map choose what is sent).
//
// Timing: every conversation keeps its place on the file's one timeline
// (Offset is the call's start from the earliest call's); within a
// conversation's session, each call waits for the previous call's end plus
// the recorded gap between them (Delay: this start minus the previous
// call's start and duration, as GuideLLM's idle-gap schedule does; a span
// without duration counts as instantaneous). GuideLLM instead starts every
// OTel conversation at time 0.
//
// Sessions and graphs: a conversation is one session, except that the
// calls of a nested agent (under an invoke_agent span that is itself under
// another) form a session of their own, so parallel sub-agents run in
// parallel; the spawn and join links, tool-call kinds and tool definitions
// are kept in Request.Graph (see GraphNode for what the engine does not
// honour).
//
// Requests come out in start order. A conversation's calls are read
// whole, then merged with the other conversations' through a small heap:
// memory holds the conversations that overlap in time, never the file. A
// conversation that starts before one read earlier goes out late (warned).
type OTel struct {
	*lineFile
	otlp     bool
	dec      *json.Decoder
	nextOTLP func() (otlpItem, bool)
	stopOTLP func()

	sd      spanDecoder
	otlpBuf otlpSpan
	run     *otelConv               // span-per-line: the conversation being read
	open    map[string]*otelConv    // OTLP: traces being gathered
	recent  recentKeys              // span-per-line: conversations closed lately, to tell a trace that comes back
	cont    map[string]*otelSession // OTLP: sessions of traces that may come back, by session
	spansIn int                     // OTLP spans read
	maxEnd  int64                   // OTLP: the latest span end read (Unix ns)
	pending otelHeap
	seq     int64
	mark    int64 // calls starting at or before it are released
	hasMark bool
	eof     bool
	n       int
	origin  int64
	started bool
	last    int64 // start of the last call emitted

	// counts for the end-of-file warnings
	failed, noPrompt, noOutput, zeroOut, dropped, withTools, empty, split, notObjects, backwards int
	backBy                                                                                       time.Duration
	done                                                                                         bool
}

var _ Source = (*OTel)(nil)

// otlpQuiet is how long past a trace's last span end the OTLP reader waits
// (in the file's span end times) before it takes the trace as whole.
// OpenTelemetry SDKs export ended spans within seconds (the batch span
// processor's default delay is 5 s); five minutes also covers collectors
// that batch and retry.
const otlpQuiet = int64(5 * time.Minute)

type otelSession struct {
	turns   int
	lastEnd int64
}

// otelConv is one conversation being read.
type otelConv struct {
	key      string
	spans    []otelSpan
	lastEnd  int64 // OTLP: its latest span end
	minStart int64
}

// OpenOTel opens an OTel GenAI span file (see OTel for the layouts).
func OpenOTel(path string, opts OpenOptions) (*OTel, error) {
	l, err := openLines("otel", path, opts)
	if err != nil {
		return nil, err
	}
	o := &OTel{lineFile: l}
	if o.otlp, err = startsWithKey(path, "resourceSpans"); err != nil {
		l.Close()
		return nil, fmt.Errorf("otel %s: %w", path, err)
	}
	if o.otlp {
		o.open, o.cont = map[string]*otelConv{}, map[string]*otelSession{}
		o.dec = json.NewDecoder(bufio.NewReaderSize(l.f, 256<<10))
		o.nextOTLP, o.stopOTLP = iter.Pull(o.otlpSpans)
	}
	return o, nil
}

// startsWithKey reports whether the file's first JSON value is an object
// whose first key is key.
func startsWithKey(path, key string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(f))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false, nil
	}
	t, err := dec.Token()
	return err == nil && t == key, nil
}

// Next returns the next call in start order.
func (o *OTel) Next() (Request, error) {
	for {
		if o.pending.Len() > 0 && (o.eof || (o.hasMark && o.pending[0].start <= o.mark)) {
			return o.emit(heap.Pop(&o.pending).(*otelPending)), nil
		}
		if o.eof {
			o.finish()
			return Request{}, io.EOF
		}
		var err error
		if o.otlp {
			err = o.readOTLP()
		} else {
			err = o.readLine()
		}
		if err != nil {
			return Request{}, err
		}
	}
}

// readLine reads one JSONL line: a span or a session.
func (o *OTel) readLine() error {
	line, ok, err := o.next()
	if err != nil {
		return err
	}
	if !ok {
		if o.run != nil {
			o.close(o.run)
			o.run = nil
		}
		o.eof = true
		return nil
	}
	j := &o.sd.jl
	j.reset()
	if err := o.sd.line.decode(line, j); err != nil {
		return o.invalid("otel", jsonError(err))
	}
	switch {
	case !isNull(j.ResourceSpans):
		return o.invalid("otel", errors.New("an OTLP export request, but the file's first line is a span or a session: keep one layout a file"))
	case len(bytes.TrimSpace(j.Spans)) > 0 && bytes.TrimSpace(j.Spans)[0] == '[':
		return o.readSession(j)
	}
	s, err := o.sd.readSpan(&j.jsonSpan, o.line, "")
	if err != nil {
		return o.invalid("otel", err)
	}
	key := s.traceID
	if key == "" {
		key = s.spanID
	}
	if key == "" {
		key = "line " + strconv.Itoa(o.line)
	}
	if o.run != nil && o.run.key != key {
		o.close(o.run)
		o.run = nil
	}
	if o.run == nil {
		if o.recent.seen(key) {
			o.split++
		}
		o.run = &otelConv{key: key}
	}
	o.run.spans = append(o.run.spans, s)
	return nil
}

// jsonLine is a JSONL line: a span (its fields), or a session (spans).
type jsonLine struct {
	jsonSpan
	Spans          json.RawMessage `json:"spans"`
	ResourceSpans  json.RawMessage `json:"resourceSpans"`
	SessionID      json.RawMessage `json:"session_id"`
	ConversationID json.RawMessage `json:"conversation_id"`
	ID             json.RawMessage `json:"id"`
}

func (j *jsonLine) reset() {
	j.jsonSpan.reset()
	resetRaw(&j.Spans, &j.ResourceSpans, &j.SessionID, &j.ConversationID, &j.ID)
}

// readSession reads a session-per-line line: one conversation.
func (o *OTel) readSession(j *jsonLine) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(j.Spans, &raw); err != nil {
		return o.invalid("otel", fmt.Errorf("spans: %w", jsonError(err)))
	}
	key := firstID(j.TraceID, j.TraceIDOTLP, j.SessionID, j.ConversationID, j.ID)
	spans := make([]otelSpan, 0, len(raw))
	for i, r := range raw {
		r = bytes.TrimSpace(r)
		if len(r) == 0 || r[0] != '{' {
			o.notObjects++ // GuideLLM passes over entries that are not objects
			continue
		}
		js := &o.sd.js
		js.reset()
		where := "spans[" + strconv.Itoa(i) + "]"
		if err := o.sd.span.decode(r, js); err != nil {
			return o.invalid("otel", fmt.Errorf("%s: %w", where, jsonError(err)))
		}
		s, err := o.sd.readSpan(js, o.line, where)
		if err != nil {
			return o.invalid("otel", fmt.Errorf("%s: %w", where, err))
		}
		if key == "" {
			key = s.traceID
		}
		spans = append(spans, s)
	}
	if key == "" {
		key = "line " + strconv.Itoa(o.line)
	}
	o.close(&otelConv{key: key, spans: spans})
	return nil
}

// recentKeys remembers the last recentKeysSize conversation keys closed,
// so that a trace_id whose spans come back after other traces' lines is
// noticed without remembering every trace of the file.
type recentKeys struct {
	ring [recentKeysSize]string
	next int
	set  map[string]int // key → how many times it is in ring
}

const recentKeysSize = 4096

// seen reports whether key was added lately, and adds it.
func (r *recentKeys) seen(key string) bool {
	if r.set == nil {
		r.set = map[string]int{}
	}
	hit := r.set[key] > 0
	if old := r.ring[r.next]; old != "" {
		if r.set[old]--; r.set[old] == 0 {
			delete(r.set, old)
		}
	}
	r.ring[r.next] = key
	r.set[key]++
	r.next = (r.next + 1) % recentKeysSize
	return hit
}

// jsonError says what a JSON error from a document decoder means.
func jsonError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("not JSON: %w", err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("not JSON: the file ends inside a value")
	}
	return err
}

// Close stops the OTLP walk, if any, and closes the file.
func (o *OTel) Close() error {
	if o.stopOTLP != nil {
		o.stopOTLP()
		o.stopOTLP = nil
	}
	return o.lineFile.Close()
}
