package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/reprise-llm/reprise/internal/redact"
)

// Endpoint names an OpenAI-compatible API surface.
type Endpoint string

// Endpoints Reprise understands. Other is any path it forwards but does not parse.
const (
	Chat        Endpoint = "chat"        // POST /v1/chat/completions
	Completions Endpoint = "completions" // POST /v1/completions
	Responses   Endpoint = "responses"   // POST /v1/responses
	Embeddings  Endpoint = "embeddings"  // POST /v1/embeddings
	Other       Endpoint = "other"
)

// EndpointForPath classifies a request path (query string already removed).
// Prefixes before /v1 are allowed so that gateways that mount the API under a
// route (KServe's /openai/v1/...) are recognised.
func EndpointForPath(path string) Endpoint {
	path = strings.TrimRight(path, "/")
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		return Chat
	case strings.HasSuffix(path, "/completions"):
		return Completions
	case strings.HasSuffix(path, "/responses"):
		return Responses
	case strings.HasSuffix(path, "/embeddings"):
		return Embeddings
	}
	return Other
}

// PathFor is the canonical /v1 path of an endpoint.
func PathFor(e Endpoint) string {
	switch e {
	case Chat:
		return "/v1/chat/completions"
	case Completions:
		return "/v1/completions"
	case Responses:
		return "/v1/responses"
	case Embeddings:
		return "/v1/embeddings"
	}
	return ""
}

