package slo

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

func TestParseTable(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // canonical form
	}{
		{"ttft_p99<=200ms,itl_p99<=50ms,e2e_p99<=3s", "ttft_p99<=200ms,itl_p99<=50ms,e2e_p99<=3000ms"},
		{" ttft <= 0.5s , tpot_mean<20ms", "ttft<=500ms,tpot_mean<20ms"},
		{"e2e_p99.9<=2s", "e2e_p99.9<=2000ms"},
		{"e2e_p999<=2s", "e2e_p99.9<=2000ms"},
		{"itl_p50<1.5ms", "itl_p50<1.5ms"},
		{"ttft_p100<=1s", "ttft<=1000ms"},
	} {
		s, err := Parse(c.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := s.String(); got != c.want {
			t.Errorf("Parse(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseErrorsNameTermAndPosition(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `term 1 "" at character 1: empty term`},
		{"ttft_p99<=200ms,,e2e<=1s", `term 2 "" at character 17: empty term`},
		{"ttft_p99<=200ms, latency<=3s", `term 2 "latency<=3s" at character 18: unknown metric "latency"`},
		{"ttft_p99<=200ms,e2e<=1s,ttft_p99<=abc", `--slo term 3 "ttft_p99<=abc" at character 25: threshold "abc": want a number with a unit`},
		{"ttft_p99=200ms", "no comparison"},
		{"ttft_q99<=1s", `statistic "q99"`},
		{"ttft_p0<=1s", `percentile "p0"`},
		{"ttft_p101<=1s", `percentile "p101"`},
		{"ttft_p9.9.9<=1s", `percentile "p9.9.9"`},
		{"ttft<=200", `threshold "200": want a number with a unit`},
		{"ttft<=abcms", `threshold "abc": not a number`},
		{"ttft<=0ms", "must be positive"},
		{"ttft<=-1s", "must be positive"},
		{"ttft<=0x10ms", "not a number"},
		{"ttft<=Infms", "not a number"},
	} {
		_, err := Parse(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
		var se *SyntaxError
		if err != nil && !errors.As(err, &se) {
			t.Errorf("Parse(%q): %T is not a *SyntaxError", c.in, err)
		}
	}
	_, err := Parse("bad<=1s,ttft<=1s,worse")
	if err == nil || strings.Count(err.Error(), "--slo term") != 2 {
		t.Errorf("every bad term must be reported: %v", err)
	}
}

// FuzzParse: Parse never panics, and what it accepts survives a round trip
// through String with the same terms.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"ttft_p99<=200ms,itl_p99<=50ms,e2e_p99<=3s", "tpot_mean<1s", "e2e_p99.9<=2s", "ttft<=1e3ms", ",", "<=", "ttft_p<=1s", "itl_p99<=.5s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			return
		}
		again, err := Parse(s.String())
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", s.String(), in, err)
		}
		if len(again.Terms) != len(s.Terms) {
			t.Fatalf("round trip of %q changed the terms", in)
		}
		for i := range s.Terms {
			a, b := s.Terms[i], again.Terms[i]
			if a.Metric != b.Metric || a.Percentile != b.Percentile || a.Mean != b.Mean || a.Strict != b.Strict || a.ThresholdMs != b.ThresholdMs {
				t.Fatalf("round trip of %q: %+v became %+v", in, a, b)
			}
		}
	})
}

func result(ttft, end time.Duration, tokens int) engine.Result {
	return engine.Result{Stream: true, Status: 200, Sent: 0, FirstToken: ttft, LastToken: end, End: end, OutputTokens: tokens}
}

func TestEvaluate(t *testing.T) {
	var rs []engine.Result
	for i := 1; i <= 100; i++ { // TTFT 1..100 ms; e2e TTFT + 99 ms; 100 tokens → ITL 1 ms
		ttft := time.Duration(i) * time.Millisecond
		rs = append(rs, result(ttft, ttft+99*time.Millisecond, 100))
	}
	rs = append(rs, engine.Result{Status: 500, Err: "http 500", Phase: engine.PhaseWarmup}) // warmup: not counted
	s, err := Parse("ttft_p99<=99ms,ttft_p50<50ms,itl_mean<=1ms,e2e<=198ms,tpot_p90<=2ms")
	if err != nil {
		t.Fatal(err)
	}
	rep := s.Evaluate(rs)
	want := []struct {
		v    float64
		pass bool
	}{{99, true}, {50, false}, {1, true}, {199, false}, {1.89, true}}
	for i, w := range want {
		got := rep.Terms[i]
		if got.Count == 0 || got.ValueMs < w.v-1e-9 || got.ValueMs > w.v+1e-9 || got.Pass != w.pass {
			t.Errorf("%s: got %.6g pass=%v (n=%d), want %.6g pass=%v", got.Text, got.ValueMs, got.Pass, got.Count, w.v, w.pass)
		}
	}
	if rep.Pass {
		t.Error("report passes with failing terms")
	}
	per := s.PerRequest()
	if per.TTFTMs != 50 || per.ITLMs != 1 || per.E2EMs != 198 || per.TPOTMs != 2 {
		t.Errorf("per-request thresholds %+v", per)
	}
}

