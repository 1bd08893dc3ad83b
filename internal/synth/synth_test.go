package synth

import (
	"encoding/json"
	"fmt"
	"github.com/reprise-llm/reprise/internal/testenv"
	"strings"
	"sync"
	"testing"

	"path/filepath"

	"github.com/tiktoken-go/tokenizer"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
	hf "github.com/reprise-llm/reprise/internal/tokenizer"
	"github.com/reprise-llm/reprise/internal/tracestest"
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

// encodeCount tokenizes s in full with a codec of its own, independent of
// the Builder's.
func encodeCount(t testing.TB, enc tokenizer.Encoding, s string) int {
	t.Helper()
	c, err := tokenizer.Get(enc)
	if err != nil {
		t.Fatal(err)
	}
	ids, _, err := c.Encode(s)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

func ids(n int, from uint32) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = from + uint32(i)
	}
	return out
}

func TestPromptHasExactTokenCount(t *testing.T) {
	b := newBuilder(t)
	for _, n := range []int{1, 2, 17, 511, 512, 513, 1500, 12000} {
		for _, hash := range [][]uint32{nil, ids(24, 1), ids(2, 1)} { // 2 ids: longer than its ids
			req := &workload.Request{Index: n, PromptTokens: n, HashIDs: hash, BlockTokens: 512}
			p, err := b.Prompt(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := encodeCount(t, tokenizer.Cl100kBase, p); got != n {
				t.Errorf("%d tokens requested (%d ids): a full tokenization counts %d", n, len(hash), got)
			}
		}
	}
	p, _ := b.Prompt(&workload.Request{PromptTokens: 0})
	if b.CountTokens(p) != 1 {
		t.Errorf("an empty prompt must become one token, got %q", p)
	}
	for _, bad := range []int{-1, MaxPromptTokens + 1, 1 << 40} {
		if _, err := b.Prompt(&workload.Request{PromptTokens: bad}); err == nil {
			t.Errorf("length %d was accepted", bad)
		}
	}
}

func TestEveryEncodingIsExact(t *testing.T) {
	for _, enc := range []tokenizer.Encoding{tokenizer.O200kBase, tokenizer.R50kBase, tokenizer.P50kBase} {
		b, err := New(Options{Encoding: string(enc), Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{1, 513, 3000} {
			p, _ := b.Prompt(&workload.Request{PromptTokens: n, HashIDs: ids(6, 9), BlockTokens: 512})
			if got := encodeCount(t, enc, p); got != n {
				t.Errorf("%s: %d tokens requested, %d counted", enc, n, got)
			}
		}
	}
	if _, err := New(Options{Encoding: "no_such_base"}); err == nil || !strings.Contains(err.Error(), "no_such_base") {
		t.Errorf("unknown encoding: %v", err)
	}
}

// blocksOf cuts a prompt into blocks of `block` words.
func blocksOf(p string, block int) []string {
	var out []string
	for len(p) > 0 {
		head := firstWords(p, block)
		out = append(out, head)
		p = p[len(head):]
	}
	return out
}

func TestSharedLeadingIDsShareExactlyThoseBlocks(t *testing.T) {
	b := newBuilder(t)
	for _, block := range []int{64, 512} {
		base := []uint32{10, 11, 12, 13, 14}
		pa, _ := b.Prompt(&workload.Request{Index: 1, PromptTokens: 5 * block, BlockTokens: block, HashIDs: base})
		for k := 0; k < 5; k++ {
			other := append([]uint32(nil), base...)
			other[k] = 99 // equal ids before k, different from k on
			pc, _ := b.Prompt(&workload.Request{Index: 2, PromptTokens: 5 * block, BlockTokens: block, HashIDs: other})
			ba, bc := blocksOf(pa, block), blocksOf(pc, block)
			if len(ba) != 5 || len(bc) != 5 {
				t.Fatalf("block counts %d %d", len(ba), len(bc))
			}
			shared := strings.Join(ba[:k], "")
			if !strings.HasPrefix(pc, shared) {
				t.Errorf("block %d: the first %d blocks differ though the ids are equal", block, k)
			}
			for j := k; j < 5; j++ {
				if ba[j] == bc[j] {
					t.Errorf("block size %d, ids differ from %d: block %d is identical", block, k, j)
				}
			}
			// and the text differs right after the shared blocks
			if firstWords(pa[len(shared):], 8) == firstWords(pc[len(shared):], 8) {
				t.Errorf("block size %d: prompts still agree right after %d shared blocks", block, k)
			}
		}
	}
}

func TestTrimmedLastBlockIsAPrefixOfTheFullBlock(t *testing.T) {
	b := newBuilder(t)
	full, _ := b.Prompt(&workload.Request{PromptTokens: 3 * 512, BlockTokens: 512, HashIDs: []uint32{1, 2, 3}})
	part, _ := b.Prompt(&workload.Request{PromptTokens: 2*512 + 100, BlockTokens: 512, HashIDs: []uint32{1, 2, 3}})
	if !strings.HasPrefix(full, part) || b.CountTokens(part) != 1124 {
		t.Error("a shorter prompt with the same ids must be a prefix of the longer one")
	}
	// the same holds when the full block is not cached yet
	fresh := newBuilder(t)
	part2, _ := fresh.Prompt(&workload.Request{PromptTokens: 2*512 + 100, BlockTokens: 512, HashIDs: []uint32{1, 2, 3}})
	if part2 != part {
		t.Error("a cut block depends on the cache state")
	}
}

func TestPromptsWithoutIDsShareNothing(t *testing.T) {
	b := newBuilder(t)
	seen := map[string]int{}
	for i := 0; i < 200; i++ {
		p, _ := b.Prompt(&workload.Request{Index: i, PromptTokens: 600})
		head := firstWords(p, 6)
		if j, dup := seen[head]; dup {
			t.Fatalf("requests %d and %d start with the same 6 words", j, i)
		}
		seen[head] = i
	}
	withIDs, _ := b.Prompt(&workload.Request{Index: 3, PromptTokens: 64, HashIDs: []uint32{0}})
	noIDs, _ := b.Prompt(&workload.Request{Index: 3, PromptTokens: 64})
	if firstWords(withIDs, 6) == firstWords(noIDs, 6) {
		t.Error("a request without ids shares a prefix with hash id 0")
	}
}

func TestDeterministicBySeed(t *testing.T) {
	for _, req := range []*workload.Request{{Index: 4, PromptTokens: 300}, {Index: 4, PromptTokens: 1300, HashIDs: []uint32{5, 6, 7}}} {
		p1, _ := newBuilder(t).Prompt(req)
		p2, _ := newBuilder(t).Prompt(req)
		other, _ := New(Options{Seed: 8})
		p3, _ := other.Prompt(req)
		if p1 != p2 || p1 == p3 {
			t.Fatalf("prompts must depend on the seed and only on it (ids %v)", req.HashIDs)
		}
	}
}

func TestConcurrentBodiesMatchSequentialOnes(t *testing.T) {
	b := newBuilder(t)
	reqs := make([]*workload.Request, 64)
	want := make([]string, len(reqs))
	for i := range reqs {
		reqs[i] = &workload.Request{Index: i, PromptTokens: 700 + i, BlockTokens: 128, HashIDs: []uint32{uint32(i % 3), uint32(i % 5), uint32(i)}}
		p, _ := newBuilder(t).Prompt(reqs[i])
		want[i] = p
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Go(func() {
			for i, r := range reqs {
				if p, _ := b.Prompt(r); p != want[i] {
					t.Errorf("request %d differs under concurrency", i)
				}
			}
		})
	}
	wg.Wait()
}

func TestBlockCacheIsBounded(t *testing.T) {
	c := newBlockCache(100)
	for i := 0; i < 50; i++ {
		c.put(blockKey{chain: uint64(i)}, strings.Repeat("x", 10))
		if i == 5 {
			c.get(blockKey{chain: 0}) // recently used: survives
		}
	}
	if c.len() != 10 || c.use != 100 {
		t.Fatalf("%d entries, %d bytes", c.len(), c.use)
	}
	if _, ok := c.get(blockKey{chain: 1}); ok {
		t.Error("the least recently used block survived")
	}
	if _, ok := c.get(blockKey{chain: 49}); !ok {
		t.Error("the newest block was evicted")
	}
	c.put(blockKey{chain: 99}, strings.Repeat("y", 101)) // larger than the cache
	if _, ok := c.get(blockKey{chain: 99}); ok {
		t.Error("an oversized block was cached")
	}
}

func decode(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return m
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
	m := decode(t, raw)
	content := m["messages"].([]any)[0].(map[string]any)["content"].(string)
	if b.CountTokens(content) != 20 {
		t.Errorf("chat prompt has %d tokens", b.CountTokens(content))
	}

	raw, _ = b.Body(&workload.Request{Endpoint: openai.Completions, PromptTokens: 5}, "override")
	m = decode(t, raw)
	if m["model"] != "override" || m["max_tokens"] != nil || m["ignore_eos"] != nil || m["stream"] != false || m["stream_options"] != nil {
		t.Errorf("completions body: %s", raw)
	}
	if p, _ := m["prompt"].(string); b.CountTokens(p) != 5 {
		t.Errorf("completions prompt %q", p)
	}

	raw, _ = b.Body(&workload.Request{Endpoint: openai.Chat, Messages: []byte(`[{"role":"user","content":"verbatim"}]`)}, "")
	if m = decode(t, raw); m["model"] != "default" || !strings.Contains(string(raw), `"content":"verbatim"`) {
		t.Errorf("recorded messages not sent verbatim: %s", raw)
	}

	odd := "quote \" backslash \\ newline \n tab \t unicode é 😀 <tag>"
	raw, _ = b.Body(&workload.Request{Endpoint: openai.Completions, Prompt: odd, OutputTokens: 3}, "m")
	if m = decode(t, raw); m["prompt"] != odd || m["max_tokens"] != float64(3) {
		t.Errorf("recorded prompt not round-tripped: %s", raw)
	}
	raw, _ = b.Body(&workload.Request{Endpoint: openai.Chat, Prompt: odd}, "m")
	if m = decode(t, raw); m["messages"].([]any)[0].(map[string]any)["content"] != odd {
		t.Errorf("a recorded prompt on chat must become the user message: %s", raw)
	}

	if _, err := b.Body(&workload.Request{Endpoint: openai.Completions, Messages: []byte(`[]`)}, "m"); err == nil {
		t.Error("completions from chat messages must fail")
	}
	if _, err := b.Body(&workload.Request{Endpoint: openai.Chat, Messages: []byte(`[{`)}, "m"); err == nil {
		t.Error("invalid recorded messages were sent")
	}
	if _, err := b.Body(&workload.Request{Endpoint: openai.Chat, PromptTokens: -3}, "m"); err == nil {
		t.Error("a negative prompt length was accepted")
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("plain words")
	f.Add("\"\\\x00\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString([]byte("x"), s)
		var got string
		if err := json.Unmarshal(out[1:], &got); err != nil {
			t.Fatalf("%q → %s: %v", s, out, err)
		}
		want, _ := json.Marshal(s)
		var wantS string
		_ = json.Unmarshal(want, &wantS)
		if got != wantS {
			t.Fatalf("%q round-trips to %q, encoding/json gives %q", s, got, wantS)
		}
	})
}

// BenchmarkPrompt12k measures whole request bodies at Mooncake conversation
// lengths (12,000 tokens, 24 blocks of 512). "shared" reuses 23 cached
// blocks and makes the last one new, as a conversation's next turn does;
// "fresh" makes every block new; "unique" has no hash ids.
func BenchmarkPrompt12k(b *testing.B) {
	for _, mode := range []string{"shared", "fresh", "unique"} {
		b.Run(mode, func(b *testing.B) {
			bl := newBuilder(b)
			hash := ids(24, 0)
			b.ReportAllocs()
			cpu0 := cpuTime()
			i := 0
			for b.Loop() {
				i++
				req := &workload.Request{Index: i, PromptTokens: 12000, BlockTokens: 512, HashIDs: hash, Stream: true, OutputTokens: 100}
				switch mode {
				case "shared":
					hash[23] = uint32(1000 + i)
				case "fresh":
					for j := range hash {
						hash[j] = uint32(i*24 + j)
					}
				case "unique":
					req.HashIDs = nil
				}
				if _, err := bl.Body(req, "m"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "prompts/s")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "prompts/cpu-s")
			}
		})
	}
}

// BenchmarkMooncakeTraceBodies builds the bodies of the public Mooncake
// trace's requests in order (mean 12,000 prompt tokens; blocks repeat as
// the trace repeats them, so some come from the cache and some are new):
// the synthesis cost of a real replay.
func BenchmarkMooncakeTraceBodies(b *testing.B) {
	src, err := workload.Open("mooncake:"+filepath.Join(tracestest.Dir(b), tracestest.Mooncake), workload.OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var reqs []workload.Request
	for {
		r, err := src.Next()
		if err != nil {
			break
		}
		reqs = append(reqs, r)
	}
	bl := newBuilder(b)
	b.ReportAllocs()
	cpu0 := cpuTime()
	i := 0
	for b.Loop() {
		if _, err := bl.Body(&reqs[i%len(reqs)], "m"); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "prompts/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "prompts/cpu-s")
	}
}

func ExampleBuilder_Prompt() {
	b, _ := New(Options{Seed: 1})
	p, _ := b.Prompt(&workload.Request{PromptTokens: 8, HashIDs: []uint32{1}, BlockTokens: 512})
	fmt.Println(b.CountTokens(p))
	// Output: 8
}

func TestHugeBlocksAreNotCached(t *testing.T) {
	b := newBuilder(t)
	p, err := b.Prompt(&workload.Request{PromptTokens: 300, BlockTokens: 1 << 30, HashIDs: []uint32{1}})
	if err != nil || b.CountTokens(p) != 300 || b.blocks.len() != 0 {
		t.Fatalf("%v, %d tokens, %d cached", err, b.CountTokens(p), b.blocks.len())
	}
	longer, _ := b.Prompt(&workload.Request{PromptTokens: 400, BlockTokens: 1 << 30, HashIDs: []uint32{1}})
	if !strings.HasPrefix(longer, p) {
		t.Error("uncached blocks lost the prefix property")
	}
}

// TestTokenCountsAddAcrossBlockJoins checks the property caching relies
// on: a prompt's blocks, tokenized one by one, add up to the whole prompt
// tokenized at once, for every encoding and for cuts at any word.
func TestTokenCountsAddAcrossBlockJoins(t *testing.T) {
	for _, enc := range []tokenizer.Encoding{tokenizer.Cl100kBase, tokenizer.O200kBase} {
		b, err := New(Options{Encoding: string(enc), Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := b.Prompt(&workload.Request{PromptTokens: 8*100 + 37, BlockTokens: 100, HashIDs: ids(9, 40)})
		sum := 0
		for _, blk := range blocksOf(p, 100) {
			sum += encodeCount(t, enc, blk)
		}
		if whole := encodeCount(t, enc, p); sum != whole || whole != 837 {
			t.Errorf("%s: blocks count %d tokens one by one, %d together (want 837)", enc, sum, whole)
		}
		// every pair of vocabulary words stays two tokens when joined
		for i, w := range b.words {
			v := b.words[(i*7+3)%len(b.words)]
			if n := b.CountTokens(w + v); n != 2 {
				t.Errorf("%s: %q+%q is %d tokens", enc, w, v, n)
			}
		}
	}
}

// TestHuggingFaceTokenizers synthesises prompts under real tokenizer.json
// files (Llama 3, Qwen 3: byte-level; Llama 2: metaspace with a leading
// token) and checks every length is exact under that tokenizer.
func TestHuggingFaceTokenizers(t *testing.T) {
	dir := testenv.Need(t, "REPRISE_TOKENIZERS", "`make test` fetches the tokenizer.json files and sets it")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "tokenizer.json"))
	if len(files) == 0 {
		t.Fatalf("no */tokenizer.json under %s", dir)
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			tok, err := hf.LoadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b, err := New(Options{Tokenizer: tok, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			for _, req := range []workload.Request{
				{Index: 1, PromptTokens: 1},
				{Index: 2, PromptTokens: 37},
				{Index: 3, PromptTokens: 1500, HashIDs: []uint32{1, 2, 3}, BlockTokens: 512},
				{Index: 4, PromptTokens: 700, HashIDs: []uint32{1, 9}, BlockTokens: 512},
			} {
				p, err := b.Prompt(&req)
				if err != nil {
					t.Fatal(err)
				}
				// The shortest prompt is one word, plus a metaspace
				// tokenizer's leading token.
				want := max(req.PromptTokens, 1+b.offset)
				if n, _ := tok.Count(p); n != want {
					t.Errorf("request %d: %d tokens, want %d", req.Index, n, want)
				}
			}
			t.Logf("%d single-token words, offset %d", len(b.words), b.offset)
		})
	}
}

// TestServerTokenizer calibrates against a real /tokenize endpoint (the
// sim's, which counts with cl100k_base) and checks prompts count exactly
// there.
func TestServerTokenizer(t *testing.T) {
	url, _ := simtest.Start(t)
	tok, err := hf.Open("server", hf.Options{Target: url, Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Tokenizer: tok, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 64, 999} {
		p, err := b.Prompt(&workload.Request{Index: n, PromptTokens: n})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tok.Count(p); err != nil || got != n {
			t.Errorf("%d-token prompt: server counts %d, %v", n, got, err)
		}
	}
}

// TestPrefixSharingIsExact checks the prefix structure at Mooncake's block
// size and at a small one (vLLM's default KV block of 16 tokens): two
// requests whose ids agree in exactly the first k positions share exactly
// k blocks of prompt text — the common prefix of their words is k×block
// words long, no shorter and no longer — even when their ids agree again
// after the first difference (a block depends on every id before it, as a
// KV cache's prefix does).
func TestPrefixSharingIsExact(t *testing.T) {
	b := newBuilder(t)
	// words cuts a prompt before every space: " the", " river", ...
	words := func(p string) []string {
		var out []string
		for len(p) > 0 {
			i := strings.IndexByte(p[1:], ' ') + 1
			if i == 0 {
				i = len(p)
			}
			out, p = append(out, p[:i]), p[i:]
		}
		return out
	}
	for _, block := range []int{16, 512} {
		const n = 6
		a := []uint32{40, 41, 42, 43, 44, 45}
		pa, err := b.Prompt(&workload.Request{Index: 1, PromptTokens: n * block, BlockTokens: block, HashIDs: a})
		if err != nil {
			t.Fatal(err)
		}
		wa := words(pa)
		if len(wa) != n*block || b.CountTokens(pa) != n*block {
			t.Fatalf("block %d: %d words, %d tokens", block, len(wa), b.CountTokens(pa))
		}
		for k := 0; k <= n; k++ {
			other := append([]uint32(nil), a...)
			if k < n {
				other[k] = 900 + uint32(k) // differs at k only: ids after k agree again
			}
			pc, err := b.Prompt(&workload.Request{Index: 2, PromptTokens: n * block, BlockTokens: block, HashIDs: other})
			if err != nil {
				t.Fatal(err)
			}
			wc := words(pc)
			common := 0
			for common < len(wa) && common < len(wc) && wa[common] == wc[common] {
				common++
			}
			if common != k*block {
				t.Errorf("block size %d, %d equal leading ids: the prompts share %d leading words, want exactly %d", block, k, common, k*block)
			}
			if shared := strings.Join(wa[:k*block], ""); k > 0 && b.CountTokens(shared) != k*block {
				t.Errorf("block size %d: the shared text is not %d tokens", block, k*block)
			}
			for j := k + 1; j < n; j++ { // equal ids after a difference make different blocks
				if strings.Join(wa[j*block:(j+1)*block], "") == strings.Join(wc[j*block:(j+1)*block], "") {
					t.Errorf("block size %d: block %d is identical though an earlier id (%d) differs", block, j, k)
				}
			}
		}
	}
}
