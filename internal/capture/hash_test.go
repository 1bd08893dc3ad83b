package capture

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

func TestHashIDsBlocks(t *testing.T) {
	h := NewHasher([]byte("k"), 4)
	tests := []struct {
		prompt string
		n      int
	}{
		{"", 0}, {"a", 1}, {"abcd", 1}, {"abcde", 2}, {"abcdefgh", 2}, {"abcdefghi", 3},
		{"héllo wörld", 3}, // 11 runes, 13 bytes: blocks count runes
	}
	for _, tt := range tests {
		if got := h.HashIDs(tt.prompt); len(got) != tt.n {
			t.Errorf("HashIDs(%q) has %d ids, want %d", tt.prompt, len(got), tt.n)
		}
	}
}

func TestHashIDsSharedPrefix(t *testing.T) {
	h := NewHasher([]byte("k"), 8)
	common := strings.Repeat("system prompt. ", 8) // 120 chars = 15 blocks
	a := h.HashIDs(common + "one? question")
	b := h.HashIDs(common + "two, longer question")
	if len(a) != 17 || len(b) != 18 {
		t.Fatalf("lengths %d %d", len(a), len(b))
	}
	for i := 0; i < 15; i++ {
		if a[i] != b[i] {
			t.Fatalf("id %d differs inside the shared prefix: %v vs %v", i, a, b)
		}
	}
	for i := 15; i < 17; i++ {
		if a[i] == b[i] {
			t.Fatalf("id %d equal after the prompts diverge: %v vs %v", i, a, b)
		}
	}
	// First-seen order: the first prompt's ids are 0..16.
	for i, id := range a {
		if id != uint32(i) {
			t.Fatalf("ids not in first-seen order: %v", a)
		}
	}
}

func TestHashIDsDependOnWholePrefix(t *testing.T) {
	h := NewHasher([]byte("k"), 4)
	// Same second block, different first block: the chain makes it differ.
	a := h.HashIDs("AAAAxxxx")
	b := h.HashIDs("BBBBxxxx")
	if a[1] == b[1] {
		t.Fatalf("second block id ignores the first block: %v %v", a, b)
	}
	// The same prompt again gets the same ids.
	if c := h.HashIDs("AAAAxxxx"); c[0] != a[0] || c[1] != a[1] {
		t.Fatalf("ids not stable: %v vs %v", c, a)
	}
}

func TestHashIDsKeyed(t *testing.T) {
	p := strings.Repeat("x", 100)
	h1, h2 := NewHasher([]byte("key one"), 16), NewHasher([]byte("key two"), 16)
	if h1.KeyID() == h2.KeyID() || len(h1.KeyID()) != 16 {
		t.Fatalf("key ids %q %q", h1.KeyID(), h2.KeyID())
	}
	if NewHasher([]byte("key one"), 16).KeyID() != h1.KeyID() {
		t.Fatal("key id not deterministic")
	}
	if strings.Contains(h1.KeyID(), "6b6579206f6e65") { // hex("key one")
		t.Fatal("key id reveals the key")
	}
	// Session hashes differ by key, are stable, and hide the input.
	if h1.Session("alice") == h2.Session("alice") || h1.Session("alice") != h1.Session("alice") {
		t.Fatal("session hash not keyed or not stable")
	}
	if s := h1.Session("alice"); len(s) != 16 || strings.Contains(s, "alice") {
		t.Fatalf("session %q", s)
	}
	if h1.Session("") != "" {
		t.Fatal("empty session key should give empty session")
	}
	_ = h1.HashIDs(p)
	_ = h2.HashIDs(p)
}

func TestNewHasherRandomKey(t *testing.T) {
	a, b := NewHasher(nil, 0), NewHasher(nil, 0)
	if a.KeyID() == b.KeyID() {
		t.Fatal("random keys collide")
	}
	if a.BlockChars() != DefaultBlockChars {
		t.Fatalf("default block %d", a.BlockChars())
	}
	if a.Session("u") == b.Session("u") {
		t.Fatal("random keys give equal session hashes")
	}
}

