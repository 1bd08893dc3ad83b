package wire

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
)

// FuzzChain: every value survives its text form, and the text form is
// always 16 lower-case hex digits; arbitrary text either decodes to a value
// whose text form is that text (modulo case) or is refused.
func FuzzChain(f *testing.F) {
	f.Add(uint64(0), "0000000000000000")
	f.Add(^uint64(0), "FFFFFFFFFFFFFFFF")
	f.Add(uint64(0x0123456789abcdef), "0123456789abcdeg")
	f.Fuzz(func(t *testing.T, v uint64, text string) {
		b, err := Chain(v).MarshalText()
		if err != nil || len(b) != 16 {
			t.Fatalf("MarshalText(%d) = %q, %v", v, b, err)
		}
		var back Chain
		if err := back.UnmarshalText(b); err != nil || uint64(back) != v {
			t.Fatalf("round trip of %d: %d, %v", v, back, err)
		}
		var c Chain
		if err := c.UnmarshalText([]byte(text)); err == nil {
			again, _ := c.MarshalText()
			if len(text) != 16 || !equalFold(string(again), text) {
				t.Fatalf("%q decoded to %d, which encodes as %q", text, c, again)
			}
		}
	})
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'A' <= y && y <= 'F' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// TestLineRoundTrip: a line is the record's own JSON plus hash_chain and
// key_id, and decodes back to the same record.
func TestLineRoundTrip(t *testing.T) {
	rec := &capture.Record{ID: "a-1", Wall: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Source: capture.SourceWasm,
		Path: "/v1/chat/completions", Status: 200, ChunksUS: []int64{5, 1}, ChunkTokens: []int{1, 1}, Block: 2048}
	b, err := json.Marshal(Line{Record: rec, HashChain: Chains([]uint64{1, 1 << 63}), KeyID: "k"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["id"] != "a-1" || m["key_id"] != "k" || !reflect.DeepEqual(m["hash_chain"], []any{"0000000000000001", "8000000000000000"}) {
		t.Errorf("line %s", b)
	}
	back := Line{Record: new(capture.Record)}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Record, rec) || !reflect.DeepEqual(Values(back.HashChain), []uint64{1, 1 << 63}) {
		t.Errorf("decoded %+v, chain %v", back.Record, back.HashChain)
	}
}
