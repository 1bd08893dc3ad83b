package bench

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// curve is a concurrency sweep whose output throughput at c streams is
// tput(c).
func curve(cs []int, tput func(c float64) float64) []report.Benchmark {
	var out []report.Benchmark
	for _, c := range cs {
		b := report.Benchmark{Name: "concurrent@" + strconv.Itoa(c), Profile: engine.ProfileConcurrent, Config: report.RunConfig{Concurrency: c}}
		b.Metrics.OutputTokensPerSecond = tput(float64(c))
		out = append(out, b)
	}
	return out
}

// The rule, on curves whose answer is known: throughput rising to a
// ceiling at 8 streams has its knee at 8; a straight line has none (its
// tail rises as fast as its start); a curve that flattens far below its
// peak has none; five points are the least the rule reads.
func TestKneeRule(t *testing.T) {
	streams := []int{1, 2, 4, 8, 16, 32}
	k := AnalyzeKnee(curve(streams, func(c float64) float64 { return 100 * min(c, 8) }))
	if k.Status != report.KneeFound || k.Concurrency < 7.5 || k.Concurrency > 8.5 || k.SaturationBenchmark != "concurrent@8" {
		t.Errorf("ceiling at 8: %+v", k)
	}
	if got := refinement(k); len(got) == 0 || len(got) > 2*KneePointsEachSide {
		t.Errorf("refinement around %.1f: %v", k.Concurrency, got)
	} else {
		for _, c := range got {
			if c <= 4 || c >= 16 || c == 8 {
				t.Errorf("refinement %v strays outside the knee's neighbours (4, 16) or repeats a measured point", got)
			}
		}
	}
	if k := AnalyzeKnee(curve(streams, func(c float64) float64 { return 10 * c })); k.Status != report.KneeNone || k.SlopeRatio <= KneeMaxTailRatio {
		t.Errorf("a straight line: %+v", k)
	}
	if k := AnalyzeKnee(curve(streams[:4], func(c float64) float64 { return min(c, 2) })); k.Status != report.KneeNone {
		t.Errorf("four points: %+v", k)
	}
}

// On the simulator, whose 4 slots bound its throughput, the knee sweep
// finds the knee near 4 streams, refines around it, and marks it.
func TestKneeSweepOnTheSimulator(t *testing.T) {
	url, _ := simtest.Start(t, func(c *sim.Config) {
		c.Slots, c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq, c.Jitter = 4, 5*time.Millisecond, 0, 2*time.Millisecond, 0, 0
	})
	plan := testPlan(url, "synthetic:prompt_tokens=10,output_tokens=20,samples=100000", func(p *Plan) {
		p.Engine.Profile, p.Engine.MaxRequests = engine.ProfileConcurrent, 0
		p.Engine.MaxSeconds = 1
	})
	r, err := NewRunner(plan, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	bs, k, err := r.RunKnee(context.Background(), Knee{Streams: []int{1, 2, 4, 8, 16}, Refine: true})
	if err != nil {
		t.Fatal(err)
	}
	if k.Status != report.KneeFound || k.Concurrency < 2.5 || k.Concurrency > 8 {
		t.Fatalf("knee %+v over %d benchmarks", k, len(bs))
	}
	if len(bs) != 5+len(k.Refined) || k.Initial == nil {
		t.Errorf("%d benchmarks, refined %v", len(bs), k.Refined)
	}
	t.Logf("knee at %.1f streams (%s), refined with %v", k.Concurrency, k.Reason, k.Refined)
}
