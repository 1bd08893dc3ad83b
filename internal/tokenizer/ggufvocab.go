package tokenizer

import (
	"container/heap"
	"fmt"
	"slices"
	"strings"

	"github.com/dlclark/regexp2/v2"
)

// GGUF is the tokenizer a llama.cpp model file embeds (the tokenizer.ggml.*
// keys), applied the way llama.cpp's llama_tokenize applies it to a prompt
// with add_special=false and parse_special=true — what llama-server does to
// a completion prompt, less the BOS it adds — so counts match the engine
// that serves the file token for token. Two vocabulary kinds are read:
//   - "llama": SentencePiece-style (Llama 2, Mistral, Phi-3): a space
//     prefix, spaces as ▁, pieces merged highest score first, and byte
//     fallback (<0xXX>) for what no piece covers;
//   - "gpt2": byte-level BPE (Llama 3, Qwen 2, GPT-2) with the
//     pre-tokenizer tokenizer.ggml.pre names, merges lowest rank first.
//
// Other kinds (WordPiece, Unigram, RWKV) and pre-tokenizers are refused by
// name. Control, user-defined and unknown tokens written in the text are
// matched as themselves before anything else, longest first. It is safe
// for concurrent use.
type GGUF struct {
	name   string
	model  string // tokenizer.ggml.model
	pre    string // tokenizer.ggml.pre
	tokens []string
	ids    map[string]int // text → id; a repeated text maps to its last id, as in llama.cpp
	// special lists the ids matched in raw text, longest text first.
	special []int
	// control marks control and unknown tokens, which only parse_special
	// matches (user-defined ones are always matched).
	control []bool
	// rstrip marks special tokens that swallow the whitespace after them.
	rstrip []bool

	// SentencePiece ("llama").
	scores         []float64
	addSpacePrefix bool

	// Byte-level BPE ("gpt2"): the Hugging Face machinery, built from the
	// file's vocabulary, merges and pre-tokenizer regex.
	bpe *HF
}

// GGUF token types (llama.cpp's llama_token_type).
const (
	ggufTokNormal      = 1
	ggufTokUnknown     = 2
	ggufTokControl     = 3
	ggufTokUserDefined = 4
	ggufTokUnused      = 5
	ggufTokByte        = 6
)

// eogTexts are the texts llama.cpp always treats as end-of-generation
// control tokens, whatever type the file gives them (llama-vocab.cpp marks
// a "control-looking token" so and warns); a file converted correctly has
// them typed as control already.
var eogTexts = []string{
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
	"<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
	"<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
	"<｜end▁of▁sentence｜>", "[e~[",
}

// bpePre maps tokenizer.ggml.pre names to the pre-tokenizer regex of the
// tokenizer.json the file was converted from, and whether merges are
// skipped for words that are tokens whole (ignore_merges, Llama 3).
var bpePre = map[string]struct {
	regex        string
	ignoreMerges bool
}{
	"llama3":           {llama3Pattern, true},
	"llama-v3":         {llama3Pattern, true},
	"llama-bpe":        {llama3Pattern, true},
	"qwen2":            {qwen2Pattern, false},
	"deepseek-r1-qwen": {qwen2Pattern, false},
	"gpt-2":            {gpt2Pattern, false},
	"phi-2":            {gpt2Pattern, false},
}

