package capture

import (
	"fmt"
	"math"
)

// Coarsener derives coarser prefix-block ids from a capture's: the ids the
// capture would hold had it hashed blocks of Chars characters, up to their
// numbering. Captures hash fine blocks (DefaultBlockChars) so that short
// shared prefixes show; Mooncake-style traces and tools count 512-token
// blocks (CoarseBlockChars), and this gives them those without storing a
// second set of ids in every record.
//
// It follows from the hash chain (Hasher.HashIDs): a fine id names the
// whole prompt up to the end of its block, so the fine id that ends a
// coarse block names that coarse block's prefix, and two coarse blocks are
// equal prefixes exactly when the fine ids ending them are equal. The last
// coarse block of a prompt ends at its last fine id, as a chain over coarse
// blocks ends at the prompt's end. Coarse ids are numbered in first-seen
// order over the Coarsener's calls (the Mooncake convention), so one
// Coarsener serves one capture, read in order.
type Coarsener struct {
	chars int
	ids   map[fineKey]uint32
}

// fineKey names a fine block across records: its block size and its id.
type fineKey struct {
	block int
	id    uint32
}

// NewCoarsener returns a Coarsener to blocks of chars characters;
// chars <= 0 means CoarseBlockChars.
func NewCoarsener(chars int) *Coarsener {
	if chars <= 0 {
		chars = CoarseBlockChars
	}
	return &Coarsener{chars: chars, ids: map[fineKey]uint32{}}
}

// Chars is the coarse block size in characters.
func (c *Coarsener) Chars() int { return c.chars }

// IDs returns the coarse ids of a prompt whose ids at block characters per
// block are fine: one per Chars characters, the last covering what is
// left. block must divide Chars (a capture's block passed
// CheckBlockChars); nil for no ids.
func (c *Coarsener) IDs(fine []uint32, block int) ([]uint32, error) {
	k, err := c.factor(block)
	if err != nil || len(fine) == 0 {
		return nil, err
	}
	out := make([]uint32, 0, (len(fine)+k-1)/k)
	for end := k; ; end += k {
		end = min(end, len(fine))
		key := fineKey{block, fine[end-1]}
		id, ok := c.ids[key]
		if !ok {
			id = uint32(len(c.ids))
			c.ids[key] = id
		}
		out = append(out, id)
		if end == len(fine) {
			return out, nil
		}
	}
}

// factor is how many blocks of block characters make a coarse block.
func (c *Coarsener) factor(block int) (int, error) {
	if block <= 0 || c.chars%block != 0 {
		return 0, fmt.Errorf("hash ids of %d-character blocks cannot be coarsened to %d-character blocks: the block must divide it", block, c.chars)
	}
	return c.chars / block, nil
}

// Reuse is how much of a capture's prompt text repeats prefix blocks of
// earlier prompts at one block size: what an unbounded prefix cache that
// caches whole blocks of that size would hit. Shares are of characters
// (Chars) and of prompt tokens (Tokens, from the records that report them,
// their reused part pro rata to characters).
type Reuse struct {
	BlockChars   int   // block size in characters; 0 when records of several sizes were added
	Requests     int   // records counted: those with hash ids
	Blocks       int64 // prompt blocks of those records
	ReusedBlocks int64 // blocks whose id an earlier record had
	Chars        int64 // characters of hashed prompt text (see ReuseCounter.Add)
	ReusedChars  int64 // characters in reused blocks
	Tokens       int64 // prompt tokens of the counted records that report them
	ReusedTokens int64 // tokens of those records in reused blocks, pro rata to characters
}

// CharShare is ReusedChars/Chars, 0 without characters.
func (r Reuse) CharShare() float64 { return share(r.ReusedChars, r.Chars) }

// TokenShare is ReusedTokens/Tokens, 0 without tokens.
func (r Reuse) TokenShare() float64 { return share(r.ReusedTokens, r.Tokens) }

