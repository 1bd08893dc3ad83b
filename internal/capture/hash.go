package capture

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// DefaultBlockChars is the default prefix-block size in characters (runes):
// about 64 tokens at OpenAI's rule of thumb of ~4 characters per token.
// Prefix caches work at finer grain still (vLLM 16-token blocks, SGLang a
// radix tree), and the shared system prompts of chat applications are
// mostly shorter than Mooncake's 512-token blocks: at 2048 characters a
// 700-character system prompt shared by every request gets no shared id
// (issue 18). At 256 characters its first 512 characters are shared ids;
// the cost is about 5 bytes of JSON per id, +11% compressed record size
// on chat traffic (measured: docs/capture.md, "Prefix hashing").
const DefaultBlockChars = 256

// CoarseBlockChars is the block size of Mooncake-like ids, about 512 tokens
// (the Mooncake traces' block): the block captures used before issue 18,
// and the size Coarsener derives from finer ids for export and inspection.
// A capture's block must divide it for that (CheckBlockChars).
const CoarseBlockChars = 2048

// MinBlockChars is the smallest block CheckBlockChars accepts: 16
// characters, about 4 tokens, finer than vLLM's 16-token blocks; a smaller
// block only costs memory and record size.
const MinBlockChars = 16

// CheckBlockChars reports whether n is usable as a capture's block size: a
// power of two from MinBlockChars to CoarseBlockChars, so that every coarse
// block is a whole number of blocks and Mooncake-like ids can be derived
// from the capture's (Coarsener).
func CheckBlockChars(n int) error {
	if n < MinBlockChars || n > CoarseBlockChars || CoarseBlockChars%n != 0 {
		return fmt.Errorf("hash block of %d characters: want a power of two from %d to %d (it must divide the %d-character Mooncake block)",
			n, MinBlockChars, CoarseBlockChars, CoarseBlockChars)
	}
	return nil
}

// DefaultMaxIDs bounds how many distinct block chain values a Hasher
// remembers: 2^21 entries, at most about 72 MiB (Go 1.26 maps; 54 MiB of
// live heap measured over four generations of distinct values), the
// chain values of 512 MiB of distinct prompt text at the default block
// size. Past the bound the values least recently seen are forgotten first
// (see HashIDs), so a prefix in use — a system prompt, a conversation —
// keeps its id however long the capture runs.
const DefaultMaxIDs = 1 << 21

// Hasher turns prompts into prefix-block ids and session keys into keyed
// hashes. The key never leaves it: records carry small integers and
// truncated HMACs, the manifest only KeyID. It is safe for concurrent use;
// one Hasher serves a whole capture so that equal prefixes get equal ids
// across requests.
type Hasher struct {
	key   []byte
	block int
	keyID string
	pool  sync.Pool // *blockHash

	// The remembered chain values (first 8 bytes) → small ids, in two
	// generations: cur holds the values seen since the last swap, old
	// those seen in the generation before and not since. A value found in
	// old moves to cur; when cur reaches maxIDs/2 entries, old is dropped
	// and cur becomes old. That is a least-recently-used bound at the cost
	// of one map operation per value, with no list to maintain.
	mu     sync.Mutex
	cur    map[uint64]uint32
	old    map[uint64]uint32
	next   uint32 // next small id to hand out
	maxIDs int    // bound on len(cur)+len(old), give or take one prompt's blocks

	forgotten atomic.Uint64
	exhausted atomic.Uint64 // prompts left without ids: every id given out (Remap)
}

type blockHash struct {
	mac  hash.Hash
	sum  [sha256.Size]byte
	tmp  []byte
	vals []uint64
}

// NewHasher returns a Hasher keyed by key that hashes blockChars-rune blocks.
// A nil or empty key draws a random 32-byte key from crypto/rand, so ids are
// comparable within one capture but cannot be linked across captures; pass
// the same key (--hash-key-file) to compare captures. blockChars <= 0 means
// DefaultBlockChars.
func NewHasher(key []byte, blockChars int) *Hasher {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			// crypto/rand.Read does not fail on supported platforms (Go 1.24+
			// crashes the program instead of returning an error).
			panic("capture: reading random hash key: " + err.Error())
		}
	} else {
		key = append([]byte(nil), key...)
	}
	if blockChars <= 0 {
		blockChars = DefaultBlockChars
	}
	id := sha256.Sum256(append([]byte("reprise key id\x00"), key...))
	h := &Hasher{
		key:    key,
		block:  blockChars,
		keyID:  hex.EncodeToString(id[:8]),
		cur:    make(map[uint64]uint32),
		maxIDs: DefaultMaxIDs,
	}
	h.pool.New = func() any { return &blockHash{mac: hmac.New(sha256.New, h.key)} }
	return h
}

// KeyID is 16 hex characters of a SHA-256 of the key (domain separated):
// it tells whether two captures used the same key and reveals nothing usable
// about the key itself.
func (h *Hasher) KeyID() string { return h.keyID }

// BlockChars is the block size in characters (runes).
func (h *Hasher) BlockChars() int { return h.block }

// Forgotten counts the chain values dropped from memory to keep it bounded
// (see HashIDs): if one of them is seen again it gets a fresh id, so that
// reuse goes unseen.
func (h *Hasher) Forgotten() uint64 { return h.forgotten.Load() }

