package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
)

// otelSpan is what the OTel reader keeps of one span: its place in the
// trace, its timing, and for an LLM call what to send.
type otelSpan struct {
	traceID, spanID, parentID string
	start                     int64 // Unix ns
	dur                       int64 // ns; -1 when the span records no end or duration
	line                      int   // the file line the span is on (its record's first line)
	where                     string
	op                        string // gen_ai.operation.name
	failed                    bool   // status ERROR
	agent                     string // gen_ai.agent.name (or id) of an invoke_agent span
	call                      *otelCall
}

// end is the span's end (Unix ns), its start when it records none.
func (s *otelSpan) end() int64 { return s.start + max(s.dur, 0) }

// otelCall is an LLM call's request, read from a span's gen_ai.*
// attributes.
type otelCall struct {
	in, out       int64
	hasIn, hasOut bool
	endpoint      openai.Endpoint
	messages      []byte // normalised chat messages (JSON); nil when not recorded
	prompt        string // a text completion's prompt, when recorded
	kind          TurnKind
	tools         []byte
	model         string
	stream        bool
	dropped       int // message parts of types not sent
	hashIDs       []uint32
	block         int
	reply         string // the recorded reply's text (GraphNode.Reply)
}

// Operation names (gen_ai.operation.name). GuideLLM 0.8.1 takes chat,
// generate and text_completion spans as LLM calls, and any other span that
// records both usage token counts, except invoke_agent, execute_tool and
// embeddings spans, which it never replays. Reprise adds generate_content,
// the conventions' name for multimodal generation (Gemini), so such a span
// is replayed with its messages even without usage.
var (
	otelLLMOps    = map[string]bool{"chat": true, "generate": true, "text_completion": true, "generate_content": true}
	otelNonLLMOps = map[string]bool{"invoke_agent": true, "execute_tool": true, "embeddings": true}
	toolFinish    = map[string]bool{"tool_calls": true, "tool_call": true, "tool_use": true, "function_call": true}
)

// jsonSpan is a span as a JSON line holds it: GuideLLM's field names
// (trace_id, span_id, parent_span_id, start_time as ISO 8601, duration in
// seconds, attributes as an object) or OTLP's (traceId, spanId,
// parentSpanId, startTimeUnixNano, endTimeUnixNano, attributes as a list
// of {key, value}), and OpenInference's context object.
type jsonSpan struct {
	TraceID     json.RawMessage `json:"trace_id"`
	TraceIDOTLP json.RawMessage `json:"traceId"`
	SpanID      json.RawMessage `json:"span_id"`
	SpanIDOTLP  json.RawMessage `json:"spanId"`
	Parent      json.RawMessage `json:"parent_span_id"`
	ParentOTLP  json.RawMessage `json:"parentSpanId"`
	ParentAlt   json.RawMessage `json:"parent_id"`
	Context     *struct {
		TraceID json.RawMessage `json:"trace_id"`
		SpanID  json.RawMessage `json:"span_id"`
	} `json:"context"`
	StartTime  json.RawMessage `json:"start_time"`
	StartNano  json.RawMessage `json:"startTimeUnixNano"`
	EndTime    json.RawMessage `json:"end_time"`
	EndNano    json.RawMessage `json:"endTimeUnixNano"`
	Duration   json.RawMessage `json:"duration"`
	Status     json.RawMessage `json:"status"`
	StatusCode json.RawMessage `json:"status_code"`
	Attributes json.RawMessage `json:"attributes"`
}

// genAIAttrs holds the attributes the reader uses, from an attribute
// object (dotted keys) or an OTLP key/value list. Values are raw JSON.
type genAIAttrs struct {
	Operation        json.RawMessage `json:"gen_ai.operation.name"`
	InputTokens      json.RawMessage `json:"gen_ai.usage.input_tokens"`
	PromptTokens     json.RawMessage `json:"gen_ai.usage.prompt_tokens"`
	OutputTokens     json.RawMessage `json:"gen_ai.usage.output_tokens"`
	CompletionTokens json.RawMessage `json:"gen_ai.usage.completion_tokens"`
	Input            json.RawMessage `json:"gen_ai.input.messages"`
	Output           json.RawMessage `json:"gen_ai.output.messages"`
	OutputText       json.RawMessage `json:"gen_ai.output.text"`
	System           json.RawMessage `json:"gen_ai.system_instructions"`
	Finish           json.RawMessage `json:"gen_ai.response.finish_reasons"`
	Tools            json.RawMessage `json:"gen_ai.tool.definitions"`
	RequestModel     json.RawMessage `json:"gen_ai.request.model"`
	ResponseModel    json.RawMessage `json:"gen_ai.response.model"`
	AgentName        json.RawMessage `json:"gen_ai.agent.name"`
	AgentID          json.RawMessage `json:"gen_ai.agent.id"`
	Stream           json.RawMessage `json:"reprise.request.stream"`
	// HashIDs and BlockTokens are Reprise's own (reprise.prompt.*): the
	// prefix structure of a capture exported without content.
	HashIDs     json.RawMessage `json:"reprise.prompt.hash_ids"`
	BlockTokens json.RawMessage `json:"reprise.prompt.block_tokens"`
}