// RequestInfo is what a capture keeps of a request body. Prompt is the
// canonical prompt text used for prefix hashing and estimation: for chat it
// is every message as "role\x1fcontent\x1e" in order, for completions the
// prompt string(s). It is never stored unless content capture is enabled.
type RequestInfo struct {
	Endpoint     Endpoint
	Model        string
	Stream       bool
	IncludeUsage bool // stream_options.include_usage
	MaxTokens    int  // max_tokens, max_completion_tokens or max_output_tokens; 0 when absent
	IgnoreEOS    bool
	Temperature  *float64
	TopP         *float64
	N            int
	NMessages    int
	PromptChars  int // characters (runes) of prompt/message content
	Prompt       string
	User         string          // the OpenAI "user" field, raw (hash before storing)
	Messages     json.RawMessage // chat messages / responses input, raw
	// PromptTokenIDs counts the prompt's tokens when it was sent as token
	// ids (completions prompt, embeddings input); 0 for text.
	PromptTokenIDs int
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type requestBody struct {
	Model               string          `json:"model"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	MaxOutputTokens     *int            `json:"max_output_tokens"`
	IgnoreEOS           bool            `json:"ignore_eos"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	N                   *int            `json:"n"`
	User                string          `json:"user"`
	Messages            json.RawMessage `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Input               json.RawMessage `json:"input"`
	Instructions        string          `json:"instructions"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// ParseRequest extracts RequestInfo from a JSON request body sent to path.
// It returns an error naming the problem when the body is not a JSON object
// or a field has the wrong type; callers that only observe traffic must still
// forward such a request unchanged.
func ParseRequest(path string, body []byte) (RequestInfo, error) {
	return parseRequest(path, body, true)
}

// parseRequest is ParseRequest; fast=false forces encoding/json throughout,
// for the tests that hold the fast paths to it.
func parseRequest(path string, body []byte, fast bool) (RequestInfo, error) {
	info := RequestInfo{Endpoint: EndpointForPath(path)}
	if info.Endpoint == Other {
		return info, nil
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		// json.Unmarshal accepts "null" into a struct without complaint.
		return info, fmt.Errorf("parsing %s request body: want a JSON object, got %.20q", info.Endpoint, t)
	}
	var rb requestBody
	ok := false
	if fast {
		rb, ok = fastRequest(body)
	}
	if !ok {
		if err := json.Unmarshal(body, &rb); err != nil {
			return info, fmt.Errorf("parsing %s request body: %w", info.Endpoint, err)
		}
	}
	info.Model = rb.Model
	info.Stream = rb.Stream
	info.IncludeUsage = rb.StreamOptions != nil && rb.StreamOptions.IncludeUsage
	switch {
	case rb.MaxCompletionTokens != nil:
		info.MaxTokens = *rb.MaxCompletionTokens
	case rb.MaxTokens != nil:
		info.MaxTokens = *rb.MaxTokens
	case rb.MaxOutputTokens != nil:
		info.MaxTokens = *rb.MaxOutputTokens
	}
	info.IgnoreEOS = rb.IgnoreEOS
	info.Temperature, info.TopP = rb.Temperature, rb.TopP
	if rb.N != nil {
		info.N = *rb.N
	}
	info.User = rb.User
	var sb strings.Builder
	var err error
	switch info.Endpoint {
	case Chat:
		info.Messages = rb.Messages
		info.NMessages, err = appendMessages(&sb, rb.Messages, fast)
	case Completions:
		err = appendPrompt(&sb, rb.Prompt)
		info.PromptTokenIDs = countTokenIDs(rb.Prompt)
	case Embeddings:
		err = appendPrompt(&sb, rb.Input)
		info.PromptTokenIDs = countTokenIDs(rb.Input)
	case Responses:
		if rb.Instructions != "" {
			sb.WriteString("system\x1f" + rb.Instructions + "\x1e")
		}
		info.Messages = rb.Input
		if len(rb.Input) > 0 && rb.Input[0] == '"' {
			err = appendPrompt(&sb, rb.Input)
			info.NMessages = 1
		} else {
			info.NMessages, err = appendMessages(&sb, rb.Input, fast)
		}
	}
	if err != nil {
		return info, fmt.Errorf("parsing %s request body: %w", info.Endpoint, err)
	}
	info.Prompt = sb.String()
	info.PromptChars = contentChars(info.Prompt)
	return info, nil
}

// contentChars counts runes that are not the separators added by ParseRequest.
func contentChars(s string) int {
	n := 0
	for _, r := range s {
		if r != '\x1f' && r != '\x1e' {
			n++
		}
	}
	return n
}

func appendMessages(sb *strings.Builder, raw json.RawMessage, fast bool) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	if fast {
		if n, ok := fastMessages(sb, raw); ok {
			return n, nil
		}
	}
	var msgs []message
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return 0, fmt.Errorf("messages: %w", err)
	}
	for _, m := range msgs {
		sb.WriteString(m.Role)
		sb.WriteByte('\x1f')
		if err := appendContent(sb, m.Content); err != nil {
			return 0, fmt.Errorf("message content: %w", err)
		}
		sb.WriteByte('\x1e')
	}
	return len(msgs), nil
}

// appendContent accepts a string or an array of content parts; non-text parts
// contribute their type name so that prefix hashes still differ.
func appendContent(sb *strings.Builder, raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		sb.WriteString(s)
		return nil
	}
	var parts []contentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return err
	}
	for _, p := range parts {
		if p.Text != "" {
			sb.WriteString(p.Text)
		} else {
			sb.WriteString("<" + p.Type + ">")
		}
	}
	return nil
}

// appendPrompt accepts a string, an array of strings, or token arrays.
func appendPrompt(sb *strings.Builder, raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("prompt: %w", err)
		}
		sb.WriteString(s)
		return nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("prompt: %w", err)
		}
		for i, it := range items {
			if i > 0 {
				sb.WriteByte('\x1e')
			}
			it = bytes.TrimSpace(it)
			if len(it) > 0 && it[0] == '"' {
				var s string
				if err := json.Unmarshal(it, &s); err != nil {
					return fmt.Errorf("prompt[%d]: %w", i, err)
				}
				sb.WriteString(s)
			} else if len(it) > 0 && it[0] == '{' {
				// Responses API input item: {"role":..,"content":..}
				var m message
				if err := json.Unmarshal(it, &m); err != nil {
					return fmt.Errorf("input[%d]: %w", i, err)
				}
				sb.WriteString(m.Role + "\x1f")
				if err := appendContent(sb, m.Content); err != nil {
					return fmt.Errorf("input[%d]: %w", i, err)
				}
			} else {
				sb.Write(it) // token ids: hash their text form
			}
		}
		return nil
	}
	return fmt.Errorf("prompt: want a string or an array, got %.20q", raw)
}

