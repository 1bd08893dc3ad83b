package stats

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/reprise-llm/reprise/internal/engine"
)

// The cached-token share counts only successful, measured requests whose
// counts came from usage; retried requests count whatever their outcome
// (measured ones only); Online's shards merge to the same figures.
func TestCachedShareAndRetriedRequests(t *testing.T) {
	ok := func(i, prompt, cached int, usage bool, retries int) engine.Result {
		return engine.Result{Index: i, Status: 200, Sent: ms(float64(i)), FirstToken: ms(float64(i) + 5), LastToken: ms(float64(i) + 5), End: ms(float64(i) + 6),
			PromptTokens: prompt, CachedTokens: cached, TokensFromUsage: usage, OutputTokens: 1, Retries: retries}
	}
	results := []engine.Result{
		ok(0, 1000, 960, true, 1), // a resend served from the cache, after one re-send
		ok(1, 500, 0, true, 0),    // a fresh prompt
		ok(2, 300, 0, false, 0),   // no usage: not in the share
		{Index: 3, Status: 500, Sent: ms(3), End: ms(4), Retries: 1},                                                                          // failed after a re-send
		{Index: 4, Status: 200, Err: "stream error: x", Sent: ms(4), End: ms(5), PromptTokens: 200, CachedTokens: 100, TokensFromUsage: true}, // failed: not in the share
	}
	warm := ok(5, 100, 100, true, 2)
	warm.Phase = engine.PhaseWarmup // excluded from everything
	results = append(results, warm)

	wantShare := float64(960) / float64(1000+500)
	on := newOnline(Options{}, 3)
	for i := range results {
		on.Record(&results[i])
	}
	for name, m := range map[string]Metrics{"Summarize": Summarize(results, Options{}), "Online": on.Metrics()} {
		if m.CachedTokenShare != wantShare || m.CachedTokenRequests != 1 || m.RetriedRequests != 2 {
			t.Errorf("%s: share %v over %d requests, %d retried; want %v, 1, 2", name, m.CachedTokenShare, m.CachedTokenRequests, m.RetriedRequests, wantShare)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]any
		if err := json.Unmarshal(b, &top); err != nil {
			t.Fatal(err)
		}
		if top["cached_token_share"] != wantShare || top["cached_token_requests"] != 1.0 || top["retried_requests"] != 2.0 {
			t.Errorf("%s JSON: share %v requests %v retried %v", name, top["cached_token_share"], top["cached_token_requests"], top["retried_requests"])
		}
	}
}

// Without cached tokens or re-sends the new fields are absent from the
// JSON, and re-sends change no other figure: results files written before
// them read the same.
func TestNoCacheNoRetriesLeaveTheJSONAsItWas(t *testing.T) {
	plain := fixture()
	for i := range plain {
		plain[i].CachedTokens = 0
	}
	retried := fixture()
	for i := range retried {
		retried[i].CachedTokens = 0
		retried[i].Retries = i % 2
	}
	decode := func(rs []engine.Result) map[string]any {
		b, err := json.Marshal(Summarize(rs, Options{}))
		if err != nil {
			t.Fatal(err)
		}
		var top map[string]any
		if err := json.Unmarshal(b, &top); err != nil {
			t.Fatal(err)
		}
		return top
	}
	a, b := decode(plain), decode(retried)
	for _, k := range []string{"cached_token_share", "cached_token_requests", "retried_requests"} {
		if _, ok := a[k]; ok {
			t.Errorf("%s present with nothing cached or re-sent", k)
		}
	}
	if b["retried_requests"] != 2.0 { // indices 1 and 3
		t.Errorf("retried_requests %v, want 2", b["retried_requests"])
	}
	delete(b, "retried_requests")
	if !reflect.DeepEqual(a, b) {
		t.Error("re-sends changed figures other than retried_requests")
	}
}
