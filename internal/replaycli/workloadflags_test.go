package replaycli

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/bench"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/tracestest"
	"github.com/reprise-llm/reprise/internal/workload"
)

// TestWorkloadFlags checks that every transform flag reaches its field of
// workload.Transforms, and that bad values are all reported at once.
func TestWorkloadFlags(t *testing.T) {
	var w workloadFlags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	registerWorkloadFlags(fs, &w, true)
	err := fs.Parse([]string{"--window", "10m:1200", "--filter-model", "llama*", "--filter-model", "qwen",
		"--filter-path", "/v1/chat/*", "--filter-status", "!5xx", "--sample", "0.25", "--loop", "3",
		"--max-prompt-tokens", "4096", "--max-output-tokens", "128", "--model-map", "a=b", "--model-map", "*=c", "--shard", "1/4"})
	if err != nil {
		t.Fatal(err)
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
	if d := bench.TransformsConfig(got); d == nil || len(d.Entries()) != 12 || d.Shard != "1/4" || d.TraceRate != 12.5 {
		t.Errorf("describe: %+v", d)
	}
	if bench.TransformsConfig(workload.Transforms{}) != nil {
		t.Error("no flags must mean no transforms")
	}

	bad := workloadFlags{window: "9:3", sample: 2, modelMap: cli.List{"x"}, shard: "4/4"}
	_, err = bad.transforms(1, 0, 0)
	err = cli.MapFields(err, planFlags) // the command names its flags
	for _, name := range []string{"--window", "--sample", "--model-map", "--shard"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("bad %s not reported: %v", name, err)
		}
	}
	if _, err := (&workloadFlags{statuses: cli.List{"7xx"}}).transforms(1, 0, 0); err == nil || !strings.Contains(cli.MapFields(err, planFlags).Error(), "--filter-status") {
		t.Errorf("bad status: %v", err)
	}
}

// --rate with --profile trace rescales the trace to that mean rate (the
// engine's rate stays 0); with a rate profile it is the engine's rate; a
// rescale and a time scale other than 1 contradict each other.
func TestRateOfATraceRescalesIt(t *testing.T) {
	for _, c := range []struct {
		args            []string
		engine, rescale float64
		wantErr         bool
	}{
		{[]string{"--time-scale", "0.5"}, 0, 0, false},
		{[]string{"--rate", "20"}, 0, 20, false},
		{[]string{"--rate", "20", "--time-scale", "0.5"}, 0, 0, true},
		{[]string{"--rate", "-1"}, 0, 0, true},
		{[]string{"--profile", "poisson", "--rate", "20"}, 20, 0, false},
		{[]string{"--profile", "constant", "--rate", "5", "--time-scale", "0.5"}, 5, 0, false},
	} {
		args := append([]string{"--target", "http://127.0.0.1:1", "--workload", "mooncake:" + testTrace(t)}, c.args...)
		b, err := runPlan(args, io.Discard)
		if (err != nil) != c.wantErr || (err == nil && (b.plan.Engine.Rate != c.engine || b.plan.Rescale != c.rescale)) {
			t.Errorf("%v: engine %v, rescale %v, err %v", c.args, b.plan.Engine.Rate, b.plan.Rescale, err)
		}
		if c.wantErr && !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%v: %v is not a usage error", c.args, err)
		}
	}
}

// testTrace writes a one-line Mooncake trace.
func testTrace(t *testing.T) string {
	t.Helper()
	return tracestest.Write(t, "trace.jsonl", `{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1]}`+"\n")
}