// Usage is the token accounting of a response.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	CachedTokens     int `json:"cached_tokens"`
}

// Chunk is what one streamed event carries.
type Chunk struct {
	Done         bool   // the "[DONE]" sentinel
	Content      string // text delta(s) of all choices concatenated
	FinishReason string
	Usage        *Usage // present on usage events and vLLM continuous usage
	Error        string // an error object sent in-stream
	// ToolCall reports that the event streams part of a tool call: a
	// choice's non-empty delta.tool_calls (chat), or a Responses API
	// response.function_call_arguments.delta with a non-empty delta.
	// Such an event is generated output, as content is.
	ToolCall bool
}

type usageWire struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	InputTokens         int `json:"input_tokens"`  // Responses API
	OutputTokens        int `json:"output_tokens"` // Responses API
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	InputTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
}

func (u *usageWire) usage() *Usage {
	if u == nil {
		return nil
	}
	out := &Usage{PromptTokens: u.PromptTokens + u.InputTokens, CompletionTokens: u.CompletionTokens + u.OutputTokens}
	if u.PromptTokensDetails != nil {
		out.CachedTokens = u.PromptTokensDetails.CachedTokens
	}
	if u.InputTokensDetails != nil {
		out.CachedTokens = u.InputTokensDetails.CachedTokens
	}
	return out
}

