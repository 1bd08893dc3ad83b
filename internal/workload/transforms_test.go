package workload

import (
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

// sliceSource replays a fixed list; opener counts how often it is opened.
type sliceSource struct {
	reqs []Request
	i    int
}

func (s *sliceSource) Next() (Request, error) {
	if s.i >= len(s.reqs) {
		return Request{}, io.EOF
	}
	s.i++
	r := s.reqs[s.i-1]
	r.HashIDs = slices.Clone(r.HashIDs)
	return r, nil
}

type opener struct {
	reqs  []Request
	opens int
}

func (o *opener) open() (Source, error) {
	o.opens++
	return &sliceSource{reqs: o.reqs}, nil
}

// evenly returns n requests at offsets 0, gap, 2·gap, ….
func evenly(n int, gap time.Duration) []Request {
	out := make([]Request, n)
	for i := range out {
		out[i] = Request{Index: i, Offset: time.Duration(i) * gap, PromptTokens: 100, OutputTokens: 10}
	}
	return out
}

func apply(t *testing.T, reqs []Request, tr Transforms) []Request {
	t.Helper()
	o := &opener{reqs: reqs}
	src, err := tr.Apply(o.open)
	if err != nil {
		t.Fatal(err)
	}
	return drain(t, src)
}

func offsets(reqs []Request) []time.Duration {
	out := make([]time.Duration, len(reqs))
	for i, r := range reqs {
		out[i] = r.Offset
	}
	return out
}

func indices(reqs []Request) []int {
	out := make([]int, len(reqs))
	for i, r := range reqs {
		out[i] = r.Index
	}
	return out
}

func TestWindow(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name       string
		start, end time.Duration
		want       []time.Duration
		idx        []int
	}{
		{"middle", 2 * s, 5 * s, []time.Duration{0, s, 2 * s}, []int{2, 3, 4}},
		{"open end", 7 * s, 0, []time.Duration{0, s, 2 * s}, []int{7, 8, 9}},
		{"open start", 0, 2 * s, []time.Duration{0, s}, []int{0, 1}},
		{"between requests", 1500 * time.Millisecond, 3 * s, []time.Duration{500 * time.Millisecond}, []int{2}},
		{"past the end", 20 * s, 30 * s, []time.Duration{}, []int{}},
	} {
		got := apply(t, evenly(10, s), Transforms{WindowStart: c.start, WindowEnd: c.end})
		if !slices.Equal(offsets(got), c.want) || !slices.Equal(indices(got), c.idx) {
			t.Errorf("%s: offsets %v indices %v, want %v %v", c.name, offsets(got), indices(got), c.want, c.idx)
		}
	}
}

func TestFilter(t *testing.T) {
	rec := func(path string, status int, errText string, aborted bool) *capture.Record {
		return &capture.Record{Path: path, Status: status, Error: errText, Aborted: aborted}
	}
	reqs := []Request{
		{Index: 0, Model: "llama-3-8b", Endpoint: openai.Chat, Recorded: rec("/v1/chat/completions", 200, "", false)},
		{Index: 1, Model: "llama-3-70b", Endpoint: openai.Completions, Recorded: rec("/v1/completions", 429, "rate limited", false)},
		{Index: 2, Model: "qwen", Endpoint: openai.Chat, Recorded: rec("/gw/v1/chat/completions", 503, "", false)},
		{Index: 3, TraceModel: "GPT-4", Endpoint: openai.Chat, Recorded: rec("/v1/chat/completions", 200, "", true)},
		{Index: 4, Model: "qwen", Endpoint: openai.Chat, Recorded: rec("/v1/chat/completions", 200, "upstream reset", false)},
	}
	for _, c := range []struct {
		name string
		tr   Transforms
		want []int
	}{
		{"model glob", Transforms{Models: []string{"llama-*"}}, []int{0, 1}},
		{"trace model", Transforms{Models: []string{"GPT-4", "qwen"}}, []int{2, 3, 4}},
		{"path", Transforms{Paths: []string{"/v1/chat/completions"}}, []int{0, 3, 4}},
		{"path glob", Transforms{Paths: []string{"/*/completions", "/gw/*/*/*"}}, []int{1, 2}},
		{"status code", Transforms{Statuses: []string{"200"}}, []int{0, 3, 4}},
		{"status class", Transforms{Statuses: []string{"4xx", "5xx"}}, []int{1, 2}},
		{"exclude", Transforms{Statuses: []string{"!429"}}, []int{0, 2, 3, 4}},
		{"errors", Transforms{Statuses: []string{"error"}}, []int{1, 2, 4}},
		{"no errors", Transforms{Statuses: []string{"!error", "!aborted"}}, []int{0}},
		{"aborted", Transforms{Statuses: []string{"aborted"}}, []int{3}},
		{"all kinds", Transforms{Models: []string{"qwen"}, Paths: []string{"/v1/*/*"}, Statuses: []string{"2xx"}}, []int{4}},
	} {
		if got := indices(apply(t, reqs, c.tr)); !slices.Equal(got, c.want) {
			t.Errorf("%s: kept %v, want %v", c.name, got, c.want)
		}
	}
	// a status filter on a trace without statuses says why it kept nothing
	o := &opener{reqs: evenly(4, time.Second)}
	src, _ := Transforms{Statuses: []string{"200"}}.Apply(o.open)
	if got := drain(t, src); len(got) != 0 {
		t.Fatalf("%+v", got)
	}
	if w := warnings(src); len(w) != 1 || !strings.Contains(w[0], "left out 4 requests that have no recorded status") {
		t.Errorf("warnings %v", w)
	}
}