// HashIDs returns the prompt's prefix-block ids. The prompt is split into
// consecutive blocks of BlockChars runes (the last may be shorter; invalid
// UTF-8 bytes count as one rune each). Block i's chain value is
//
//	h_0 = HMAC-SHA256(key, block_0)
//	h_i = HMAC-SHA256(key, h_{i-1} || block_i)
//
// so an id depends on the block and everything before it: two prompts share
// their first k ids exactly when they share their first k blocks (up to a
// 2^-64 collision chance from keeping 8 bytes). Chain values are remapped to
// small integers in first-seen order, the convention of the Mooncake traces.
//
// Memory is bounded: the Hasher remembers at most about maxIDs values
// (DefaultMaxIDs) and forgets those least recently seen first, in halves
// (counted in Forgotten). A forgotten value seen again gets a fresh id,
// and ids are never handed out twice, so equal ids still mean equal
// prefixes; only reuse of a prefix unseen for a long time goes undetected.
// Memory drops whole generations between prompts, and a block's
// predecessors are seen whenever it is, so a remembered block's
// predecessors are remembered too: two prompts never share a later id
// without sharing the ids before it. The map is never reset, which would
// silently give old ids new meanings.
func (h *Hasher) HashIDs(prompt string) []uint32 {
	if prompt == "" {
		return nil
	}
	bh := h.pool.Get().(*blockHash)
	h.chain(bh, prompt)
	out := h.Remap(bh.vals)
	h.put(bh)
	return out
}

// Chain returns the prompt's chain values (see HashIDs), before they are
// remapped to small ids: 8 bytes of HMAC each, so equal values at equal
// positions mean an identical prefix whichever process computed them, given
// the same key and block size. A front end that runs as many independent
// processes — the proxy-wasm filter has one VM per Envoy worker — ships
// these to one collector, whose Hasher's Remap gives ids that agree across
// all of them; remapping in each process would not. nil for "".
func (h *Hasher) Chain(prompt string) []uint64 {
	if prompt == "" {
		return nil
	}
	bh := h.pool.Get().(*blockHash)
	h.chain(bh, prompt)
	out := append([]uint64(nil), bh.vals...)
	h.put(bh)
	return out
}

// chain computes prompt's chain values into bh.vals.
func (h *Hasher) chain(bh *blockHash, prompt string) {
	bh.vals = bh.vals[:0]
	prev := false
	for start := 0; start < len(prompt); {
		end, n := start, 0
		for end < len(prompt) && n < h.block {
			if c := prompt[end]; c < utf8.RuneSelf {
				end++
			} else {
				_, w := utf8.DecodeRuneInString(prompt[end:])
				end += w
			}
			n++
		}
		bh.mac.Reset()
		if prev {
			bh.mac.Write(bh.sum[:])
		}
		bh.tmp = append(bh.tmp[:0], prompt[start:end]...)
		bh.mac.Write(bh.tmp)
		bh.mac.Sum(bh.sum[:0])
		prev = true
		bh.vals = append(bh.vals, binary.BigEndian.Uint64(bh.sum[:8]))
		start = end
	}
}

func (h *Hasher) put(bh *blockHash) {
	if cap(bh.tmp) > 64<<10 {
		bh.tmp = nil
	}
	h.pool.Put(bh)
}

// Remap turns chain values (Chain, possibly computed elsewhere with the
// same key and block size) into small ids in first-seen order, remembering
// them under the bound HashIDs describes. vals must be one prompt's chain,
// in order. nil for none.
func (h *Hasher) Remap(vals []uint64) []uint32 {
	if len(vals) == 0 {
		return nil
	}
	out := make([]uint32, len(vals))
	h.mu.Lock()
	// Generations change only between prompts, never inside one: that is
	// what keeps a remembered block's predecessors remembered (HashIDs).
	if len(h.cur) >= max(h.maxIDs/2, 1) {
		h.forgotten.Add(uint64(len(h.old)))
		h.old, h.cur = h.cur, make(map[uint64]uint32, len(h.cur)/2)
	}
	for i, v := range vals {
		id, ok := h.cur[v]
		if !ok {
			if id, ok = h.old[v]; ok {
				delete(h.old, v)
			} else {
				if h.next == ^uint32(0) {
					// Every 32-bit id is taken: a new prefix would share
					// one with another, and equal ids must mean equal
					// prefixes. The prompt gets none (counted).
					h.mu.Unlock()
					h.exhausted.Add(1)
					return nil
				}
				id = h.next
				h.next++
			}
			h.cur[v] = id
		}
		out[i] = id
	}
	h.mu.Unlock()
	return out
}

// Exhausted counts the prompts that got no prefix ids because every
// 32-bit id had been given out (a capture of over four billion distinct
// blocks: start a new one).
func (h *Hasher) Exhausted() uint64 { return h.exhausted.Load() }

// Session returns a 16-hex-character keyed hash of a session or user key,
// or "" for "". The same key gives the same value within a capture (and
// across captures that share the hash key); the key cannot be recovered.
func (h *Hasher) Session(key string) string {
	if key == "" {
		return ""
	}
	mac := hmac.New(sha256.New, h.key)
	mac.Write([]byte("reprise session\x00"))
	mac.Write([]byte(key))
	var sum [sha256.Size]byte
	return hex.EncodeToString(mac.Sum(sum[:0])[:8])
}
