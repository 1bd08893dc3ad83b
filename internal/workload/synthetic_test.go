package workload

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSynthetic(t *testing.T) {
	s, err := ParseSynthetic("prompt_tokens=100,prompt_tokens_stdev=30,prompt_tokens_min=80,prompt_tokens_max=120,output_tokens=10,samples=500,seed=3")
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, s)
	if len(reqs) != 500 {
		t.Fatal(len(reqs))
	}
	sum, clipped := 0, 0
	for i, r := range reqs {
		if r.PromptTokens < 80 || r.PromptTokens > 120 || r.OutputTokens != 10 || r.Offset != 0 || r.Index != i ||
			r.Session != "" || r.HashIDs != nil {
			t.Fatalf("%+v", r)
		}
		if r.PromptTokens == 80 || r.PromptTokens == 120 {
			clipped++
		}
		sum += r.PromptTokens
	}
	if mean := float64(sum) / 500; mean < 95 || mean > 105 {
		t.Errorf("mean %v", mean)
	}
	// P(|z| > 2/3) is about half: clipping must be visible
	if clipped < 150 || clipped > 350 {
		t.Errorf("%d of 500 clipped, want about half", clipped)
	}
	again, _ := ParseSynthetic("prompt_tokens=100,prompt_tokens_stdev=30,prompt_tokens_min=80,prompt_tokens_max=120,output_tokens=10,samples=500,seed=3")
	if !reflect.DeepEqual(drain(t, again), reqs) {
		t.Error("the same seed gave different requests")
	}
}

// TestSyntheticGuideLLMRanges checks GuideLLM's IntegerRangeSampler rules:
// no stdev and a range means uniform; stdev without a range clips at
// mean ∓ 5 stdev with a floor of 1; omitted output_tokens leaves it to the
// server.
func TestSyntheticGuideLLMRanges(t *testing.T) {
	s, err := ParseSynthetic("prompt_tokens=100,prompt_tokens_min=50,prompt_tokens_max=150,samples=3000")
	if err != nil {
		t.Fatal(err)
	}
	var lo, hi, sum int
	for _, r := range drain(t, s) {
		if r.PromptTokens < 50 || r.PromptTokens > 150 || r.OutputTokens != 0 {
			t.Fatalf("%+v", r)
		}
		sum += r.PromptTokens
		if r.PromptTokens < 75 {
			lo++
		}
		if r.PromptTokens > 125 {
			hi++
		}
	}
	// uniform: a quarter below 75 and a quarter above 125 (a normal draw
	// would put far fewer there)
	if lo < 600 || lo > 900 || hi < 600 || hi > 900 {
		t.Errorf("uniform draw: %d below 75, %d above 125 of 3000", lo, hi)
	}
	for spec, want := range map[string][2]int{
		"prompt_tokens=10,prompt_tokens_stdev=4":        {1, 30},
		"prompt_tokens=1000,prompt_tokens_stdev=10":     {950, 1050},
		"prompt_tokens=7":                               {7, 7},
		"prompt_tokens=7,prompt_tokens_min=9":           {9, 9},
		"prompt_tokens=7,prompt_tokens_max=3":           {1, 3},
		"prompt_tokens=0.4,prompt_tokens_stdev=0.1":     {1, 1},
		"prompt_tokens=20,prompt_tokens_min=5,seed=-12": {5, 20},
	} {
		s, err := ParseSynthetic(spec)
		if err != nil {
			if spec == "prompt_tokens=0.4,prompt_tokens_stdev=0.1" && strings.Contains(err.Error(), "at least 1") {
				continue
			}
			t.Fatalf("%s: %v", spec, err)
		}
		for _, r := range drain(t, Limit(s, 2000)) {
			if r.PromptTokens < want[0] || r.PromptTokens > want[1] {
				t.Fatalf("%s: %d outside %v", spec, r.PromptTokens, want)
			}
		}
	}
	var sd float64
	s, _ = ParseSynthetic("prompt_tokens=1000,prompt_tokens_stdev=100,output_tokens=5,samples=2000,seed=9")
	reqs := drain(t, s)
	for _, r := range reqs {
		sd += (float64(r.PromptTokens) - 1000) * (float64(r.PromptTokens) - 1000)
	}
	if sd = math.Sqrt(sd / float64(len(reqs))); sd < 90 || sd > 110 {
		t.Errorf("stdev %v, want about 100", sd)
	}
}

