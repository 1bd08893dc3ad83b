package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

type hfModel struct {
	Type                    string          `json:"type"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	ByteFallback            bool            `json:"byte_fallback"`
	UnkToken                *string         `json:"unk_token"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
}

// bpe is a byte-pair-encoding model: merges applied lowest rank first.
type bpe struct {
	vocab        map[string]int
	merges       map[[2]int]merge
	ignoreMerges bool
	byteFallback bool
	unk          int // -1: none
	fuseUnk      bool
	byteIDs      [256]int // <0xXX> tokens, -1 when absent
}

type merge struct{ rank, id int }

func newBPE(m *hfModel) (*bpe, error) {
	if m.Type != "BPE" && !(m.Type == "" && m.Vocab != nil && m.Merges != nil) {
		return nil, fmt.Errorf("type %q: %w (only BPE models)", m.Type, errUnsupported)
	}
	if (m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "") || (m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "") {
		return nil, fmt.Errorf("continuing_subword_prefix/end_of_word_suffix: %w", errUnsupported)
	}
	if len(m.Vocab) == 0 {
		return nil, fmt.Errorf("empty vocab")
	}
	pairs, err := parseMerges(m.Merges)
	if err != nil {
		return nil, err
	}
	return buildBPE(m.Vocab, pairs, bpeOptions{ignoreMerges: m.IgnoreMerges, byteFallback: m.ByteFallback, unkToken: m.UnkToken, fuseUnk: m.FuseUnk})
}

// bpeOptions are a BPE model's settings besides its vocabulary and merges.
type bpeOptions struct {
	ignoreMerges, byteFallback, fuseUnk bool
	unkToken                            *string
}

// buildBPE makes a BPE model from a vocabulary and merges in rank order
// (a tokenizer.json's or a GGUF file's).
func buildBPE(vocab map[string]int, pairs [][2]string, o bpeOptions) (*bpe, error) {
	b := &bpe{vocab: vocab, ignoreMerges: o.ignoreMerges, byteFallback: o.byteFallback, unk: -1, fuseUnk: o.fuseUnk}
	if o.unkToken != nil {
		if id, ok := vocab[*o.unkToken]; ok {
			b.unk = id
		}
	}
	for i := range b.byteIDs {
		b.byteIDs[i] = -1
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", i)]; ok {
			b.byteIDs[i] = id
		}
	}
	b.merges = make(map[[2]int]merge, len(pairs))
	for rank, p := range pairs {
		a, okA := vocab[p[0]]
		c, okC := vocab[p[1]]
		id, okID := vocab[p[0]+p[1]]
		if !okA || !okC || !okID {
			return nil, fmt.Errorf("merges[%d] %q %q: token not in vocab", rank, p[0], p[1])
		}
		if _, dup := b.merges[[2]int{a, c}]; !dup {
			b.merges[[2]int{a, c}] = merge{rank: rank, id: id}
		}
	}
	return b, nil
}

// parseMerges reads merges written as "a b" strings (older files) or as
// ["a", "b"] pairs (tokenizers ≥ 0.20).
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, len(strs))
		for i, s := range strs {
			a, b, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("merges[%d] %q: want two tokens separated by a space", i, s)
			}
			out[i] = [2]string{a, b}
		}
		return out, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("merges: want strings or pairs of strings: %w", err)
	}
	return pairs, nil
}

// encode returns the ids of one pre-token.
func (b *bpe) encode(word string) []int {
	if b.ignoreMerges {
		if id, ok := b.vocab[word]; ok {
			return []int{id}
		}
	}
	syms := make([]int, 0, utf8.RuneCountInString(word))
	for i, r := range word {
		w := utf8.RuneLen(r)
		if r == utf8.RuneError {
			w = 1
		}
		ch := word[i : i+w]
		if id, ok := b.vocab[ch]; ok {
			syms = append(syms, id)
			continue
		}
		if b.byteFallback {
			ok := true
			for j := 0; j < len(ch); j++ {
				if b.byteIDs[ch[j]] < 0 {
					ok = false
				}
			}
			if ok {
				for j := 0; j < len(ch); j++ {
					syms = append(syms, b.byteIDs[ch[j]])
				}
				continue
			}
		}
		if b.unk >= 0 {
			if b.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == b.unk {
				continue
			}
			syms = append(syms, b.unk)
		}
	}
	if len(syms) > 48 {
		return b.mergeLong(syms)
	}
	return b.mergeShort(syms)
}

// mergeShort merges the lowest-ranked adjacent pair, leftmost first, until
// none is in the merge table: quadratic, and fastest for short words.
func (b *bpe) mergeShort(syms []int) []int {
	for len(syms) > 1 {
		best, at := merge{rank: -1}, -1
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := b.merges[[2]int{syms[i], syms[i+1]}]; ok && (at < 0 || m.rank < best.rank) {
				best, at = m, i
			}
		}
		if at < 0 {
			break
		}
		syms[at] = best.id
		syms = append(syms[:at+1], syms[at+2:]...)
	}
	return syms
}

// mergeLong is encode's merge loop for long words (a metaspace tokenizer
// sees a whole prompt as one): a heap of candidate merges over a linked
// list of symbols, O(n log n) instead of O(n²), with the same order —
// lowest rank first, leftmost among equals.
func (b *bpe) mergeLong(syms []int) []int {
	n := len(syms)
	prev, next := make([]int, n), make([]int, n)
	for i := range syms {
		prev[i], next[i] = i-1, i+1
	}
	next[n-1] = -1
	h := &mergeHeap{}
	push := func(i int) {
		if i < 0 || next[i] < 0 {
			return
		}
		j := next[i]
		if m, ok := b.merges[[2]int{syms[i], syms[j]}]; ok {
			h.push(candidate{rank: m.rank, pos: i, left: syms[i], right: syms[j], id: m.id})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	for h.len() > 0 {
		c := h.pop()
		j := next[c.pos]
		if syms[c.pos] != c.left || j < 0 || syms[j] != c.right {
			continue // stale: one side has merged since
		}
		syms[c.pos] = c.id
		syms[j] = -1
		next[c.pos] = next[j]
		if k := next[j]; k >= 0 {
			prev[k] = c.pos
		}
		push(prev[c.pos])
		push(c.pos)
	}
	out := syms[:0]
	for i := 0; i >= 0; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

type candidate struct{ rank, pos, left, right, id int }

// mergeHeap is a binary min-heap of candidates by (rank, pos).
type mergeHeap struct{ c []candidate }

func (h *mergeHeap) len() int { return len(h.c) }

func (h *mergeHeap) less(a, b int) bool {
	if h.c[a].rank != h.c[b].rank {
		return h.c[a].rank < h.c[b].rank
	}
	return h.c[a].pos < h.c[b].pos
}

func (h *mergeHeap) push(c candidate) {
	h.c = append(h.c, c)
	for i := len(h.c) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.c[i], h.c[p] = h.c[p], h.c[i]
		i = p
	}
}

func (h *mergeHeap) pop() candidate {
	top := h.c[0]
	last := len(h.c) - 1
	h.c[0] = h.c[last]
	h.c = h.c[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < last && h.less(l, m) {
			m = l
		}
		if r < last && h.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		h.c[i], h.c[m] = h.c[m], h.c[i]
		i = m
	}
	return top
}