func TestSample(t *testing.T) {
	reqs := evenly(10000, time.Millisecond)
	for i := range reqs[:3000] {
		reqs[i].Session = fmt.Sprintf("s%d", i/10) // 300 sessions of 10 turns
	}
	a := apply(t, reqs, Transforms{Fraction: 0.25, Seed: 7})
	if len(a) < 2200 || len(a) > 2800 {
		t.Errorf("kept %d of 10000 at 0.25", len(a))
	}
	if b := apply(t, reqs, Transforms{Fraction: 0.25, Seed: 7}); !reflect.DeepEqual(a, b) {
		t.Error("the same seed sampled differently")
	}
	if c := apply(t, reqs, Transforms{Fraction: 0.25, Seed: 8}); reflect.DeepEqual(indices(a), indices(c)) {
		t.Error("another seed sampled the same requests")
	}
	turns := map[string]int{}
	for _, r := range a {
		if r.Session != "" {
			turns[r.Session]++
		}
	}
	for s, n := range turns {
		if n != 10 {
			t.Fatalf("session %s kept %d of 10 turns", s, n)
		}
	}
	if len(turns) < 50 || len(turns) > 100 {
		t.Errorf("%d of 300 sessions kept", len(turns))
	}
	if got := apply(t, reqs, Transforms{Fraction: 1}); len(got) != 10000 {
		t.Errorf("fraction 1 kept %d", len(got))
	}
}

// TestRate checks the rescale: the mean (count over last offset) becomes
// the rate, every gap is scaled by the same factor (the burst shape is
// kept), and the source is opened once more for the first pass.
func TestRate(t *testing.T) {
	ms := time.Millisecond
	reqs := []Request{{Offset: 0}, {Offset: 100 * ms}, {Offset: 110 * ms}, {Offset: 120 * ms}, {Offset: 2000 * ms}} // 5 over 2 s: 2.5 req/s
	for i := range reqs {
		reqs[i].Index = i
	}
	o := &opener{reqs: reqs}
	src, err := Transforms{Rate: 10}.Apply(o.open)
	if err != nil {
		t.Fatal(err)
	}
	got := offsets(drain(t, src))
	want := []time.Duration{0, 25 * ms, 27500 * time.Microsecond, 30 * ms, 500 * ms} // × 0.25
	if !slices.Equal(got, want) || o.opens != 2 {
		t.Errorf("offsets %v, want %v; opened %d times", got, want, o.opens)
	}
	// the rate is measured after selection: a window of the first 150 ms
	// holds 4 requests over 120 ms, which at 4 req/s span 1 s
	got = offsets(apply(t, reqs, Transforms{WindowEnd: 150 * ms, Rate: 4}))
	if want := []time.Duration{0, 833333333, 916666667, 1000 * ms}; !slices.Equal(got, want) {
		t.Errorf("windowed: %v, want %v", got, want)
	}
	for _, bad := range [][]Request{{{Offset: 0}}, {{Offset: 0}, {Offset: 0}}, nil} {
		if _, err := (Transforms{Rate: 1}).Apply((&opener{reqs: bad}).open); err == nil || !strings.Contains(err.Error(), "no mean rate") {
			t.Errorf("%v: err = %v", bad, err)
		}
	}
}

