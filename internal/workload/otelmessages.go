package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// OTel GenAI spans record messages in the semantic conventions' own shape
// (gen_ai.input.messages: [{"role", "parts": [{"type": "text", "content"},
// {"type": "tool_call", "id", "name", "arguments"}, {"type":
// "tool_call_response", "id", "result"}]}]), and some emitters record
// OpenAI-shaped messages instead ({"role", "content", "tool_calls"}). A
// chat request needs OpenAI's shape, so both are rewritten into it, by the
// rules GuideLLM 0.8.1 follows (so that a trace replays the same messages
// in both tools):
//
//   - a message with a parts list becomes one message holding its text
//     parts joined (content) and its tool_call parts (tool_calls, content
//     null when there is no text), followed by one role "tool" message per
//     tool_call_response part; parts of other types (blobs, reasoning) are
//     not sent, and counted;
//   - an OpenAI-shaped message keeps its role (default "user"), content,
//     tool_calls (each rewritten as {"id", "type": "function", "function":
//     {"name", "arguments"}}, arguments as a JSON string) and, for a tool
//     message, tool_call_id and name (content defaulting to its "result").
//
// Tool-call arguments that are not a string are sent as their compact JSON.

// chatMessage is one message in OpenAI's chat shape.
type chatMessage struct {
	role       string
	content    json.RawMessage // nil: absent; "null" is kept
	toolCalls  []chatToolCall
	toolCallID string
	hasCallID  bool
	name       json.RawMessage // tool messages only
}

type chatToolCall struct {
	id, name, arguments string
}

// otelMessages is the outcome of normalising one messages attribute.
type otelMessages struct {
	msgs         []chatMessage
	droppedParts int // parts of types not sent
}

// parseOTelMessages reads a gen_ai.*.messages attribute value: a JSON
// array, or a JSON string holding one. A missing or empty value gives no
// messages.
func parseOTelMessages(raw json.RawMessage) (otelMessages, error) {
	raw, err := unwrapJSONString(raw)
	if err != nil || len(raw) == 0 {
		return otelMessages{}, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return otelMessages{}, fmt.Errorf("want a JSON array of messages, got %s", excerpt(raw))
	}
	var out otelMessages
	for i, item := range items {
		if err := out.add(item); err != nil {
			return otelMessages{}, fmt.Errorf("message %d: %w", i, err)
		}
	}
	return out, nil
}

