package replaycli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/bench"
	"github.com/reprise-llm/reprise/internal/cli"
)

// flagCase sets one flag: in context ctx (other flags the flag needs to
// apply, given to both sides), with args.
type flagCase struct {
	ctx, args []string
}

// checkFlags is the test of every benchmarking command's --help: each
// flag the command lists either changes what the command runs (its
// parsed plan differs from the same command line without the flag) or is
// refused with a usage error naming it. cases must cover every listed
// flag, so a new flag needs a case before its command can ship it; refuse
// lists command lines that must be refused, naming the flag.
func checkFlags(t *testing.T, fs *cli.Flags, common []string, parse func([]string) (any, error), cases map[string]flagCase, refuse map[string][]string) {
	t.Helper()
	for _, name := range fs.Names() {
		c, ok := cases[name]
		if !ok {
			t.Errorf("--%s is listed in --help but has no case here: add one showing what it changes", name)
			continue
		}
		base := append(slices.Clone(common), c.ctx...)
		want, err := parse(base)
		if err != nil {
			t.Errorf("--%s: the context %v alone is refused: %v", name, c.ctx, err)
			continue
		}
		got, err := parse(append(slices.Clone(base), c.args...))
		if err != nil {
			if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "--"+name) {
				t.Errorf("--%s %v: %v, want a usage error naming --%s", name, c.args, err, name)
			}
			continue
		}
		if reflect.DeepEqual(want, got) {
			t.Errorf("--%s %v changes nothing the command runs", name, c.args)
		}
	}
	for name := range cases {
		if fs.Lookup(name) == nil {
			t.Errorf("a case for --%s, which the command does not list", name)
		}
	}
	for name, args := range refuse {
		_, err := parse(append(slices.Clone(common), args...))
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "--"+name) {
			t.Errorf("%v: %v, want a usage error naming --%s", args, err, name)
		}
	}
}

// The flags every benchmarking command shares, set to a value other than
// their default.
func sharedCases(t *testing.T) map[string]flagCase {
	capture := writeCapture(t, 3, 20*time.Millisecond)
	return map[string]flagCase{
		"workload":             {args: []string{"--workload", "mooncake:" + testTrace(t)}},
		"skip-invalid":         {args: []string{"--skip-invalid"}},
		"model":                {args: []string{"--model", "m"}},
		"tokenizer":            {args: []string{"--tokenizer", "o200k_base"}},
		"seed":                 {args: []string{"--seed", "7"}},
		"ignore-eos":           {args: []string{"--ignore-eos", "off"}},
		"prompt-namespace":     {args: []string{"--prompt-namespace", "none"}},
		"clamp-wait":           {args: []string{"--clamp-wait", "5m"}},
		"pack-idle":            {args: []string{"--pack-idle", "1m"}},
		"reuse-prompts":        {args: []string{"--reuse-prompts"}},
		"window":               {args: []string{"--window", "1s:"}},
		"filter-model":         {args: []string{"--filter-model", "llama*"}},
		"filter-path":          {args: []string{"--filter-path", "/v1/chat/*"}},
		"filter-status":        {args: []string{"--filter-status", "200"}},
		"sample":               {args: []string{"--sample", "0.5"}},
		"loop":                 {args: []string{"--loop", "2"}},
		"max-prompt-tokens":    {args: []string{"--max-prompt-tokens", "10"}},
		"max-output-tokens":    {args: []string{"--max-output-tokens", "2"}},
		"model-map":            {args: []string{"--model-map", "a=b"}},
		"max-seconds":          {args: []string{"--max-seconds", "3"}},
		"max-requests":         {args: []string{"--max-requests", "9"}},
		"max-concurrency":      {args: []string{"--max-concurrency", "8"}},
		"drain":                {args: []string{"--drain", "5s"}},
		"timeout":              {args: []string{"--timeout", "1m"}},
		"settle-timeout":       {args: []string{"--settle-timeout", "5s"}},
		"warmup":               {args: []string{"--warmup", "2"}},
		"cooldown":             {args: []string{"--cooldown", "10%"}},
		"max-errors":           {args: []string{"--max-errors", "3"}},
		"max-error-rate":       {args: []string{"--max-error-rate", "0.5"}},
		"api-key":              {args: []string{"--api-key", "sk-x"}},
		"header":               {args: []string{"--header", "X-Team: infra"}},
		"http2":                {args: []string{"--http2"}},
		"ca-cert":              {args: []string{"--ca-cert", "ca.pem"}}, // an http:// target: refused
		"insecure-skip-verify": {args: []string{"--insecure-skip-verify"}},
		"lag-threshold":        {args: []string{"--lag-threshold", "20ms"}},
		"start-at":             {args: []string{"--start-at", "2030-01-02T15:04:05Z"}},
		"detect-saturation":    {args: []string{"--detect-saturation", "monitor"}},
		"slo":                  {args: []string{"--slo", "ttft_p99<=1s"}},
		"slo-from":             {ctx: []string{"--slo", "ttft_p99<=1s"}, args: []string{"--slo-from", "sent"}},
		"scrape-metrics":       {args: []string{"--scrape-metrics", "off"}},
		"scrape-interval":      {args: []string{"--scrape-interval", "2s"}},
		"scrape-series":        {args: []string{"--scrape-series", "x_total"}},
		"output-dir":           {args: []string{"--output-dir", "elsewhere"}},
		"label":                {args: []string{"--label", "gpu=h100"}},
		"save-requests":        {args: []string{"--save-requests"}},
		"quiet":                {args: []string{"--quiet"}},
		"no-baseline":          {ctx: []string{"--workload", capture}, args: []string{"--no-baseline"}},
	}
}