func TestLoop(t *testing.T) {
	s := time.Second
	reqs := []Request{
		{Index: 0, ID: "a", Offset: 0, Session: "x", HashIDs: []uint32{0, 1}, Graph: &GraphNode{Conversation: "x", Node: "n0"}},
		{Index: 1, ID: "b", Offset: s, Session: "x", Turn: 1, HashIDs: []uint32{0, 1, 2}},
		{Index: 2, ID: "c", Offset: 2 * s, HashIDs: []uint32{5}},
	}
	o := &opener{reqs: reqs}
	src, err := Transforms{Loop: 3}.Apply(o.open)
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, src)
	// span 2 s, mean gap 1 s: passes start at 0, 3 s and 6 s
	if want := []time.Duration{0, s, 2 * s, 3 * s, 4 * s, 5 * s, 6 * s, 7 * s, 8 * s}; !slices.Equal(offsets(got), want) || o.opens != 3 {
		t.Fatalf("offsets %v, want %v; opened %d", offsets(got), want, o.opens)
	}
	if !slices.Equal(indices(got), []int{0, 1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("indices %v", indices(got))
	}
	if got[3].ID != "a/loop1" || got[4].Session != "x/loop1" || got[7].Session != "x/loop2" || got[4].Turn != 1 {
		t.Errorf("pass ids: %+v", got[3:5])
	}
	// a conversation graph of pass k is a conversation of its own, and
	// pass 0's is left as it was
	if got[3].Graph.Conversation != "x/loop1" || got[6].Graph.Conversation != "x/loop2" || got[0].Graph.Conversation != "x" || got[3].Graph.Node != "n0" {
		t.Errorf("graphs: %+v %+v %+v", got[0].Graph, got[3].Graph, got[6].Graph)
	}
	// ids move by max id + 1 = 6 per pass: sharing within a pass is kept,
	// none across passes
	if !slices.Equal(got[3].HashIDs, []uint32{6, 7}) || !slices.Equal(got[4].HashIDs, []uint32{6, 7, 8}) ||
		!slices.Equal(got[8].HashIDs, []uint32{17}) || !slices.Equal(got[0].HashIDs, []uint32{0, 1}) {
		t.Errorf("hash ids %v %v %v %v", got[0].HashIDs, got[3].HashIDs, got[4].HashIDs, got[8].HashIDs)
	}
	// a source without times (synthetic) simply repeats
	syn, _ := ParseSynthetic("prompt_tokens=5,samples=4")
	loop, err := Transforms{Loop: 2}.Apply(func() (Source, error) { return ParseSynthetic("prompt_tokens=5,samples=4") })
	if err != nil {
		t.Fatal(err)
	}
	got = drain(t, loop)
	if len(got) != 8 || got[7].Index != 7 || got[5].Offset != 0 || got[4].PromptTokens != drain(t, syn)[0].PromptTokens {
		t.Errorf("%+v", got)
	}
}

func TestCaps(t *testing.T) {
	reqs := []Request{
		{Index: 0, PromptTokens: 2000, OutputTokens: 50, HashIDs: []uint32{1, 2, 3, 4}, BlockTokens: 512},
		{Index: 1, PromptTokens: 1800, OutputTokens: 500, HashIDs: []uint32{1, 2, 9, 10}, BlockTokens: 512},
		{Index: 2, PromptTokens: 300, OutputTokens: 0, HashIDs: []uint32{1}},
		{Index: 3, PromptTokens: 40, Prompt: "recorded text", OutputTokens: 10},
		{Index: 4, Messages: []byte(`[{"role":"user","content":"x"}]`)},
	}
	o := &opener{reqs: reqs}
	src, err := Transforms{MaxPromptTokens: 700, MaxOutputTokens: 100}.Apply(o.open)
	if err != nil {
		t.Fatal(err)
	}
	got := drain(t, src)
	for i, want := range []struct {
		prompt, output int
		ids            []uint32
	}{{700, 50, []uint32{1, 2}}, {700, 100, []uint32{1, 2}}, {300, 100, []uint32{1}}, {40, 10, nil}, {0, 100, nil}} {
		if r := got[i]; r.PromptTokens != want.prompt || r.OutputTokens != want.output || !slices.Equal(r.HashIDs, want.ids) {
			t.Errorf("request %d: %d/%d %v, want %+v", i, r.PromptTokens, r.OutputTokens, r.HashIDs, want)
		}
	}
	if w := warnings(src); len(w) != 1 || !strings.Contains(w[0], "1 requests carry a verbatim prompt") {
		t.Errorf("warnings %v", w)
	}
	// the prompt cap never lets a capped request reach past its ids' share:
	// a cap of 1024 keeps exactly the two shared leading blocks
	got = apply(t, reqs[:2], Transforms{MaxPromptTokens: 1024})
	if !slices.Equal(got[0].HashIDs, []uint32{1, 2}) || !slices.Equal(got[1].HashIDs, []uint32{1, 2}) {
		t.Errorf("%v %v", got[0].HashIDs, got[1].HashIDs)
	}
	if !slices.Equal(reqs[0].HashIDs, []uint32{1, 2, 3, 4}) {
		t.Error("capping changed the source's ids")
	}
}

