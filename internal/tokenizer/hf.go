package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// HF is a Hugging Face tokenizer.json: normalizer, pre-tokenizer and a BPE
// model, applied as the tokenizers library applies them with
// add_special_tokens=False. It supports what LLM tokenizers use — byte-level
// BPE (GPT-2, Llama 3, Qwen, DeepSeek) and metaspace BPE with byte fallback
// (Llama 2, Mistral, Gemma) — and refuses other models and components by
// name rather than count wrongly. It is safe for concurrent use.
type HF struct {
	name   string
	norm   normalizer     // nil: none
	pre    []preTokenizer // applied in order
	bpe    *bpe
	added  *regexp.Regexp // matches added tokens; nil when none
	ids    map[string]int // added token → id
	mu     sync.Mutex
	counts map[string]int // pre-token → token count, bounded by maxCached
}

// maxCached bounds HF's per-word cache.
const maxCached = 1 << 17

// LoadFile reads a tokenizer.json.
func LoadFile(path string) (*HF, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	t, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t.name = "hf:" + path
	return t, nil
}

type hfFile struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
	} `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        json.RawMessage `json:"model"`
}

// Load reads a tokenizer.json from r.
func Load(r io.Reader) (*HF, error) {
	var f hfFile
	if err := json.NewDecoder(r).Decode(&f); err != nil {
		return nil, fmt.Errorf("parsing tokenizer.json: %w", err)
	}
	t := &HF{name: "hf", counts: map[string]int{}, ids: map[string]int{}}
	var err error
	if t.norm, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %w", err)
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %w", err)
	}
	var m hfModel
	if err := json.Unmarshal(f.Model, &struct {
		Type *string `json:"type"`
	}{&m.Type}); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if m.Type != "BPE" && m.Type != "" {
		return nil, fmt.Errorf("model: type %q: %w (only BPE models)", m.Type, errUnsupported)
	}
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if t.bpe, err = newBPE(&m); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if len(f.AddedTokens) > 0 {
		contents := make([]string, 0, len(f.AddedTokens))
		for _, a := range f.AddedTokens {
			if a.Content != "" {
				contents = append(contents, a.Content)
				t.ids[a.Content] = a.ID
			}
		}
		// Longest first, so that the leftmost match is also the longest.
		sort.Slice(contents, func(i, j int) bool { return len(contents[i]) > len(contents[j]) })
		quoted := make([]string, len(contents))
		for i, c := range contents {
			quoted[i] = regexp.QuoteMeta(c)
		}
		if len(quoted) > 0 {
			t.added = regexp.MustCompile(strings.Join(quoted, "|"))
		}
	}
	return t, nil
}

// Name implements Tokenizer.
func (t *HF) Name() string { return t.name }

// Count implements Tokenizer.
func (t *HF) Count(text string) (int, error) {
	if t.added == nil {
		return t.countSection(text, true)
	}
	n, last := 0, 0
	for _, loc := range t.added.FindAllStringIndex(text, -1) {
		c, err := t.countSection(text[last:loc[0]], last == 0)
		if err != nil {
			return 0, err
		}
		n += c + 1
		last = loc[1]
	}
	c, err := t.countSection(text[last:], last == 0)
	return n + c, err
}

// countSection counts a run of text holding no added token; first says it
// starts the input (metaspace's prepend_scheme "first").
func (t *HF) countSection(s string, first bool) (int, error) {
	pieces, err := t.preTokenize(s, first)
	n := 0
	for _, p := range pieces {
		n += t.countWord(p)
	}
	return n, err
}

// preTokenize normalizes a run of text holding no added token and splits it
// into the words BPE sees.
func (t *HF) preTokenize(s string, first bool) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	if t.norm != nil {
		s = t.norm.normalize(s)
	}
	pieces := []string{s}
	var err error
	for _, p := range t.pre {
		if pieces, err = p.split(pieces, first); err != nil {
			return nil, err
		}
	}
	return pieces, nil
}

func (t *HF) countWord(w string) int {
	if w == "" {
		return 0
	}
	t.mu.Lock()
	n, ok := t.counts[w]
	t.mu.Unlock()
	if ok {
		return n
	}
	n = len(t.bpe.encode(w))
	t.mu.Lock()
	if len(t.counts) >= maxCached {
		clear(t.counts)
	}
	t.counts[w] = n
	t.mu.Unlock()
	return n
}

// Encode returns the token ids of text (without special tokens a
// post-processor would add). Count is cheaper when only the length matters.
func (t *HF) Encode(text string) ([]int, error) {
	var out []int
	sections, specials := []string{text}, []int{}
	if t.added != nil {
		sections, specials = nil, nil
		last := 0
		for _, loc := range t.added.FindAllStringIndex(text, -1) {
			sections = append(sections, text[last:loc[0]])
			specials = append(specials, t.ids[text[loc[0]:loc[1]]])
			last = loc[1]
		}
		sections = append(sections, text[last:])
	}
	for i, s := range sections {
		pieces, err := t.preTokenize(s, i == 0)
		if err != nil {
			return nil, err
		}
		for _, p := range pieces {
			out = append(out, t.bpe.encode(p)...)
		}
		if i < len(specials) {
			out = append(out, specials[i])
		}
	}
	return out, nil
}

var errUnsupported = errors.New("unsupported")