func TestRunHelpListsOnlyFlagsItHonours(t *testing.T) {
	cases := sharedCases(t)
	// The default profile, trace, of a timed workload.
	common := []string{"--target", "http://127.0.0.1:1", "--workload", "mooncake:" + testTrace(t), "--max-requests", "5"}
	cases["target"] = flagCase{args: []string{"--target", "http://127.0.0.1:2"}}
	cases["profile"] = flagCase{args: []string{"--profile", "throughput"}}
	cases["rate"] = flagCase{args: []string{"--rate", "6"}} // rescales the trace
	cases["concurrency"] = flagCase{ctx: []string{"--profile", "concurrent"}, args: []string{"--concurrency", "4"}}
	cases["burstiness"] = flagCase{ctx: []string{"--profile", "gamma", "--rate", "5"}, args: []string{"--burstiness", "0.5"}}
	cases["time-scale"] = flagCase{args: []string{"--time-scale", "0.5"}}
	cases["spin"] = flagCase{args: []string{"--spin", "1ms"}}
	cases["sweep-points"] = flagCase{ctx: []string{"--profile", "sweep"}, args: []string{"--sweep-points", "5"}}
	cases["rate-profile"] = flagCase{ctx: []string{"--profile", "sweep"}, args: []string{"--rate-profile", "poisson"}}
	cases["name"] = flagCase{args: []string{"--name", "b"}}
	cases["settle-timeout"] = flagCase{ctx: []string{"--profile", "sweep"}, args: []string{"--settle-timeout", "5s"}}
	cases["shard"] = flagCase{args: []string{"--shard", "0/2"}}
	cases["knee-streams"] = flagCase{ctx: []string{"--profile", "knee"}, args: []string{"--knee-streams", "1,2,3,4,5"}}
	cases["knee-refine"] = flagCase{ctx: []string{"--profile", "knee"}, args: []string{"--knee-refine=false"}}
	cases["start-barrier"] = flagCase{ctx: []string{"--shard", "1/2"}, args: []string{"--start-barrier", t.TempDir()}}
	cases["barrier-lead"] = flagCase{ctx: []string{"--shard", "1/2", "--start-barrier", "b"}, args: []string{"--barrier-lead", "3s"}}
	cases["run-id"] = flagCase{ctx: []string{"--shard", "1/2"}, args: []string{"--run-id", "job-123"}}
	parse := func(args []string) (any, error) { return runPlan(args, io.Discard) }
	checkFlags(t, runFlags(newPlanOptions()), common, parse, cases, map[string][]string{
		"concurrency":    {"--concurrency", "4"},
		"burstiness":     {"--burstiness", "0.5"},
		"sweep-points":   {"--sweep-points", "5"},
		"rate-profile":   {"--rate-profile", "poisson"},
		"rate":           {"--profile", "throughput", "--rate", "7"},
		"spin":           {"--profile", "synchronous", "--spin", "1ms"},
		"name":           {"--profile", "sweep", "--name", "x"},
		"time-scale":     {"--profile", "sweep", "--time-scale", "2"},
		"no-baseline":    {"--no-baseline"},
		"ca-cert":        {"--ca-cert", "x.pem"},
		"slo-from":       {"--slo-from", "sent"},
		"profile":        {"--profile", "poison"},
		"settle-timeout": {"--profile", "throughput", "--settle-timeout", "5s"},
		"start-barrier":  {"--start-barrier", "b"},
		"knee-streams":   {"--knee-streams", "1,2,3,4,5"},
		"shard":          {"--profile", "sweep", "--shard", "0/2"},
	})
}