func TestEvaluateNoDataFails(t *testing.T) {
	s, _ := Parse("itl_p99<=50ms")
	nonStreamed := engine.Result{Status: 200, FirstToken: time.Millisecond, LastToken: time.Millisecond, End: time.Millisecond, OutputTokens: 5}
	rep := s.Evaluate([]engine.Result{nonStreamed})
	if rep.Pass || rep.Terms[0].Count != 0 {
		t.Fatalf("%+v", rep)
	}
}

// TestEvaluateFailuresAreViolations: a run where 60% of the requests fail
// and the survivors are fast fails every term, whatever the percentile; a
// failed request in warmup or cooldown does not count.
func TestEvaluateFailuresAreViolations(t *testing.T) {
	var rs []engine.Result
	for i := range 100 {
		switch {
		case i%5 < 2: // 40 fast successes
			rs = append(rs, result(time.Millisecond, 3*time.Millisecond, 3))
		case i%5 == 2:
			rs = append(rs, engine.Result{Stream: true, Status: 503, Err: "http 503"})
		case i%5 == 3:
			rs = append(rs, engine.Result{Stream: true, Err: "context deadline exceeded"}) // timed out
		default:
			rs = append(rs, engine.Result{Stream: true, Status: 200, Err: "request cancelled: drain deadline passed"})
		}
	}
	s, err := Parse("ttft_p50<=1s,itl_p50<=1s,tpot_mean<=1s,e2e_p90<=1s")
	if err != nil {
		t.Fatal(err)
	}
	rep := s.Evaluate(rs)
	if rep.Pass || rep.From != FromSent {
		t.Fatalf("60%% failed with fast survivors: %+v", rep)
	}
	for _, r := range rep.Terms {
		if r.Pass || !math.IsInf(r.ValueMs, 1) || r.Failed != 60 || r.Count != 100 {
			t.Errorf("%s: %+v, want a failure at +Inf over 100 requests, 60 failed", r.Text, r)
		}
	}
	// The percentile below the failures is the survivors' value.
	low, _ := Parse("ttft_p40<=2ms")
	if r := low.Evaluate(rs); !r.Pass || r.Terms[0].ValueMs != 1 {
		t.Errorf("p40 over 40%% fast successes: %+v", r)
	}
	// The same failures in warmup and cooldown are left out.
	for i := range rs {
		if !rs[i].OK() {
			rs[i].Phase = engine.PhaseCooldown
		}
	}
	if rep := s.Evaluate(rs); !rep.Pass || rep.Terms[0].Failed != 0 || rep.Terms[0].Count != 40 {
		t.Errorf("failures in cooldown counted: %+v", rep)
	}
}

// TestEvaluateInfiniteValueJSON: +Inf is written as null and read back.
func TestEvaluateInfiniteValueJSON(t *testing.T) {
	s, _ := Parse("e2e_p99<=1s")
	rep := s.Evaluate([]engine.Result{{Status: 500, Err: "http 500"}})
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"value_ms":null`) || !strings.Contains(string(b), `"failed":1`) || !strings.Contains(string(b), `"metric":"e2e"`) {
		t.Errorf("json %s", b)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if v := back.Terms[0]; !math.IsInf(v.ValueMs, 1) || v.Pass || v.Metric != E2E || v.Failed != 1 || v.ThresholdMs != 1000 {
		t.Errorf("read back %+v", v)
	}
	ok := s.Evaluate([]engine.Result{result(time.Millisecond, 2*time.Millisecond, 2)})
	b, _ = json.Marshal(ok)
	if err := json.Unmarshal(b, &back); err != nil || back.Terms[0].ValueMs != 2 || !back.Pass {
		t.Errorf("finite value round trip: %s → %+v %v", b, back, err)
	}
}

// TestEvaluateFromIntended: with FromIntended, a request sent 300 ms late
// (client-side queueing) carries the delay in ttft, tpot and e2e, not itl,
// and the per-request thresholds say so too.
func TestEvaluateFromIntended(t *testing.T) {
	r := engine.Result{Stream: true, Status: 200, Intended: 0, Sent: 300 * time.Millisecond,
		FirstToken: 310 * time.Millisecond, LastToken: 400 * time.Millisecond, End: 400 * time.Millisecond, OutputTokens: 10}
	s, _ := Parse("ttft<=100ms,e2e<=200ms,itl<=20ms,tpot<=20ms")
	if rep := s.Evaluate([]engine.Result{r}); !rep.Pass || rep.From != FromSent {
		t.Fatalf("from sent: %+v", rep)
	}
	s.FromIntended = true
	rep := s.Evaluate([]engine.Result{r})
	want := map[string]float64{TTFT: 310, E2E: 400, ITL: 10, TPOT: 40}
	for _, term := range rep.Terms {
		if term.ValueMs != want[term.Metric] || term.Pass != (term.Metric == ITL) {
			t.Errorf("%s: %+v, want %v", term.Text, term, want[term.Metric])
		}
	}
	if rep.From != FromIntended || rep.Pass {
		t.Errorf("%+v", rep)
	}
	if !s.PerRequest().FromIntended {
		t.Error("per-request thresholds measured from the actual send")
	}
}
