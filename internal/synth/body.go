package synth

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Body returns the JSON body for req:
//
//	chat:        {"model","messages":[{"role":"user","content":PROMPT}],"max_tokens","ignore_eos","stream","stream_options"}
//	completions: {"model","prompt":PROMPT,"max_tokens","ignore_eos","stream","stream_options"}
//
// PROMPT is req.Prompt or req.Messages verbatim when the workload recorded
// them, else synthesised (Prompt). A History request (a session turn)
// sends its session's earlier turns and the target's replies to them first
// (see ObserveReply): as chat messages, or for completions as one prompt
// continuing the previous prompts and replies. A whole-context session row
// (workload.ConventionWhole) already counts its conversation: it is sent
// alone at its length, and its session's history is dropped.
// max_tokens = OutputTokens with ignore_eos makes the server produce exactly that many tokens; both
// are left out when OutputTokens is 0, and ignore_eos alone with
// Options.OmitIgnoreEOS. stream_options.include_usage is set on
// streams so token counts come from the server. model overrides req.Model
// when non-empty.
//
// The body is written by hand, not by encoding/json: a 12,000-token prompt
// is about 70 KB and synthesised text never needs escaping.
func (b *Builder) Body(req *workload.Request, model string) ([]byte, error) {
	if model == "" {
		model = req.Model
	}
	if model == "" {
		model = "default"
	}
	out := make([]byte, 0, b.sizeHint(req)+len(req.Prompt)+len(req.Messages)+256)
	out = append(out, `{"model":`...)
	out = appendJSONString(out, model)
	var err error
	b.graphs.note(req) // before its messages are read: a call quoting this one finds it among its ancestors
	if req.Convention == workload.ConventionWhole && req.Session != "" {
		b.forgetHistory(req.Session)
	}
	switch {
	case req.History && req.Session != "":
		if out, err = b.historyBody(out, req); err != nil {
			return nil, err
		}
	case req.Endpoint == openai.Completions:
		if req.Prompt == "" && len(req.Messages) > 0 {
			return nil, fmt.Errorf("request %d: a completions request needs a prompt, the workload has chat messages", req.Index)
		}
		out = append(out, `,"prompt":`...)
		if out, err = b.appendPromptString(out, req); err != nil {
			return nil, err
		}
	default:
		if len(req.Messages) > 0 {
			if !json.Valid(req.Messages) {
				return nil, fmt.Errorf("request %d: recorded messages are not valid JSON", req.Index)
			}
			msgs, err := b.graphs.messages(req)
			if err != nil {
				return nil, err
			}
			out = append(out, `,"messages":`...)
			out = append(out, msgs...)
		} else {
			out = append(out, `,"messages":[{"role":"user","content":`...)
			if out, err = b.appendPromptString(out, req); err != nil {
				return nil, err
			}
			out = append(out, "}]"...)
		}
	}
	if req.Endpoint != openai.Completions {
		out = appendTools(out, req)
	}
	if req.OutputTokens > 0 {
		out = append(out, `,"max_tokens":`...)
		out = strconv.AppendInt(out, int64(req.OutputTokens), 10)
		if !b.omitEOS {
			out = append(out, `,"ignore_eos":true`...)
		}
	}
	if req.Stream {
		out = append(out, `,"stream":true,"stream_options":{"include_usage":true}}`...)
	} else {
		out = append(out, `,"stream":false}`...)
	}
	return out, nil
}

// appendPromptString appends the prompt as a JSON string: the recorded one
// escaped, or the synthesised one, which is plain ASCII words.
func (b *Builder) appendPromptString(out []byte, req *workload.Request) ([]byte, error) {
	if req.Prompt != "" {
		return appendJSONString(out, req.Prompt), nil
	}
	out = append(out, '"')
	out, err := b.appendPrompt(out, req)
	return append(out, '"'), err
}

// appendJSONString appends s as a JSON string. Printable ASCII without
// quotes or backslashes is copied; anything else goes through
// encoding/json (which also replaces invalid UTF-8).
func appendJSONString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(out, q...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// appendTools adds the tool definitions an agentic trace recorded for a
// chat call (workload.GraphNode.Tools) as OpenAI's "tools", and for a call
// whose reply asked for tools "tool_choice":"required", as GuideLLM does,
// so that the target does the work of choosing and calling one. OTel's
// gen_ai.tool.definitions entries ({"type":"function","name":...,
// "parameters":...}) are wrapped in OpenAI's {"type":"function",
// "function":{...}}; entries already in that shape are sent as they are.
// Definitions that do not read as a list of objects are left out: the
// call is then sent as a plain chat request, as before there were tools.
func appendTools(out []byte, req *workload.Request) []byte {
	g := req.Graph
	if g == nil || len(g.Tools) == 0 {
		return out
	}
	var defs []map[string]json.RawMessage
	if json.Unmarshal(g.Tools, &defs) != nil || len(defs) == 0 {
		return out
	}
	tools := make([]map[string]json.RawMessage, 0, len(defs))
	for _, d := range defs {
		if _, ok := d["function"]; ok {
			tools = append(tools, d)
			continue
		}
		if _, ok := d["name"]; !ok {
			return out
		}
		fn := map[string]json.RawMessage{}
		for _, k := range []string{"name", "description", "parameters", "strict"} {
			if v, ok := d[k]; ok {
				fn[k] = v
			}
		}
		f, _ := json.Marshal(fn)
		tools = append(tools, map[string]json.RawMessage{"type": json.RawMessage(`"function"`), "function": f})
	}
	b, err := json.Marshal(tools)
	if err != nil {
		return out
	}
	out = append(out, `,"tools":`...)
	out = append(out, b...)
	if g.Kind == workload.TurnToolCall {
		out = append(out, `,"tool_choice":"required"`...)
	}
	return out
}