// TestSyntheticPrefixBuckets checks that conversations share exactly their
// bucket's prefix block: equal first ids within a prefix, distinct ids
// after it, bucket shares following the weights.
func TestSyntheticPrefixBuckets(t *testing.T) {
	s, err := ParseSynthetic(`{"prompt_tokens":100,"output_tokens":10,"samples":4000,"seed":1,
		"prefix_buckets":[{"bucket_weight":75,"prefix_count":3,"prefix_tokens":256},{"bucket_weight":25,"prefix_count":1,"prefix_tokens":64}]}`)
	if err != nil {
		t.Fatal(err)
	}
	byPrefix := map[uint32]int{}
	seen := map[uint32]bool{}
	for _, r := range drain(t, s) {
		if len(r.HashIDs) == 0 {
			t.Fatalf("no prefix: %+v", r)
		}
		p := r.HashIDs[0]
		byPrefix[p]++
		switch {
		case p < 3 && (r.BlockTokens != 256 || r.PromptTokens != 356 || len(r.HashIDs) != 2):
			t.Fatalf("bucket 0: %+v", r)
		case p == 3 && (r.BlockTokens != 64 || r.PromptTokens != 164 || len(r.HashIDs) != 3):
			t.Fatalf("bucket 1: %+v", r)
		case p > 3:
			t.Fatalf("prefix id %d outside the 4 prefixes", p)
		}
		for _, id := range r.HashIDs[1:] {
			if id < 4 || seen[id] {
				t.Fatalf("a block after the prefix is shared: %+v", r)
			}
			seen[id] = true
		}
	}
	if len(byPrefix) != 4 || byPrefix[3] < 850 || byPrefix[3] > 1150 || byPrefix[0] < 850 || byPrefix[0] > 1150 {
		t.Errorf("prefix use %v, want about 1000 each", byPrefix)
	}
	// GuideLLM's shorthand is one bucket
	s, err = ParseSynthetic("prompt_tokens=10,prefix_tokens=512,prefix_count=2,samples=50")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Spec.PrefixBuckets, []PrefixBucket{{Weight: 100, Count: 2, Tokens: 512}}) {
		t.Errorf("%+v", s.Spec.PrefixBuckets)
	}
	for _, r := range drain(t, s) {
		if r.PromptTokens != 522 || r.HashIDs[0] > 1 {
			t.Fatalf("%+v", r)
		}
	}
}

// TestSyntheticTurns checks conversations: turns in order, each prompt the
// previous prompt plus its output plus new text, ids extending the previous
// turn's, and one think time per conversation.
func TestSyntheticTurns(t *testing.T) {
	s, err := ParseSynthetic("prompt_tokens=200,prompt_tokens_stdev=50,output_tokens=100,turns=4,samples=30,delay=2,delay_stdev=1,prefix_tokens=128,seed=5")
	if err != nil {
		t.Fatal(err)
	}
	reqs := drain(t, s)
	if len(reqs) != 120 {
		t.Fatalf("%d requests, want 30 conversations × 4 turns", len(reqs))
	}
	for c := range 30 {
		conv := reqs[4*c : 4*c+4]
		for k, r := range conv {
			if r.Session != conv[0].Session || r.Turn != k || r.Index != 4*c+k || r.BlockTokens != 128 || r.HashIDs[0] != 0 {
				t.Fatalf("conversation %d turn %d: %+v", c, k, r)
			}
			if k == 0 {
				if r.Delay != 0 {
					t.Fatalf("first turn has a think time: %+v", r)
				}
				continue
			}
			prev := conv[k-1]
			if r.PromptTokens <= prev.PromptTokens+prev.OutputTokens || r.Delay != conv[1].Delay || r.Delay < 0 || r.Delay > 7*time.Second {
				t.Fatalf("turn %d does not extend turn %d: %+v after %+v", k, k-1, r, prev)
			}
			if !slices.Equal(r.HashIDs[:len(prev.HashIDs)], prev.HashIDs) {
				t.Fatalf("turn %d's ids do not extend turn %d's", k, k-1)
			}
		}
	}
	if reqs[0].Session == reqs[4].Session || reqs[1].HashIDs[1] == reqs[5].HashIDs[1] {
		t.Error("two conversations share a session or a block after the prefix")
	}
	// without a prefix, a conversation still chains its turns by ids
	s, _ = ParseSynthetic("prompt_tokens=600,output_tokens=10,turns=2,samples=2")
	reqs = drain(t, s)
	if reqs[0].BlockTokens != 512 || len(reqs[0].HashIDs) != 2 || !slices.Equal(reqs[1].HashIDs[:2], reqs[0].HashIDs) || reqs[1].PromptTokens != 1210 {
		t.Errorf("%+v", reqs[:2])
	}
}

