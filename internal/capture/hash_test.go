package capture

import (
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

func TestHashIDsBoundedMemory(t *testing.T) {
	h := NewHasher([]byte("k"), 1)
	h.maxIDs = 5
	first := h.HashIDs("abcde") // fills the map: ids 0..4
	over := h.HashIDs("vwxyz")  // 5 new chain values past the bound
	again := h.HashIDs("abcde")
	if len(h.ids) != 5 || h.Unmapped() != 5 {
		t.Fatalf("map %d entries, unmapped %d", len(h.ids), h.Unmapped())
	}
	for i := range first {
		if again[i] != first[i] {
			t.Fatalf("remembered ids changed past the bound: %v vs %v", again, first)
		}
	}
	seen := map[uint32]bool{}
	for _, id := range append(first, over...) {
		if seen[id] {
			t.Fatalf("a fresh id past the bound repeats another: %v %v", first, over)
		}
		seen[id] = true
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
	if len(h.ids) != 8+4+10 {
		t.Fatalf("%d distinct ids", len(h.ids))
	}
}

func BenchmarkHashIDs(b *testing.B) {
	h := NewHasher([]byte("k"), DefaultBlockChars)
	p := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 500) // ~22 KB
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		_ = h.HashIDs(p)
	}
}
