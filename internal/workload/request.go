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
	// whose rows hold one turn's new text (AIPerf session rows);
	// PromptTokens then counts this turn's new text only.
	History bool
	// TraceModel is the model the trace names (BurstGPT's "ChatGPT" or
	// "GPT-4"): informational, for filters and reports, never sent.
	TraceModel string
	// Recorded is the capture record this request came from (nil for other
	// sources): production's own timings for this request.
	Recorded *capture.Record
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
