package otelexport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// OTLP/JSON (opentelemetry-proto trace.proto, common.proto): ids in hex,
// int64 values and times as decimal strings, enums as numbers.
type otlpRequest struct {
	ResourceSpans []otlpResourceSpans `json:"resourceSpans"`
}

type otlpResourceSpans struct {
	Resource   otlpResource     `json:"resource"`
	ScopeSpans []otlpScopeSpans `json:"scopeSpans"`
}

type otlpResource struct {
	Attributes []kv `json:"attributes"`
}

type otlpScopeSpans struct {
	Scope otlpScope  `json:"scope"`
	Spans []otlpSpan `json:"spans"`
}

type otlpScope struct {
	Name string `json:"name"`
}

type otlpSpan struct {
	TraceID    string      `json:"traceId"`
	SpanID     string      `json:"spanId"`
	Name       string      `json:"name"`
	Kind       int         `json:"kind"` // 3: SPAN_KIND_CLIENT
	Start      string      `json:"startTimeUnixNano"`
	End        string      `json:"endTimeUnixNano"`
	Attributes []kv        `json:"attributes"`
	Status     *otlpStatus `json:"status"`
}

type otlpStatus struct {
	Code    int    `json:"code,omitempty"` // 2: STATUS_CODE_ERROR
	Message string `json:"message,omitempty"`
}

// kv is an attribute: OTLP's {key, value: AnyValue}.
type kv struct {
	Key   string   `json:"key"`
	Value anyValue `json:"value"`
}

type anyValue struct {
	String *string     `json:"stringValue,omitempty"`
	Int    *string     `json:"intValue,omitempty"`
	Double *float64    `json:"doubleValue,omitempty"`
	Bool   *bool       `json:"boolValue,omitempty"`
	Array  *arrayValue `json:"arrayValue,omitempty"`
}

type arrayValue struct {
	Values []anyValue `json:"values"`
}

func str(k, v string) kv { return kv{k, anyValue{String: &v}} }
func num(k string, v int64) kv {
	s := strconv.FormatInt(v, 10)
	return kv{k, anyValue{Int: &s}}
}
func dbl(k string, v float64) kv  { return kv{k, anyValue{Double: &v}} }
func boolean(k string, v bool) kv { return kv{k, anyValue{Bool: &v}} }
func strs(k string, vs ...string) kv {
	a := &arrayValue{}
	for _, v := range vs {
		a.Values = append(a.Values, anyValue{String: &v})
	}
	return kv{k, anyValue{Array: a}}
}
func ints(k string, vs []int64) kv {
	a := &arrayValue{Values: make([]anyValue, len(vs))}
	for i, v := range vs {
		s := strconv.FormatInt(v, 10)
		a.Values[i] = anyValue{Int: &s}
	}
	return kv{k, anyValue{Array: a}}
}

// plain is the attribute's value as plain JSON, for the Spans layout.
func (v anyValue) plain() any {
	switch {
	case v.String != nil:
		return *v.String
	case v.Int != nil:
		n, _ := strconv.ParseInt(*v.Int, 10, 64) // written by num or ints
		return n
	case v.Double != nil:
		return *v.Double
	case v.Bool != nil:
		return *v.Bool
	case v.Array != nil:
		out := make([]any, len(v.Array.Values))
		for i, e := range v.Array.Values {
			out[i] = e.plain()
		}
		return out
	}
	return nil
}

// guidellmSpan is a span in GuideLLM's span-per-line layout.
type guidellmSpan struct {
	TraceID    string         `json:"trace_id"`
	SpanID     string         `json:"span_id"`
	Parent     *string        `json:"parent_span_id"`
	Name       string         `json:"name"`
	Start      string         `json:"start_time"`
	End        string         `json:"end_time"`
	Duration   float64        `json:"duration"`
	Status     otlpStatus     `json:"status"`
	Attributes map[string]any `json:"attributes"`
}