func TestModelMap(t *testing.T) {
	reqs := []Request{{Model: "gpt-4o"}, {TraceModel: "ChatGPT"}, {TraceModel: "GPT-4"}, {Model: "other"}}
	got := apply(t, reqs, Transforms{ModelMap: map[string]string{"gpt-4o": "llama-70b", "ChatGPT": "llama-8b"}})
	if got[0].Model != "llama-70b" || got[1].Model != "llama-8b" || got[2].Model != "" || got[3].Model != "other" {
		t.Errorf("%+v", got)
	}
	got = apply(t, reqs, Transforms{ModelMap: map[string]string{"*": "m", "GPT-4": "big"}})
	if got[0].Model != "m" || got[2].Model != "big" || got[3].Model != "m" || got[2].TraceModel != "GPT-4" {
		t.Errorf("%+v", got)
	}
}

// TestShard checks that N shards are disjoint, together the whole, keep
// sessions whole and offsets unchanged, and split requests evenly.
func TestShard(t *testing.T) {
	reqs := evenly(1000, 10*time.Millisecond)
	for i := 500; i < 1000; i++ {
		reqs[i].Session = fmt.Sprintf("s%d", i%37)
	}
	for _, n := range []int{1, 2, 3, 7} {
		owner := map[int]int{}
		sessions := map[string]int{}
		for i := range n {
			got := apply(t, reqs, Transforms{ShardIndex: i, ShardCount: n})
			plain := 0
			for _, r := range got {
				if prev, dup := owner[r.Index]; dup {
					t.Fatalf("%d shards: request %d in shards %d and %d", n, r.Index, prev, i)
				}
				owner[r.Index] = i
				if r.Offset != reqs[r.Index].Offset {
					t.Fatalf("shard moved an offset: %+v", r)
				}
				if r.Session == "" {
					plain++
				} else if s, ok := sessions[r.Session]; ok && s != i {
					t.Fatalf("session %s split over shards %d and %d", r.Session, s, i)
				} else {
					sessions[r.Session] = i
				}
			}
			if plain < 500/n || plain > 500/n+1 {
				t.Errorf("%d shards: shard %d has %d of 500 requests without a session", n, i, plain)
			}
		}
		if len(owner) != 1000 {
			t.Errorf("%d shards cover %d of 1000 requests", n, len(owner))
		}
	}
}

// TestCompositionOrder checks the documented order where it matters.
func TestCompositionOrder(t *testing.T) {
	s := time.Second
	reqs := evenly(20, s) // 0 … 19 s
	for i := range reqs {
		reqs[i].Model = []string{"a", "b"}[i%2]
	}
	// filter before rate: the rate is of the "a" requests (10 over 18 s)
	got := apply(t, reqs, Transforms{Models: []string{"a"}, Rate: 1})
	if len(got) != 10 || got[9].Offset != 10*s {
		t.Errorf("filter then rate: %v", offsets(got))
	}
	// model map after filter: the filter sees the recorded names
	got = apply(t, reqs, Transforms{Models: []string{"a"}, ModelMap: map[string]string{"a": "b", "b": "a"}})
	if len(got) != 10 || got[0].Model != "b" {
		t.Errorf("filter then map: %+v", got[:1])
	}
	// window before time-scale: the window is in recorded time
	got = apply(t, reqs, Transforms{WindowStart: 10 * s, TimeScale: 0.5})
	if len(got) != 10 || got[1].Offset != s/2 {
		t.Errorf("window then scale: %v", offsets(got))
	}
	// loop after rate, shard after loop: shards of the looped stream
	// together are the looped stream
	whole := apply(t, reqs, Transforms{Rate: 2, Loop: 2})
	// 20 requests over 19 s at 2 req/s span 10 s; the next pass starts one
	// mean gap (10 s / 19) later
	if len(whole) != 40 || whole[19].Offset != 10*s || whole[20].Offset != 10*s+10*s/19 {
		t.Fatalf("rate then loop: %v", offsets(whole))
	}
	var union []Request
	for i := range 3 {
		union = append(union, apply(t, reqs, Transforms{Rate: 2, Loop: 2, ShardIndex: i, ShardCount: 3})...)
	}
	slices.SortFunc(union, func(a, b Request) int { return a.Index - b.Index })
	if !reflect.DeepEqual(union, whole) {
		t.Error("the shards of a looped, rescaled stream are not the stream")
	}
	// caps after loop: every pass is capped
	got = apply(t, reqs, Transforms{Loop: 2, MaxPromptTokens: 7})
	for _, r := range got {
		if r.PromptTokens != 7 {
			t.Fatalf("%+v", r)
		}
	}
}