// set stores the value of attribute key, when the reader uses it.
func (a *genAIAttrs) set(key string, v json.RawMessage) {
	switch key {
	case "gen_ai.operation.name":
		a.Operation = v
	case "gen_ai.usage.input_tokens":
		a.InputTokens = v
	case "gen_ai.usage.prompt_tokens":
		a.PromptTokens = v
	case "gen_ai.usage.output_tokens":
		a.OutputTokens = v
	case "gen_ai.usage.completion_tokens":
		a.CompletionTokens = v
	case "gen_ai.input.messages":
		a.Input = v
	case "gen_ai.output.messages":
		a.Output = v
	case "gen_ai.output.text":
		a.OutputText = v
	case "gen_ai.system_instructions":
		a.System = v
	case "gen_ai.response.finish_reasons":
		a.Finish = v
	case "gen_ai.tool.definitions":
		a.Tools = v
	case "gen_ai.request.model":
		a.RequestModel = v
	case "gen_ai.response.model":
		a.ResponseModel = v
	case "gen_ai.agent.name":
		a.AgentName = v
	case "gen_ai.agent.id":
		a.AgentID = v
	case "reprise.request.stream":
		a.Stream = v
	case "reprise.prompt.hash_ids":
		a.HashIDs = v
	case "reprise.prompt.block_tokens":
		a.BlockTokens = v
	}
}

// readSpan turns a decoded span into what the reader keeps; line and
// where say where it is, for errors.
func (d *spanDecoder) readSpan(j *jsonSpan, line int, where string) (otelSpan, error) {
	s := otelSpan{line: line, where: where, dur: -1}
	s.traceID = firstID(j.TraceID, j.TraceIDOTLP)
	s.spanID = firstID(j.SpanID, j.SpanIDOTLP)
	if j.Context != nil {
		if s.traceID == "" {
			s.traceID = firstID(j.Context.TraceID)
		}
		if s.spanID == "" {
			s.spanID = firstID(j.Context.SpanID)
		}
	}
	s.parentID = firstID(j.Parent, j.ParentOTLP, j.ParentAlt)
	var err error
	if s.start, err = spanTime("start_time", j.StartTime, "startTimeUnixNano", j.StartNano); err != nil {
		return s, err
	}
	if s.start == math.MinInt64 {
		return s, errors.New("no start time: want start_time (ISO 8601) or startTimeUnixNano")
	}
	if !isNull(j.Duration) {
		d, err := seconds("duration", j.Duration)
		if err != nil {
			return s, err
		}
		s.dur = d
	} else if end, err := spanTime("end_time", j.EndTime, "endTimeUnixNano", j.EndNano); err != nil {
		return s, err
	} else if end != math.MinInt64 {
		if end < s.start {
			return s, fmt.Errorf("ends %v before it starts", time.Duration(s.start-end))
		}
		s.dur = end - s.start
	}
	s.failed = failedStatus(j.Status, j.StatusCode)
	a, err := d.attributes(j.Attributes)
	if err != nil {
		return s, err
	}
	s.op, _ = optString(a.Operation) // a number never names an operation
	if s.op == "invoke_agent" {
		s.agent = truthy(a.AgentName)
		if s.agent == "" {
			s.agent = truthy(a.AgentID)
		}
	}
	if s.failed || otelNonLLMOps[s.op] {
		return s, nil
	}
	in, hasIn, err := firstTokens("gen_ai.usage.input_tokens", a.InputTokens, "gen_ai.usage.prompt_tokens", a.PromptTokens)
	if err != nil {
		return s, err
	}
	out, hasOut, err := firstTokens("gen_ai.usage.output_tokens", a.OutputTokens, "gen_ai.usage.completion_tokens", a.CompletionTokens)
	if err != nil {
		return s, err
	}
	if !otelLLMOps[s.op] && !(hasIn && hasOut) {
		return s, nil // not an LLM call: kept as part of the waits around it
	}
	c := &otelCall{in: in, out: out, hasIn: hasIn, hasOut: hasOut, endpoint: openai.Chat, stream: true}
	if s.op == "text_completion" {
		c.endpoint = openai.Completions
	}
	if err := c.read(a); err != nil {
		return s, err
	}
	s.call = c
	return s, nil
}