// Every message about a flag with a fixed list of values names them all:
// --profile's includes sweep (issue 12: it did not).
func TestProfileErrorNamesEveryProfile(t *testing.T) {
	_, err := runPlan([]string{"--target", "http://127.0.0.1:1", "--workload", "synthetic:samples=5", "--profile", "poison"}, io.Discard)
	for _, p := range []string{"trace", "constant", "poisson", "gamma", "synchronous", "concurrent", "throughput", "sweep", "knee"} {
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%v does not name %s", err, p)
		}
	}
}

func TestCapacityHelpListsOnlyFlagsItHonours(t *testing.T) {
	cases := sharedCases(t)
	delete(cases, "no-baseline")
	const w = "synthetic:prompt_tokens=20,output_tokens=3,samples=50"
	common := []string{"--target", "http://127.0.0.1:1", "--workload", w, "--slo", "ttft_p99<=1s", "--max-requests", "5"}
	cases["target"] = flagCase{args: []string{"--target", "http://127.0.0.1:2"}}
	cases["slo"] = flagCase{args: []string{"--slo", "ttft_p99<=2s"}}
	cases["slo-from"] = flagCase{args: []string{"--slo-from", "sent"}}
	cases["spin"] = flagCase{args: []string{"--spin", "1ms"}}
	cases["rate-profile"] = flagCase{args: []string{"--rate-profile", "poisson"}}
	cases["min-rate"] = flagCase{args: []string{"--min-rate", "1"}}
	cases["max-rate"] = flagCase{args: []string{"--max-rate", "9"}}
	cases["precision"] = flagCase{args: []string{"--precision", "0.1"}}
	parse := func(args []string) (any, error) {
		b, c, err := capacityPlan(args, io.Discard)
		return struct {
			B built
			C bench.Capacity
		}{b, c}, err
	}
	checkFlags(t, capacityFlags(newPlanOptions(), new(bench.Capacity)), common, parse, cases, map[string][]string{
		"max-seconds": {"--max-requests", "0"},
		"slo":         {"--slo", ""},
	})
	for _, name := range []string{"profile", "rate", "concurrency", "sweep-points", "name", "no-baseline", "time-scale"} {
		if capacityFlags(newPlanOptions(), new(bench.Capacity)).Lookup(name) != nil {
			t.Errorf("replay capacity lists --%s, which it does not honour", name)
		}
	}
}

