package scrape

import (
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
)

func parseFile(t *testing.T, path string, extra ...string) map[string]Value {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := Parse(f, Matcher(append(EngineSeries(), extra...)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func TestParseVLLMV1Exposition(t *testing.T) {
	got := parseFile(t, "testdata/vllm_v1.txt", "vllm:num_preemptions", "vllm:time_to_first_token_seconds")
	want := map[string]Value{
		// two data-parallel engines: counts summed, the fraction averaged
		"vllm:num_requests_running":       {Gauge, 21},
		"vllm:num_requests_waiting":       {Gauge, 4},
		"vllm:kv_cache_usage_perc":        {Gauge, 0.5},
		"vllm:prefix_cache_queries_total": {Counter, 200000},
		"vllm:prefix_cache_hits_total":    {Counter, 100000},
		"vllm:num_preemptions_total":      {Counter, 4}, // named without _total
	}
	if len(got) != len(want) {
		t.Errorf("kept %d families, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s = %+v (present %v), want %+v", name, g, ok, w)
		}
	}
	// Not kept: _created gauges, the histogram (even when named), python's.
	for _, name := range []string{"vllm:prefix_cache_queries_created", "vllm:time_to_first_token_seconds", "python_gc_objects_collected_total"} {
		if _, ok := got[name]; ok {
			t.Errorf("%s kept", name)
		}
	}
}

func TestParseVLLMV0Exposition(t *testing.T) {
	got := parseFile(t, "testdata/vllm_v0.txt", "vllm:prompt_tokens")
	want := map[string]Value{
		"vllm:num_requests_running":      {Gauge, 3},
		"vllm:num_requests_waiting":      {Gauge, 1},
		"vllm:gpu_cache_usage_perc":      {Gauge, 0.125},
		"vllm:gpu_prefix_cache_hit_rate": {Gauge, 0.4},
		"vllm:prompt_tokens_total":       {Counter, 5120},
	}
	if len(got) != len(want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %+v, want %+v", name, got[name], w)
		}
	}
}

func TestParseMalformedNamesTheLine(t *testing.T) {
	for _, text := range []string{
		"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} twelve\n",
		"vllm:num_requests_running{model_name=\"m\" 1\n",
		"<html><body>Not here</body></html>\n",
		"# TYPE a gauge\n# TYPE a counter\na 1\n",
	} {
		_, err := Parse(strings.NewReader(text), Matcher(EngineSeries()))
		var pe expfmt.ParseError
		if !errors.As(err, &pe) || pe.Line < 1 || !strings.Contains(err.Error(), "line") {
			t.Errorf("Parse(%q) = %v, want a ParseError naming the line", text, err)
		}
	}
}

func TestParseSkipsNonFiniteFamilies(t *testing.T) {
	got, err := Parse(strings.NewReader("# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{e=\"0\"} NaN\nvllm:num_requests_running{e=\"1\"} 2\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting +Inf\n"), Matcher(EngineSeries()))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("kept non-finite families: %v", got)
	}
}

func TestSummarizeCountersGaugesAndHitRate(t *testing.T) {
	origin := time.Now()
	at := func(s float64) time.Time { return origin.Add(time.Duration(s * float64(time.Second))) }
	samples := []sample{
		{at(-0.1), map[string]Value{"vllm:prefix_cache_hits_total": {Counter, 100}, "vllm:prefix_cache_queries_total": {Counter, 1000}, "vllm:num_requests_running": {Gauge, 0}}},
		{at(0.9), map[string]Value{"vllm:prefix_cache_hits_total": {Counter, 400}, "vllm:prefix_cache_queries_total": {Counter, 1500}, "vllm:num_requests_running": {Gauge, 6}}},
		// the server restarted: counters start again from 0
		{at(1.9), map[string]Value{"vllm:prefix_cache_hits_total": {Counter, 50}, "vllm:prefix_cache_queries_total": {Counter, 500}, "vllm:num_requests_running": {Gauge, 3}}},
	}
	r := summarize(samples, origin, time.Second, "http://t/metrics", 1, "boom")
	hits := r.Counters["vllm:prefix_cache_hits_total"]
	if hits.Delta != 350 || hits.Resets != 1 || hits.First != 100 || hits.Last != 50 || math.Abs(hits.RatePerS-175) > 1e-9 {
		t.Errorf("hits = %+v, want delta 350 over 2 s with one reset", hits)
	}
	if r.PrefixCacheHitRate == nil || math.Abs(*r.PrefixCacheHitRate-350.0/1000) > 1e-12 || r.PrefixCacheHitRateFrom != "counters" {
		t.Errorf("hit rate = %v from %q, want 0.35 from counters", r.PrefixCacheHitRate, r.PrefixCacheHitRateFrom)
	}
	g := r.Gauges["vllm:num_requests_running"]
	if g != (GaugeSummary{Mean: 3, Min: 0, Max: 6, Last: 3, Samples: 3}) {
		t.Errorf("running = %+v", g)
	}
	if r.Scrapes != 3 || r.Errors != 1 || r.FirstError != "boom" || len(r.Series) != 3 || math.Abs(r.Series[0].TS+0.1) > 1e-9 {
		t.Errorf("report = %+v", r)
	}
	if l := r.Line(); l != "metrics (vLLM): running mean 3.0 max 6, prefix-cache hit rate 35.0% (3 scrapes, 1 failed)" {
		t.Errorf("Line() = %q", l)
	}
}

func TestSummarizeHitRateFromTheV0Gauge(t *testing.T) {
	origin := time.Now()
	r := summarize([]sample{
		{origin, map[string]Value{"vllm:gpu_prefix_cache_hit_rate": {Gauge, 0.2}}},
		{origin.Add(time.Second), map[string]Value{"vllm:gpu_prefix_cache_hit_rate": {Gauge, 0.4}}},
	}, origin, time.Second, "u", 0, "")
	if r.PrefixCacheHitRate == nil || math.Abs(*r.PrefixCacheHitRate-0.3) > 1e-12 || !strings.HasPrefix(r.PrefixCacheHitRateFrom, "gauge") {
		t.Errorf("hit rate = %v from %q", r.PrefixCacheHitRate, r.PrefixCacheHitRateFrom)
	}
	if r := summarize(nil, origin, time.Second, "u", 2, "x"); r.PrefixCacheHitRate != nil || r.Series == nil || r.Scrapes != 0 || r.Line() != "metrics: 2 scrapes failed (x)" {
		t.Errorf("empty report = %+v", r)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/vllm_v1.txt", "testdata/vllm_v0.txt", "testdata/llamacpp.txt", "testdata/sglang.txt", "testdata/tgi.txt"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("# TYPE x counter\nx_total{a=\"b\"} 1e3\n")
	f.Fuzz(func(t *testing.T, text string) {
		got, err := Parse(strings.NewReader(text), func(string) bool { return true })
		if err != nil {
			if got != nil {
				t.Fatalf("values with an error: %v", got)
			}
			return
		}
		for name, v := range got {
			if math.IsNaN(v.V) || math.IsInf(v.V, 0) {
				t.Fatalf("%s: non-finite %v", name, v.V)
			}
		}
	})
}
