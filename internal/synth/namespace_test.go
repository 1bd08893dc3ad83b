package synth_test

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
	"github.com/reprise-llm/reprise/internal/synth"
	"github.com/reprise-llm/reprise/internal/workload"
	"github.com/reprise-llm/reprise/internal/workload/workloadtest"
)

// unnamedCases are the requests testdata/unnamed-namespace.golden pins:
// prompts without ids, with ids at the default and at 64-token blocks,
// longer than their ids, and a whole-context session stream.
func unnamedCases() []workload.Request {
	return []workload.Request{
		{Index: 0, ID: "lone", PromptTokens: 300},
		{Index: 7, ID: "lone7", PromptTokens: 1},
		{Index: 1, ID: "ids", PromptTokens: 1200, HashIDs: []uint32{0, 1, 2}},
		{Index: 2, ID: "ids64", PromptTokens: 200, HashIDs: []uint32{0, 1, 5, 9}, BlockTokens: 64},
		{Index: 3, ID: "longer", PromptTokens: 300, HashIDs: []uint32{3}, BlockTokens: 64},
		{Index: 4, ID: "session", PromptTokens: 150, Session: "s1", Convention: workload.ConventionWhole},
	}
}

// The unnamed namespace is the content synthesised before there were
// namespaces, byte for byte: results and tests compared across versions
// rely on it. The golden digests were made by the code before the change.
func TestUnnamedNamespaceKeepsEarlierBytes(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "unnamed-namespace.golden"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			var seed, id, sum string
			if _, err := fmt.Sscan(line, &seed, &id, &sum); err != nil {
				t.Fatalf("golden line %q: %v", line, err)
			}
			want[seed+" "+id] = sum
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, seed := range []int64{0, 1, 42} {
		named, err := synth.New(synth.Options{Seed: seed, Namespace: "run-2"})
		if err != nil {
			t.Fatal(err)
		}
		builders := map[string]*synth.Builder{"Options{}": newBuilder(t, seed, ""), `WithNamespace("")`: named.WithNamespace("")}
		for how, b := range builders {
			for _, req := range unnamedCases() {
				p, err := b.Prompt(&req)
				if err != nil {
					t.Fatal(err)
				}
				key := fmt.Sprint(seed, " ", req.ID)
				if got := fmt.Sprintf("%x", sha256.Sum256([]byte(p))); got != want[key] {
					t.Errorf("%s, seed %d, request %s: digest %s, want %s", how, seed, req.ID, got, want[key])
				}
				checked++
			}
		}
	}
	if checked != 2*len(want) {
		t.Errorf("checked %d prompts against %d golden digests (twice each)", checked, len(want))
	}
}