type chunkWire struct {
	Type    string `json:"type"` // Responses API event type
	Choices []struct {
		Text  string `json:"text"`
		Delta struct {
			Content          *string         `json:"content"`
			ReasoningContent *string         `json:"reasoning_content"`
			Reasoning        *string         `json:"reasoning"`
			ToolCalls        json.RawMessage `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Delta    string          `json:"delta"` // Responses API output_text.delta
	Usage    *usageWire      `json:"usage"`
	Response *responseWire   `json:"response"` // Responses API response.completed
	Error    json.RawMessage `json:"error"`
	// Object and Message carry vLLM's older top-level error form
	// {"object":"error","message":...}; Message also carries the Responses
	// API "error" event's text.
	Object  string `json:"object"`
	Message string `json:"message"`
}

// ParseChunk decodes the data of one streamed event.
func ParseChunk(data []byte) (Chunk, error) {
	data = bytes.TrimSpace(data)
	if string(data) == "[DONE]" {
		return Chunk{Done: true}, nil
	}
	if c, ok := fastChunk(data); ok {
		return c, nil
	}
	if c, ok := fastResponseEvent(data); ok {
		return c, nil
	}
	return parseChunkSlow(data)
}

// hasToolCalls reports whether a delta's raw tool_calls value carries a
// tool call: anything but absent, null or an empty array.
func hasToolCalls(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return false
	}
	if raw[0] == '[' && raw[len(raw)-1] == ']' {
		return len(bytes.TrimSpace(raw[1:len(raw)-1])) > 0
	}
	return true
}

// parseChunkSlow is ParseChunk with encoding/json, for every shape.
func parseChunkSlow(data []byte) (Chunk, error) {
	var w chunkWire
	if err := json.Unmarshal(data, &w); err != nil {
		return Chunk{}, fmt.Errorf("parsing stream event: %w", err)
	}
	var c Chunk
	var sb strings.Builder
	for _, ch := range w.Choices {
		sb.WriteString(ch.Text)
		if ch.Delta.Content != nil {
			sb.WriteString(*ch.Delta.Content)
		}
		if ch.Delta.ReasoningContent != nil {
			sb.WriteString(*ch.Delta.ReasoningContent)
		}
		if ch.Delta.Reasoning != nil {
			sb.WriteString(*ch.Delta.Reasoning)
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			c.FinishReason = *ch.FinishReason
		}
		if hasToolCalls(ch.Delta.ToolCalls) {
			c.ToolCall = true
		}
	}
	if isTextDelta(w.Type) {
		sb.WriteString(w.Delta)
	}
	if w.Type == toolCallDeltaType && w.Delta != "" {
		c.ToolCall = true
	}
	c.Content = sb.String()
	c.Usage = w.Usage.usage()
	if w.Response != nil {
		if u := w.Response.Usage.usage(); u != nil {
			c.Usage = u
		}
		if f := finishForEvent(w.Type); f != "" {
			c.FinishReason = f
		}
		if len(w.Response.Error) > 0 && string(w.Response.Error) != "null" {
			c.Error = errorText(w.Response.Error) // response.failed
		}
	}
	if len(w.Error) > 0 && string(w.Error) != "null" {
		c.Error = errorText(w.Error)
	} else if (w.Object == "error" || w.Type == "error") && c.Error == "" {
		c.Error = redact.Text(w.Message)
		if c.Error == "" {
			c.Error = "error event"
		}
	}
	return c, nil
}

type responseWire struct {
	Choices []struct {
		Text    string `json:"text"`
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Output []struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Data    []json.RawMessage `json:"data"` // embeddings
	Usage   *usageWire        `json:"usage"`
	Error   json.RawMessage   `json:"error"`
	Status  string            `json:"status"`
	Object  string            `json:"object"`  // "error" in vLLM's older error form
	Message string            `json:"message"` // its text
}

// Response is what a non-streamed response body carries.
type Response struct {
	Content      string
	FinishReason string
	Usage        *Usage
	Error        string
}

// ParseResponse decodes a non-streamed JSON response body.
func ParseResponse(body []byte) (Response, error) {
	var w responseWire
	if err := json.Unmarshal(body, &w); err != nil {
		return Response{}, fmt.Errorf("parsing response body: %w", err)
	}
	var r Response
	var sb strings.Builder
	for _, ch := range w.Choices {
		sb.WriteString(ch.Text)
		if ch.Message.Content != nil {
			sb.WriteString(*ch.Message.Content)
		}
		if ch.FinishReason != nil && r.FinishReason == "" {
			r.FinishReason = *ch.FinishReason
		}
	}
	for _, o := range w.Output {
		for _, c := range o.Content {
			sb.WriteString(c.Text)
		}
	}
	if r.FinishReason == "" {
		switch w.Status { // Responses API
		case "completed":
			r.FinishReason = "stop"
		case "incomplete":
			r.FinishReason = "length"
		}
	}
	r.Content = sb.String()
	r.Usage = w.Usage.usage()
	if len(w.Error) > 0 && string(w.Error) != "null" {
		r.Error = errorText(w.Error)
	} else if w.Object == "error" {
		r.Error = redact.Text(w.Message)
		if r.Error == "" {
			r.Error = "error response"
		}
	}
	return r, nil
}

// errorText is an error object's message, scrubbed of credentials a
// server may echo back (a rejected key) and bounded (redact.Text).
func errorText(raw json.RawMessage) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Message != "" {
		return redact.Text(e.Message)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return redact.Text(s)
	}
	return redact.Text(string(raw))
}

// EstimateTokens approximates the token count of text when a server reports
// no usage: about 4 characters per token for English with BPE tokenizers
// (OpenAI's own rule of thumb), at least 1 for non-empty text. Records that
// use it say tokens_source "estimate".
func EstimateTokens(text string) int {
	if text == "" {
		return 0
	}
	n := (contentChars(text) + 3) / 4
	if n < 1 {
		n = 1
	}
	return n
}