// unwrapJSONString returns the JSON a string value holds, or raw itself
// when it is not a string; nil for null, absent or "".
func unwrapJSONString(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '"' {
		return raw, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if !json.Valid([]byte(s)) {
		return nil, fmt.Errorf("a string that is not JSON: %s", excerpt([]byte(s)))
	}
	return json.RawMessage(s), nil
}

// excerpt shows the start of a JSON value for an error message: as it is
// written when it is JSON (a string with its quotes, a number without),
// else quoted.
func excerpt(b []byte) string {
	const max = 60
	b = bytes.TrimSpace(b)
	cut := ""
	if len(b) > max {
		b, cut = b[:max], "…"
	}
	if json.Valid(b) || cut != "" && utf8.Valid(b) && bytes.IndexFunc(b, unicode.IsControl) < 0 {
		return string(b) + cut
	}
	return fmt.Sprintf("%q", b) + cut
}

// wireMessage is a message as recorded, in either shape.
type wireMessage struct {
	Role       json.RawMessage   `json:"role"`
	Parts      json.RawMessage   `json:"parts"`
	Content    json.RawMessage   `json:"content"`
	ToolCalls  []json.RawMessage `json:"tool_calls"`
	ToolCallID json.RawMessage   `json:"tool_call_id"`
	ID         json.RawMessage   `json:"id"`
	Name       json.RawMessage   `json:"name"`
	Result     json.RawMessage   `json:"result"`
}

func (o *otelMessages) add(item json.RawMessage) error {
	item = bytes.TrimSpace(item)
	if len(item) == 0 || item[0] != '{' {
		return fmt.Errorf("want an object, got %s", excerpt(item))
	}
	var m wireMessage
	if err := json.Unmarshal(item, &m); err != nil {
		return err
	}
	role, err := optString(m.Role)
	if err != nil {
		return fmt.Errorf("role: %w", err)
	}
	if parts := bytes.TrimSpace(m.Parts); len(parts) > 0 && parts[0] == '[' {
		return o.fromParts(role, parts)
	}
	msg := chatMessage{role: role}
	if msg.role == "" {
		msg.role = "user"
	}
	if m.Content != nil { // present, null included
		msg.content = compactJSON(m.Content)
	}
	for i, c := range m.ToolCalls {
		call, err := openAIToolCall(c)
		if err != nil {
			return fmt.Errorf("tool_calls[%d]: %w", i, err)
		}
		msg.toolCalls = append(msg.toolCalls, call)
	}
	if len(msg.toolCalls) > 0 && msg.content == nil {
		msg.content = json.RawMessage("null")
	}
	if msg.role == "tool" {
		// tool_call_id, else id (GuideLLM's `a or b`); a tool_call_id
		// written empty stays, so the rewritten message reads back alike.
		id := m.ToolCallID
		if truthy(id) == "" && truthy(m.ID) != "" {
			id = m.ID
		}
		if !isNull(id) {
			msg.toolCallID, msg.hasCallID = scalarText(id), true
		}
		if m.Name != nil {
			msg.name = compactJSON(m.Name)
		}
		if msg.content == nil {
			if isNull(m.Result) {
				msg.content = json.RawMessage(`""`)
			} else {
				msg.content = compactJSON(m.Result)
			}
		}
	}
	o.msgs = append(o.msgs, msg)
	return nil
}

// wirePart is one part of a semantic-conventions message.
type wirePart struct {
	Type       string          `json:"type"`
	Content    json.RawMessage `json:"content"`
	Text       json.RawMessage `json:"text"`
	ID         json.RawMessage `json:"id"`
	ToolCallID json.RawMessage `json:"tool_call_id"`
	Name       json.RawMessage `json:"name"`
	Arguments  json.RawMessage `json:"arguments"`
	Function   json.RawMessage `json:"function"`
	Result     json.RawMessage `json:"result"`
	Response   json.RawMessage `json:"response"`
}

func (o *otelMessages) fromParts(role string, raw json.RawMessage) error {
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return fmt.Errorf("parts: %w", err)
	}
	var texts []string
	var calls []chatToolCall
	var responses []chatMessage
	for i, pr := range parts {
		pr = bytes.TrimSpace(pr)
		if len(pr) == 0 || pr[0] != '{' {
			o.droppedParts++ // GuideLLM skips parts that are not objects
			continue
		}
		var p wirePart
		if err := json.Unmarshal(pr, &p); err != nil {
			return fmt.Errorf("parts[%d]: %w", i, err)
		}
		switch p.Type {
		case "text":
			v := p.Content
			if v == nil {
				v = p.Text
			}
			texts = append(texts, textOf(v))
		case "tool_call":
			call, err := partToolCall(&p)
			if err != nil {
				return fmt.Errorf("parts[%d]: %w", i, err)
			}
			calls = append(calls, call)
		case "tool_call_response":
			v := p.Result
			if v == nil {
				v = p.Response
			}
			if v == nil {
				v = p.Content
			}
			id := p.ID
			if truthy(id) == "" {
				id = p.ToolCallID
			}
			responses = append(responses, chatMessage{
				role: "tool", toolCallID: truthy(id), hasCallID: true,
				content: jsonStringOf(resultText(v)),
			})
		default:
			o.droppedParts++
		}
	}
	if len(texts) > 0 || len(calls) > 0 {
		msg := chatMessage{role: role, toolCalls: calls}
		if msg.role == "" {
			msg.role = "user"
			if len(calls) > 0 {
				msg.role = "assistant"
			}
		}
		if len(texts) > 0 {
			msg.content = jsonStringOf(strings.Join(texts, ""))
		} else {
			msg.content = json.RawMessage("null")
		}
		o.msgs = append(o.msgs, msg)
	}
	o.msgs = append(o.msgs, responses...)
	return nil
}