// read fills the call's content, tools, kind, model and stream flag.
func (c *otelCall) read(a *genAIAttrs) error {
	input, err := parseOTelMessages(a.Input)
	if err != nil {
		return fmt.Errorf("gen_ai.input.messages: %w", err)
	}
	output, err := parseOTelMessages(a.Output)
	if err != nil {
		return fmt.Errorf("gen_ai.output.messages: %w", err)
	}
	c.dropped = input.droppedParts
	msgs := input.msgs
	if sys, err := systemInstructions(a.System); err != nil {
		return fmt.Errorf("gen_ai.system_instructions: %w", err)
	} else if sys != "" && len(msgs) > 0 && msgs[0].role != "system" && msgs[0].role != "developer" {
		// Instructions given apart from the chat history (the conventions
		// record those here, not in the input messages): the model saw
		// them first.
		msgs = append([]chatMessage{{role: "system", content: jsonStringOf(sys)}}, msgs...)
	}
	if len(msgs) > 0 {
		if c.endpoint == openai.Completions {
			c.prompt = promptText(msgs)
		} else {
			c.messages = appendChatMessages(nil, msgs)
		}
	}
	switch {
	case hasToolCalls(output.msgs) || finishedForTools(a.Finish):
		c.kind = TurnToolCall
	}
	c.reply = replyText(output.msgs)
	if endsWithToolResults(input.msgs) {
		c.kind = TurnToolResult
	}
	if tools, err := unwrapJSONString(a.Tools); err != nil {
		return fmt.Errorf("gen_ai.tool.definitions: %w", err)
	} else if len(tools) > 0 {
		c.tools = compactJSON(tools)
	}
	c.model = truthy(a.RequestModel)
	if c.model == "" {
		c.model = truthy(a.ResponseModel)
	}
	if !isNull(a.HashIDs) {
		var ids []int64
		if err := json.Unmarshal(a.HashIDs, &ids); err != nil {
			return fmt.Errorf("reprise.prompt.hash_ids: want a list of block ids")
		}
		block, err := strconv.Atoi(scalarText(a.BlockTokens))
		if err != nil || block <= 0 || block > 1<<20 {
			return fmt.Errorf("reprise.prompt.block_tokens %s: want a positive number of tokens with reprise.prompt.hash_ids", excerpt(a.BlockTokens))
		}
		c.hashIDs, c.block = make([]uint32, len(ids)), block
		for i, id := range ids {
			if id < 0 || id > math.MaxUint32 {
				return fmt.Errorf("reprise.prompt.hash_ids[%d] %d: want a 32-bit block id", i, id)
			}
			c.hashIDs[i] = uint32(id)
		}
	}
	if b := bytes.TrimSpace(a.Stream); len(b) > 0 && !isNull(b) {
		switch string(b) {
		case "true", `"true"`:
			c.stream = true
		case "false", `"false"`:
			c.stream = false
		default:
			return fmt.Errorf("reprise.request.stream %s: want true or false", excerpt(b))
		}
	}
	return nil
}

// finishedForTools reports whether gen_ai.response.finish_reasons (a list,
// a JSON string of one, or one reason) names a tool call.
func finishedForTools(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) || !bytes.Contains(raw, []byte("tool")) && !bytes.Contains(raw, []byte("function")) {
		return false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false
		}
		if t := strings.TrimSpace(s); !strings.HasPrefix(t, "[") {
			return toolFinish[t]
		}
		raw = json.RawMessage(s)
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return false
	}
	for _, v := range list {
		if toolFinish[scalarText(v)] {
			return true
		}
	}
	return false
}

// firstID is the first of vals that holds a non-empty id (a string, or a
// number as written).
func firstID(vals ...json.RawMessage) string {
	for _, v := range vals {
		if s := scalarText(v); s != "" {
			return s
		}
	}
	return ""
}

