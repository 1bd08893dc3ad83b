// Package synth builds request bodies for the replayer: prompts of an exact
// token count under a real tokenizer (tiktoken encodings embedded in the
// binary, so it works air-gapped), with the workload's prefix structure
// reproduced block for block.
package synth

import (
	"fmt"
	"hash/fnv"
	"io"
	"sync"

	"github.com/reprise-llm/reprise/internal/tokenizer"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Options configures a Builder.
type Options struct {
	// Tokenizer measures prompts. Nil means the tiktoken Encoding.
	Tokenizer tokenizer.Tokenizer
	// Encoding is the tiktoken encoding prompts are measured in when
	// Tokenizer is nil (cl100k_base, o200k_base, r50k_base, p50k_base).
	// Default cl100k_base.
	Encoding string
	// Seed makes prompts reproducible: equal seeds give byte-identical
	// prompts for equal requests.
	Seed int64
	// OmitIgnoreEOS leaves "ignore_eos" out of bodies: max_tokens alone is
	// sent, for strict OpenAI-compatible APIs that reject unknown fields.
	// The server may then stop before max_tokens (the shortfall shows in
	// the results' output_token_mismatch).
	OmitIgnoreEOS bool
	// Namespace names a content space: the same workload under another
	// namespace gets other prompt text, word for word, with the same token
	// lengths and the same prefix structure (requests that share blocks
	// share them in every namespace, and no block text is shared across
	// namespaces). The benchmarks of a sweep, a capacity search or repeated
	// runs against one server each take one of their own, so that a later
	// benchmark does not find the earlier ones' prompts in the server's
	// prefix cache (issue 18); targets compared with each other take the
	// same one, so they are sent identical prompts. "" is the content
	// Reprise has always synthesised (byte for byte).
	Namespace string
}

// MaxPromptTokens bounds a synthesised prompt (about 25 MB of text): a
// longer one is a corrupt trace, not a context window.
const MaxPromptTokens = 4 << 20

// DefaultBlockTokens is the block size used for requests with hash ids but
// no BlockTokens (the Mooncake convention).
const DefaultBlockTokens = 512

// Builder synthesises prompts and request bodies. It is safe for concurrent use.
//
// A prompt is a run of words, each a single token under the tokenizer with
// its leading space (" model", " river"). Byte-level pre-tokenizers (tiktoken,
// Llama 3, Qwen) split text before every space-prefixed word and BPE never
// merges across that split, so a run of n such words is exactly n tokens
// however the runs are cut and joined: blocks can be cached and concatenated
// without ever tokenizing a prompt. Metaspace tokenizers (Llama 2, Mistral)
// add one token in front of the whole text; Offset accounts for it. New
// verifies the property on a long random run before it accepts a tokenizer.
type Builder struct {
	tok    tokenizer.Tokenizer
	words  []string // " word", one token each, ASCII letters only
	offset int      // tokens a prompt has beyond its words (metaspace's leading ▁)
	avgLen float64  // mean bytes per word, to size buffers
	// base starts every prompt's chain: unnamed (from the seed alone)
	// with the namespace folded in.
	base, unnamed uint64
	namespace     string
	blocks        *blockCache
	// omitEOS is Options.OmitIgnoreEOS.
	omitEOS bool
	// history holds the conversations of requests with History set.
	history histories
	// graphs holds the target's replies to agentic calls that later calls
	// quote.
	graphs graphReplies
}

// maxCachedBlockTokens is the largest block size that is cached.
const maxCachedBlockTokens = 16384

// cacheBytes bounds the block cache: about 9,000 blocks of 512 tokens.
const cacheBytes = 32 << 20

// New returns a Builder for opts.
func New(opts Options) (*Builder, error) {
	tok := opts.Tokenizer
	if tok == nil {
		enc := opts.Encoding
		if enc == "" {
			enc = "cl100k_base"
		}
		var err error
		if tok, err = tokenizer.Tiktoken(enc); err != nil {
			return nil, err
		}
	}
	b := &Builder{tok: tok, blocks: newBlockCache(cacheBytes), omitEOS: opts.OmitIgnoreEOS}
	b.unnamed = mix(uint64(opts.Seed), 0x243f6a8885a308d3)
	b.setNamespace(opts.Namespace)
	base, err := tok.Count(" the")
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", tok.Name(), err)
	}
	b.offset = base - 1
	if err := b.chooseWords(); err != nil {
		return nil, err
	}
	if err := b.verify(); err != nil {
		return nil, err
	}
	return b, nil
}

