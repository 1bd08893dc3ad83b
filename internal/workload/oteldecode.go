package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// valueDecoder decodes one JSON value at a time from byte slices through
// one json.Decoder, so that its decoding state is allocated once rather
// than on every call: json.Unmarshal's per-call state was most of the
// reader's garbage. A failed decode leaves the decoder unusable: the next
// call starts a new one.
type valueDecoder struct {
	r   sliceReader
	dec *json.Decoder
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// decode decodes b, which must hold one JSON value and nothing else, into v.
func (d *valueDecoder) decode(b []byte, v any) error {
	if d.dec == nil {
		d.dec = json.NewDecoder(&d.r)
	}
	d.r.b = b
	start := d.dec.InputOffset()
	err := d.dec.Decode(v)
	if err == nil && (len(bytes.TrimSpace(d.r.b)) > 0 || d.dec.More()) {
		err = errors.New("not JSON: more after the value")
	}
	if err != nil {
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			// The decoder counts from its first value: count from b's.
			err = fmt.Errorf("not JSON at byte %d: %s", se.Offset-start, se.Error())
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			err = errors.New("not JSON: it ends inside a value")
		}
		d.dec, d.r.b = nil, nil
		return err
	}
	return nil
}

// spanDecoder decodes span lines, spans and attributes into values it
// reuses: their raw fields keep their capacity from span to span.
type spanDecoder struct {
	line, span, attrs valueDecoder
	jl                jsonLine
	js                jsonSpan
	a                 genAIAttrs
	kvs               []otlpKeyValue
}

// resetRaw empties raw values, keeping their capacity.
func resetRaw(vs ...*json.RawMessage) {
	for _, v := range vs {
		*v = (*v)[:0]
	}
}

func (j *jsonSpan) reset() {
	resetRaw(&j.TraceID, &j.TraceIDOTLP, &j.SpanID, &j.SpanIDOTLP, &j.Parent, &j.ParentOTLP, &j.ParentAlt,
		&j.StartTime, &j.StartNano, &j.EndTime, &j.EndNano, &j.Duration, &j.Status, &j.StatusCode, &j.Attributes)
	j.Context = nil
}

func (a *genAIAttrs) reset() {
	resetRaw(&a.Operation, &a.InputTokens, &a.PromptTokens, &a.OutputTokens, &a.CompletionTokens, &a.Input, &a.Output,
		&a.OutputText, &a.System, &a.Finish, &a.Tools, &a.RequestModel, &a.ResponseModel, &a.AgentName, &a.AgentID,
		&a.Stream, &a.HashIDs, &a.BlockTokens)
}

// attributes reads an attribute object or an OTLP key/value list.
func (d *spanDecoder) attributes(b json.RawMessage) (*genAIAttrs, error) {
	a := &d.a
	a.reset()
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		return a, nil
	case b[0] == '[':
		// Decoding into a used element keeps what the new one leaves out:
		// empty them all, keeping their buffers.
		d.kvs = d.kvs[:cap(d.kvs)]
		for i := range d.kvs {
			d.kvs[i].Key = ""
			d.kvs[i].Value.reset()
		}
		d.kvs = d.kvs[:0]
		if err := d.attrs.decode(b, &d.kvs); err != nil {
			return nil, fmt.Errorf("attributes: %w", err)
		}
		for i := range d.kvs {
			v, err := d.kvs[i].Value.json()
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", d.kvs[i].Key, err)
			}
			a.set(d.kvs[i].Key, v)
		}
		return a, nil
	case b[0] != '{':
		return nil, fmt.Errorf("attributes: want an object or a list of {key, value}, got %s", excerpt(b))
	}
	// encoding/json matches keys without regard to case: a key that
	// differs from a tag only in case is taken too.
	if err := d.attrs.decode(b, a); err != nil {
		return nil, fmt.Errorf("attributes: %w", err)
	}
	return a, nil
}

// otlpKeyValue and otlpAnyValue are OTLP/JSON's attribute encoding
// (opentelemetry-proto common.proto): int64 values are JSON strings or
// numbers, bytes base64.
type otlpKeyValue struct {
	Key   string       `json:"key"`
	Value otlpAnyValue `json:"value"`
}

