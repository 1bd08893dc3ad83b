package engine

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/workload"
)

// keyedPrompts builds a ~500-token prompt per key (the request's index
// modulo keys): its first words differ by key, so no two keys share a
// cached block, and requests with the same key send the same prompt.
type keyedPrompts struct{ keys int }

var _ BodyBuilder = keyedPrompts{}

var filler = strings.Repeat(" alpha beta gamma delta", 125)

func (k keyedPrompts) Body(req *workload.Request, model string) ([]byte, error) {
	prompt := fmt.Sprintf("request %d:%s", req.Index%k.keys, filler)
	return fmt.Appendf(nil, `{"model":"m","stream":true,"max_tokens":%d,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":%q}]}`,
		req.OutputTokens, prompt), nil
}

// Against the simulator's prefix cache, a second pass over the same
// prompts is served from the cache: the server reports nearly every prompt
// token cached, the replayer records it, and the time to first token
// falls far below the first pass's (300 µs of prefill per uncached token,
// 4.8 ms a block, makes the first pass's ~150 ms of prefill dwarf any
// scheduling noise). This is what makes a sweep that reuses its prompts
// look faster at every later point (issue 18).
func TestResentPromptsAreServedFromTheCache(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.TTFTBase, cfg.PrefillPerToken, cfg.ITLBase, cfg.ITLPerSeq, cfg.Jitter = 2*time.Millisecond, 300*time.Microsecond, time.Millisecond, 0, 0
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s)
	defer srv.Close()

	const keys = 6
	src := &sliceSource{}
	for i := range 2 * keys {
		src.reqs = append(src.reqs, workload.Request{Index: i, Endpoint: openai.Chat, Stream: true, OutputTokens: 2})
	}
	run, err := Execute(context.Background(), Config{Target: srv.URL, Profile: ProfileSynchronous}, src, keyedPrompts{keys})
	if err != nil {
		t.Fatal(err)
	}
	var fresh, again []time.Duration
	var prompt, cached int
	for _, r := range run.Results {
		if !r.OK() || !r.TokensFromUsage || r.FirstToken == 0 || r.PromptTokens < 400 {
			t.Fatalf("request %d: %+v", r.Index, r)
		}
		ttft := r.FirstToken - r.Sent
		if r.Index < keys {
			if r.CachedTokens != 0 {
				t.Errorf("first pass, request %d: %d cached tokens of a prompt never sent before", r.Index, r.CachedTokens)
			}
			fresh = append(fresh, ttft)
			continue
		}
		prompt += r.PromptTokens
		cached += r.CachedTokens
		again = append(again, ttft)
	}
	if share := float64(cached) / float64(prompt); share < 0.9 {
		t.Errorf("second pass: %d of %d prompt tokens cached (%.2f), want nearly all", cached, prompt, share)
	}
	slices.Sort(fresh)
	slices.Sort(again)
	mf, ma := fresh[keys/2], again[keys/2]
	if mf < 4*ma {
		t.Errorf("median TTFT %v for fresh prompts, %v for cached ones: want the cached at least 4 times faster", mf, ma)
	}
	t.Logf("median TTFT: fresh %v, cached %v; %d of %d prompt tokens cached", mf, ma, cached, prompt)
	if st := s.Stats(); st.PrefixHitTokens != int64(cached) {
		t.Errorf("the simulator counted %d cache hit tokens, the replayer recorded %d", st.PrefixHitTokens, cached)
	}
}
