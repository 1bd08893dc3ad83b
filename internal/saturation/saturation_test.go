package saturation

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// Values of GuideLLM 0.8.1's approx_t_ppf(0.975, dof), printed by its
// Python; the detector must use the same quantiles for a margin of error to
// mean the same number.
func TestTQuantileMatchesGuideLLM(t *testing.T) {
	for _, c := range []struct{ dof, want float64 }{
		{1, 6.479055276561087}, {3, 2.9899395775853796}, {10, 2.2192073919054045},
		{30, 2.041898987326509}, {118, 1.9806644007775698},
	} {
		if got := tQuantile(0.975, c.dof); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("tQuantile(0.975, %v) = %v, want %v", c.dof, got, c.want)
		}
	}
	if !math.IsNaN(tQuantile(0.975, 0)) {
		t.Error("dof 0 must be NaN")
	}
}

// The same series fed to GuideLLM 0.8.1's OverSaturationConstraint
// (minimum_duration=5, minimum_ttft=0.1; per second s: concurrency
// 2 + 0.5s + s mod 3, TTFT 0.05s + 0.01(s mod 4)) alerts at s = 7 with
// ttft_slope 0.052, ttft_slope_moe 0.26557575691994173, ttft_n 5,
// ttft_violations 5, concurrent_slope 0.6, concurrent_slope_moe
// 1.4949697887926932, concurrent_n 5.
func TestGuideLLMSignalMatchesGuideLLM(t *testing.T) {
	c := DefaultConfig()
	c.MinSeconds, c.MinimumTTFT, c.Backlog = 5, 0.1, false
	d, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	stoppedAt := 0
	for s := 1; s <= 40 && stoppedAt == 0; s++ {
		at := time.Duration(s) * time.Second
		conc := 2 + 0.5*float64(s) + float64(s%3)
		ttft := time.Duration(math.Round((0.05*float64(s) + 0.01*float64(s%4)) * float64(time.Second)))
		a := d.startedFloat(at, conc)
		if d.FirstToken(at, ttft) || a {
			stoppedAt = s
		}
	}
	r := d.Report()
	if stoppedAt != 7 || r.Signal != SignalGuideLLM || !r.IsOverSaturated {
		t.Fatalf("stopped at %d: %+v", stoppedAt, r)
	}
	if !near(*r.TTFTSlope, 0.052) || !near(*r.TTFTSlopeMOE, 0.26557575691994173) || r.TTFTN != 5 || r.TTFTViolations != 5 ||
		!near(*r.ConcurrentSlope, 0.6) || !near(*r.ConcurrentSlopeMOE, 1.4949697887926932) || r.ConcurrentN != 5 {
		t.Fatalf("report %+v slopes %v %v %v %v", r, *r.TTFTSlope, *r.TTFTSlopeMOE, *r.ConcurrentSlope, *r.ConcurrentSlopeMOE)
	}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestDefaultsAreGuideLLMs(t *testing.T) {
	c := DefaultConfig()
	if c.Mode != Enforce || c.MinSeconds != 30 || c.MaxWindowSeconds != 120 || c.MOEThreshold != 2 || c.MinimumTTFT != 2.5 ||
		c.MaximumWindowRatio != 0.75 || c.MinimumWindowSize != 5 || c.Confidence != 0.95 {
		t.Fatalf("defaults %+v", c)
	}
}

// TestGuideLLMSignalMissesSqrtBacklog documents the blind spot. At exactly
// capacity the backlog is a reflected random walk: its mean grows like √t
// and its own wandering is as large as its growth, so over GuideLLM's
// 120-second window the concurrency slope is small against its margin of
// error, and at 100 req/s the TTFTs stay below 2.5 s for minutes, which its
// violation gate requires. Over ten simulated minutes and 20 seeds the
// GuideLLM signal fires for at most a few seeds; the backlog signal, which
// compares thirds of the whole benchmark, fires for every one, within
// about two minutes.
func TestGuideLLMSignalMissesSqrtBacklog(t *testing.T) {
	guide, backlog := 0, 0
	for seed := uint64(1); seed <= 20; seed++ {
		c := DefaultConfig()
		c.Mode = Monitor
		d, _ := New(c)
		queueAtCapacity(d, seed, 100, 200*time.Millisecond, 600, 1.0)
		r := d.Report()
		for _, f := range r.Fired {
			switch f.Signal {
			case SignalGuideLLM:
				guide++
			case SignalBacklogGrowth:
				backlog++
				if f.AtS > 300 {
					t.Errorf("seed %d: backlog growth only at %.0f s", seed, f.AtS)
				}
			}
		}
	}
	if guide > 5 || backlog != 20 {
		t.Fatalf("at capacity over 20 seeds: guidellm fired %d times (want ≤ 5), backlog growth %d (want 20)", guide, backlog)
	}
}

// Both signals stay quiet at half and at 80% of capacity, and both fire at
// 110%.
func TestQuietBelowCapacityFiresAbove(t *testing.T) {
	for _, load := range []float64{0.5, 0.8} {
		for seed := uint64(1); seed <= 10; seed++ {
			d, _ := New(DefaultConfig())
			if at, _ := queueAtCapacity(d, seed, 100, 200*time.Millisecond, 300, load); at != 0 {
				t.Errorf("load %.1f seed %d: fired at %v: %+v", load, seed, at, d.Report().Fired)
			}
		}
	}
	for seed := uint64(1); seed <= 10; seed++ {
		c := DefaultConfig()
		c.Mode = Monitor
		d, _ := New(c)
		queueAtCapacity(d, seed, 100, 200*time.Millisecond, 300, 1.1)
		r := d.Report()
		if !r.Detected || len(r.Fired) < 2 || r.DetectedAtS < 30 || r.DetectedAtS > 120 {
			t.Errorf("load 1.1 seed %d: %+v", seed, r.Fired)
		}
	}
}

func TestEnforceStopsMonitorDoesNot(t *testing.T) {
	for _, mode := range []string{Enforce, Monitor} {
		c := DefaultConfig()
		c.Mode = mode
		d, _ := New(c)
		at, _ := queueAtCapacity(d, 1, 100, 200*time.Millisecond, 300, 1.5)
		r := d.Report()
		if !r.Detected {
			t.Fatalf("%s: not detected", mode)
		}
		if (mode == Enforce) != (at > 0) {
			t.Errorf("%s: stop at %v", mode, at)
		}
		if mode == Enforce && at.Seconds() != r.DetectedAtS {
			t.Errorf("stopped at %v, detected at %v", at, r.DetectedAtS)
		}
	}
}

func TestReportKeysAreGuideLLMs(t *testing.T) {
	d, _ := New(DefaultConfig())
	b, err := json.Marshal(d.Report())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ttft_slope", "ttft_slope_moe", "ttft_n", "ttft_violations", "concurrent_slope",
		"concurrent_slope_moe", "concurrent_n", "is_over_saturated"} {
		if _, ok := m[k]; !ok {
			t.Errorf("missing key %q in %s", k, b)
		}
	}
}

