// Package capture is Reprise's capture core: the v1 record schema, the
// per-request timing state machine (Tracker) fed (time, bytes, end) events,
// keyed prefix-block hashing, and the segment writer and reader. It imports
// no net/http or gRPC, so the reverse proxy, the ext_proc server and the wasm
// filter are thin adapters over the same code.
package capture

import "time"

// FormatVersion is the capture format this package writes. Readers accept
// every version up to and including it.
//
// Issue 18 made blocks finer (DefaultBlockChars 256, was 2048) without a
// new version: hash_ids have always meant a chain over the record's own
// block characters, and every reader, older ones included, sizes blocks
// from the record's block field. A capture with fine blocks replays in an
// older build with its finer sharing; a 2048-character capture reads as it
// always did.
const FormatVersion = 1

// Content capture modes (--capture-content).
const (
	ContentNone   = "none"   // no prompt text, no hash ids
	ContentHashed = "hashed" // keyed prefix-block hash ids only (default)
	ContentFull   = "full"   // prompt text and messages too
)

// Front ends other than the reverse proxy (Record.Source).
const (
	SourceExtProc = "ext_proc" // the Envoy ext_proc collector (filters/extproc)
	SourceWasm    = "wasm"     // the Envoy proxy-wasm filter (filters/wasm)
)

// Token count sources.
const (
	// TokensUsage says the counts are the server's usage object's.
	TokensUsage = "usage"
	// TokensEstimate says they were estimated without usage: a streamed
	// response counts one token per output event, a non-streamed one its
	// text's openai.EstimateTokens, capped at max_tokens × n either way;
	// the prompt counts its text's EstimateTokens.
	TokensEstimate = "estimate"
)

// Record is one request as captured: its shape and timings, never its
// credentials. Times are nanoseconds; T is measured from the capture's
// monotonic origin (Manifest.Start), every other *_ns field from the moment
// the request arrived (T).
type Record struct {
	ID      string    `json:"id"`                // unique per capture
	T       int64     `json:"t"`                 // arrival, ns since capture start (monotonic)
	Wall    time.Time `json:"wall"`              // arrival wall-clock time (RFC 3339)
	Session string    `json:"session,omitempty"` // keyed hash of the session/user key
	Shadow  bool      `json:"shadow,omitempty"`  // this is the shadow candidate's response to request ID
	// Source names the front end that captured the record when it is not
	// the reverse proxy: SourceExtProc or SourceWasm. Empty for the proxy,
	// as in every capture written before there were other front ends, so
	// older readers (which ignore unknown fields) read such records as
	// before.
	Source string `json:"source,omitempty"`
	// RequestID is the client's X-Request-Id when it sent a usable one: the
	// id the proxy's log lines carry (without one they carry ID). A shadow
	// record has its request's ID and RequestID.
	RequestID string `json:"request_id,omitempty"`

	Method      string   `json:"method,omitempty"`
	Path        string   `json:"path"`
	Model       string   `json:"model,omitempty"`
	Stream      bool     `json:"stream,omitempty"`
	MaxTokens   int      `json:"max_tokens,omitempty"`
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	N           int      `json:"n,omitempty"`
	NMessages   int      `json:"n_messages,omitempty"`
	PromptChars int      `json:"prompt_chars,omitempty"`
	// HashIDs are the prompt's prefix blocks: a keyed hash chain over
	// consecutive Block-character blocks (the last may be shorter), remapped
	// to small integers in first-seen order (the Mooncake convention). Equal
	// ids at equal positions mean an identical prompt prefix. Ids of
	// coarser blocks (Mooncake's 512 tokens) derive from them (Coarsener)
	// rather than being stored twice.
	HashIDs []uint32 `json:"hash_ids,omitempty"`
	// Block is the characters per hash block: DefaultBlockChars (256)
	// unless the proxy's --hash-block-chars said otherwise; 2048 in
	// captures written before issue 18.
	Block int `json:"block,omitempty"`
	// Prompt and Messages are stored only with content capture "full".
	Prompt   string `json:"prompt,omitempty"`
	Messages []byte `json:"messages,omitempty"` // raw JSON messages; base64 in JSON
	// BodyTruncated says the request body could not be parsed whole: it
	// passed the parse cap, or the client stopped sending it part way.
	// Request fields are then best effort (top-level scalars only) and
	// there are no hash ids. The proxy reads the rest of a body its
	// upstream did not (one that was down), so an upstream failure alone
	// does not set it.
	BodyTruncated bool `json:"body_truncated,omitempty"`

	Status       int    `json:"status"`
	Error        string `json:"error,omitempty"`
	FinishReason string `json:"finish_reason,omitempty"`
	PromptTokens int    `json:"prompt_tokens,omitempty"`
	OutputTokens int    `json:"output_tokens,omitempty"`
	CachedTokens int    `json:"cached_tokens,omitempty"`
	TokensSource string `json:"tokens_source,omitempty"` // TokensUsage or TokensEstimate
	TTFBNs       int64  `json:"ttfb_ns,omitempty"`       // response headers
	TTFTNs       int64  `json:"ttft_ns,omitempty"`       // first output event: non-empty content or part of a tool call
	// ChunksUS holds, for every SSE event that carried output (content or
	// part of a tool call), the gap in microseconds since the previous such
	// event (the first since arrival): delta encoding keeps records small.
	// ChunkTokens holds each event's token count. Microseconds, not ns:
	// network timing has no meaningful sub-µs digits and they would not
	// compress.
	ChunksUS    []int64 `json:"chunks_us,omitempty"`
	ChunkTokens []int   `json:"chunk_tokens,omitempty"`
	// ChunkTokensSource is TokensUsage when every ChunkTokens entry came
	// from per-chunk usage (vLLM's continuous_usage_stats), TokensEstimate
	// when any was estimated (1 for an event without usage); empty without
	// ChunkTokens.
	// TokensSource says where the totals came from, which may differ.
	ChunkTokensSource string `json:"chunk_tokens_source,omitempty"`
	E2ENs             int64  `json:"e2e_ns,omitempty"`
	Upstream          string `json:"upstream,omitempty"` // destination endpoint header when present
	Aborted           bool   `json:"aborted,omitempty"`  // client went away, the stream broke, or shutdown cut it
	// EventsDropped counts SSE lines and events of the response that the
	// decoder dropped for passing its 1 MiB line cap (openai.Decoder
	// Overflows): their tokens and timings are missing from the record.
	EventsDropped int `json:"events_dropped,omitempty"`
}

// Manifest describes a capture directory; it is manifest.json at its root.
type Manifest struct {
	Format  string    `json:"format"`  // always "reprise-capture"
	Version int       `json:"version"` // FormatVersion when written
	Start   time.Time `json:"start"`   // wall time of the monotonic origin (T = 0)
	Source  string    `json:"source"`  // who wrote it, e.g. "proxy" and its upstream
	Block   int       `json:"block"`   // hash block size in characters (records carry their own too)
	KeyID   string    `json:"key_id"`  // identifies the HMAC key, never the key
	Content string    `json:"content"` // ContentNone, ContentHashed or ContentFull
}

// FormatName is Manifest.Format.
const FormatName = "reprise-capture"
