// Package sim is Reprise's OpenAI-compatible simulator (`replay sim`): chat
// and completions, streaming or not, with usage, behind a capacity model
// like a small vLLM server's — a fixed number of batch slots with a FIFO
// waiting queue, TTFT = queueing + base + per-uncached-prompt-token prefill,
// inter-token latency growing with the number of running sequences, and a
// prefix cache. Saturation in demos and tests is therefore real.
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
	// PrefixCache enables the prefix cache: prompt blocks seen before skip
	// prefill and are reported as cached_tokens.
	PrefixCache bool
	// PrefixBlock is the prefix cache's block size in tokens (vLLM's 16).
	PrefixBlock int
	// PrefixCacheBlocks bounds the cache (least recently used blocks go first).
	PrefixCacheBlocks int
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
	fs.BoolVar(&c.PrefixCache, "prefix-cache", c.PrefixCache, "reuse cached prompt prefixes (skip their prefill, report cached_tokens)")
	fs.IntVar(&c.PrefixBlock, "prefix-block", c.PrefixBlock, "prefix cache block size in tokens")
	fs.IntVar(&c.PrefixCacheBlocks, "prefix-cache-blocks", c.PrefixCacheBlocks, "prefix cache capacity in blocks")
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
	if c.ErrorRate < 0 || c.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("--error-rate %v: want 0..1", c.ErrorRate))
	}
	return errors.Join(errs...)
}