func TestTransformsValidate(t *testing.T) {
	err := (&Transforms{WindowStart: 5, WindowEnd: 3, Models: []string{"["}, Statuses: []string{"2x"}, Fraction: 2,
		TimeScale: 2, Rate: 1, Loop: -1, MaxPromptTokens: -1, ShardIndex: 3, ShardCount: 3}).Validate()
	for _, want := range []string{"Window", "filter pattern", "Statuses", "Fraction", "with a time scale", "Loop", "MaxPromptTokens", "Shard 3/3"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if err := (&Transforms{}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestParseFlags(t *testing.T) {
	for in, want := range map[string][2]time.Duration{
		"10m:20m": {10 * time.Minute, 20 * time.Minute}, ":90": {0, 90 * time.Second}, "1h:": {time.Hour, 0}, "1.5:2.5": {1500 * time.Millisecond, 2500 * time.Millisecond},
	} {
		a, b, err := ParseWindow(in)
		if err != nil || a != want[0] || b != want[1] {
			t.Errorf("ParseWindow(%q) = %v, %v, %v", in, a, b, err)
		}
	}
	for _, bad := range []string{"10m", "20m:10m", "x:1", "-1:", "5:5"} {
		if _, _, err := ParseWindow(bad); err == nil {
			t.Errorf("ParseWindow(%q) accepted", bad)
		}
	}
	if i, n, err := ParseShard("2/4"); err != nil || i != 2 || n != 4 {
		t.Errorf("ParseShard: %d %d %v", i, n, err)
	}
	for _, bad := range []string{"4/4", "1/0", "-1/3", "1", "a/b"} {
		if _, _, err := ParseShard(bad); err == nil || !strings.Contains(err.Error(), "numbered from 0") {
			t.Errorf("ParseShard(%q): %v", bad, err)
		}
	}
	m, err := ParseModelMap([]string{"a=b,c = d", "*=e"})
	if err != nil || !reflect.DeepEqual(m, map[string]string{"a": "b", "c": "d", "*": "e"}) {
		t.Errorf("%v %v", m, err)
	}
	if _, err := ParseModelMap([]string{"a", "b=c,b=d"}); err == nil || !strings.Contains(err.Error(), "from=to") || !strings.Contains(err.Error(), "both") {
		t.Errorf("%v", err)
	}
}

// TestTransformsOnPublicTraces rescales and shards the Mooncake trace.
func TestTransformsOnPublicTraces(t *testing.T) {
	path := filepath.Join(tracestest.Dir(t), tracestest.Mooncake)
	src, err := OpenTransformed("mooncake:"+path, OpenOptions{}, Transforms{Rate: 20})
	if err != nil {
		t.Fatal(err)
	}
	n, span, err := Measure(src)
	if err != nil {
		t.Fatal(err)
	}
	if rate := float64(n) / span.Seconds(); n != 12031 || math.Abs(rate-20) > 0.01 {
		t.Errorf("%d requests over %v: %.3f req/s, want 20", n, span, rate)
	}
	total := 0
	for i := range 4 {
		src, err := OpenTransformed("mooncake:"+path, OpenOptions{}, Transforms{ShardIndex: i, ShardCount: 4})
		if err != nil {
			t.Fatal(err)
		}
		k, _, err := Measure(src)
		if err != nil {
			t.Fatal(err)
		}
		if k < 3000 || k > 3010 {
			t.Errorf("shard %d/4 has %d requests", i, k)
		}
		total += k
	}
	if total != 12031 {
		t.Errorf("shards hold %d requests, want 12031", total)
	}
}
