package replaycli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

// The commands that run no benchmark get the same check as run, capacity
// and compare (flags_test.go): every flag their --help lists changes what
// they do — here, what they print or write — or is refused naming it.

// outcome runs replay with args and returns what it printed, or its error.
func outcome(args ...string) string {
	var out bytes.Buffer
	if err := Run(context.Background(), args, &out, &out); err != nil {
		return "error: " + err.Error()
	}
	return out.String()
}

func TestInspectHelpListsOnlyFlagsItHonours(t *testing.T) {
	var recs []capture.Record
	for i := range 30 {
		path, model, status := "/v1/chat/completions", "m1", 200
		if i%2 == 1 {
			path, model = "/v1/completions", "m2"
		}
		if i%5 == 0 {
			status = 503
		}
		recs = append(recs, capture.Record{ID: fmt.Sprintf("r%02d", i), T: int64(i) * int64(100*time.Millisecond), Path: path, Model: model,
			Status: status, PromptTokens: 20 + i, OutputTokens: 3 + i%4, Stream: true})
	}
	capDir := capturetest.Write(t, recs)
	bad := tracestest.Write(t, "bad.jsonl", `{"timestamp": 0, "input_length": 10, "output_length": 5}`+"\nnot json\n"+`{"timestamp": 10, "input_length": 12, "output_length": 5}`+"\n")
	// Two sessions, an hour apart, each with a ten-minute wait inside.
	sessions := tracestest.Write(t, "s.jsonl", `{"timestamp": 0, "session_id": "a", "input_length": 10, "output_length": 5}
{"timestamp": 600000, "session_id": "a", "input_length": 12, "output_length": 5}
{"timestamp": 3600000, "session_id": "b", "input_length": 10, "output_length": 5}
{"timestamp": 4200000, "session_id": "b", "input_length": 12, "output_length": 5}
`)
	prompts := tracestest.Write(t, "p.txt", "naïve café 東京 3.14159 ～ emoji 🙂🙂 tokens\nanother line with ünïcödé and 12345678\n")
	type icase struct{ spec, ctx, args []string }
	on := func(args ...string) icase { return icase{spec: []string{capDir}, args: args} }
	cases := map[string]icase{
		"skip-invalid":      {spec: []string{"mooncake:" + bad}, args: []string{"--skip-invalid"}},
		"html":              on("--html", filepath.Join(t.TempDir(), "w.html")),
		"seed":              {spec: []string{capDir}, ctx: []string{"--sample", "0.5"}, args: []string{"--seed", "7"}},
		"rate":              on("--rate", "100"),
		"time-scale":        on("--time-scale", "0.5"),
		"tokenizer":         {spec: []string{"prompts:" + prompts}, args: []string{"--tokenizer", "o200k_base"}},
		"window":            on("--window", "1s:"),
		"filter-model":      on("--filter-model", "m1"),
		"filter-path":       on("--filter-path", "/v1/completions"),
		"filter-status":     on("--filter-status", "503"),
		"sample":            on("--sample", "0.5"),
		"loop":              on("--loop", "2"),
		"max-prompt-tokens": on("--max-prompt-tokens", "21"),
		"max-output-tokens": on("--max-output-tokens", "1"),
		"model-map":         on("--model-map", "m1=x"),
		"shard":             on("--shard", "0/2"),
		"clamp-wait":        {spec: []string{"mooncake:" + sessions}, args: []string{"--clamp-wait", "1m"}},
		"pack-idle":         {spec: []string{"mooncake:" + sessions}, args: []string{"--pack-idle", "1m"}},
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	inspectFlags(fs, &inspectOptions{})
	fs.VisitAll(func(f *flag.Flag) {
		c, ok := cases[f.Name]
		if !ok {
			t.Errorf("replay inspect lists --%s but it has no case here", f.Name)
			return
		}
		base := outcome(append(append([]string{"inspect"}, c.spec...), c.ctx...)...)
		got := outcome(append(append(append([]string{"inspect"}, c.spec...), c.ctx...), c.args...)...)
		switch {
		case strings.HasPrefix(got, "error: ") && !strings.Contains(got, "--"+f.Name):
			t.Errorf("--%s: %s, want an error naming it", f.Name, got)
		case got == base:
			t.Errorf("--%s %v changes nothing replay inspect prints", f.Name, c.args)
		}
	})
	if got := outcome("inspect", capDir, "--seed", "7"); !strings.Contains(got, "--seed seeds --sample only") {
		t.Errorf("--seed without --sample: %s", got)
	}
	// A variable set for every command (REPRISE_SEED) is not refused where
	// it does not apply: only a typed flag is.
	t.Setenv("REPRISE_SEED", "7")
	if got := outcome("inspect", capDir); strings.HasPrefix(got, "error: ") {
		t.Errorf("REPRISE_SEED without --sample: %s", got)
	}
}

// replay sim's flags are the simulated engine's configuration: each sets
// its own field of it (or, where its value is refused, says so).
func TestSimHelpListsOnlyFlagsItHonours(t *testing.T) {
	def := sim.DefaultConfig()
	_, defListen := simFlags(&def)
	fs, _ := simFlags(new(sim.Config))
	fs.SetOutput(io.Discard)
	for _, name := range (&cli.Flags{FlagSet: fs.FlagSet}).Names() {
		cfg := sim.DefaultConfig()
		fs, listen := simFlags(&cfg)
		fs.SetOutput(io.Discard)
		f := fs.Lookup(name)
		v := otherValue(t, f)
		if err := fs.FlagSet.Parse([]string{"--" + name + "=" + v}); err != nil {
			t.Errorf("--%s %s: %v", name, v, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			if !strings.Contains(err.Error(), name) && !strings.Contains(strings.ToLower(err.Error()), strings.ReplaceAll(name, "-", "")) {
				t.Errorf("--%s %s refused without naming it: %v", name, v, err)
			}
			continue
		}
		if reflect.DeepEqual(cfg, sim.DefaultConfig()) && *listen == *defListen {
			t.Errorf("--%s %s changes nothing the simulator runs", name, v)
		}
	}
}

// otherValue is a value of f's type other than its default.
func otherValue(t *testing.T, f *flag.Flag) string {
	t.Helper()
	def := f.DefValue
	switch typ := fmt.Sprintf("%T", f.Value); typ {
	case "*flag.boolValue":
		return strconv.FormatBool(def != "true")
	case "*flag.durationValue":
		d, _ := time.ParseDuration(def)
		return (d*2 + time.Millisecond).String()
	case "*flag.intValue", "*flag.int64Value":
		n, _ := strconv.Atoi(def)
		return strconv.Itoa(n + 1)
	case "*flag.float64Value":
		x, _ := strconv.ParseFloat(def, 64)
		if x > 0 && x <= 1 {
			return strconv.FormatFloat(x/2, 'g', -1, 64)
		}
		return strconv.FormatFloat(x+0.25, 'g', -1, 64)
	case "*flag.stringValue":
		return def + "-other"
	default:
		t.Fatalf("--%s: a value of type %s: add it to otherValue", f.Name, typ)
		return ""
	}
}

// report, export and merge: each flag changes what is printed or written.
func TestResultCommandsHonourTheirFlags(t *testing.T) {
	url := quickSim(t)
	dir := t.TempDir()
	if got := outcome("run", "--target", url, "--workload", "synthetic:prompt_tokens=10,output_tokens=2,samples=4", "--profile", "throughput",
		"--quiet", "--scrape-metrics", "off", "--output-dir", dir); strings.HasPrefix(got, "error: ") {
		t.Fatal(got)
	}
	shard := func(i int) string { return filepath.Join(dir, "split", fmt.Sprintf("shard-%d", i)) }
	for i := range 2 {
		if got := outcome("run", "--target", url, "--workload", "synthetic:prompt_tokens=10,output_tokens=2,samples=6", "--profile", "poisson", "--rate", "50",
			"--shard", fmt.Sprintf("%d/2", i), "--quiet", "--scrape-metrics", "off", "--output-dir", shard(i)); strings.HasPrefix(got, "error: ") {
			t.Fatal(got)
		}
	}
	for _, c := range []struct {
		cmd, flag string
		base      []string
		args      []string
	}{
		{"report", "output-dir", []string{dir}, []string{"--output-dir", filepath.Join(t.TempDir(), "r")}},
		{"report", "quiet", []string{dir}, []string{"--quiet"}},
		{"export", "format", []string{dir}, []string{"--format", "otel-unknown"}},
		{"export", "o", []string{dir}, []string{"-o", filepath.Join(t.TempDir(), "g.json")}},
		{"merge", "output-dir", []string{filepath.Join(dir, "split"), "--output-dir", filepath.Join(t.TempDir(), "m1")}, []string{"--output-dir", filepath.Join(t.TempDir(), "m2")}},
		{"merge", "quiet", []string{filepath.Join(dir, "split"), "--output-dir", filepath.Join(t.TempDir(), "m5")}, []string{"--quiet", "--output-dir", filepath.Join(t.TempDir(), "m6")}},
	} {
		base := outcome(append([]string{c.cmd}, c.base...)...)
		got := outcome(append(append([]string{c.cmd}, c.base...), c.args...)...)
		if strings.HasPrefix(base, "error: ") {
			t.Errorf("%s %v: %s", c.cmd, c.base, base)
			continue
		}
		if strings.HasPrefix(got, "error: ") && !strings.Contains(got, "-"+c.flag) {
			t.Errorf("%s -%s: %s, want an error naming it", c.cmd, c.flag, got)
		} else if got == base {
			t.Errorf("%s -%s changes nothing printed", c.cmd, c.flag)
		}
	}
	// --label changes what is written.
	labelled := filepath.Join(t.TempDir(), "labelled")
	if got := outcome("merge", filepath.Join(dir, "split"), "--label", "gpu=h100", "--output-dir", labelled); strings.HasPrefix(got, "error: ") {
		t.Fatal(got)
	}
	if f := reporttest.Read(t, labelled); f.Labels["gpu"] != "h100" {
		t.Errorf("merge --label: labels %v", f.Labels)
	}
	// Every flag of the three has a case above.
	for cmd, want := range map[string][]string{"report": {"output-dir", "quiet"}, "export": {"format", "o"}, "merge": {"label", "output-dir", "quiet"}} {
		var out bytes.Buffer
		if err := Run(context.Background(), []string{cmd, "--help"}, &out, &out); err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Fatal(err)
		}
		n := strings.Count(out.String(), "\n  -")
		if n != len(want) {
			t.Errorf("replay %s --help lists %d flags, the test covers %v:\n%s", cmd, n, want, out.String())
		}
	}
}
