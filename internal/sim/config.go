// Package sim is Reprise's OpenAI-compatible simulator (`replay sim`): chat
// and completions, streaming or not, with usage, behind a capacity model
// like a small vLLM server's — a fixed number of batch slots with a FIFO
// waiting queue, TTFT = queueing + base + per-uncached-prompt-token prefill,
// inter-token latency growing with the number of running sequences, and a
// prefix cache. Saturation in demos and tests is therefore real.
//
// Three behaviours of real engines that fool benchmarks (issue 18) can be
// switched on, each by its own option:
//
//   - the prefix cache (PrefixCache, on by default): a request's prompt is
//     cut into blocks of PrefixBlock tokens, each hashed with everything
//     before it (vLLM's block hashing), and looked up when the request is
//     admitted to a slot; the leading blocks found skip prefill, and the
//     request's usage reports them as prompt_tokens_details.cached_tokens
//     (0 included, as vLLM does with --enable-prompt-tokens-details). The
//     cache holds PrefixCacheBlocks block hashes, least recently used
//     first out. Prefill takes TTFTBase plus PrefillPerToken per uncached
//     prompt token. /metrics counts
//     vllm:prompt_tokens_total, vllm:prompt_tokens_cached_total and the
//     vllm:prefix_cache_queries / vllm:prefix_cache_hits token counters. A
//     benchmark that sends the same prompts twice sees the second pass
//     faster, as on vLLM or llama-server.
//   - HoldCancelled: a request whose client goes away keeps its place in
//     the queue, then its slot, until its generation would have ended, as
//     llama-server does (its requests_deferred stays up after the client
//     gave up); vLLM, and the simulator by default, abort it at once. Held
//     requests count in vllm:num_requests_running and
//     vllm:num_requests_waiting, and slow everyone else, until they end.
//   - KeepAliveCloseRate: after that fraction of streamed HTTP/1.1
//     responses (drawn per request from Seed), the server closes the
//     kept-alive connection without having said Connection: close, at the
//     worst moment: when the client's next request arrives on it, so the
//     client, having reused the connection, reads EOF before any response
//     byte (llama-server's behaviour that issue 18 saw through httpx). The
//     handler takes the connection over to do it (keepalive.go), so it
//     works however the simulator is served.
package sim

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config is the simulator's capacity model. Field comments are the flags' docs.
type Config struct {
	// Model is the name /v1/models reports; requests may name any model.
	Model string
	// Slots is the number of sequences decoded at once (vLLM's max_num_seqs).
	Slots int
	// MaxWaiting bounds the waiting queue; beyond it requests get 429.
	// 0 means unbounded.
	MaxWaiting int
	// TTFTBase is the fixed part of the time from admission to first token.
	TTFTBase time.Duration
	// PrefillPerToken is the prefill cost per prompt token not served from
	// the prefix cache.
	PrefillPerToken time.Duration
	// ITLBase is the time between tokens of one sequence with no others running.
	ITLBase time.Duration
	// ITLPerSeq is added to the inter-token time per running sequence.
	ITLPerSeq time.Duration
	// DefaultMaxTokens is the output limit of requests without max_tokens.
	DefaultMaxTokens int
	// NaturalOutputMean is the mean output length (tokens) of requests that
	// may stop early (no ignore_eos): lengths are drawn from a geometric
	// distribution with this mean, capped by max_tokens.
	NaturalOutputMean int
	// PrefixCache enables the prefix cache: the leading prompt blocks seen
	// before (by an earlier admitted request) skip prefill and are reported
	// as usage.prompt_tokens_details.cached_tokens.
	PrefixCache bool
	// PrefixBlock is the prefix cache's block size in tokens (vLLM's 16);
	// a prompt's last, partial block is never cached.
	PrefixBlock int
	// PrefixCacheBlocks bounds the cache in blocks (least recently used
	// blocks go first).
	PrefixCacheBlocks int
	// HoldCancelled keeps a request whose client went away in the engine, as
	// llama-server does: queued, it keeps its place; admitted, it keeps its
	// slot and generates, unheard, until its output would have ended (or
	// the simulator is closed). Off (vLLM's behaviour), it leaves at once.
	HoldCancelled bool
	// KeepAliveCloseRate is the fraction (0..1, drawn per request from Seed)
	// of complete streamed HTTP/1.1 responses on kept-alive connections
	// after which the server closes the connection without having sent
	// Connection: close: when the next request arrives on it, the server
	// reads its first bytes and closes, so the client sees EOF (or a
	// reset) before any response byte on a reused connection (llama-server,
	// issue 18). HTTP/2 connections, which carry other streams, are left
	// alone.
	KeepAliveCloseRate float64
	// Jitter scales every delay by a uniform factor in [1-Jitter, 1+Jitter].
	Jitter float64
	// ErrorRate is the fraction of requests answered with HTTP 500.
	ErrorRate float64
	// Seed makes jitter, output lengths and errors reproducible.
	Seed int64
}