func share(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part) / float64(whole)
}

// ReuseCounter measures prefix reuse at a capture's own (fine) block size
// and at a coarse one, by default CoarseBlockChars (Mooncake's 512 tokens):
// the difference is the sharing that coarse blocks cannot see, such as a
// short system prompt. It is not safe for concurrent use.
type ReuseCounter struct {
	coarse            *Coarsener
	fineSeen          map[fineKey]struct{}
	coarseSeen        map[uint32]struct{}
	fine, coarseReuse Reuse
}

// NewReuseCounter returns a ReuseCounter whose coarse blocks have
// coarseChars characters (<= 0: CoarseBlockChars).
func NewReuseCounter(coarseChars int) *ReuseCounter {
	c := NewCoarsener(coarseChars)
	return &ReuseCounter{coarse: c, fineSeen: map[fineKey]struct{}{}, coarseSeen: map[uint32]struct{}{},
		coarseReuse: Reuse{BlockChars: c.Chars()}}
}

// Add counts rec's prompt blocks against those of the records added
// before it: add a capture's records once each, in arrival order. Records
// without hash ids, and shadow records (a copy of their request's prompt),
// count nothing. A record's hashed text is its prompt_chars plus the two
// separators the proxy hashes around each message's content (the record
// keeps no more), kept within what its number of blocks allows. It is an
// error, and nothing of rec is counted, when rec's block does not divide
// the coarse block.
func (c *ReuseCounter) Add(rec *Record) error {
	if rec == nil || rec.Shadow || len(rec.HashIDs) == 0 {
		return nil
	}
	coarse, err := c.coarse.IDs(rec.HashIDs, rec.Block)
	if err != nil {
		return fmt.Errorf("record %s: %w", rec.ID, err)
	}
	block, n := rec.Block, len(rec.HashIDs)
	chars := int64(rec.PromptChars) + 2*int64(rec.NMessages)
	chars = min(max(chars, int64(n-1)*int64(block)+1), int64(n)*int64(block))
	countReuse(&c.fine, block, chars, n, rec.PromptTokens, func(i int) bool {
		key := fineKey{block, rec.HashIDs[i]}
		_, seen := c.fineSeen[key]
		c.fineSeen[key] = struct{}{}
		return seen
	})
	countReuse(&c.coarseReuse, c.coarse.Chars(), chars, len(coarse), rec.PromptTokens, func(i int) bool {
		_, seen := c.coarseSeen[coarse[i]]
		c.coarseSeen[coarse[i]] = struct{}{}
		return seen
	})
	// After a record of another size, BlockChars stays 0 (no record has
	// block 0).
	if c.fine.Requests == 1 {
		c.fine.BlockChars = block
	} else if block != c.fine.BlockChars {
		c.fine.BlockChars = 0
	}
	return nil
}

// countReuse adds to r one record of chars characters and tokens prompt
// tokens in n blocks of block characters (the last holding the rest), seen
// telling whether block i was seen before (and marking it seen).
func countReuse(r *Reuse, block int, chars int64, n, tokens int, seen func(i int) bool) {
	var reused int64
	for i := range n {
		size := int64(block)
		if i == n-1 {
			size = chars - int64(n-1)*int64(block)
		}
		if seen(i) {
			r.ReusedBlocks++
			reused += size
		}
	}
	r.Requests++
	r.Blocks += int64(n)
	r.Chars += chars
	r.ReusedChars += reused
	if tokens > 0 {
		r.Tokens += int64(tokens)
		r.ReusedTokens += int64(math.Round(float64(tokens) * float64(reused) / float64(chars)))
	}
}

// Fine is the reuse at the records' own block size.
func (c *ReuseCounter) Fine() Reuse { return c.fine }

// Coarse is the reuse at the coarse block size.
func (c *ReuseCounter) Coarse() Reuse { return c.coarseReuse }
