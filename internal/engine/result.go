package engine

import "time"

// Result is what the replayer observed for one request. Every time is an
// offset from the run's single monotonic origin.
type Result struct {
	Index    int    // workload request index
	Endpoint string // "chat" or "completions"
	Stream   bool

	Intended time.Duration // when the schedule said to send it
	// QueueWait is how long the request, once due, waited for a free slot
	// under MaxConcurrency (0 if it found one): the part of Sent − Intended
	// that the concurrency cap, not the load generator, caused.
	QueueWait time.Duration
	Sent      time.Duration // when the request was handed to the connection
	FirstByte time.Duration // response headers received; 0 if never
	// FirstToken and LastToken are the first and last SSE events that carried
	// non-empty content (for a non-streamed response both equal End).
	FirstToken time.Duration
	LastToken  time.Duration
	End        time.Duration // response fully read or failed
	// Chunks holds the offset of every content-bearing event, and
	// ChunkTokens its token count (1 each unless per-chunk usage says more).
	Chunks      []time.Duration
	ChunkTokens []int

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
}

// OK reports whether the request succeeded.
func (r *Result) OK() bool { return r.Err == "" && r.Status >= 200 && r.Status < 300 }
