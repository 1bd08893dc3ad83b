package compare

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/report"
)

func TestParseFailIf(t *testing.T) {
	gates, err := ParseFailIf(" ttft_p99>+10% , error_rate>0.5%,e2e_p50>+50ms, output_tps<-5%, itl_mean>20ms, rps<8, goodput<-2%, e2e_p90>+1.5s")
	if err != nil {
		t.Fatal(err)
	}
	want := []Gate{
		{Text: "ttft_p99>+10%", Metric: TTFT, Stat: StatP99, Op: '>', Change: true, Pct: true, Bound: 10},
		{Text: "error_rate>0.5%", Metric: ErrorRate, Stat: StatValue, Op: '>', Bound: 0.005},
		{Text: "e2e_p50>+50ms", Metric: E2E, Stat: StatP50, Op: '>', Change: true, Bound: 50},
		{Text: "output_tps<-5%", Metric: OutputTokensPerS, Stat: StatValue, Op: '<', Change: true, Pct: true, Bound: -5},
		{Text: "itl_mean>20ms", Metric: ITL, Stat: StatMean, Op: '>', Bound: 20},
		{Text: "rps<8", Metric: RequestsPerSecond, Stat: StatValue, Op: '<', Bound: 8},
		{Text: "goodput<-2%", Metric: GoodputAttainment, Stat: StatValue, Op: '<', Change: true, Bound: -0.02},
		{Text: "e2e_p90>+1.5s", Metric: E2E, Stat: StatP90, Op: '>', Change: true, Bound: 1500},
	}
	if len(gates) != len(want) {
		t.Fatalf("got %d gates: %+v", len(gates), gates)
	}
	for i := range want {
		if gates[i] != want[i] {
			t.Errorf("gate %d: %+v, want %+v", i, gates[i], want[i])
		}
	}
	if gates, err := ParseFailIf(""); err != nil || gates != nil {
		t.Errorf("empty: %v %v", gates, err)
	}
}

func TestParseFailIfErrorsNameTheTerm(t *testing.T) {
	for in, want := range map[string]string{
		"ttft_p99":              `"ttft_p99": no comparison`,
		"ttft>+10%":             "a latency needs a statistic",
		"ttfx_p99>+10%":         `unknown metric "ttfx"`,
		"ttft_p98>+10%":         `unknown statistic "p98"`,
		"ttft_p99>10%":          "a level of time_to_first_token_ms needs its unit",
		"ttft_p99>+10":          "needs a unit",
		"ttft_p99>+ten%":        "is not a number",
		"ttft_p99>+10furlongs":  `unknown unit "furlongs"`,
		"error_rate>5ms":        "unit ms does not apply",
		"ttft_p99>=+10%":        "one comparison per term",
		"ttft_p99>":             "no bound",
		"error_rate_p99>1%":     "takes no statistic",
		"ttft_p99>+10%,,rps<1":  "empty term",
		"goodput<+-2%":          "is not a number",
		"e2e_p50>+1ms, bad>1ms": `"bad>1ms"`,
	} {
		_, err := ParseFailIf(in)
		var ge *GateError
		if err == nil || !errors.As(err, &ge) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--fail-if term") {
			t.Errorf("%q: error %v, want one containing %q", in, err, want)
		}
	}
	// Every bad term is reported, not just the first.
	_, err := ParseFailIf("a>1,ttft_p99>+1%,b<2")
	if err == nil || !strings.Contains(err.Error(), `"a>1"`) || !strings.Contains(err.Error(), `"b<2"`) {
		t.Errorf("two bad terms: %v", err)
	}
}

func TestGateCheckNeedsConfidence(t *testing.T) {
	r := report.ComparisonRow{Candidate: "c", Metric: TTFT, Stat: StatP99, Unit: "ms", Confidence: 0.99,
		BaselineValue: 100, CandidateValue: 115, DeltaAbs: 15, CILowAbs: 5, CIHighAbs: 25,
		DeltaPct: 15, CILowPct: 5, CIHighPct: 25, CandidateCILow: 105, CandidateCIHigh: 125, Verdict: report.VerdictWorse}
	for spec, want := range map[string]string{
		"ttft_p99>+10%":  report.GatePass, // point +15% is beyond, but the interval starts at +5%
		"ttft_p99>+4%":   report.GateFail,
		"ttft_p99>+4ms":  report.GateFail,
		"ttft_p99>+6ms":  report.GatePass,
		"ttft_p99>100ms": report.GateFail, // level: 105 > 100 with confidence
		"ttft_p99>110ms": report.GatePass,
		"ttft_p99<+30%":  report.GateFail, // the whole interval is below +30%: a drop gate
		"ttft_p99<200ms": report.GateFail,
	} {
		gates, err := ParseFailIf(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := gates[0].Check(&r); got.Status != want || got.Detail == "" {
			t.Errorf("%s: %s (%s), want %s", spec, got.Status, got.Detail, want)
		}
	}
	r.Verdict, r.Note = report.VerdictInsufficient, "needs at least 300 samples"
	g, _ := ParseFailIf("ttft_p99>+4%")
	if got := g[0].Check(&r); got.Status != report.GateUndecided || !strings.Contains(got.Detail, "300") {
		t.Errorf("insufficient: %+v", got)
	}
	rows := []report.ComparisonRow{r}
	rows[0].Verdict = report.VerdictWorse
	res := Evaluate(append(g, Gate{Text: "goodput<1%", Metric: GoodputAttainment, Stat: StatValue, Op: '<', Bound: 0.01}), rows, []string{"c"})
	if len(res) != 2 || res[0].Status != report.GateFail || rows[0].Gate != "ttft_p99>+4%" || res[1].Status != report.GateUndecided {
		t.Errorf("evaluate: %+v, row gate %q", res, rows[0].Gate)
	}
}

// FuzzParseFailIf: no input panics; every accepted gate prints to a form
// that parses back to the same gate.
func FuzzParseFailIf(f *testing.F) {
	for _, s := range []string{"ttft_p99>+10%", "error_rate>0.5%,e2e_p50>+50ms", "output_tps<-5%", "itl_mean>20ms", "goodput<-2%",
		"rps<8", "e2e_p90>+1.5s", "ttft_p50>+1e3us", ",", "a<b<c", "ttft_p99>-0ms", "error_rate>1e-3%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		gates, err := ParseFailIf(s)
		if err != nil {
			var ge *GateError
			if !errors.As(err, &ge) {
				t.Fatalf("%q: error %v is not a *GateError", s, err)
			}
			return
		}
		for _, g := range gates {
			back, err := ParseFailIf(g.String())
			if err != nil || len(back) != 1 {
				t.Fatalf("%q → %q: %v", s, g.String(), err)
			}
			b := back[0]
			if b.Metric != g.Metric || b.Stat != g.Stat || b.Op != g.Op || b.Change != g.Change || b.Pct != g.Pct ||
				math.Abs(b.Bound-g.Bound) > 1e-9*max(1, math.Abs(g.Bound)) {
				t.Fatalf("%q → %q → %+v, want %+v", s, g.String(), b, g)
			}
		}
	})
}
