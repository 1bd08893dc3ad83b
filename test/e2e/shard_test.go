package e2e

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/reprise-llm/reprise/internal/report"
)

// Issue 13: a plan split across N replay processes that start together,
// merged, is the plan one process runs: the same intended send times,
// request for request; the same counts and token totals; and percentiles
// that are those of the union of the shards' requests.
func TestSplitRunMergesToTheWholePlan(t *testing.T) {
	sim := start(t, bin("replay"), "sim", "--listen", "127.0.0.1:0", "--slots", "64", "--ttft-base", "5ms",
		"--itl-base", "1ms", "--itl-per-seq", "0s", "--prefill-per-token", "0s")
	// The simulator honours ignore_eos (exact output lengths); GuideLLM's
	// mock answers max_tokens tokens without it.
	t.Run("replay sim", func(t *testing.T) { splitAndMerge(t, sim.addr, "auto") })
	t.Run("GuideLLM's mock server", func(t *testing.T) { splitAndMerge(t, guidellmMock(t), "off") })
}

func splitAndMerge(t *testing.T, target, ignoreEOS string) {
	dir := t.TempDir()
	plan := []string{"run", "--target", target, "--workload", "synthetic:prompt_tokens=40,output_tokens=8,samples=100000",
		"--profile", "poisson", "--rate", "60", "--max-requests", "150", "--seed", "5", "--prompt-namespace", "none",
		"--save-requests", "--quiet", "--scrape-metrics", "off", "--ignore-eos", ignoreEOS}
	runReplay(t, append(plan, "--output-dir", filepath.Join(dir, "single"))...)

	const n = 3
	at := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339Nano)
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := range n {
		args := append(append([]string(nil), plan...), "--shard", fmt.Sprintf("%d/%d", i, n), "--start-at", at,
			"--output-dir", filepath.Join(dir, "run", fmt.Sprintf("shard-%d", i)))
		cmd := exec.Command(bin("replay"), args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("shard %d/%d: %v\n%s", i, n, err, outs[i])
		}
	}
	out := runReplay(t, "merge", filepath.Join(dir, "run"), "--output-dir", filepath.Join(dir, "merged"))
	if !strings.Contains(out, "merged 3 shards (150 requests)") {
		t.Errorf("merge said:\n%s", out)
	}

	single := readOne(t, filepath.Join(dir, "single"))
	merged := readOne(t, filepath.Join(dir, "merged"))
	if len(single.Requests) != 150 || len(merged.Requests) != 150 {
		t.Fatalf("%d requests single, %d merged; want 150", len(single.Requests), len(merged.Requests))
	}
	for i := range single.Requests {
		s, m := single.Requests[i], merged.Requests[i]
		if s.Index != m.Index || s.IntendedMs != m.IntendedMs {
			t.Fatalf("request %d: intended %v ms (index %d) single, %v ms (index %d) merged", i, s.IntendedMs, s.Index, m.IntendedMs, m.Index)
		}
	}
	sm, mm := single.Metrics, merged.Metrics
	if sm.Requests != mm.Requests || sm.InputTokensTotal != mm.InputTokensTotal || sm.OutputTokensTotal != mm.OutputTokensTotal {
		t.Errorf("counts: single %+v in %d out %d, merged %+v in %d out %d",
			sm.Requests, sm.InputTokensTotal, sm.OutputTokensTotal, mm.Requests, mm.InputTokensTotal, mm.OutputTokensTotal)
	}
	// The merged percentiles are those of the union of the shards'
	// requests (nearest rank, as docs/metrics.md defines them).
	var ttft, lat []float64
	for _, r := range merged.Requests {
		if r.Status == 200 && r.Error == "" {
			ttft, lat = append(ttft, r.TTFTMs), append(lat, r.LatencyMs)
		}
	}
	for _, c := range []struct {
		name   string
		values []float64
		got    [3]float64
	}{
		{"ttft", ttft, [3]float64{mm.TimeToFirstToken.P50, mm.TimeToFirstToken.P90, mm.TimeToFirstToken.P99}},
		{"request latency", lat, [3]float64{mm.RequestLatency.P50, mm.RequestLatency.P90, mm.RequestLatency.P99}},
	} {
		for k, p := range []float64{50, 90, 99} {
			if want := nearestRank(c.values, p); !near(c.got[k], want) {
				t.Errorf("%s p%v: merged %v, the union's %v", c.name, p, c.got[k], want)
			}
		}
	}
	if len(merged.Shards) != n || merged.Config.MergedShards != n {
		t.Errorf("shards %+v", merged.Shards)
	}
	for _, s := range merged.Shards {
		// An agreed start is one origin; each shard's first send says how
		// late it really began (a request is due at 0 in every shard).
		if s.StartOffsetMs != 0 || s.ClientLag.Count == 0 || s.FirstSendMs < 0 || s.FirstSendMs > 2000 {
			t.Errorf("shard %s: origin %.3f ms after the first, first send at %.3f ms, client lag %+v", s.Shard, s.StartOffsetMs, s.FirstSendMs, s.ClientLag)
		}
	}
	// A merged result is a result like any other.
	runReplay(t, "compare", filepath.Join(dir, "single"), filepath.Join(dir, "merged"), "--output-dir", filepath.Join(dir, "cmp"))
	runReplay(t, "export", "--format", "guidellm", filepath.Join(dir, "merged"), "-o", filepath.Join(dir, "g.json"))

	badShards(t, dir, plan)
}

