// Package otelexport writes requests as OpenTelemetry GenAI spans (the
// gen_ai.* semantic conventions), so that a capture or a benchmark's
// results can be loaded into a tracing backend or replayed by another tool
// — GuideLLM reads them as kind "otel", Reprise as otel:PATH.
//
// One request is one CLIENT span named "{operation} {model}": start and
// end, gen_ai.operation.name (chat or text_completion), gen_ai.request.model,
// gen_ai.usage.input_tokens and output_tokens, and what else was recorded
// (max_tokens, temperature, top_p, cached tokens, finish reason, time to
// first chunk, an ERROR status with error.type for a failed request). A
// session is one trace (gen_ai.conversation.id names it); a request without
// one is a trace of its own. Content is written only when it was captured:
// gen_ai.input.messages holds the recorded messages (or a completion's
// prompt) in the conventions' parts shape; a capture without content
// (the default) gives spans of lengths and timings only, whose prefix
// structure goes in reprise.prompt.hash_ids and reprise.prompt.block_tokens
// (keyed hashes, not content; Reprise's reader reads them back, other
// tools ignore them). Credentials are never part of a record, so never of
// a span.
//
// Two layouts:
//
//   - OTLP: OTLP/JSON ExportTraceServiceRequest objects, one a line, as
//     the OpenTelemetry Collector's file exporter writes them and its OTLP
//     HTTP receiver takes them (POST each line to /v1/traces). Streamed,
//     BatchSpans spans a line.
//   - Spans: one span a line with GuideLLM's field names (trace_id,
//     span_id, start_time in ISO 8601, duration in seconds, attributes as
//     an object), the span-per-line layout GuideLLM 0.8.1 reads. GuideLLM
//     takes consecutive lines of one trace as a conversation, so a trace's
//     spans are written together, traces by their first start: the spans
//     are held until Close (a few hundred bytes each, content aside).
//
// What is not written: the agent structure of an agentic trace read from
// OTel or WEKA (sub-agent spans, parent links: a conversation is written as
// one trace of sibling spans), a request's output text (captures do not
// keep it), and the target's replies of a benchmark.
package otelexport

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/redact"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Layout is how spans are written.
type Layout uint8

const (
	// OTLP is OTLP/JSON, ExportTraceServiceRequest objects one a line.
	OTLP Layout = iota
	// Spans is GuideLLM's span-per-line JSONL.
	Spans
)

// ParseLayout maps `replay export --format` values: "otel" (OTLP) and
// "otel-spans" (Spans).
func ParseLayout(format string) (Layout, error) {
	switch format {
	case "otel", "otlp":
		return OTLP, nil
	case "otel-spans":
		return Spans, nil
	}
	return 0, fmt.Errorf("--format %q: want otel (OTLP JSON, for tracing backends and Reprise) or otel-spans (one span a line, as GuideLLM reads OTel traces)", format)
}

// Options configures a Writer.
type Options struct {
	Layout Layout
	// Origin is the wall time of offset 0. Zero: from the first request
	// with a capture record (its recorded arrival minus its offset), else
	// Now().
	Origin time.Time
	// Now gives the time when Origin is zero and nothing recorded one;
	// time.Now when nil.
	Now func() time.Time
	// ServiceName is the resource's service.name; "reprise" when empty.
	ServiceName string
	// BatchSpans is the number of spans in one OTLP line; 512 when 0.
	BatchSpans int
}

