// Package synth builds request bodies for the replayer: prompts of an exact
// token count under a real tokenizer (tiktoken encodings embedded in the
// binary, so it works air-gapped), with the workload's prefix structure
// reproduced block for block.
package synth

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Options configures a Builder.
type Options struct {
	// Encoding is the tiktoken encoding prompts are measured in
	// (cl100k_base, o200k_base, r50k_base, p50k_base). Default cl100k_base.
	Encoding string
	// Seed makes prompts reproducible.
	Seed int64
}

// Builder synthesises prompts and request bodies. It is safe for concurrent use.
type Builder struct {
	codec tokenizer.Codec
	words []string // space-prefixed words that are exactly one token each
	seed  uint64

	mu     sync.Mutex
	blocks map[blockKey]string // bounded cache of generated block texts
}

type blockKey struct {
	chain  uint64
	tokens int
}

// maxCachedBlocks bounds the block cache (about 512 words each).
const maxCachedBlocks = 8192

// New returns a Builder for opts.
func New(opts Options) (*Builder, error) {
	enc := opts.Encoding
	if enc == "" {
		enc = "cl100k_base"
	}
	codec, err := tokenizer.Get(tokenizer.Encoding(enc))
	if err != nil {
		return nil, fmt.Errorf("tokenizer %q: %w", enc, err)
	}
	b := &Builder{codec: codec, seed: uint64(opts.Seed), blocks: map[blockKey]string{}}
	// Keep the vocabulary words that are one token with a leading space.
	// The encodings' pre-tokenizer splits text before every " word", so a
	// prompt of n such words is exactly n tokens, however they are joined.
	for _, w := range vocabulary {
		if n, err := codec.Count(" " + w); err == nil && n == 1 {
			b.words = append(b.words, " "+w)
		}
	}
	if len(b.words) < 64 {
		return nil, fmt.Errorf("tokenizer %q: only %d single-token words in the vocabulary", enc, len(b.words))
	}
	return b, nil
}

// CountTokens returns the token count of s under the Builder's encoding.
func (b *Builder) CountTokens(s string) int {
	n, _ := b.codec.Count(s)
	return n
}

// Prompt returns the synthesised prompt for req: exactly req.PromptTokens
// tokens. With HashIDs, block i (BlockTokens tokens) depends only on the ids
// up to i, so requests sharing k leading ids share exactly k blocks of text;
// without, the prompt is unique to the request's index.
func (b *Builder) Prompt(req *workload.Request) (string, error) {
	n := req.PromptTokens
	if n < 0 {
		return "", fmt.Errorf("request %d: negative prompt length %d", req.Index, n)
	}
	if n == 0 {
		n = 1 // an empty prompt is rejected by most servers
	}
	block := req.BlockTokens
	if block <= 0 {
		block = 512
	}
	var sb strings.Builder
	sb.Grow(n * 8)
	chain := b.seed ^ 0x9e3779b97f4a7c15
	if len(req.HashIDs) == 0 {
		chain = mix(chain, uint64(req.Index)+1<<40) // unique per request
	}
	for i, left := 0, n; left > 0; i++ {
		if i < len(req.HashIDs) {
			chain = mix(chain, uint64(req.HashIDs[i]))
		} else {
			chain = mix(chain, uint64(i)|1<<32)
		}
		size := min(block, left)
		sb.WriteString(b.block(chain, size))
		left -= size
	}
	return sb.String(), nil
}

func mix(h, v uint64) uint64 {
	f := fnv.New64a()
	var buf [16]byte
	for i := 0; i < 8; i++ {
		buf[i] = byte(h >> (8 * i))
		buf[8+i] = byte(v >> (8 * i))
	}
	_, _ = f.Write(buf[:])
	return f.Sum64()
}

// block returns the text of `tokens` words determined by chain, cached.
func (b *Builder) block(chain uint64, tokens int) string {
	key := blockKey{chain, tokens}
	b.mu.Lock()
	s, ok := b.blocks[key]
	b.mu.Unlock()
	if ok {
		return s
	}
	rng := rand.New(rand.NewPCG(chain, uint64(tokens)))
	var sb strings.Builder
	sb.Grow(tokens * 8)
	for i := 0; i < tokens; i++ {
		sb.WriteString(b.words[rng.IntN(len(b.words))])
	}
	s = sb.String()
	b.mu.Lock()
	if len(b.blocks) >= maxCachedBlocks {
		clear(b.blocks) // bounded: start over rather than grow
	}
	b.blocks[key] = s
	b.mu.Unlock()
	return s
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type body struct {
	Model         string          `json:"model"`
	Messages      json.RawMessage `json:"messages,omitempty"`
	Prompt        *string         `json:"prompt,omitempty"`
	MaxTokens     int             `json:"max_tokens,omitempty"`
	IgnoreEOS     bool            `json:"ignore_eos,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
	StreamOptions *streamOptions  `json:"stream_options,omitempty"`
}

// Body returns the JSON body for req: a chat or completions request with
// the synthesised (or recorded) prompt, max_tokens = OutputTokens with
// ignore_eos so the server produces exactly that many tokens, and
// stream_options.include_usage on streams so token counts come from the
// server. model overrides req.Model when non-empty.
func (b *Builder) Body(req *workload.Request, model string) ([]byte, error) {
	if model == "" {
		model = req.Model
	}
	if model == "" {
		model = "default"
	}
	out := body{Model: model, Stream: req.Stream}
	if req.OutputTokens > 0 {
		out.MaxTokens, out.IgnoreEOS = req.OutputTokens, true
	}
	if req.Stream {
		out.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	prompt := req.Prompt
	if prompt == "" && len(req.Messages) == 0 {
		var err error
		if prompt, err = b.Prompt(req); err != nil {
			return nil, err
		}
	}
	switch req.Endpoint {
	case openai.Completions:
		if prompt == "" {
			return nil, fmt.Errorf("request %d: a completions request needs a prompt, the workload has chat messages", req.Index)
		}
		out.Prompt = &prompt
	default:
		if len(req.Messages) > 0 {
			out.Messages = req.Messages
		} else {
			msgs, err := json.Marshal([]chatMessage{{Role: "user", Content: prompt}})
			if err != nil {
				return nil, err
			}
			out.Messages = msgs
		}
	}
	return json.Marshal(out)
}