// partToolCall reads a tool_call part: id (or tool_call_id), name and
// arguments, either on the part or in a nested function object.
func partToolCall(p *wirePart) (chatToolCall, error) {
	args, name := p.Arguments, p.Name
	if fn := bytes.TrimSpace(p.Function); len(fn) > 0 && fn[0] == '{' {
		var f struct {
			Name      json.RawMessage `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		if err := json.Unmarshal(fn, &f); err != nil {
			return chatToolCall{}, fmt.Errorf("function: %w", err)
		}
		if isNull(args) {
			args = f.Arguments
		}
		if truthy(name) == "" {
			name = f.Name
		}
	}
	id := p.ID
	if truthy(id) == "" {
		id = p.ToolCallID
	}
	return chatToolCall{id: truthy(id), name: truthy(name), arguments: argumentsText(args)}, nil
}

// openAIToolCall reads an OpenAI-shaped tool call.
func openAIToolCall(raw json.RawMessage) (chatToolCall, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return chatToolCall{}, fmt.Errorf("want an object, got %s", excerpt(raw))
	}
	var c struct {
		ID         json.RawMessage `json:"id"`
		ToolCallID json.RawMessage `json:"tool_call_id"`
		Name       json.RawMessage `json:"name"`
		Arguments  json.RawMessage `json:"arguments"`
		Function   json.RawMessage `json:"function"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return chatToolCall{}, err
	}
	var fn struct {
		Name      json.RawMessage `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if f := bytes.TrimSpace(c.Function); len(f) > 0 && f[0] == '{' {
		if err := json.Unmarshal(f, &fn); err != nil {
			return chatToolCall{}, fmt.Errorf("function: %w", err)
		}
	}
	args := fn.Arguments
	if args == nil {
		args = c.Arguments
	}
	name := truthy(fn.Name)
	if name == "" {
		name = truthy(c.Name)
	}
	id := truthy(c.ID)
	if id == "" {
		id = truthy(c.ToolCallID)
	}
	return chatToolCall{id: id, name: name, arguments: argumentsText(args)}, nil
}

// argumentsText is a tool call's arguments as the string OpenAI expects:
// a string as it is, anything else as compact JSON, nothing as "{}".
func argumentsText(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if isNull(v) {
		return "{}"
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	return string(compactJSON(v))
}

// resultText is a tool result as message content: a string as it is,
// anything else as compact JSON, nothing as "".
func resultText(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if isNull(v) {
		return ""
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	return string(compactJSON(v))
}

// textOf is a text part's content: a string as it is, null or absent as
// "", anything else as its JSON text.
func textOf(v json.RawMessage) string {
	if isNull(v) {
		return ""
	}
	return resultText(v)
}

// scalarText is a string's value, or any other JSON scalar as written;
// "" for null.
func scalarText(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if isNull(v) {
		return ""
	}
	if s, ok := fastString(v); ok {
		return s
	}
	var s string
	if v[0] == '"' && json.Unmarshal(v, &s) == nil {
		return s
	}
	return string(v)
}

// truthy is scalarText, but "" for the values Python counts as false
// (null, "", 0, false), as GuideLLM's `x or y` fallbacks do.
func truthy(v json.RawMessage) string {
	s := scalarText(v)
	switch strings.TrimSpace(string(v)) {
	case "0", "false", "0.0":
		return ""
	}
	return s
}

func isNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || string(v) == "null"
}

func optString(v json.RawMessage) (string, error) {
	if isNull(v) {
		return "", nil
	}
	if s, ok := fastString(bytes.TrimSpace(v)); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("want a string, got %s", excerpt(v))
	}
	return s, nil
}

func compactJSON(v json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return append(json.RawMessage(nil), v...)
	}
	return b.Bytes()
}

func jsonStringOf(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// appendChatMessages writes msgs as a compact JSON array.
func appendChatMessages(out []byte, msgs []chatMessage) []byte {
	out = append(out, '[')
	for i := range msgs {
		if i > 0 {
			out = append(out, ',')
		}
		out = msgs[i].appendJSON(out)
	}
	return append(out, ']')
}

func (m *chatMessage) appendJSON(out []byte) []byte {
	out = append(out, `{"role":`...)
	out = append(out, jsonStringOf(m.role)...)
	if m.content != nil {
		out = append(out, `,"content":`...)
		out = append(out, m.content...)
	}
	if len(m.toolCalls) > 0 {
		out = append(out, `,"tool_calls":[`...)
		for i, c := range m.toolCalls {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, `{"id":`...)
			out = append(out, jsonStringOf(c.id)...)
			out = append(out, `,"type":"function","function":{"name":`...)
			out = append(out, jsonStringOf(c.name)...)
			out = append(out, `,"arguments":`...)
			out = append(out, jsonStringOf(c.arguments)...)
			out = append(out, "}}"...)
		}
		out = append(out, ']')
	}
	if m.hasCallID {
		out = append(out, `,"tool_call_id":`...)
		out = append(out, jsonStringOf(m.toolCallID)...)
	}
	if m.name != nil {
		out = append(out, `,"name":`...)
		out = append(out, m.name...)
	}
	return append(out, '}')
}

// replyText is the text of a call's reply: the content of its one output
// message, when that is a non-empty string (text parts are joined into
// one), as a later call's input quotes it. Several output messages (n > 1
// choices) or none give "".
func replyText(output []chatMessage) string {
	if len(output) != 1 {
		return ""
	}
	var text string
	if json.Unmarshal(output[0].content, &text) != nil {
		return ""
	}
	return text
}

// hasToolCalls reports whether any message asks for a tool.
func hasToolCalls(msgs []chatMessage) bool {
	for i := range msgs {
		if len(msgs[i].toolCalls) > 0 {
			return true
		}
	}
	return false
}

// endsWithToolResults reports whether the messages after the last
// assistant message are all tool results, at least one: the client is
// answering the tool calls of the model's previous reply.
func endsWithToolResults(msgs []chatMessage) bool {
	last := -1
	for i := range msgs {
		if msgs[i].role == "assistant" {
			last = i
		}
	}
	if last < 0 || last == len(msgs)-1 {
		return false
	}
	for _, m := range msgs[last+1:] {
		if m.role != "tool" {
			return false
		}
	}
	return true
}

// systemInstructions reads gen_ai.system_instructions (a list of parts, or
// a JSON string of one, or a plain string) as one system message's text.
func systemInstructions(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		t := strings.TrimSpace(s)
		if !strings.HasPrefix(t, "[") || !json.Valid([]byte(t)) {
			return s, nil // plain text instructions
		}
		raw = json.RawMessage(t)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("want a list of parts")
	}
	var texts []string
	for _, pr := range parts {
		var p wirePart
		if json.Unmarshal(pr, &p) != nil || p.Type != "text" {
			continue
		}
		v := p.Content
		if v == nil {
			v = p.Text
		}
		texts = append(texts, textOf(v))
	}
	return strings.Join(texts, ""), nil
}

// promptText joins the text of msgs' string contents, one message a line:
// the prompt of a text completion recorded as messages.
func promptText(msgs []chatMessage) string {
	var texts []string
	for _, m := range msgs {
		if len(m.content) > 0 && m.content[0] == '"' {
			var s string
			if json.Unmarshal(m.content, &s) == nil {
				texts = append(texts, s)
			}
		}
	}
	return strings.Join(texts, "\n")
}
