package engine

import (
	"time"
)

// Result is what the replayer observed for one request. Every time is an
// offset from the run's single monotonic origin.
type Result struct {
	// Session is the request's session (multi-turn conversation), if any;
	// Conversation its conversation graph (agentic traces) and TurnKind its
	// role in a tool loop (plain, tool_call, tool_result), if recorded:
	// stats report whole conversations and call kinds from them.
	Session, Conversation, TurnKind string
	Index                           int    // workload request index
	Endpoint                        string // "chat" or "completions"
	Stream                          bool

	Intended time.Duration // when the schedule said to send it
	// QueueWait is how long the request waited for a free slot under
	// MaxConcurrency (0 if it found one), counted from the later of its due
	// time and the moment the dispatcher reached it: the part of
	// Sent − Intended that the concurrency cap, not the load generator
	// (a late timer, a slow workload or body build), caused.
	QueueWait time.Duration
	// OrderWait is the part of Sent − Intended that the workload's own order
	// forced (0 for most requests): open-loop requests are dispatched in
	// the order the workload yields them, so one due earlier than a request
	// already dispatched (a trace row whose timestamp goes backwards) cannot
	// be sent before the dispatcher reached it: max(0, reached − Intended),
	// reached being the latest due time dispatched before it plus the
	// slot waits (QueueWait) of the requests dispatched before it under
	// MaxConcurrency, which held the dispatcher too. Like QueueWait, it is
	// not the load generator's lag.
	OrderWait time.Duration
	// Sent is when the request was handed to the transport, read just
	// before the hand-off, after its body was built; a later failure
	// (timeout, drain bound, transport error) never moves it. A request
	// whose body or request could not be built never went out: its Sent is
	// the moment it failed (then Sent = End). A request re-sent because a
	// kept-alive connection closed under it (Retries) keeps the first
	// hand-off as Sent: the lost round trip was the server's doing (it
	// closed the connection), so it counts in the latencies from Sent,
	// never as send lag (Sent − Intended), which is the client's.
	Sent time.Duration
	// Retries counts the times the request was re-sent because it provably
	// never reached the server: it went out on a reused kept-alive
	// connection that closed or reset before any response byte (the
	// client's do has the rule). At most 2; 0 for almost every request.
	Retries   int
	FirstByte time.Duration // response headers received; 0 if never
	// FirstEvent is when the first SSE event of any kind arrived (a role
	// delta, a usage or keep-alive event, content); 0 if none did, and for
	// a non-streamed response. Events counts the stream's events, all kinds.
	FirstEvent time.Duration
	Events     int
	// FirstToken and LastToken are the first and last SSE events that carried
	// generated output: non-empty content (text or reasoning) or part of a
	// tool call (for a non-streamed response both equal End).
	FirstToken time.Duration
	LastToken  time.Duration
	End        time.Duration // response fully read or failed
	// Chunks holds the offset of every output-bearing event, and
	// ChunkTokens its token count (1 each unless per-chunk usage says more).
	Chunks      []time.Duration
	ChunkTokens []int
	// ChunkCount is len(Chunks) as the request ended, kept when the run
	// discards Chunks (Config.DiscardChunks). Read NumChunks.
	ChunkCount int

	Status int
	Err    string // empty on success

	RequestedPromptTokens int // what the workload asked for
	RequestedOutputTokens int
	PromptTokens          int // from usage when reported, else estimated
	OutputTokens          int
	CachedTokens          int
	TokensFromUsage       bool
	FinishReason          string

	// Phase is PhaseWarmup or PhaseCooldown for a request sent in the
	// run's warmup or cooldown (Config.Warmup, Config.Cooldown): recorded,
	// but left out of the metrics. Empty for measured requests.
	Phase string

	// reply collects the content text for a ReplyObserver (reply.go);
	// nil for every other request.
	reply []byte
}

// NumChunks is the number of output-bearing events: len(Chunks), or
// ChunkCount once the run has discarded Chunks.
func (r *Result) NumChunks() int { return max(len(r.Chunks), r.ChunkCount) }

// OK reports whether the request succeeded.
func (r *Result) OK() bool { return r.Err == "" && r.Status >= 200 && r.Status < 300 }

// FirstToken is what Config.OnFirstToken learns of a request when its
// first output arrives: offsets from the run's origin, as in Result.
type FirstToken struct {
	Index    int           // workload request index
	Intended time.Duration // when the schedule said to send it
	Sent     time.Duration // when it was sent
	At       time.Duration // when its first output arrived (Result.FirstToken)
}

// TTFT is the time to first token from the actual send.
func (f FirstToken) TTFT() time.Duration { return f.At - f.Sent }