type otlpAnyValue struct {
	StringValue json.RawMessage `json:"stringValue"`
	IntValue    json.RawMessage `json:"intValue"`
	DoubleValue json.RawMessage `json:"doubleValue"`
	BoolValue   json.RawMessage `json:"boolValue"`
	BytesValue  json.RawMessage `json:"bytesValue"`
	ArrayValue  *struct {
		Values []otlpAnyValue `json:"values"`
	} `json:"arrayValue"`
	KvlistValue *struct {
		Values []otlpKeyValue `json:"values"`
	} `json:"kvlistValue"`
}

// reset empties the value for reuse, keeping its raw fields' capacity.
func (v *otlpAnyValue) reset() {
	resetRaw(&v.StringValue, &v.IntValue, &v.DoubleValue, &v.BoolValue, &v.BytesValue)
	v.ArrayValue, v.KvlistValue = nil, nil
}

// json returns the value as plain JSON: a string, a number, a bool, an
// array or an object; null when empty.
func (v *otlpAnyValue) json() (json.RawMessage, error) {
	switch {
	case !isNull(v.StringValue):
		if t := bytes.TrimSpace(v.StringValue); t[0] != '"' {
			return nil, fmt.Errorf("stringValue %s: want a string", excerpt(t))
		}
		return v.StringValue, nil
	case !isNull(v.IntValue):
		s := scalarText(v.IntValue)
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return nil, fmt.Errorf("intValue %s: want a 64-bit integer", excerpt(v.IntValue))
		}
		return json.RawMessage(s), nil
	case !isNull(v.DoubleValue):
		s := scalarText(v.DoubleValue)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("doubleValue %s: want a finite number", excerpt(v.DoubleValue))
		}
		return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64)), nil
	case !isNull(v.BoolValue):
		switch t := string(bytes.TrimSpace(v.BoolValue)); t {
		case "true", "false":
			return json.RawMessage(t), nil
		}
		return nil, fmt.Errorf("boolValue %s: want true or false", excerpt(v.BoolValue))
	case !isNull(v.BytesValue):
		if t := bytes.TrimSpace(v.BytesValue); t[0] != '"' {
			return nil, fmt.Errorf("bytesValue %s: want a base64 string", excerpt(t))
		}
		return v.BytesValue, nil
	case v.ArrayValue != nil:
		out := []byte{'['}
		for i := range v.ArrayValue.Values {
			e, err := v.ArrayValue.Values[i].json()
			if err != nil {
				return nil, err
			}
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, e...)
		}
		return append(out, ']'), nil
	case v.KvlistValue != nil:
		out := []byte{'{'}
		for i := range v.KvlistValue.Values {
			kv := &v.KvlistValue.Values[i]
			e, err := kv.Value.json()
			if err != nil {
				return nil, err
			}
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, jsonStringOf(kv.Key)...)
			out = append(out, ':')
			out = append(out, e...)
		}
		return append(out, '}'), nil
	}
	return json.RawMessage("null"), nil
}

// otlpSpan is an OTLP/JSON span (trace.proto Span): ids hex, times in Unix
// nanoseconds as strings, status code 2 for ERROR.
type otlpSpan struct {
	TraceID    string          `json:"traceId"`
	SpanID     string          `json:"spanId"`
	ParentID   string          `json:"parentSpanId"`
	StartNano  json.RawMessage `json:"startTimeUnixNano"`
	EndNano    json.RawMessage `json:"endTimeUnixNano"`
	Status     json.RawMessage `json:"status"`
	Attributes json.RawMessage `json:"attributes"`
}

func (s *otlpSpan) reset() {
	s.TraceID, s.SpanID, s.ParentID = "", "", ""
	resetRaw(&s.StartNano, &s.EndNano, &s.Status, &s.Attributes)
}

// jsonSpan converts an OTLP span to the JSON-line form that readSpan
// takes; the fields are shared, so nothing is copied but the ids.
func (s *otlpSpan) jsonSpan() jsonSpan {
	return jsonSpan{
		TraceIDOTLP: jsonStringOf(s.TraceID), SpanIDOTLP: jsonStringOf(s.SpanID), ParentOTLP: jsonStringOf(s.ParentID),
		StartNano: s.StartNano, EndNano: s.EndNano, Status: s.Status, Attributes: s.Attributes,
	}
}