// DefaultConfig is the simulator's default capacity model.
func DefaultConfig() Config {
	return Config{
		Model: "reprise-sim", Slots: 8, TTFTBase: 20 * time.Millisecond, PrefillPerToken: 20 * time.Microsecond,
		ITLBase: 8 * time.Millisecond, ITLPerSeq: time.Millisecond, DefaultMaxTokens: 256, NaturalOutputMean: 128,
		PrefixCache: true, PrefixBlock: 16, PrefixCacheBlocks: 100_000, Jitter: 0.05, Seed: 1,
	}
}

// RegisterFlags binds every field to a flag, with the current values as defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Model, "model", c.Model, "model name reported by /v1/models")
	fs.IntVar(&c.Slots, "slots", c.Slots, "sequences decoded at once (batch slots)")
	fs.IntVar(&c.MaxWaiting, "max-waiting", c.MaxWaiting, "waiting-queue bound; beyond it 429 (0: unbounded)")
	fs.DurationVar(&c.TTFTBase, "ttft-base", c.TTFTBase, "fixed time from admission to first token")
	fs.DurationVar(&c.PrefillPerToken, "prefill-per-token", c.PrefillPerToken, "prefill time per uncached prompt token")
	fs.DurationVar(&c.ITLBase, "itl-base", c.ITLBase, "time between tokens with one sequence running")
	fs.DurationVar(&c.ITLPerSeq, "itl-per-seq", c.ITLPerSeq, "inter-token time added per running sequence")
	fs.IntVar(&c.DefaultMaxTokens, "default-max-tokens", c.DefaultMaxTokens, "output limit when a request sets no max_tokens")
	fs.IntVar(&c.NaturalOutputMean, "natural-output-mean", c.NaturalOutputMean, "mean output length of requests without ignore_eos")
	fs.BoolVar(&c.PrefixCache, "prefix-cache", c.PrefixCache,
		"cache prompt prefixes in blocks: cached blocks skip prefill and are reported as usage.prompt_tokens_details.cached_tokens")
	fs.IntVar(&c.PrefixBlock, "prefix-block", c.PrefixBlock, "prefix cache block size in tokens")
	fs.IntVar(&c.PrefixCacheBlocks, "prefix-cache-blocks", c.PrefixCacheBlocks, "prefix cache capacity in blocks (least recently used evicted first)")
	fs.BoolVar(&c.HoldCancelled, "hold-cancelled", c.HoldCancelled,
		"keep a request whose client went away queued, then generating in its slot, until its output would have ended (llama-server); off: abort it at once (vLLM)")
	fs.Float64Var(&c.KeepAliveCloseRate, "keepalive-close-rate", c.KeepAliveCloseRate,
		"fraction of streamed HTTP/1.1 responses after which the kept-alive connection is closed, without Connection: close, as the next request arrives on it (llama-server), 0..1")
	fs.Float64Var(&c.Jitter, "jitter", c.Jitter, "delay jitter fraction, 0..1")
	fs.Float64Var(&c.ErrorRate, "error-rate", c.ErrorRate, "fraction of requests answered 500, 0..1")
	fs.Int64Var(&c.Seed, "seed", c.Seed, "random seed")
}

// Validate reports every problem at once, naming the flags.
func (c *Config) Validate() error {
	var errs []error
	if c.Slots < 1 {
		errs = append(errs, fmt.Errorf("--slots %d: must be at least 1", c.Slots))
	}
	if c.MaxWaiting < 0 {
		errs = append(errs, fmt.Errorf("--max-waiting %d: must not be negative", c.MaxWaiting))
	}
	for name, d := range map[string]time.Duration{"--ttft-base": c.TTFTBase, "--prefill-per-token": c.PrefillPerToken, "--itl-base": c.ITLBase, "--itl-per-seq": c.ITLPerSeq} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must not be negative", name, d))
		}
	}
	if c.DefaultMaxTokens < 1 {
		errs = append(errs, fmt.Errorf("--default-max-tokens %d: must be at least 1", c.DefaultMaxTokens))
	}
	if c.NaturalOutputMean < 1 {
		errs = append(errs, fmt.Errorf("--natural-output-mean %d: must be at least 1", c.NaturalOutputMean))
	}
	if c.PrefixBlock < 1 || c.PrefixCacheBlocks < 1 {
		errs = append(errs, errors.New("--prefix-block and --prefix-cache-blocks must be at least 1"))
	}
	if c.Jitter < 0 || c.Jitter >= 1 {
		errs = append(errs, fmt.Errorf("--jitter %v: want 0 <= jitter < 1", c.Jitter))
	}
	if !(c.ErrorRate >= 0 && c.ErrorRate <= 1) { // NaN too
		errs = append(errs, fmt.Errorf("--error-rate %v: want 0..1", c.ErrorRate))
	}
	if !(c.KeepAliveCloseRate >= 0 && c.KeepAliveCloseRate <= 1) {
		errs = append(errs, fmt.Errorf("--keepalive-close-rate %v: want 0..1", c.KeepAliveCloseRate))
	}
	return errors.Join(errs...)
}
