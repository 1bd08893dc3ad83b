package synth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/proxy"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
	"github.com/reprise-llm/reprise/internal/synth"
	"github.com/reprise-llm/reprise/internal/workload"
	"github.com/reprise-llm/reprise/internal/workload/workloadtest"
)

// chatUsage posts body to url's chat endpoint and returns the usage the
// server reported.
func chatUsage(t *testing.T, url string, body []byte) (prompt, cached int) {
	t.Helper()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, %v: %.300s", resp.StatusCode, err, b)
	}
	var out struct {
		Usage struct {
			PromptTokens        int `json:"prompt_tokens"`
			PromptTokensDetails struct {
				CachedTokens int `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer %.300s: %v", b, err)
	}
	return out.Usage.PromptTokens, out.Usage.PromptTokensDetails.CachedTokens
}

// Issue 18, done when: a shared 700-character system prompt is captured
// and replayed as shared. Chat requests with one system prompt and
// different user turns go through the real proxy, hashing at its default
// block, to the simulator; every record shares the ids of the blocks the
// system message fills, and the replay synthesises byte-identical prefixes
// of that many blocks, which the simulator's prefix cache then hits.
func TestShortSystemPromptCapturedAndReplayedAsShared(t *testing.T) {
	simURL, _ := simtest.Start(t, func(c *sim.Config) {
		c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq, c.Jitter = 0, 0, 0, 0, 0
	})
	dir := filepath.Join(t.TempDir(), "cap")
	hasher := capture.NewHasher(nil, 0) // the proxy's default block
	origin := time.Now()
	w, err := capture.NewWriter(dir, capture.WriterOptions{Manifest: capture.Manifest{
		Start: origin, Block: hasher.BlockChars(), KeyID: hasher.KeyID(), Content: capture.ContentHashed}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(proxy.Config{Upstream: simURL}, w, hasher, origin, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	system := strings.Repeat("You are the support assistant of a bicycle shop. Answer in two sentences, politely. ", 9)[:700]
	users := []string{
		"My chain keeps slipping on the smallest cog when I climb. What should I check first, and can I fix it at home?",
		"Do you sell tubeless tyres in 700x32, and how long does fitting take if I bring the wheel in on Saturday morning?",
		"The rear brake squeals in the rain.",
		"I would like to book a full service for a cargo bike with an electric motor; which days next week have room, and what does it cost?",
	}
	for _, u := range users {
		msgs, _ := json.Marshal([]map[string]string{{"role": "system", "content": system}, {"role": "user", "content": u}})
		chatUsage(t, front.URL, []byte(`{"model":"m","max_tokens":2,"messages":`+string(msgs)+`}`))
	}
	front.Close()
	p.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// The capture: the system message's whole blocks are shared ids.
	// The hashed text is "system\x1f" + content + "\x1e" + "user\x1f"...
	shared := (len("system\x1f") + len(system)) / capture.DefaultBlockChars
	if shared < 2 {
		t.Fatalf("the test's system prompt fills %d blocks of %d characters; the test wants at least 2", shared, capture.DefaultBlockChars)
	}
	reqs := workloadtest.Read(t, dir)
	if len(reqs) != len(users) {
		t.Fatalf("%d requests replayed, want %d", len(reqs), len(users))
	}
	first := reqs[0].HashIDs
	for i, r := range reqs {
		if r.Recorded.Block != capture.DefaultBlockChars || len(r.HashIDs) <= shared {
			t.Fatalf("request %d: block %d, ids %v; want blocks of %d and more than %d ids", i, r.Recorded.Block, r.HashIDs, capture.DefaultBlockChars, shared)
		}
		for k := range shared + 1 {
			if (r.HashIDs[k] == first[k]) != (k < shared || i == 0) {
				t.Fatalf("request %d: ids %v vs the first's %v: want exactly the first %d shared", i, r.HashIDs, first, shared)
			}
		}
	}
	fine, coarse, err := workload.CapturePrefixReuse(dir, workload.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := int64((len(users) - 1) * shared * capture.DefaultBlockChars); fine.ReusedChars != want || coarse.ReusedChars != 0 {
		t.Errorf("reuse: fine %d characters, coarse %d; want %d and 0 (no whole 2048-character block repeats)", fine.ReusedChars, coarse.ReusedChars, want)
	}
	t.Logf("prefix reuse: %.1f%% of characters at %d-character blocks, %.1f%% at %d", 100*fine.CharShare(), fine.BlockChars, 100*coarse.CharShare(), coarse.BlockChars)

	// The replay: the shared blocks are byte-identical text of shared ×
	// BlockTokens tokens, the next block differs.
	bld, err := synth.New(synth.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	bt := reqs[0].BlockTokens
	var prefix string
	for i := range reqs {
		r := &reqs[i]
		if r.BlockTokens != bt {
			t.Fatalf("request %d: blocks of %d tokens, the first's %d", i, r.BlockTokens, bt)
		}
		pr, err := bld.Prompt(r)
		if err != nil {
			t.Fatal(err)
		}
		words := strings.Fields(pr)
		if len(words) != r.PromptTokens || len(words) <= shared*bt {
			t.Fatalf("request %d: %d words for %d prompt tokens; want more than %d", i, len(words), r.PromptTokens, shared*bt)
		}
		head := strings.Join(words[:shared*bt], " ")
		if i == 0 {
			prefix = head
			if n := bld.CountTokens(" " + head); n != shared*bt {
				t.Errorf("the shared prefix is %d tokens, want %d", n, shared*bt)
			}
		} else if head != prefix {
			t.Fatalf("request %d does not start with the shared %d blocks", i, shared)
		}
		// The next block (whole or cut to fit) starts differently.
		for j := range i {
			other, _ := bld.Prompt(&reqs[j])
			ow := strings.Fields(other)
			end := min(len(ow), len(words), (shared+1)*bt)
			if strings.Join(ow[shared*bt:end], " ") == strings.Join(words[shared*bt:end], " ") {
				t.Errorf("requests %d and %d share block %d too", j, i, shared+1)
			}
		}
	}

	// Sent to the simulator (its prefix cache has 16-token blocks), every
	// later request finds the shared prefix cached.
	for i := range reqs {
		body, err := bld.Body(&reqs[i], "m")
		if err != nil {
			t.Fatal(err)
		}
		prompt, cached := chatUsage(t, simURL, body)
		if prompt != reqs[i].PromptTokens {
			t.Errorf("request %d: the simulator counts %d prompt tokens, want %d", i, prompt, reqs[i].PromptTokens)
		}
		want := shared * bt / 16 * 16
		if i == 0 {
			want = 0
		}
		if cached < want || cached > (shared+1)*bt {
			t.Errorf("request %d: %d cached tokens, want %d to %d (the shared blocks, in whole cache blocks)", i, cached, want, (shared+1)*bt)
		}
	}
}

// Another namespace gives other words with the same lengths and the same
// shared blocks.
func ExampleBuilder_WithNamespace() {
	b, err := synth.New(synth.Options{Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	a := workload.Request{PromptTokens: 80, HashIDs: []uint32{0, 1}, BlockTokens: 64}
	c := workload.Request{PromptTokens: 80, HashIDs: []uint32{0, 2}, BlockTokens: 64}
	var unnamed string
	for _, ns := range []string{"", "bench-2"} {
		nb := b.WithNamespace(ns)
		pa, _ := nb.Prompt(&a)
		pc, _ := nb.Prompt(&c)
		if ns == "" {
			unnamed = pa
		}
		fmt.Printf("%q: %d and %d tokens, first block shared: %v, text of its own: %v\n", ns, nb.CountTokens(pa), nb.CountTokens(pc),
			strings.Join(strings.Fields(pa)[:64], " ") == strings.Join(strings.Fields(pc)[:64], " "), ns == "" || pa != unnamed)
	}
	// Output:
	// "": 80 and 80 tokens, first block shared: true, text of its own: true
	// "bench-2": 80 and 80 tokens, first block shared: true, text of its own: true
}