// Writer writes spans to an io.Writer. Close flushes it.
type Writer struct {
	w        *bufio.Writer
	opts     Options
	origin   time.Time
	hasOrig  bool
	batch    []otlpSpan
	resource []kv // of the batch being filled
	resKey   string
	held     map[string][][]byte // Spans: each trace's lines, until Close
	order    []string            // trace ids by first span
	n        int
	closed   bool
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer, opts Options) *Writer {
	if opts.ServiceName == "" {
		opts.ServiceName = "reprise"
	}
	if opts.BatchSpans <= 0 {
		opts.BatchSpans = 512
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	wr := &Writer{w: bufio.NewWriterSize(w, 256<<10), opts: opts, held: map[string][][]byte{}}
	if !opts.Origin.IsZero() {
		wr.origin, wr.hasOrig = opts.Origin, true
	}
	return wr
}

// Spans returns the number of spans written so far.
func (w *Writer) Spans() int { return w.n }

// span is one request's span before it is laid out.
type span struct {
	traceKey   string // hashed into the trace id
	spanKey    string // hashed into the span id
	name       string
	start, end time.Time
	failed     bool
	message    string
	attrs      []kv
}

// WriteRequest writes one workload request: a capture's (with production's
// record), or any source's (lengths and offsets).
func (w *Writer) WriteRequest(r *workload.Request) error {
	rec := r.Recorded
	if !w.hasOrig {
		if rec != nil && !rec.Wall.IsZero() {
			w.origin = rec.Wall.Add(-r.Offset)
		} else {
			w.origin = w.opts.Now()
		}
		w.hasOrig = true
	}
	s := span{start: w.origin.Add(r.Offset)}
	op := "chat"
	if r.Endpoint == openai.Completions {
		op = "text_completion"
	}
	model := r.Model
	if model == "" {
		model = r.TraceModel
	}
	s.name = op
	if model != "" {
		s.name += " " + model
	}
	id := r.ID
	if id == "" {
		id = "#" + strconv.Itoa(r.Index)
	}
	switch {
	case r.Graph != nil && r.Graph.Conversation != "":
		s.traceKey = "conversation\x00" + r.Graph.Conversation
	case r.Session != "":
		s.traceKey = "session\x00" + r.Session
	default:
		s.traceKey = "request\x00" + id
	}
	s.spanKey = s.traceKey + "\x00" + id
	in, out := r.PromptTokens, r.OutputTokens
	var dur time.Duration
	a := []kv{str("gen_ai.operation.name", op)}
	if model != "" {
		a = append(a, str("gen_ai.request.model", model))
	}
	if rec != nil {
		in, out = rec.PromptTokens, rec.OutputTokens
		dur = time.Duration(max(rec.E2ENs, rec.TTFBNs, 0))
		if rec.MaxTokens > 0 {
			a = append(a, num("gen_ai.request.max_tokens", int64(rec.MaxTokens)))
		}
		if rec.Temperature != nil {
			a = append(a, dbl("gen_ai.request.temperature", *rec.Temperature))
		}
		if rec.TopP != nil {
			a = append(a, dbl("gen_ai.request.top_p", *rec.TopP))
		}
		if rec.CachedTokens > 0 {
			a = append(a, num("gen_ai.usage.cache_read.input_tokens", int64(rec.CachedTokens)))
		}
		if rec.FinishReason != "" {
			a = append(a, strs("gen_ai.response.finish_reasons", rec.FinishReason))
		}
		if rec.TTFTNs > 0 {
			a = append(a, dbl("gen_ai.response.time_to_first_chunk", time.Duration(rec.TTFTNs).Seconds()))
		}
		if rec.Aborted {
			a = append(a, boolean("reprise.aborted", true))
		}
		s.failed, s.message = recordFailed(rec)
		if s.failed {
			a = append(a, str("error.type", errorType(rec.Status)))
		}
	} else if r.Graph != nil {
		dur = r.Graph.Duration
	}
	s.end = s.start.Add(dur)
	a = append(a, num("gen_ai.usage.input_tokens", int64(in)), num("gen_ai.usage.output_tokens", int64(out)))
	if r.Session != "" {
		a = append(a, str("gen_ai.conversation.id", r.Session))
	}
	a = append(a, boolean("reprise.request.stream", r.Stream))
	content, err := inputMessages(r)
	if err != nil {
		return fmt.Errorf("request %d: %w", r.Index, err)
	}
	if content != "" {
		a = append(a, str("gen_ai.input.messages", content))
	} else if len(r.HashIDs) > 0 && r.BlockTokens > 0 {
		ids := make([]int64, len(r.HashIDs))
		for i, v := range r.HashIDs {
			ids[i] = int64(v)
		}
		a = append(a, ints("reprise.prompt.hash_ids", ids), num("reprise.prompt.block_tokens", int64(r.BlockTokens)))
	}
	if r.Graph != nil && len(r.Graph.Tools) > 0 {
		a = append(a, str("gen_ai.tool.definitions", string(r.Graph.Tools)))
	}
	s.attrs = a
	return w.write(&s, []kv{str("service.name", w.opts.ServiceName)})
}

// recordFailed says whether production answered rec with a failure, and
// how: an error recorded, a status of 400 or more, or no response at all
// (a request the client aborted is not a failure of the server).
func recordFailed(rec *capture.Record) (bool, string) {
	switch {
	case rec.Error != "":
		return true, rec.Error
	case rec.Status >= 400:
		return true, "HTTP " + strconv.Itoa(rec.Status)
	case rec.Status == 0 && !rec.Aborted:
		return true, "no response"
	}
	return false, ""
}

// errorType is the error.type attribute: the status code, or "error".
func errorType(status int) string {
	if status >= 400 {
		return strconv.Itoa(status)
	}
	return "error"
}

// WriteResult writes one request of a benchmark's results: its send and
// end times (the run's wall clock), lengths, status and time to first
// token. Results carry no session and no content: each request is a trace
// of its own, and the spans give lengths and timings only.
func (w *Writer) WriteResult(b *report.Benchmark, rec *report.RequestRecord) error {
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	s := span{start: b.Start.Add(ms(rec.SentMs))}
	s.end = s.start
	if rec.EndMs > rec.SentMs {
		s.end = b.Start.Add(ms(rec.EndMs))
	}
	op := "chat"
	if rec.Endpoint == string(openai.Completions) {
		op = "text_completion"
	}
	s.name = op
	a := []kv{str("gen_ai.operation.name", op)}
	if m := b.Config.Model; m != "" {
		s.name += " " + m
		a = append(a, str("gen_ai.request.model", m))
	}
	id := strconv.Itoa(rec.Index)
	s.traceKey = "result\x00" + b.Name + "\x00" + id
	s.spanKey = s.traceKey
	a = append(a, num("gen_ai.usage.input_tokens", int64(rec.PromptTokens)), num("gen_ai.usage.output_tokens", int64(rec.OutputTokens)))
	if rec.RequestedOutputTokens > 0 {
		a = append(a, num("gen_ai.request.max_tokens", int64(rec.RequestedOutputTokens)))
	}
	if rec.CachedTokens > 0 {
		a = append(a, num("gen_ai.usage.cache_read.input_tokens", int64(rec.CachedTokens)))
	}
	if rec.FinishReason != "" {
		a = append(a, strs("gen_ai.response.finish_reasons", rec.FinishReason))
	}
	if rec.TTFTMs > 0 {
		a = append(a, dbl("gen_ai.response.time_to_first_chunk", rec.TTFTMs/1000))
	}
	a = append(a, boolean("reprise.request.stream", rec.Stream), num("reprise.request.index", int64(rec.Index)))
	if rec.Phase != "" {
		a = append(a, str("reprise.phase", rec.Phase))
	}
	switch {
	case rec.Error != "":
		s.failed, s.message = true, rec.Error
	case rec.Status >= 400 || rec.Status == 0:
		s.failed, s.message = true, "HTTP "+strconv.Itoa(rec.Status)
	}
	if s.failed {
		a = append(a, str("error.type", errorType(rec.Status)))
	}
	s.attrs = a
	return w.write(&s, []kv{str("service.name", w.opts.ServiceName), str("reprise.benchmark", b.Name), str("reprise.target", b.Target)})
}

// write lays a span out.
func (w *Writer) write(s *span, resource []kv) error {
	if w.closed {
		return errors.New("otelexport: write after Close")
	}
	trace, spanID := hexID(s.traceKey, 16), hexID("span\x00"+s.spanKey, 8)
	w.n++
	if w.opts.Layout == Spans {
		line, err := spanLine(s, trace, spanID, resource)
		if err != nil {
			return err
		}
		if _, ok := w.held[trace]; !ok {
			w.order = append(w.order, trace)
		}
		w.held[trace] = append(w.held[trace], line)
		return nil
	}
	if key := resourceKey(resource); len(w.batch) == 0 || key != w.resKey {
		if err := w.flush(); err != nil {
			return err
		}
		w.resource, w.resKey = resource, key
	}
	st := &otlpStatus{}
	if s.failed {
		st = &otlpStatus{Code: 2, Message: redact.Text(s.message)} // an error text may quote a credential the target echoed
	}
	w.batch = append(w.batch, otlpSpan{
		TraceID: trace, SpanID: spanID, Name: s.name, Kind: 3,
		Start: strconv.FormatInt(s.start.UnixNano(), 10), End: strconv.FormatInt(s.end.UnixNano(), 10),
		Attributes: s.attrs, Status: st,
	})
	if len(w.batch) >= w.opts.BatchSpans {
		return w.flush()
	}
	return nil
}

// flush writes the OTLP batch as one line.
func (w *Writer) flush() error {
	if len(w.batch) == 0 {
		return nil
	}
	req := otlpRequest{ResourceSpans: []otlpResourceSpans{{
		Resource:   otlpResource{Attributes: w.resource},
		ScopeSpans: []otlpScopeSpans{{Scope: otlpScope{Name: "github.com/reprise-llm/reprise"}, Spans: w.batch}},
	}}}
	b, err := json.Marshal(&req)
	if err != nil {
		return err
	}
	w.batch = w.batch[:0]
	if _, err := w.w.Write(append(b, '\n')); err != nil {
		return err
	}
	return nil
}

// Close writes what is held and flushes.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.flush(); err != nil {
		return err
	}
	for _, t := range w.order {
		for _, line := range w.held[t] {
			if _, err := w.w.Write(line); err != nil {
				return err
			}
		}
	}
	w.held, w.order = nil, nil
	return w.w.Flush()
}