// isoNano is ISO 8601 in UTC with nanoseconds, which Python's
// datetime.fromisoformat (GuideLLM's parser) reads, dropping digits past
// microseconds.
const isoNano = "2006-01-02T15:04:05.000000000Z07:00"

func spanLine(s *span, trace, id string, resource []kv) ([]byte, error) {
	g := guidellmSpan{
		TraceID: trace, SpanID: id, Name: s.name,
		Start: s.start.UTC().Format(isoNano), End: s.end.UTC().Format(isoNano),
		Duration: s.end.Sub(s.start).Seconds(), Attributes: make(map[string]any, len(s.attrs)+len(resource)),
	}
	if s.failed {
		g.Status = otlpStatus{Code: 2, Message: s.message}
	}
	for _, a := range resource[1:] { // service.name is the file's, not the span's
		g.Attributes[a.Key] = a.Value.plain()
	}
	for _, a := range s.attrs {
		g.Attributes[a.Key] = a.Value.plain()
	}
	b, err := json.Marshal(&g)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// inputMessages is gen_ai.input.messages for a request whose content was
// captured, in the conventions' shape (JSON text); "" without content.
// Chat messages become {"role", "parts"}: string content a text part,
// tool calls tool_call parts (arguments kept as the recorded string), a
// tool message a tool_call_response part. A message whose content is not
// a string (multimodal parts) is written as recorded, in OpenAI's shape,
// which readers take as well. A completion's prompt is one user message.
func inputMessages(r *workload.Request) (string, error) {
	switch {
	case r.Endpoint == openai.Completions && r.Prompt != "":
		return marshal([]msg{{Role: "user", Parts: []part{{Type: "text", Content: jsonString(r.Prompt)}}}})
	case len(r.Messages) == 0:
		if r.Prompt != "" {
			return marshal([]msg{{Role: "user", Parts: []part{{Type: "text", Content: jsonString(r.Prompt)}}}})
		}
		return "", nil
	}
	var in []struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCalls  []toolCall      `json:"tool_calls"`
		ToolCallID string          `json:"tool_call_id"`
	}
	if err := json.Unmarshal(r.Messages, &in); err != nil {
		return "", fmt.Errorf("recorded messages: %w", err)
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(r.Messages, &raws); err != nil {
		return "", fmt.Errorf("recorded messages: %w", err)
	}
	out := make([]any, 0, len(in))
	for i, m := range in {
		c := bytes.TrimSpace(m.Content)
		isText := len(c) == 0 || string(c) == "null" || c[0] == '"'
		if !isText {
			out = append(out, raws[i]) // multimodal content: as recorded
			continue
		}
		if m.Role == "tool" {
			out = append(out, msg{Role: "tool", Parts: []part{{Type: "tool_call_response", ID: m.ToolCallID, Result: text(c)}}})
			continue
		}
		pm := msg{Role: m.Role}
		if len(c) > 0 && c[0] == '"' {
			pm.Parts = append(pm.Parts, part{Type: "text", Content: c})
		}
		for _, tc := range m.ToolCalls {
			pm.Parts = append(pm.Parts, part{Type: "tool_call", ID: tc.ID, Name: tc.Function.Name, Arguments: jsonString(tc.Function.Arguments)})
		}
		if pm.Parts == nil {
			out = append(out, raws[i]) // nothing a part can hold: as recorded
			continue
		}
		out = append(out, pm)
	}
	return marshal(out)
}

type msg struct {
	Role  string `json:"role"`
	Parts []part `json:"parts"`
}

type part struct {
	Type      string          `json:"type"`
	Content   json.RawMessage `json:"content,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Arguments json.RawMessage `json:"arguments,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
}

type toolCall struct {
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// text is a content value as a JSON string value ("" for null).
func text(c json.RawMessage) json.RawMessage {
	if len(c) == 0 || string(c) == "null" {
		return json.RawMessage(`""`)
	}
	return c
}

func jsonString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

func marshal(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