// setNamespace folds namespace into base. "" leaves base as it was, which
// keeps the content of the unnamed namespace what it was before there were
// namespaces. A non-empty name changes the chain every block, session
// stream and lone prompt starts from, so no block is shared across
// namespaces (beyond a 2^-64 collision) while lengths and the ids that
// decide sharing are untouched.
func (b *Builder) setNamespace(namespace string) {
	b.namespace, b.base = namespace, b.unnamed
	if namespace != "" {
		b.base = mix(b.base, stringHash("reprise namespace\x00"+namespace))
	}
}

// WithNamespace returns a Builder that synthesises the content of
// namespace (see Options.Namespace) with b's seed, tokenizer and options,
// without counting the tokenizer's vocabulary again. The two share the
// block cache (its keys hold the namespace through the chain) and nothing
// else: the new Builder's conversations (History requests, graph replies) are its own, as
// a benchmark's are. b is unchanged.
func (b *Builder) WithNamespace(namespace string) *Builder {
	nb := &Builder{tok: b.tok, words: b.words, offset: b.offset, avgLen: b.avgLen, unnamed: b.unnamed,
		blocks: b.blocks, omitEOS: b.omitEOS}
	nb.setNamespace(namespace)
	return nb
}

// Namespace is the content namespace prompts are synthesised in.
func (b *Builder) Namespace() string { return b.namespace }

// chooseWords keeps the vocabulary words that are one token with a leading
// space, and checks the split the Builder relies on: two of them are two
// tokens. A server tokenizer answers over the network, so the words are
// counted concurrently; the order kept is the vocabulary's.
func (b *Builder) chooseWords() error {
	var (
		keep = make([]bool, len(vocabulary))
		errs = make([]error, len(vocabulary))
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
	)
	for i, w := range vocabulary {
		if !plainWord(w) {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			n1, err := b.tok.Count(" " + w)
			if err != nil {
				errs[i] = err
				return
			}
			n2, err := b.tok.Count(" " + w + " " + w)
			if err != nil {
				errs[i] = err
				return
			}
			keep[i] = n1 == 1+b.offset && n2 == 2+b.offset
		}()
	}
	wg.Wait()
	total := 0
	for i, w := range vocabulary {
		if errs[i] != nil {
			return fmt.Errorf("tokenizer %s: counting %q: %w", b.tok.Name(), w, errs[i])
		}
		if keep[i] {
			b.words = append(b.words, " "+w)
			total += len(w) + 1
		}
	}
	if len(b.words) < 64 {
		return fmt.Errorf("tokenizer %s: only %d single-token words in the vocabulary; it cannot synthesise exact prompt lengths", b.tok.Name(), len(b.words))
	}
	b.avgLen = float64(total) / float64(len(b.words))
	return nil
}

// verify counts a long random run of words: it must be exactly its word
// count plus the offset, or the tokenizer merges across words and prompts
// would not have the lengths asked for.
func (b *Builder) verify() error {
	const n = 2000
	text := string(b.appendWords(nil, 0x5eed, n, n))
	got, err := b.tok.Count(text)
	if err != nil {
		return fmt.Errorf("tokenizer %s: %w", b.tok.Name(), err)
	}
	if got != n+b.offset {
		return fmt.Errorf("tokenizer %s: %d words count as %d tokens, not %d: it merges across words, so prompts cannot be synthesised to exact lengths", b.tok.Name(), n, got, n+b.offset)
	}
	return nil
}

// Tokenizer returns the tokenizer prompts are measured with.
func (b *Builder) Tokenizer() tokenizer.Tokenizer { return b.tok }

// plainWord reports whether w is lowercase ASCII letters, so prompt text
// never needs JSON escaping.
func plainWord(w string) bool {
	for i := 0; i < len(w); i++ {
		if w[i] < 'a' || w[i] > 'z' {
			return false
		}
	}
	return w != ""
}

// CountTokens returns the token count of s under the Builder's tokenizer
// (0 for text it cannot count).
func (b *Builder) CountTokens(s string) int {
	n, _ := b.tok.Count(s)
	return n
}

// Prompt returns the synthesised prompt for req: exactly req.PromptTokens
// tokens (at least 1; servers reject empty prompts). With HashIDs, block i
// (BlockTokens tokens) depends only on the ids up to and including i, so
// requests sharing k leading ids share exactly k blocks of text; the last
// block is cut to fit, and is then a prefix of the full block with the same
// ids. Without HashIDs the prompt is unique to the request's Index, except
// in a trace's session: a whole-context row (workload.ConventionWhole) and
// its session's first turn are the first PromptTokens words of one word
// stream per session, so each turn's prompt starts with the previous one,
// byte for byte, as a conversation resent in full does (issue 16).
func (b *Builder) Prompt(req *workload.Request) (string, error) {
	out, err := b.appendPrompt(make([]byte, 0, b.sizeHint(req)), req)
	return string(out), err
}