// resourceKey tells resources apart: their keys and string values.
func resourceKey(res []kv) string {
	var b strings.Builder
	for _, a := range res {
		b.WriteString(a.Key)
		b.WriteByte(0)
		if a.Value.String != nil {
			b.WriteString(*a.Value.String)
		}
		b.WriteByte(0)
	}
	return b.String()
}

// hexID is n bytes of SHA-256 over key, hex: ids that are the same for the
// same capture every time, and never all zero (which OTLP forbids) in
// practice.
func hexID(key string, n int) string {
	sum := sha256.Sum256([]byte("reprise otel id\x00" + key))
	return hex.EncodeToString(sum[:n])
}

// Workload writes every request of src and closes the writer; it returns
// the spans written.
func Workload(out io.Writer, src workload.Source, opts Options) (int, error) {
	w := NewWriter(out, opts)
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return w.Spans(), err
		}
		if err := w.WriteRequest(&r); err != nil {
			return w.Spans(), err
		}
	}
	return w.Spans(), w.Close()
}

// Results writes every per-request record of f's benchmarks and closes
// the writer. A file written without per-request records (run without
// them) has nothing to export, and that is an error.
func Results(out io.Writer, f *report.File, opts Options) (int, error) {
	w := NewWriter(out, opts)
	for i := range f.Benchmarks {
		b := &f.Benchmarks[i]
		for k := range b.Requests {
			if err := w.WriteResult(b, &b.Requests[k]); err != nil {
				return w.Spans(), err
			}
		}
	}
	if w.Spans() == 0 {
		return 0, errors.New("the results hold no per-request records to export (run the benchmark with per-request records kept)")
	}
	return w.Spans(), w.Close()
}