// fastString is a JSON string's value when it is plain ASCII without
// escapes (ids, times, names: most are), without a decoder. Anything else
// goes through encoding/json, which also replaces invalid UTF-8.
func fastString(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	for _, c := range raw[1 : len(raw)-1] {
		if c == '\\' || c == '"' || c < 0x20 || c >= 0x80 {
			return "", false
		}
	}
	return string(raw[1 : len(raw)-1]), true
}

// failedStatus reports an ERROR status: OTLP's code 2, or "ERROR" /
// "STATUS_CODE_ERROR" as some exporters write it, in status.code or a
// top-level status_code.
func failedStatus(status, code json.RawMessage) bool {
	isErr := func(v json.RawMessage) bool {
		switch strings.ToUpper(scalarText(v)) {
		case "2", "ERROR", "STATUS_CODE_ERROR":
			return true
		}
		return false
	}
	status = bytes.TrimSpace(status)
	if len(status) > 0 && status[0] == '{' && (bytes.IndexByte(status, '2') >= 0 || bytes.Contains(bytes.ToUpper(status), []byte("ERROR"))) {
		var st struct {
			Code       json.RawMessage `json:"code"`
			StatusCode json.RawMessage `json:"status_code"`
		}
		if json.Unmarshal(status, &st) == nil && (isErr(st.Code) || isErr(st.StatusCode)) {
			return true
		}
	}
	return isErr(code)
}

// spanTime reads a span time from an ISO 8601 field (GuideLLM's
// start_time: naive times are UTC) or a Unix-nanosecond field (OTLP);
// math.MinInt64 when neither is there.
func spanTime(isoName string, iso json.RawMessage, nanoName string, nano json.RawMessage) (int64, error) {
	if !isNull(iso) {
		s, ok := fastString(iso)
		if !ok {
			if err := json.Unmarshal(iso, &s); err != nil {
				return 0, fmt.Errorf("%s %s: want an ISO 8601 time such as 2025-01-01T00:00:00.123Z", isoName, excerpt(iso))
			}
		}
		t, err := parseISOTime(s)
		if err != nil {
			return 0, fmt.Errorf("%s %q: want an ISO 8601 time such as 2025-01-01T00:00:00.123Z", isoName, s)
		}
		return t, nil
	}
	if !isNull(nano) {
		s := scalarText(nano)
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil || v == 0 || v > math.MaxInt64 {
			return 0, fmt.Errorf("%s %s: want Unix nanoseconds, a positive integer", nanoName, excerpt(nano))
		}
		return int64(v), nil
	}
	return math.MinInt64, nil
}

// parseISOTime parses an ISO 8601 date and time (as Python's
// datetime.fromisoformat does for the dumps GuideLLM reads: 'T' or a
// space, fractions, Z or an offset; no zone means UTC) to Unix ns.
func parseISOTime(s string) (int64, error) {
	t, ok := parseDateTime([]byte(s))
	if !ok {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return 0, err
		}
	}
	if y := t.Year(); y < 1678 || y > 2261 { // Unix ns fit int64 between these
		return 0, fmt.Errorf("year %d out of range", y)
	}
	return t.UnixNano(), nil
}

// seconds reads a non-negative duration in seconds (a number or a numeric
// string) as ns.
func seconds(name string, raw json.RawMessage) (int64, error) {
	f, err := strconv.ParseFloat(scalarText(raw), 64)
	if err != nil || !(f >= 0) || f >= float64(maxTokens)/1000 {
		return 0, fmt.Errorf("%s %s: want seconds >= 0", name, excerpt(raw))
	}
	return int64(math.Round(f * 1e9)), nil
}

// firstTokens reads the first present of two token-count attributes (the
// current name, then the deprecated one): a whole number >= 0, or a
// string of one.
func firstTokens(name string, v json.RawMessage, alt string, altV json.RawMessage) (int64, bool, error) {
	if isNull(v) {
		name, v = alt, altV
	}
	if isNull(v) {
		return 0, false, nil
	}
	s := scalarText(v)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || f < -1 || f > maxTokens {
			return 0, false, fmt.Errorf("%s %s: want a whole number of tokens >= 0", name, excerpt(v))
		}
		n = int64(f)
	}
	if n < 0 || n > maxTokens {
		return 0, false, fmt.Errorf("%s %d: want a token count >= 0", name, n)
	}
	return n, true, nil
}