func TestSyntheticErrors(t *testing.T) {
	for spec, want := range map[string][]string{
		"prompt_tokens=1,output_tokns=2":                                          {`"output_tokns"`},
		"prompt_tokens=x,output_tokens=1":                                         {`prompt_tokens="x"`},
		"prompt_tokens=NaN,output_tokens=Inf":                                     {"prompt_tokens", "output_tokens"},
		"prompt_tokens=5,output_tokens=1,samples=0":                               {"samples must be positive"},
		"prompt_tokens=5,prompt_tokens_min=9,prompt_tokens_max=4,output_tokens=1": {"prompt_tokens_max 4 is below prompt_tokens_min 9"},
		"prompt_tokens":                                              {"want key=value", "prompt_tokens is required"},
		"output_tokens=5,output_tokens_stdev=1":                      {"prompt_tokens is required"},
		"prompt_tokens=5,output_tokens_stdev=1":                      {"output_tokens must be set"},
		"prompt_tokens=5,turns=0":                                    {"turns 0"},
		"prompt_tokens=5,samples=2.5":                                {"whole number"},
		"prompt_tokens=5,prefix_buckets=3":                           {"give the spec as JSON"},
		`{"prompt_tokens":5,"prefix_tokens":3,"prefix_buckets":[]}`:  {"mutually exclusive"},
		`{"prompt_tokens":5,"prefix_buckets":[{"bucket_weight":0}]}`: {"bucket_weight >= 1"},
		`{"prompt_tokens":5,"prefix_buckets":[{"weight":1}]}`:        {"unknown field"},
		`{"prompt_tokens":"5"}`:                                      {"want a number"},
		`{"prompt_tokens":5} {}`:                                     {"text after"},
		`{"prompt_tokens":5,"first_prompt_tokens":3}`:                {`unknown key "first_prompt_tokens"`},
	} {
		_, err := ParseSynthetic(spec)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: err = %v, want %q", spec, err, w)
			}
		}
	}
}

// FuzzSyntheticSpec parses arbitrary specs: a spec that parses yields
// Samples × Turns requests with lengths inside the ranges it names.
func FuzzSyntheticSpec(f *testing.F) {
	f.Add("prompt_tokens=256,output_tokens=128,samples=3")
	f.Add("prompt_tokens=1,prompt_tokens_stdev=1e9,output_tokens=1,samples=2")
	f.Add("prompt_tokens=10,prompt_tokens_min=3,prompt_tokens_max=5,output_tokens=2,output_tokens_stdev=4,seed=-1")
	f.Add("prompt_tokens=10,turns=3,prefix_tokens=7,prefix_count=2,delay=0.5,samples=4")
	f.Add(`{"prompt_tokens":10,"prefix_buckets":[{"bucket_weight":1,"prefix_count":2,"prefix_tokens":3},{"prefix_tokens":0}],"samples":5}`)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSynthetic(spec)
		if err != nil {
			return
		}
		n := 0
		plo, _ := s.Spec.Prompt.bounds()
		olo, ohi := s.Spec.Output.bounds()
		for _, r := range drain(t, Limit(s, 200)) {
			n++
			if r.PromptTokens < min(plo, maxSyntheticPrompt) || r.PromptTokens > maxSyntheticPrompt || r.Delay < 0 ||
				(s.Spec.Output.Mean > 0 && (r.OutputTokens < olo || r.OutputTokens > ohi)) ||
				(r.BlockTokens > 0 && len(r.HashIDs) != (r.PromptTokens+r.BlockTokens-1)/r.BlockTokens) {
				t.Fatalf("%q gave %+v", spec, r)
			}
		}
		if want := min(s.Spec.Samples*s.Spec.Turns, 200); n != want {
			t.Fatalf("%q gave %d requests, want %d", spec, n, want)
		}
	})
}

