package bench

import (
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/slo"
)

func TestDueWaiting(t *testing.T) {
	for _, tt := range []struct {
		p    engine.Progress
		rate float64
		want int
	}{
		{engine.Progress{Elapsed: 5 * time.Second, Sent: 100}, 20, 0},                                  // nothing waits
		{engine.Progress{Elapsed: 5 * time.Second, Sent: 100, Behind: 500 * time.Millisecond}, 20, 11}, // 1 + 0.5 s × 20/s
		{engine.Progress{Elapsed: 4 * time.Second, Sent: 100, Behind: 2 * time.Second}, 0, 51},         // rate unknown: 25/s sent
		{engine.Progress{Elapsed: 4 * time.Second, Sent: 100, Behind: time.Millisecond}, 1000, 2},      // 1 + 1
		{engine.Progress{Elapsed: 0, Sent: 0, Behind: time.Millisecond}, 0, 1},                         // no rate at all: the one in hand
	} {
		if got := dueWaiting(tt.p, tt.rate); got != tt.want {
			t.Errorf("dueWaiting(%+v, %v) = %d, want %d", tt.p, tt.rate, got, tt.want)
		}
	}
}

func TestSLOFrom(t *testing.T) {
	spec, err := slo.Parse("ttft_p99<=1s")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		from, profile string
		intended      bool
	}{
		{SLOFromAuto, engine.ProfileConstant, true},
		{SLOFromAuto, engine.ProfilePoisson, true},
		{SLOFromAuto, engine.ProfileGamma, true},
		{SLOFromAuto, engine.ProfileTrace, true},
		{SLOFromAuto, engine.ProfileSynchronous, false},
		{SLOFromAuto, engine.ProfileConcurrent, false},
		{SLOFromAuto, engine.ProfileThroughput, false},
		{slo.FromSent, engine.ProfilePoisson, false},
		{slo.FromIntended, engine.ProfileThroughput, true},
	} {
		r := &Runner{plan: Plan{SLO: spec, SLOFrom: tt.from}}
		s := r.specFor(tt.profile)
		if s.FromIntended != tt.intended || s.PerRequest().FromIntended != tt.intended {
			t.Errorf("--slo-from %s, %s: from intended %v, want %v", tt.from, tt.profile, s.FromIntended, tt.intended)
		}
	}
	if spec.FromIntended {
		t.Error("specFor changed the parsed spec")
	}
	if (&Runner{}).specFor(engine.ProfileConstant) != nil {
		t.Error("a spec without --slo")
	}
}