const (
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// LoadGGUF reads the tokenizer embedded in the GGUF model file at path.
// Only the metadata is read, never the weights.
func LoadGGUF(path string) (*GGUF, error) {
	m, err := readGGUFFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t, err := newGGUF(m)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	t.name = "gguf:" + path
	return t, nil
}

func newGGUF(m *ggufMeta) (*GGUF, error) {
	t := &GGUF{name: "gguf"}
	var ok bool
	var err error
	if t.model, ok, err = m.str("tokenizer.ggml.model"); err != nil {
		return nil, err
	} else if !ok {
		return nil, fmt.Errorf("no tokenizer.ggml.model: the file embeds no tokenizer")
	}
	if t.pre, _, err = m.str("tokenizer.ggml.pre"); err != nil {
		return nil, err
	}
	if t.tokens, ok, err = m.strings("tokenizer.ggml.tokens"); err != nil {
		return nil, err
	} else if !ok || len(t.tokens) == 0 {
		return nil, fmt.Errorf("tokenizer.ggml.tokens: missing or empty")
	}
	n := len(t.tokens)
	types, ok, err := m.ints("tokenizer.ggml.token_type")
	if err != nil {
		return nil, err
	}
	if ok && len(types) < n {
		return nil, fmt.Errorf("tokenizer.ggml.token_type: %d entries for %d tokens", len(types), n)
	}
	t.ids = make(map[string]int, n)
	for i, s := range t.tokens {
		if s == "" {
			// llama.cpp renames empty tokens so, and so can never match them.
			s = fmt.Sprintf("[EMPTY_%d]", i)
			t.tokens[i] = s
		}
		t.ids[s] = i
	}
	t.markSpecial(types)
	switch t.model {
	case "llama":
		err = t.initSPM(m)
	case "gpt2":
		err = t.initBPE(m)
	default:
		err = fmt.Errorf("tokenizer.ggml.model %q: %w (llama and gpt2 vocabularies are read)", t.model, errUnsupported)
	}
	if err != nil {
		return nil, err
	}
	t.phi3Strip(m)
	return t, nil
}

// markSpecial finds the tokens matched in raw text, as llama.cpp's vocab
// loader does: control, user-defined and unknown types, plus the
// end-of-generation texts, longest first (ties by id, for a stable order).
func (t *GGUF) markSpecial(types []int64) {
	n := len(t.tokens)
	t.control = make([]bool, n)
	t.rstrip = make([]bool, n)
	isSpecial := make([]bool, n)
	for i := range n {
		if types == nil {
			break
		}
		switch types[i] {
		case ggufTokControl, ggufTokUnknown:
			t.control[i], isSpecial[i] = true, true
		case ggufTokUserDefined:
			isSpecial[i] = true
		}
	}
	for _, s := range eogTexts {
		if id, ok := t.ids[s]; ok && !t.control[id] {
			t.control[id], isSpecial[id] = true, true
		}
	}
	for i := range n {
		if isSpecial[i] {
			t.special = append(t.special, i)
		}
	}
	slices.SortStableFunc(t.special, func(a, b int) int { return len(t.tokens[b]) - len(t.tokens[a]) })
}

// phi3Strip applies llama.cpp's rule for models named Phi-3: special tokens
// swallow the whitespace after them, except <unk>, <s> and <|endoftext|>.
func (t *GGUF) phi3Strip(m *ggufMeta) {
	name, _, _ := m.str("general.name")
	name = strings.ToLower(name)
	if !strings.Contains(name, "phi-3") && !strings.Contains(name, "phi3") {
		return
	}
	for _, id := range t.special {
		t.rstrip[id] = true
	}
	if id, ok := t.ids["</s>"]; ok {
		t.rstrip[id] = true
	}
	for _, s := range []string{"<unk>", "<s>", "<|endoftext|>"} {
		if id, ok := t.ids[s]; ok {
			t.rstrip[id] = false
		}
	}
}

func (t *GGUF) initSPM(m *ggufMeta) error {
	scores, ok, err := m.floats("tokenizer.ggml.scores")
	if err != nil {
		return err
	}
	if ok && len(scores) < len(t.tokens) {
		return fmt.Errorf("tokenizer.ggml.scores: %d entries for %d tokens", len(scores), len(t.tokens))
	}
	if !ok {
		scores = make([]float64, len(t.tokens))
	}
	t.scores = scores
	t.addSpacePrefix = true // llama.cpp's default for this kind
	if v, ok, err := m.boolean("tokenizer.ggml.add_space_prefix"); err != nil {
		return err
	} else if ok {
		t.addSpacePrefix = v
	}
	return nil
}

func (t *GGUF) initBPE(m *ggufMeta) error {
	p, ok := bpePre[t.pre]
	if !ok {
		known := make([]string, 0, len(bpePre))
		for k := range bpePre {
			known = append(known, k)
		}
		slices.Sort(known)
		return fmt.Errorf("tokenizer.ggml.pre %q: %w (pre-tokenizers read: %s)", t.pre, errUnsupported, strings.Join(known, ", "))
	}
	merges, ok, err := m.strings("tokenizer.ggml.merges")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("no tokenizer.ggml.merges in a gpt2 vocabulary")
	}
	pairs := make([][2]string, len(merges))
	for i, s := range merges {
		// llama.cpp splits at the first space after the first byte, so a
		// merge may start with a space character.
		j := strings.IndexByte(s[min(1, len(s)):], ' ')
		if j < 0 {
			return fmt.Errorf("tokenizer.ggml.merges[%d] %q: want two tokens separated by a space", i, s)
		}
		j += min(1, len(s))
		pairs[i] = [2]string{s[:j], s[j+1:]}
	}
	b, err := buildBPE(t.ids, pairs, bpeOptions{ignoreMerges: p.ignoreMerges})
	if err != nil {
		return fmt.Errorf("tokenizer.ggml.merges: %w", err)
	}
	re, err := regexp2.Compile(p.regex, regexp2.None)
	if err != nil {
		return fmt.Errorf("pre-tokenizer %s: %w", t.pre, err)
	}
	t.bpe = &HF{name: "gguf", bpe: b, pre: []preTokenizer{&splitter{re: re}, &byteLevel{}}, counts: map[string]int{}, ids: map[string]int{}}
	return nil
}