func newBuilder(t *testing.T, seed int64, namespace string) *synth.Builder {
	t.Helper()
	b, err := synth.New(synth.Options{Seed: seed, Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	if b.Namespace() != namespace {
		t.Fatalf("namespace %q, want %q", b.Namespace(), namespace)
	}
	return b
}

// namespaceWorkload is a synthetic workload with shared prefixes (a few
// system prompts) and multi-turn conversations (history as shared blocks),
// plus lone prompts without ids.
func namespaceWorkload(t *testing.T) []workload.Request {
	t.Helper()
	reqs := workloadtest.Read(t, `synthetic:{"prompt_tokens":100,"prompt_tokens_stdev":40,"output_tokens":30,"samples":12,"turns":3,"seed":5,`+
		`"prefix_buckets":[{"bucket_weight":1,"prefix_count":2,"prefix_tokens":300}]}`)
	for i := range 5 {
		reqs = append(reqs, workload.Request{Index: len(reqs), PromptTokens: 50 + 30*i})
	}
	return reqs
}

// blocksOf cuts a prompt into its blocks' texts (words are one token each,
// a block is BlockTokens words).
func blocksOf(p string, req workload.Request) []string {
	size := req.BlockTokens
	if size <= 0 {
		size = synth.DefaultBlockTokens
	}
	words := strings.Fields(p)
	var out []string
	for i := 0; i < len(words); i += size {
		out = append(out, strings.Join(words[i:min(i+size, len(words))], " "))
	}
	return out
}

// commonBlocks is how many leading blocks two prompts share.
func commonBlocks(a, b []string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// The same workload in two namespaces: other words, no block in common,
// the same token lengths, and the same sharing between requests. The same
// namespace gives the same bytes, however the Builder was made.
func TestNamespacesGiveFreshContentWithTheSameStructure(t *testing.T) {
	reqs := namespaceWorkload(t)
	shared := 0
	for _, r := range reqs {
		if len(r.HashIDs) > 0 {
			shared++
		}
	}
	if shared < len(reqs)/2 {
		t.Fatalf("only %d of %d requests carry hash ids: the workload does not exercise shared prefixes", shared, len(reqs))
	}
	base := newBuilder(t, 3, "")
	spaces := map[string][]string{}
	for _, ns := range []string{"", "bench-1", "bench-2"} {
		b := base.WithNamespace(ns)
		again := newBuilder(t, 3, ns)
		var prompts []string
		for i := range reqs {
			p, err := b.Prompt(&reqs[i])
			if err != nil {
				t.Fatal(err)
			}
			if q, err := again.Prompt(&reqs[i]); err != nil || q != p {
				t.Fatalf("namespace %q, request %d: a Builder made with New gives other bytes than WithNamespace (%v)", ns, i, err)
			}
			if n := b.CountTokens(p); n != max(reqs[i].PromptTokens, 1) {
				t.Errorf("namespace %q, request %d: %d tokens, want %d", ns, i, n, reqs[i].PromptTokens)
			}
			prompts = append(prompts, p)
		}
		spaces[ns] = prompts
	}
	if base.Namespace() != "" {
		t.Errorf("WithNamespace changed the original Builder's namespace to %q", base.Namespace())
	}
	names := []string{"", "bench-1", "bench-2"}
	for x, nx := range names {
		for _, ny := range names[x+1:] {
			blocks := map[string]bool{}
			for i, p := range spaces[nx] {
				for _, blk := range blocksOf(p, reqs[i]) {
					blocks[blk] = true
				}
			}
			for i, p := range spaces[ny] {
				for j, blk := range blocksOf(p, reqs[i]) {
					if blocks[blk] {
						t.Fatalf("namespaces %q and %q share block %d of request %d", nx, ny, j, i)
					}
				}
			}
			// The sharing structure: every pair of requests shares as many
			// leading blocks in one namespace as in the other.
			sharing := 0
			for i := range reqs {
				for j := i + 1; j < len(reqs); j++ {
					a := commonBlocks(blocksOf(spaces[nx][i], reqs[i]), blocksOf(spaces[nx][j], reqs[j]))
					b := commonBlocks(blocksOf(spaces[ny][i], reqs[i]), blocksOf(spaces[ny][j], reqs[j]))
					if a != b {
						t.Errorf("requests %d and %d share %d leading blocks in %q, %d in %q", i, j, a, nx, b, ny)
					}
					if a > 0 {
						sharing++
					}
				}
			}
			if sharing == 0 {
				t.Fatal("no two requests share a prefix: the test checks nothing")
			}
		}
	}
}

// Issue 18: a second benchmark in a namespace of its own finds nothing of
// the first in the server's prefix cache, while its own requests share
// their prefix as the first's did. Against the simulator (prefix cache of
// 16-token blocks).
func TestNamespaceMissesAnEarlierBenchmarksCache(t *testing.T) {
	simURL, _ := simtest.Start(t, func(c *sim.Config) {
		c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq, c.Jitter = 0, 0, 0, 0, 0
	})
	// Two requests sharing 4 blocks of 64 tokens, each with one of its own.
	reqs := []workload.Request{
		{Index: 0, PromptTokens: 320, BlockTokens: 64, HashIDs: []uint32{0, 1, 2, 3, 4}, OutputTokens: 1},
		{Index: 1, PromptTokens: 320, BlockTokens: 64, HashIDs: []uint32{0, 1, 2, 3, 5}, OutputTokens: 1},
	}
	base := newBuilder(t, 1, "")
	for _, pass := range []struct {
		ns   string
		want [2]int // cached tokens of the two requests
	}{
		{"", [2]int{0, 256}},
		{"bench-2", [2]int{0, 256}}, // fresh content, the same sharing
		{"", [2]int{320, 320}},      // a rerun in the same namespace: all cached, the symptom
		{"bench-3", [2]int{0, 256}},
	} {
		b := base.WithNamespace(pass.ns)
		var cached [2]int
		for i := range reqs {
			body, err := b.Body(&reqs[i], "m")
			if err != nil {
				t.Fatal(err)
			}
			_, cached[i] = chatUsage(t, simURL, body)
		}
		if cached != pass.want {
			t.Errorf("namespace %q: cached tokens %v, want %v", pass.ns, cached, pass.want)
		}
	}
}
