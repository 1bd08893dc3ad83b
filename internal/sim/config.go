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
	// Slots is the number of sequences decoded at once (vLLM's
	// max_num_seqs); later requests wait in FIFO order.
	Slots int
	// MaxWaiting bounds the waiting queue (requests); beyond it requests
	// get HTTP 429. 0 means unbounded.
	MaxWaiting int
	// TTFTBase is the fixed part of the time from admission to first token;
	// queueing for a slot comes on top.
	TTFTBase time.Duration
	// PrefillPerToken is the prefill time per prompt token not served from
	// the prefix cache (cl100k_base tokens of the message contents).
	PrefillPerToken time.Duration
	// ITLBase is the fixed part of the time between two tokens of a sequence.
	ITLBase time.Duration
	// ITLPerSeq is added to the time between tokens once per sequence
	// running at that moment (this one included), so decoding slows as the
	// batch fills.
	ITLPerSeq time.Duration
	// DefaultMaxTokens is the output limit (tokens) of requests without
	// max_tokens or max_completion_tokens.
	DefaultMaxTokens int
	// NaturalOutputMean is the mean output length (tokens) of requests that
	// may stop early (no ignore_eos): lengths are drawn from a geometric
	// distribution with this mean, capped by max_tokens.
	NaturalOutputMean int
	// PrefixCache enables the prefix cache: leading full prompt blocks seen
	// before skip prefill and are reported as
	// usage.prompt_tokens_details.cached_tokens. As in vLLM, the block
	// holding the prompt's last token is always computed.
	PrefixCache bool
	// PrefixBlock is the prefix cache's block size in tokens (vLLM's 16).
	PrefixBlock int
	// PrefixCacheBlocks bounds the cache in blocks; the least recently used
	// blocks are evicted first.
	PrefixCacheBlocks int
	// Jitter is a fraction: every delay is scaled by a uniform factor in
	// [1-Jitter, 1+Jitter].
	Jitter float64
	// ErrorRate is the fraction (0..1) of requests answered with HTTP 500,
	// decided on arrival.
	ErrorRate float64
	// Seed makes jitter, output lengths, output text and errors
	// reproducible: request n (in arrival order) draws from a generator
	// seeded by (Seed, n).
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
	fs.DurationVar(&c.ITLBase, "itl-base", c.ITLBase, "fixed time between two tokens of a sequence")
	fs.DurationVar(&c.ITLPerSeq, "itl-per-seq", c.ITLPerSeq, "time between tokens added per running sequence")
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
	if c.Model == "" {
		errs = append(errs, errors.New("--model: must not be empty"))
	}
	if c.Slots < 1 {
		errs = append(errs, fmt.Errorf("--slots %d: must be at least 1", c.Slots))
	}
	if c.MaxWaiting < 0 {
		errs = append(errs, fmt.Errorf("--max-waiting %d: must not be negative", c.MaxWaiting))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--ttft-base", c.TTFTBase}, {"--prefill-per-token", c.PrefillPerToken}, {"--itl-base", c.ITLBase}, {"--itl-per-seq", c.ITLPerSeq}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must not be negative", d.flag, d.v))
		}
	}
	for _, n := range []struct {
		flag string
		v    int
	}{{"--default-max-tokens", c.DefaultMaxTokens}, {"--natural-output-mean", c.NaturalOutputMean}, {"--prefix-block", c.PrefixBlock}, {"--prefix-cache-blocks", c.PrefixCacheBlocks}} {
		if n.v < 1 {
			errs = append(errs, fmt.Errorf("%s %d: must be at least 1", n.flag, n.v))
		}
	}
	if c.DefaultMaxTokens > maxOutputTokens {
		errs = append(errs, fmt.Errorf("--default-max-tokens %d: must be at most %d", c.DefaultMaxTokens, maxOutputTokens))
	}
	if !(c.Jitter >= 0 && c.Jitter < 1) { // also rejects NaN
		errs = append(errs, fmt.Errorf("--jitter %v: want 0 <= jitter < 1", c.Jitter))
	}
	if !(c.ErrorRate >= 0 && c.ErrorRate <= 1) {
		errs = append(errs, fmt.Errorf("--error-rate %v: want 0..1", c.ErrorRate))
	}
	return errors.Join(errs...)
}
