package workload

import (
	"math"
	"reflect"
	"strings"
	"testing"
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
		if r.PromptTokens < 80 || r.PromptTokens > 120 || r.OutputTokens != 10 || r.Offset != 0 || r.Index != i {
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

func TestSyntheticLengthsAreAtLeastOne(t *testing.T) {
	s, _ := ParseSynthetic("prompt_tokens=1,prompt_tokens_stdev=50,output_tokens=0,samples=300")
	for _, r := range drain(t, s) {
		if r.PromptTokens < 1 || r.OutputTokens != 1 {
			t.Fatalf("%+v", r)
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

func TestSyntheticErrors(t *testing.T) {
	for spec, want := range map[string][]string{
		"prompt_tokens=1,output_tokns=2":                                          {`"output_tokns"`, "output_tokens is required"},
		"prompt_tokens=x,output_tokens=1":                                         {`prompt_tokens="x"`},
		"prompt_tokens=NaN,output_tokens=Inf":                                     {"prompt_tokens", "output_tokens"},
		"prompt_tokens=5,output_tokens=1,samples=0":                               {"samples must be positive"},
		"prompt_tokens=5,prompt_tokens_min=9,prompt_tokens_max=4,output_tokens=1": {"prompt_tokens_max 4 is below prompt_tokens_min 9"},
		"prompt_tokens": {"want key=value", "output_tokens is required"},
	} {
		_, err := ParseSynthetic(spec)
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%q: err = %v, want %q", spec, err, w)
			}
		}
	}
}

func FuzzSyntheticSpec(f *testing.F) {
	f.Add("prompt_tokens=256,output_tokens=128,samples=3")
	f.Add("prompt_tokens=1,prompt_tokens_stdev=1e9,output_tokens=1,samples=2")
	f.Add("prompt_tokens=10,prompt_tokens_min=3,prompt_tokens_max=5,output_tokens=2,output_tokens_stdev=4,seed=-1")
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSynthetic(spec)
		if err != nil {
			return
		}
		n := 0
		for _, r := range drain(t, Limit(s, 200)) {
			n++
			p, o := s.Spec.Prompt, s.Spec.Output
			if r.PromptTokens < 1 || r.OutputTokens < 1 ||
				(p.Max > 0 && r.PromptTokens > max(p.Max, 1)) || r.PromptTokens < p.Min ||
				(o.Max > 0 && r.OutputTokens > max(o.Max, 1)) || r.OutputTokens < o.Min {
				t.Fatalf("%q gave %+v", spec, r)
			}
		}
		if n != min(s.Spec.Samples, 200) {
			t.Fatalf("%q gave %d requests", spec, n)
		}
	})
}