// Memory is bounded by forgetting the values least recently seen: a prefix
// in constant use (a system prompt) keeps its id through any number of
// distinct prompts, fresh ids never repeat, and a forgotten tail seen
// again gets a new id.
func TestHashIDsBoundedMemory(t *testing.T) {
	h := NewHasher([]byte("k"), 2)
	h.maxIDs = 8
	const n = 200
	seen := map[uint32]bool{}
	var first []uint32
	for i := range n {
		ids := h.HashIDs(fmt.Sprintf("ss%03d", i)) // blocks "ss", "00", "0" + i's
		if len(ids) != 3 {
			t.Fatalf("prompt %d: %d ids, want 3", i, len(ids))
		}
		if i == 0 {
			first = ids
		}
		if ids[0] != first[0] {
			t.Fatalf("prompt %d: the shared first block changed id from %d to %d", i, first[0], ids[0])
		}
		if seen[ids[2]] {
			t.Fatalf("prompt %d: a fresh id %d was handed out before", i, ids[2])
		}
		seen[ids[2]] = true
		if got := len(h.cur) + len(h.old); got > h.maxIDs+3 {
			t.Fatalf("prompt %d: %d values remembered, bound %d (+ one prompt's 3)", i, got, h.maxIDs)
		}
	}
	if h.Forgotten() == 0 {
		t.Fatal("nothing forgotten after 200 distinct prompts under a bound of 8")
	}
	again := h.HashIDs("ss000")
	if again[0] != first[0] || again[2] == first[2] || seen[again[2]] {
		t.Fatalf("ids %v for the first prompt again (first %v): want the shared block's id kept and a fresh last id", again, first)
	}
}

// However values are forgotten, two prompts never share an id without
// sharing every id before it: forgetting drops generations between
// prompts, and a block's predecessors are seen whenever it is.
func TestHashIDsForgettingKeepsPrefixesClosed(t *testing.T) {
	h := NewHasher([]byte("k"), 1)
	h.maxIDs = 6
	rng := rand.New(rand.NewPCG(1, 2))
	var all [][]uint32
	for range 2000 {
		b := make([]byte, 1+rng.IntN(6))
		for j := range b {
			b[j] = "ab"[rng.IntN(2)]
		}
		all = append(all, h.HashIDs(string(b)))
	}
	if h.Forgotten() == 0 {
		t.Fatal("nothing forgotten: the test does not exercise the bound")
	}
	// Index every (position, id) by the ids before it.
	before := map[[2]uint32]string{}
	for _, ids := range all {
		for i, id := range ids {
			key, prefix := [2]uint32{uint32(i), id}, fmt.Sprint(ids[:i])
			if p, ok := before[key]; ok && p != prefix {
				t.Fatalf("id %d at position %d follows %s in one prompt and %s in another", id, i, p, prefix)
			}
			before[key] = prefix
		}
	}
}

func TestHashIDsConcurrent(t *testing.T) {
	h := NewHasher([]byte("k"), 8)
	prompts := []string{strings.Repeat("a", 64), strings.Repeat("a", 32) + strings.Repeat("b", 32), strings.Repeat("c", 80)}
	want := make([][]uint32, len(prompts))
	var wg sync.WaitGroup
	results := make([][][]uint32, 8)
	for g := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				for _, p := range prompts {
					results[g] = append(results[g], h.HashIDs(p))
				}
			}
		}()
	}
	wg.Wait()
	for i, p := range prompts {
		want[i] = h.HashIDs(p)
	}
	for g := range results {
		for j, ids := range results[g] {
			w := want[j%len(prompts)]
			for k := range w {
				if ids[k] != w[k] {
					t.Fatalf("goroutine %d call %d: %v, want %v", g, j, ids, w)
				}
			}
		}
	}
	// Distinct chain values: 8 + 8 (4 shared "a" blocks) + 10 = 22.
	if len(h.cur)+len(h.old) != 8+4+10 {
		t.Fatalf("%d distinct ids", len(h.cur)+len(h.old))
	}
}

// BenchmarkHashIDs hashes a 22 KB prompt at the default block and at
// Mooncake's: finer blocks cost more HMAC finalisations per byte.
func BenchmarkHashIDs(b *testing.B) {
	p := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 500) // ~22 KB
	for _, block := range []int{DefaultBlockChars, CoarseBlockChars} {
		b.Run(fmt.Sprint(block), func(b *testing.B) {
			h := NewHasher([]byte("k"), block)
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				_ = h.HashIDs(p)
			}
		})
	}
}

// When every 32-bit id has been given out, a prompt needing a new one
// gets none, rather than an id another prefix has: equal ids must mean
// equal prefixes.
func TestRemapNeverSharesAnIDWhenExhausted(t *testing.T) {
	h := NewHasher([]byte("0123456789abcdef0123456789abcdef"), 16)
	h.next = ^uint32(0) - 1
	a := h.Remap([]uint64{1})
	b := h.Remap([]uint64{2})
	c := h.Remap([]uint64{3})
	if len(a) != 1 || b != nil || c != nil || h.Exhausted() != 2 {
		t.Errorf("a %v, b %v, c %v, exhausted %d: want one id, then none", a, b, c, h.Exhausted())
	}
	if again := h.Remap([]uint64{1}); len(again) != 1 || again[0] != a[0] {
		t.Errorf("a known prefix lost its id: %v", again)
	}
}