func TestCompareHelpListsOnlyFlagsItHonours(t *testing.T) {
	cases := sharedCases(t)
	delete(cases, "no-baseline")
	common := []string{"--target", "a=http://127.0.0.1:1", "--target", "b=http://127.0.0.1:2", "--workload", "mooncake:" + testTrace(t), "--max-requests", "5"}
	cases["target"] = flagCase{args: []string{"--target", "c=http://127.0.0.1:3"}}
	cases["baseline"] = flagCase{args: []string{"--baseline", "b"}}
	cases["mode"] = flagCase{args: []string{"--mode", "parallel"}}
	cases["repetitions"] = flagCase{args: []string{"--repetitions", "3"}}
	cases["fail-if"] = flagCase{args: []string{"--fail-if", "ttft_p99>+10%"}}
	cases["fail-on-undecided"] = flagCase{args: []string{"--fail-on-undecided"}}
	cases["confidence"] = flagCase{args: []string{"--confidence", "0.9"}}
	cases["resamples"] = flagCase{args: []string{"--resamples", "500"}}
	cases["profile"] = flagCase{args: []string{"--profile", "throughput"}}
	cases["rate"] = flagCase{args: []string{"--rate", "6"}}
	cases["concurrency"] = flagCase{ctx: []string{"--profile", "concurrent"}, args: []string{"--concurrency", "4"}}
	cases["burstiness"] = flagCase{ctx: []string{"--profile", "gamma", "--rate", "5"}, args: []string{"--burstiness", "0.5"}}
	cases["time-scale"] = flagCase{args: []string{"--time-scale", "0.5"}}
	cases["spin"] = flagCase{args: []string{"--spin", "1ms"}}
	parse := func(args []string) (any, error) {
		p, err := parseCompare(args, io.Discard)
		return p, err
	}
	var c compareOptions
	checkFlags(t, compareFlags(newPlanOptions(), &c), common, parse, cases, map[string][]string{
		"profile": {"--profile", "knee"},
		"mode":    {"--mode", "both"},
	})
	// Saved results: only the comparison's own flags, --seed, --slo,
	// --output-dir and --label apply; a live comparison's are refused.
	for _, args := range [][]string{{"--profile", "constant"}, {"--max-requests", "3"}, {"--scrape-metrics", "off"}, {"--quiet"}} {
		_, err := parseCompare(append([]string{"dirA", "dirB"}, args...), io.Discard)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("saved results with %v: %v, want a usage error naming it", args, err)
		}
	}
	if _, err := parseCompare([]string{"dirA", "dirB", "--seed", "3", "--fail-if", "ttft_p99>+10%", "--slo", "ttft_p99<=1s", "--label", "a=b"}, io.Discard); err != nil {
		t.Errorf("saved results with the flags they read: %v", err)
	}
}

// --help shows each command's flags in titled sections, and replay
// capacity's no load profile of its own.
func TestHelpIsSectioned(t *testing.T) {
	for cmd, want := range map[string][]string{
		"run":      {"\ntarget:\n", "\nworkload:\n", "\nload:\n", "\nsweep (--profile sweep):\n", "\nlimits:\n", "\nclient:\n", "\nchecks:\n", "\nresults:\n", "--profile", "REPRISE_LABEL, repeatable"},
		"capacity": {"\nsearch:\n", "--min-rate", "--rate-profile"},
		"compare":  {"\ncomparison:\n", "--repetitions", "--fail-if"},
	} {
		var out bytes.Buffer
		if err := Run(context.Background(), []string{cmd, "--help"}, &out, &out); err != nil {
			t.Fatal(err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("replay %s --help lacks %q", cmd, w)
			}
		}
		if cmd == "capacity" && (strings.Contains(out.String(), "--profile ") || strings.Contains(out.String(), "--sweep-points") || strings.Contains(out.String(), "--concurrency")) {
			t.Errorf("replay capacity --help lists flags it ignores:\n%s", out.String())
		}
	}
}
