package replaycli

import (
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/workload"
)

// TestWorkloadFlags checks that every transform flag reaches its field of
// workload.Transforms, and that bad values are all reported at once.
func TestWorkloadFlags(t *testing.T) {
	var w workloadFlags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	registerWorkloadFlags(fs, &w)
	err := fs.Parse([]string{"--window", "10m:1200", "--filter-model", "llama*", "--filter-model", "qwen",
		"--filter-path", "/v1/chat/*", "--filter-status", "!5xx", "--sample", "0.25", "--loop", "3",
		"--max-prompt-tokens", "4096", "--max-output-tokens", "128", "--model-map", "a=b", "--model-map", "*=c", "--shard", "1/4"})
	if err != nil {
		t.Fatal(err)
	}
	if !w.set() {
		t.Error("set() is false with every flag given")
	}
	got, err := w.transforms(9, 12.5, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := workload.Transforms{
		WindowStart: 10 * time.Minute, WindowEnd: 20 * time.Minute, Models: []string{"llama*", "qwen"},
		Paths: []string{"/v1/chat/*"}, Statuses: []string{"!5xx"}, Fraction: 0.25, Seed: 9, Rate: 12.5, Loop: 3,
		MaxPromptTokens: 4096, MaxOutputTokens: 128, ModelMap: map[string]string{"a": "b", "*": "c"}, ShardIndex: 1, ShardCount: 4,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("transforms\n got %+v\nwant %+v", got, want)
	}
	if d := describeTransforms(got); len(d) != 12 || d["shard"] != "1/4" || d["trace_rate"] != 12.5 {
		t.Errorf("describe: %v", d)
	}
	if (&workloadFlags{}).set() || describeTransforms(workload.Transforms{}) != nil {
		t.Error("no flags must mean no transforms")
	}

	bad := workloadFlags{window: "9:3", sample: 2, modelMap: listFlag{"x"}, shard: "4/4"}
	_, err = bad.transforms(1, 0, 0)
	for _, name := range []string{"--window", "--sample", "--model-map", "--shard"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s not reported: %v", name, err)
		}
	}
	if _, err := (&workloadFlags{statuses: listFlag{"7xx"}}).transforms(1, 0, 0); err == nil || !strings.Contains(err.Error(), "--filter-status") {
		t.Errorf("bad status: %v", err)
	}
}

func TestTraceRate(t *testing.T) {
	for _, c := range []struct {
		profile         string
		rate, scale     float64
		engine, rescale float64
		wantErr         bool
	}{
		{"trace", 0, 0.5, 0, 0, false},
		{"trace", 20, 1, 0, 20, false},
		{"trace", 20, 0.5, 0, 0, true},
		{"trace", -1, 1, 0, 0, true},
		{"poisson", 20, 1, 20, 0, false},
		{"constant", 5, 0.5, 5, 0, false},
	} {
		e, r, err := traceRate(c.profile, c.rate, c.scale)
		if (err != nil) != c.wantErr || (err == nil && (e != c.engine || r != c.rescale)) {
			t.Errorf("%+v: engine %v, rescale %v, err %v", c, e, r, err)
		}
	}
}