// Name implements Tokenizer.
func (t *GGUF) Name() string { return t.name }

// Kind is the vocabulary kind, tokenizer.ggml.model ("llama" or "gpt2"),
// with its pre-tokenizer when it has one.
func (t *GGUF) Kind() string {
	if t.pre != "" && t.model == "gpt2" {
		return t.model + "/" + t.pre
	}
	return t.model
}

// Count implements Tokenizer.
func (t *GGUF) Count(text string) (int, error) {
	ids, err := t.encode(text, true)
	return len(ids), err
}

// Encode returns the token ids of text as llama.cpp's llama_tokenize gives
// them with add_special=false, parse_special=true.
func (t *GGUF) Encode(text string) ([]int, error) { return t.encode(text, true) }

// fragment is a run of raw text or a special token matched in it.
type fragment struct {
	text  string
	token int // -1 for text
}

// partition splits text around the special tokens written in it, longest
// token first, as llama.cpp's tokenizer_st_partition does; parseSpecial
// false leaves control and unknown tokens as text.
func (t *GGUF) partition(text string, parseSpecial bool) []fragment {
	if text == "" {
		return nil // no fragment, so no space prefix either
	}
	frags := []fragment{{text: text, token: -1}}
	for _, id := range t.special {
		if !parseSpecial && t.control[id] {
			continue
		}
		tok := t.tokens[id]
		var out []fragment
		for _, f := range frags {
			if f.token >= 0 || !strings.Contains(f.text, tok) {
				out = append(out, f)
				continue
			}
			rest := f.text
			for {
				i := strings.Index(rest, tok)
				if i < 0 {
					if rest != "" {
						out = append(out, fragment{text: rest, token: -1})
					}
					break
				}
				if i > 0 {
					out = append(out, fragment{text: rest[:i], token: -1})
				}
				out = append(out, fragment{token: id})
				rest = rest[i+len(tok):]
				if t.rstrip[id] {
					rest = strings.TrimLeft(rest, " \t\n\v\f\r")
				}
			}
		}
		frags = out
	}
	return frags
}