func TestParse(t *testing.T) {
	c, err := Parse("monitor,min_seconds=10,minimum_ttft=0.5,backlog=false,minimum_window_size=3")
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != Monitor || c.MinSeconds != 10 || c.MinimumTTFT != 0.5 || c.Backlog || c.MinimumWindowSize != 3 || c.MOEThreshold != 2 {
		t.Fatalf("%+v", c)
	}
	if c, err := Parse(""); err != nil || c.Mode != Enforce {
		t.Fatalf("empty: %+v %v", c, err)
	}
	_, err = Parse("stop,confidence=2,bogus=1,moe_threshold=x")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`mode "stop"`, "confidence 2", `unknown parameter "bogus"`, "moe_threshold=x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestParseGuideLLMEnabled: GuideLLM's enabled parameter (whether a
// detection stops the benchmark) is accepted, selects the mode, and is
// written back under its name.
func TestParseGuideLLMEnabled(t *testing.T) {
	for _, tt := range []struct {
		in   string
		mode string
	}{
		{"enabled=false", Monitor},
		{"enabled=true,min_seconds=10", Enforce},
		{"enforce,enabled=false", Monitor},
		{"monitor,enabled=true", Enforce},
		{"enabled=false,mode=enforce", Enforce},
	} {
		c, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if c.Mode != tt.mode {
			t.Errorf("%q: mode %q, want %q", tt.in, c.Mode, tt.mode)
		}
		d, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Report().Params["enabled"]; got != (tt.mode == Enforce) {
			t.Errorf("%q: params enabled = %v", tt.in, got)
		}
	}
	if _, err := Parse("enabled=maybe"); err == nil || !strings.Contains(err.Error(), "enabled=maybe") {
		t.Errorf("enabled=maybe: %v", err)
	}
}

// FuzzParse: Parse never panics, and a value it accepts is a valid Config.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "enforce", "monitor,min_seconds=10", "enforce,backlog=false,confidence=0.99", "mode=monitor", "enabled=false", "x=1,", "minimum_window_size=2.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			return
		}
		if verr := c.Validate(); verr != nil {
			t.Fatalf("Parse(%q) accepted an invalid config: %v", s, verr)
		}
		if _, err := New(c); err != nil {
			t.Fatalf("New rejects what Parse accepted: %v", err)
		}
	})
}