// TestSyntheticEachKey gives every key of the vocabulary its own case and
// checks the requests it makes, and that a bad value is reported naming
// its key.
func TestSyntheticEachKey(t *testing.T) {
	type stats struct{ n, pmin, pmax, omin, omax, sessions, maxTurn int }
	measure := func(reqs []Request) stats {
		s := stats{n: len(reqs), pmin: math.MaxInt, omin: math.MaxInt}
		seen := map[string]bool{}
		for _, r := range reqs {
			s.pmin, s.pmax = min(s.pmin, r.PromptTokens), max(s.pmax, r.PromptTokens)
			s.omin, s.omax = min(s.omin, r.OutputTokens), max(s.omax, r.OutputTokens)
			if r.Session != "" && !seen[r.Session] {
				seen[r.Session] = true
				s.sessions++
			}
			s.maxTurn = max(s.maxTurn, r.Turn)
		}
		return s
	}
	base := "prompt_tokens=100,output_tokens=50,samples=400"
	for _, c := range []struct {
		key, spec string
		ok        func(s stats) bool
	}{
		{"prompt_tokens", "prompt_tokens=77,samples=5", func(s stats) bool { return s.pmin == 77 && s.pmax == 77 && s.omax == 0 }},
		{"prompt_tokens_stdev", base + ",prompt_tokens_stdev=10", func(s stats) bool { return s.pmin < 90 && s.pmax > 110 && s.pmin >= 50 && s.pmax <= 150 }},
		{"prompt_tokens_min", base + ",prompt_tokens_stdev=10,prompt_tokens_min=98", func(s stats) bool { return s.pmin == 98 && s.pmax > 110 }},
		{"prompt_tokens_max", base + ",prompt_tokens_stdev=10,prompt_tokens_max=102", func(s stats) bool { return s.pmax == 102 && s.pmin < 90 }},
		{"output_tokens", "prompt_tokens=10,output_tokens=33,samples=5", func(s stats) bool { return s.omin == 33 && s.omax == 33 }},
		{"output_tokens_stdev", base + ",output_tokens_stdev=5", func(s stats) bool { return s.omin < 45 && s.omax > 55 && s.omin >= 25 && s.omax <= 75 }},
		{"output_tokens_min", base + ",output_tokens_stdev=5,output_tokens_min=49", func(s stats) bool { return s.omin == 49 && s.omax > 55 }},
		{"output_tokens_max", base + ",output_tokens_stdev=5,output_tokens_max=51", func(s stats) bool { return s.omax == 51 && s.omin < 45 }},
		{"samples", "prompt_tokens=5,samples=17", func(s stats) bool { return s.n == 17 }},
		{"turns", "prompt_tokens=5,output_tokens=2,samples=4,turns=3", func(s stats) bool {
			return s.n == 12 && s.sessions == 4 && s.maxTurn == 2 && s.pmax == 5+2+5+2+5
		}},
	} {
		s, err := ParseSynthetic(c.spec)
		if err != nil {
			t.Errorf("%s: %v", c.key, err)
			continue
		}
		if got := measure(drain(t, s)); !c.ok(got) {
			t.Errorf("%s (%s): %+v", c.key, c.spec, got)
		}
	}
	// seed: the same seed repeats, another changes the draws
	draw := func(seed string) []Request {
		s, err := ParseSynthetic(base + ",prompt_tokens_stdev=10,seed=" + seed)
		if err != nil {
			t.Fatal(err)
		}
		return drain(t, s)
	}
	if !reflect.DeepEqual(draw("1"), draw("1")) || reflect.DeepEqual(draw("1"), draw("2")) {
		t.Error("seed: equal seeds must repeat the draws and different ones change them")
	}
	// prefix_tokens and prefix_count: requests share one of prefix_count
	// prefixes of prefix_tokens tokens, as their first block
	s, err := ParseSynthetic("prompt_tokens=10,samples=300,prefix_tokens=64,prefix_count=3")
	if err != nil {
		t.Fatal(err)
	}
	firsts := map[uint32]int{}
	for _, r := range drain(t, s) {
		if r.BlockTokens != 64 || r.PromptTokens != 74 {
			t.Fatalf("prefix_tokens=64: %+v", r)
		}
		firsts[r.HashIDs[0]]++
	}
	if len(firsts) != 3 {
		t.Errorf("prefix_count=3: first blocks %v", firsts)
	}
	// a bad value names its key
	for _, key := range syntheticKeys {
		if key == "prefix_buckets" {
			continue
		}
		spec := "prompt_tokens=10," + key + "=-3"
		if key == "prompt_tokens" {
			spec = "prompt_tokens=-3"
		}
		_, err := ParseSynthetic(spec)
		if key == "seed" { // a negative seed is a seed
			if err != nil {
				t.Errorf("seed=-3: %v", err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), key+`="-3"`) {
			t.Errorf("%s=-3: %v, want an error naming %s", key, err, key)
		}
	}
}

// Synthetic block ids are uint32: running out is an error, never a silent
// wrap that would make unrelated conversations share prefixes.
func TestSyntheticBlockIDsDoNotWrap(t *testing.T) {
	s, err := ParseSynthetic("prompt_tokens=2000,output_tokens=1,turns=2,samples=5")
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Next()
	if err != nil {
		t.Fatal(err)
	}
	if len(first.HashIDs) == 0 {
		t.Fatal("a multi-turn synthetic request has no block ids")
	}
	s.nextID = maxBlockIDs - 3 // the next conversation needs more than 3 blocks
	if _, err := s.Next(); err != nil {
		t.Fatalf("turn 2 of the first conversation: %v", err)
	}
	if _, err := s.Next(); err == nil || !strings.Contains(err.Error(), "2^32") {
		t.Errorf("ids past 2^32: err %v", err)
	}
}
