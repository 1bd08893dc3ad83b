package synth

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

func newBuilder(t testing.TB) *Builder {
	t.Helper()
	b, err := New(Options{Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPromptHasExactTokenCount(t *testing.T) {
	b := newBuilder(t)
	for _, n := range []int{1, 2, 17, 511, 512, 513, 1500, 12000} {
		for _, ids := range [][]uint32{nil, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24}} {
			req := &workload.Request{Index: n, PromptTokens: n, HashIDs: ids, BlockTokens: 512}
			p, err := b.Prompt(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.CountTokens(p); got != n {
				t.Errorf("%d tokens requested (ids %v): the encoding counts %d", n, ids != nil, got)
			}
		}
	}
}

func TestSharedLeadingIDsShareExactlyThoseBlocks(t *testing.T) {
	b := newBuilder(t)
	const block = 64
	a := &workload.Request{Index: 1, PromptTokens: 5 * block, BlockTokens: block, HashIDs: []uint32{10, 11, 12, 13, 14}}
	c := &workload.Request{Index: 2, PromptTokens: 5 * block, BlockTokens: block, HashIDs: []uint32{10, 11, 99, 13, 14}}
	pa, _ := b.Prompt(a)
	pc, _ := b.Prompt(c)
	// every word is one token with a leading space: blocks are runs of words
	blocksA, blocksC := strings.Fields(pa), strings.Fields(pc)
	if len(blocksA) != 5*block || len(blocksC) != 5*block {
		t.Fatalf("word counts %d %d", len(blocksA), len(blocksC))
	}
	for k := 0; k < 5; k++ {
		same := strings.Join(blocksA[k*block:(k+1)*block], " ") == strings.Join(blocksC[k*block:(k+1)*block], " ")
		if k < 2 && !same {
			t.Errorf("block %d differs though both requests have the same ids up to it", k)
		}
		if k >= 2 && same {
			t.Errorf("block %d is identical after the ids diverged (the chain must differ)", k)
		}
	}
	// a different request with no ids shares nothing at the start
	u, _ := b.Prompt(&workload.Request{Index: 3, PromptTokens: block})
	if strings.HasPrefix(pa, u[:40]) {
		t.Error("a request without hash ids shares a prefix")
	}
}

func TestDeterministicBySeed(t *testing.T) {
	req := &workload.Request{Index: 4, PromptTokens: 300}
	p1, _ := newBuilder(t).Prompt(req)
	p2, _ := newBuilder(t).Prompt(req)
	other, _ := New(Options{Seed: 8})
	p3, _ := other.Prompt(req)
	if p1 != p2 || p1 == p3 {
		t.Fatal("prompts must depend on the seed and only on it")
	}
}

func TestBody(t *testing.T) {
	b := newBuilder(t)
	raw, err := b.Body(&workload.Request{Endpoint: openai.Chat, Stream: true, PromptTokens: 20, OutputTokens: 7, Model: "m"}, "")
	if err != nil {
		t.Fatal(err)
	}
	info, err := openai.ParseRequest("/v1/chat/completions", raw)
	if err != nil {
		t.Fatal(err)
	}
	if info.Model != "m" || !info.Stream || !info.IncludeUsage || info.MaxTokens != 7 || !info.IgnoreEOS || info.NMessages != 1 {
		t.Errorf("chat body: %+v", info)
	}
	raw, _ = b.Body(&workload.Request{Endpoint: openai.Completions, PromptTokens: 5}, "override")
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if m["model"] != "override" || m["prompt"] == nil || m["max_tokens"] != nil || m["stream"] != nil {
		t.Errorf("completions body: %s", raw)
	}
	if b.CountTokens(m["prompt"].(string)) != 5 {
		t.Error("completions prompt length")
	}
	raw, _ = b.Body(&workload.Request{Endpoint: openai.Chat, Messages: []byte(`[{"role":"user","content":"verbatim"}]`)}, "m")
	if !strings.Contains(string(raw), "verbatim") {
		t.Errorf("recorded messages not sent verbatim: %s", raw)
	}
}

// BenchmarkPrompt12k measures synthesis at Mooncake conversation lengths
// with prefix sharing (the blocks come from the cache).
func BenchmarkPrompt12k(b *testing.B) {
	bl := newBuilder(b)
	ids := make([]uint32, 24)
	for i := range ids {
		ids[i] = uint32(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ids[23] = uint32(i) // the last block is new each time
		i++
		if _, err := bl.Body(&workload.Request{Index: i, PromptTokens: 12000, BlockTokens: 512, HashIDs: ids, Stream: true}, "m"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "prompts/s")
}
