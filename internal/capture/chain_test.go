package capture

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestChainRemap: Chain then Remap is HashIDs, and Remap on one Hasher
// gives ids that agree across chains computed by several Hashers sharing a
// key (the filter's VMs), which per-process HashIDs would not.
func TestChainRemap(t *testing.T) {
	key := []byte("chain-test-key")
	p1 := strings.Repeat("abc", 100) + "tail one"
	p2 := strings.Repeat("abc", 100) + "tail two"
	ref := NewHasher(key, 64)
	want1, want2 := ref.HashIDs(p1), ref.HashIDs(p2)

	vm1, vm2, collector := NewHasher(key, 64), NewHasher(key, 64), NewHasher(key, 64)
	vm2.HashIDs("something else first") // vm2's own numbering now differs
	c1, c2 := vm1.Chain(p1), vm2.Chain(p2)
	if got1, got2 := collector.Remap(c1), collector.Remap(c2); !reflect.DeepEqual(got1, want1) || !reflect.DeepEqual(got2, want2) {
		t.Errorf("remapped %v, %v; want %v, %v", got1, got2, want1, want2)
	}
	if vm1.Chain("") != nil || collector.Remap(nil) != nil {
		t.Error("empty prompt: want nil")
	}
	if other := NewHasher([]byte("another key"), 64).Chain(p1); reflect.DeepEqual(other, c1) {
		t.Error("another key gave the same chain")
	}
}

// TestTrackerChains: with Options.Chains the Tracker keeps the chain and
// records no hash ids, with the block size.
func TestTrackerChains(t *testing.T) {
	h := NewHasher([]byte("k"), 0)
	now := time.Now()
	tr := NewTracker(now, now, "1", "POST", "/v1/completions", &Options{Hasher: h, Chains: true})
	tr.RequestBody([]byte(`{"model":"m","prompt":"hello"}`), true)
	rec := tr.Finish(now, nil, false)
	if len(rec.HashIDs) != 0 || rec.Block != DefaultBlockChars || !reflect.DeepEqual(tr.HashChain(), h.Chain("hello")) {
		t.Errorf("ids %v, block %d, chain %v", rec.HashIDs, rec.Block, tr.HashChain())
	}
}