func (b *Builder) sizeHint(req *workload.Request) int {
	n := min(max(req.PromptTokens, 1), MaxPromptTokens)
	return int(float64(n)*b.avgLen*1.1) + 64
}

// appendPrompt appends the prompt text for req to dst.
func (b *Builder) appendPrompt(dst []byte, req *workload.Request) ([]byte, error) {
	n := req.PromptTokens
	if n < 0 || n > MaxPromptTokens {
		return dst, fmt.Errorf("request %d: prompt length %d: want 0 to %d tokens", req.Index, n, MaxPromptTokens)
	}
	// A metaspace tokenizer's leading token is part of the count.
	n = max(n-b.offset, 1)
	block := req.BlockTokens
	if block <= 0 {
		block = DefaultBlockTokens
	}
	chain := b.base
	if len(req.HashIDs) == 0 {
		// A prompt of its own (or its session's): generated straight
		// into dst, never cached.
		if sessionStream(req) {
			chain = mix(mix(chain, 0x5e5510), stringHash(req.Session))
		} else {
			chain = mix(chain, uint64(req.Index)|1<<62)
		}
		return b.appendWords(dst, chain, block, n), nil
	}
	for i, left := 0, n; left > 0; i++ {
		if i < len(req.HashIDs) {
			chain = mix(chain, uint64(req.HashIDs[i]))
		} else {
			// Longer than its ids (an estimated block size): the extra
			// blocks continue the same chain, so they still depend only on
			// the ids and the position.
			chain = mix(chain, uint64(i)|1<<63)
		}
		size := min(block, left)
		dst = b.appendBlock(dst, chain, block, size)
		left -= size
	}
	return dst, nil
}

// sessionStream reports whether req's prompt, having no hash ids, is cut
// from its session's word stream (see Prompt): a whole-context row, or a
// trace session's first turn, which a whole-context session's later turns
// repeat (its convention is only known from its second row). A delta
// session's later turns are new text, each a prompt of its own.
func sessionStream(req *workload.Request) bool {
	return req.Session != "" && (req.Convention == workload.ConventionWhole || req.History && req.Turn == 0)
}

// stringHash is the 64-bit FNV-1a hash of s.
func stringHash(s string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, s)
	return h.Sum64()
}

// appendBlock appends the first size words of the block chain names.
func (b *Builder) appendBlock(dst []byte, chain uint64, block, size int) []byte {
	if block > maxCachedBlockTokens {
		// Too large to cache (an odd capture block size): generate only
		// what is needed; the word stream is the same, so it is still a
		// prefix of the full block.
		return b.appendWords(dst, chain, block, size)
	}
	key := blockKey{chain: chain, tokens: block}
	if text, ok := b.blocks.get(key); ok {
		if size < block {
			text = firstWords(text, size)
		}
		return append(dst, text...)
	}
	start := len(dst)
	dst = b.appendWords(dst, chain, block, block)
	b.blocks.put(key, string(dst[start:]))
	if size < block {
		dst = dst[:start+len(firstWords(string(dst[start:]), size))]
	}
	return dst
}

// appendWords appends the first n words of the word sequence seeded by
// (chain, block). The same seed gives the same sequence, so fewer words are
// a prefix of more.
func (b *Builder) appendWords(dst []byte, chain uint64, block, n int) []byte {
	// splitmix64 stream; the top 32 bits scaled to the vocabulary (a bias
	// below 1e-6 is irrelevant to filler text).
	state, nw := mix(chain, uint64(block)), uint64(len(b.words))
	for range n {
		state += 0x9e3779b97f4a7c15
		r := mix(state, 0) >> 32
		dst = append(dst, b.words[r*nw>>32]...)
	}
	return dst
}

// firstWords returns the first n space-prefixed words of text.
func firstWords(text string, n int) string {
	seen := 0
	for i := 0; i < len(text); i++ {
		if text[i] == ' ' {
			if seen == n {
				return text[:i]
			}
			seen++
		}
	}
	return text
}

// mix folds v into the chain h (splitmix64 finaliser over both).
func mix(h, v uint64) uint64 {
	x := h ^ (v + 0x9e3779b97f4a7c15 + h<<6 + h>>2)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
