// Package workload turns captures, public traces and synthetic specs into a
// stream of plain request values. Sources yield Requests; transforms wrap
// sources; the engine never knows where a request came from.
package workload

import (
	"fmt"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
)

// Request is one request to replay.
type Request struct {
	Index    int             // position in the source, from 0
	ID       string          // the source's id, when it has one
	Offset   time.Duration   // arrival offset from the workload's start
	Endpoint openai.Endpoint // openai.Chat or openai.Completions
	Model    string          // empty means the replayer's --model
	Stream   bool
	// PromptTokens is the prompt length to synthesise when Prompt and
	// Messages are empty.
	PromptTokens int
	// OutputTokens is the output length to force (max_tokens with
	// ignore_eos); 0 leaves it to the server.
	OutputTokens int
	// HashIDs and BlockTokens describe prefix sharing: equal ids at equal
	// positions become byte-identical blocks of BlockTokens tokens.
	HashIDs     []uint32
	BlockTokens int
	// Prompt (completions) or Messages (chat, raw JSON) are sent verbatim
	// when set.
	Prompt   string
	Messages []byte
	Session  string // conversation key; empty when none
	Turn     int    // position within the session, from 0
	// Delay is the think time before this turn is sent, counted from the
	// end of the session's previous turn (AIPerf's "delay", milliseconds in
	// the trace); 0 when the trace has none.
	Delay time.Duration
	// History asks the body builder to send the session's earlier turns
	// before this turn's prompt: their prompts and the replies the target
	// actually gave (AIPerf's multi-turn default), so that a conversation
	// grows as it did for the client. Set only with Session, by sources
	// whose rows hold one turn's new text (AIPerf session rows, and a
	// trace session's rows before its Convention is known);
	// PromptTokens then counts this turn's new text only.
	History bool
	// Convention is what a trace's session row counts, as its source
	// detected it: ConventionWhole rows are sent at their own length with
	// History false; ConventionDelta and ConventionUndecided session rows
	// keep History. Sources without the question (captures, synthetic
	// turns) leave it ConventionUndecided.
	Convention SessionConvention
	// TraceModel is the model the trace names (BurstGPT's "ChatGPT" or
	// "GPT-4"): informational, for filters and reports, never sent.
	TraceModel string
	// Recorded is the capture record this request came from (nil for other
	// sources): production's own timings for this request.
	Recorded *capture.Record
	// Graph places the request in an agentic conversation graph (OTel GenAI
	// traces, WEKA agentic traces); nil for every other source. The
	// open-loop engine sends a call once every node it came after has
	// ended, plus Delay, and so does a closed loop; see GraphNode.
	Graph *GraphNode
}

// GraphNode is where a request stands in its conversation's graph, as the
// trace recorded it. An agent's calls form a chain; a sub-agent's chain
// branches off its parent's (spawn) and the parent's next call waits for
// it (join); a tool-call turn is answered by a tool-result turn.
//
// The engine honours After (a call waits for every node it came after),
// open loop or closed; synth sends Tools, and puts the target's own reply
// to a call in place of its recorded Reply wherever a later call's
// recorded messages quote it (docs/workloads.md).
type GraphNode struct {
	// Conversation is the trace's conversation: an OTel trace id, a WEKA
	// conversation id. Its agents' Sessions all share it.
	Conversation string
	// Node names this call within Conversation: an OTel span id, WEKA's
	// node ids as GuideLLM numbers them ("main_3", "sa_0_1").
	Node string
	// Agent is the agent that made the call: "" for the conversation's
	// main agent, else the sub-agent's id.
	Agent string
	// After lists the nodes that ended before this call was made — the
	// engine waits for all of them: the
	// previous call of its agent, the parent call that spawned a
	// sub-agent (on a sub-agent's first call), and the last calls of the
	// sub-agents a parent call joins.
	After []string
	// Kind is the call's role in a tool loop.
	Kind TurnKind
	// Tools are the tool definitions the call offered (OTel
	// gen_ai.tool.definitions, compact JSON), when recorded: sent as the
	// chat request's tools (synth), with tool_choice required on a
	// tool-call turn.
	Tools []byte
	// Duration is how long the call took in the trace (OTel span duration,
	// WEKA api_time); 0 when not recorded.
	Duration time.Duration
	// Reply is the text of the call's recorded reply (OTel: the assistant
	// message of gen_ai.output.messages, its text parts joined), when
	// recorded; "" otherwise, and for a reply that was only tool calls. A
	// later call of the conversation whose recorded messages hold it as an
	// assistant message's content is sent with the target's own reply to
	// this call there instead (synth).
	Reply string
}

// TurnKind is a call's role in a tool loop.
type TurnKind uint8

const (
	// TurnPlain is a call that neither asked for tools nor answered them.
	TurnPlain TurnKind = iota
	// TurnToolCall is a call whose reply asked the client to run tools
	// (OTel: tool calls in gen_ai.output.messages or a tool-call finish
	// reason; WEKA: stop "tool_use").
	TurnToolCall
	// TurnToolResult is a call that sends tool results back (OTel: its
	// input ends with tool messages; WEKA: input_types "tool_result", or
	// none right after a "tool_use" stop). It may ask for tools again.
	TurnToolResult
)

// String is "plain", "tool_call" or "tool_result".
func (k TurnKind) String() string {
	switch k {
	case TurnToolCall:
		return "tool_call"
	case TurnToolResult:
		return "tool_result"
	}
	return "plain"
}

// SessionConvention is what the prompt length of a multi-turn trace's row
// counts. Traces disagree: AIPerf's session rows hold only the turn's new
// user text ("delta"), Mooncake's own traces the whole context, earlier
// turns and replies included ("whole-context"). Issue 16: a whole-context
// row sent with the history on top sent the conversation twice.
type SessionConvention uint8

const (
	// ConventionUndecided: not a session row of a trace, or a row read
	// before its session's convention could be told (a session's first
	// row, which is sent alike under both conventions). Sent as a delta
	// row.
	ConventionUndecided SessionConvention = iota
	// ConventionDelta: the row counts the turn's new text; the session's
	// earlier turns and the target's replies are sent before it (History).
	ConventionDelta
	// ConventionWhole: the row counts the whole context; it is sent at
	// exactly its length, without history, after the previous turn ended.
	ConventionWhole
)

// String is "undecided", "delta" or "whole-context".
func (c SessionConvention) String() string {
	switch c {
	case ConventionDelta:
		return "delta"
	case ConventionWhole:
		return "whole-context"
	}
	return "undecided"
}

// Source yields requests in arrival order. Next returns io.EOF after the last.
type Source interface {
	Next() (Request, error)
}

// zeroOutputWarning explains what became of rows that record an output
// length of 0. Sent without max_tokens, such a request would let the server
// generate freely (hundreds of tokens production never produced); left out,
// its prefill — the whole of its production load — would be lost. So it is
// sent with max_tokens 1, the least output a server produces.
func zeroOutputWarning(kind, path, column string, n int) string {
	return fmt.Sprintf("%s %s: %d rows record %s 0; sent with max_tokens 1 (the least a server generates) so their prefill load is kept", kind, path, n, column)
}