func (t *GGUF) encode(text string, parseSpecial bool) ([]int, error) {
	var out []int
	prevSpecial := true // a space prefix goes before the first text
	for _, f := range t.partition(text, parseSpecial) {
		if f.token >= 0 {
			out = append(out, f.token)
			prevSpecial = true
			continue
		}
		switch t.model {
		case "llama":
			s := f.text
			if t.addSpacePrefix && prevSpecial {
				s = " " + s
			}
			var err error
			if out, err = t.spm(strings.ReplaceAll(s, " ", "▁"), out); err != nil {
				return nil, err
			}
		default:
			pieces, err := t.bpe.preTokenize(f.text, false)
			if err != nil {
				return nil, err
			}
			for _, p := range pieces {
				out = append(out, t.bpe.bpe.encode(p)...)
			}
		}
		prevSpecial = false
	}
	return out, nil
}

// spmSymbol is a run of text in the SentencePiece merge: [start, start+n)
// of the input, linked to its neighbours.
type spmSymbol struct {
	start, n   int
	prev, next int
}

// spmBigram is a candidate merge of two adjacent symbols into a token.
type spmBigram struct {
	left, right int
	score       float64
	size        int
}

type spmQueue []spmBigram

func (q spmQueue) Len() int { return len(q) }
func (q spmQueue) Less(i, j int) bool {
	// Highest score first; among equals, the leftmost.
	if q[i].score != q[j].score {
		return q[i].score > q[j].score
	}
	return q[i].left < q[j].left
}
func (q spmQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *spmQueue) Push(x any)   { *q = append(*q, x.(spmBigram)) }
func (q *spmQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// utf8Len is the length of the UTF-8 sequence a lead byte starts, by its
// high nibble, as llama.cpp reads it (a stray continuation byte is one).
func utf8Len(b byte) int {
	return [16]int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4}[b>>4]
}

// spm appends the SentencePiece tokens of text (spaces already ▁): start
// from characters, repeatedly merge the adjacent pair whose concatenation
// is the highest-scoring token, then emit each symbol as its token — or,
// when it is no token, as the pieces it was merged from, down to bytes.
func (t *GGUF) spm(text string, out []int) ([]int, error) {
	if text == "" {
		return out, nil
	}
	var syms []spmSymbol
	for off := 0; off < len(text); {
		n := min(utf8Len(text[off]), len(text)-off)
		syms = append(syms, spmSymbol{start: off, n: n, prev: len(syms) - 1, next: len(syms) + 1})
		off += n
	}
	syms[len(syms)-1].next = -1
	q := &spmQueue{}
	revMerge := map[string][2]int{}
	tryAdd := func(left, right int) {
		if left < 0 || right < 0 {
			return
		}
		s := text[syms[left].start : syms[right].start+syms[right].n]
		id, ok := t.ids[s]
		if !ok {
			return
		}
		heap.Push(q, spmBigram{left: left, right: right, score: t.scores[id], size: len(s)})
		revMerge[s] = [2]int{left, right}
	}
	for i := 1; i < len(syms); i++ {
		tryAdd(i-1, i)
	}
	for q.Len() > 0 {
		b := heap.Pop(q).(spmBigram)
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue // stale: one side merged since
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		tryAdd(l.prev, b.left)
		tryAdd(b.left, l.next)
	}
	var err error
	var resegment func(i int)
	resegment = func(i int) {
		s := text[syms[i].start : syms[i].start+syms[i].n]
		if id, ok := t.ids[s]; ok {
			out = append(out, id)
			return
		}
		if p, ok := revMerge[s]; ok {
			resegment(p[0])
			resegment(p[1])
			return
		}
		for j := 0; j < len(s); j++ {
			id, ok := t.ids[fmt.Sprintf("<0x%02X>", s[j])]
			if !ok {
				id, ok = t.ids[s[j:j+1]]
			}
			if !ok {
				if err == nil {
					err = fmt.Errorf("byte 0x%02X: the vocabulary has no <0x%02X> token to fall back on", s[j], s[j])
				}
				return
			}
			out = append(out, id)
		}
	}
	for i := 0; i >= 0; i = syms[i].next {
		resegment(i)
	}
	return out, err
}