// badShards: a shard missing, given twice, of another run, cut short or
// of another format version is refused by name, and nothing is written.
func badShards(t *testing.T, dir string, plan []string) {
	run := filepath.Join(dir, "run")
	shard := func(i int) string { return filepath.Join(run, fmt.Sprintf("shard-%d", i)) }
	other := filepath.Join(dir, "other", "shard-2")
	runReplay(t, append(append([]string(nil), plan...), "--seed", "6", "--shard", "2/3", "--output-dir", other)...)
	cut := copyDir(t, shard(1), filepath.Join(dir, "cut", "shard-1"))
	raw, err := os.ReadFile(filepath.Join(cut, "shard.jsonl.zst"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cut, "shard.jsonl.zst"), raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	future := copyDir(t, shard(2), filepath.Join(dir, "future", "shard-2"))
	writeZstd(t, filepath.Join(future, "shard.jsonl.zst"), `{"format":"reprise-shard","version":99,"shard":"2/3","index":2,"count":3}`+"\n")

	for _, c := range []struct {
		name string
		dirs []string
		want string
	}{
		{"missing", []string{shard(0), shard(1)}, "shard 2/3 missing"},
		{"twice", []string{shard(0), shard(1), shard(2), shard(1)}, "shard 1/3 given twice"},
		{"another run", []string{shard(0), shard(1), other}, "of another run"},
		{"cut short", []string{shard(0), cut, shard(2)}, filepath.Join("cut", "shard-1")},
		{"another version", []string{shard(0), shard(1), future}, "version 99"},
		{"not a shard", []string{filepath.Join(dir, "single")}, "was it run with --shard?"},
	} {
		outDir := filepath.Join(dir, "bad-"+strings.ReplaceAll(c.name, " ", "-"))
		out, err := exec.Command(bin("replay"), append(append([]string{"merge"}, c.dirs...), "--output-dir", outDir)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s: %v, want an error naming %q:\n%s", c.name, err, c.want, out)
		}
		if _, err := os.Stat(outDir); !os.IsNotExist(err) {
			t.Errorf("%s: %s was written", c.name, outDir)
		}
	}
}

func readOne(t *testing.T, dir string) report.Benchmark {
	t.Helper()
	f, _, err := report.ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Benchmarks) != 1 {
		t.Fatalf("%s: %d benchmarks", dir, len(f.Benchmarks))
	}
	return f.Benchmarks[0]
}

func nearestRank(values []float64, p float64) float64 {
	s := append([]float64(nil), values...)
	sort.Float64s(s)
	k := int(math.Ceil(float64(len(s)) * p / 100))
	return s[max(k, 1)-1]
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }

func copyDir(t *testing.T, from, to string) string {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
	return to
}

func writeZstd(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	z, _ := zstd.NewWriter(f)
	_, _ = z.Write([]byte(content))
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
