package compare

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/report"
)

// TestCompareSkipsWarmupAndCooldown: records of a warmup or cooldown phase
// take no part, in the latency samples, the counts and the rate buckets,
// run by run.
func TestCompareSkipsWarmupAndCooldown(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	base, cand := sideFrom("a", r, 400, 0), sideFrom("b", r, 400, 0)
	// The first 100 of the candidate are a slow warmup, the last 50 a
	// cooldown that errored: neither may count.
	for i := range cand.Requests {
		switch {
		case i < 100:
			cand.Requests[i].Phase = "warmup"
			cand.Requests[i].FirstTokenMs += 500
		case i >= 350:
			cand.Requests[i].Phase = "cooldown"
			cand.Requests[i].Status, cand.Requests[i].Error = 500, "boom"
		}
	}
	cand.RunLengths = []int{200, 200}
	rows, err := Compare(base, cand, Options{Resamples: 500})
	if err != nil {
		t.Fatal(err)
	}
	if p := row(t, rows, TTFT, StatP50); p.CandidateN != 250 || p.BaselineN != 400 || p.Verdict != report.VerdictNoDifference {
		t.Errorf("ttft p50: n %d/%d, %s; want the 250 measured candidate requests, no difference", p.BaselineN, p.CandidateN, p.Verdict)
	}
	if e := row(t, rows, ErrorRate, StatValue); e.CandidateValue != 0 || e.CandidateN != 250 {
		t.Errorf("error rate %.3f of %d, want 0 of 250", e.CandidateValue, e.CandidateN)
	}
	m := measured(cand)
	if !slices.Equal(m.RunLengths, []int{100, 150}) || len(m.Requests) != 250 {
		t.Errorf("measured runs %v (%d requests), want [100 150]", m.RunLengths, len(m.Requests))
	}
}

// TestInsufficientRowsHaveNoInterval: below a statistic's minimum sample
// no interval is reported (null in JSON, "-" in tables), rather than the
// one-value interval replicates of the maximum would give (B4).
func TestInsufficientRowsHaveNoInterval(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	rows, err := Compare(sideFrom("a", r, 100, 0), sideFrom("b", r, 100, 0), Options{Resamples: 500})
	if err != nil {
		t.Fatal(err)
	}
	p99, p50 := row(t, rows, TTFT, StatP99), row(t, rows, TTFT, StatP50)
	if p99.Verdict != report.VerdictInsufficient || !p99.NoInterval || p99.CILowAbs != 0 || p99.CIHighPct != 0 || p99.PDelta != -1 {
		t.Errorf("p99 of 100: %+v", p99)
	}
	if p50.NoInterval || p50.CILowAbs >= p50.CIHighAbs || p50.PDelta < 0 {
		t.Errorf("p50 of 100 lost its interval: %+v", p50)
	}
	b, err := json.Marshal(p99)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"ci_low", "ci_high", "ci_low_pct", "ci_high_pct", "candidate_ci_low", "candidate_ci_high"} {
		if !strings.Contains(string(b), `"`+key+`":null`) {
			t.Errorf("%s not null in %s", key, b)
		}
	}
	var back report.ComparisonRow
	if err := json.Unmarshal(b, &back); err != nil || !back.NoInterval || back.Verdict != p99.Verdict {
		t.Errorf("round trip: %v %+v", err, back)
	}
	b, _ = json.Marshal(p50)
	if err := json.Unmarshal(b, &back); err != nil || back.NoInterval || back.CILowAbs != p50.CILowAbs || back.CandidateCIHigh != p50.CandidateCIHigh {
		t.Errorf("p50 round trip: %v %+v", err, back)
	}
}

// TestBootP checks the bootstrap p-value on replicate sets with a known
// share on each side of 0.
func TestBootP(t *testing.T) {
	for _, c := range []struct {
		reps []float64
		want float64
	}{
		{[]float64{1, 2, 3, 4}, 2.0 / 5},             // none ≤ 0: 2·(0+1)/5
		{[]float64{-2, -1, 1, 2}, 1},                 // balanced
		{[]float64{-1, 0, 1, 2, 3, 4, 5, 6, 7}, 0.6}, // 2 ≤ 0: 2·3/10
		{[]float64{0, 0, 0}, 1},                      // ties count on both sides
	} {
		if got := bootP(c.reps); got < c.want-1e-12 || got > c.want+1e-12 {
			t.Errorf("bootP(%v) = %v, want %v", c.reps, got, c.want)
		}
	}
}

// TestHeadlineHolm checks the step-down on hand-made rows: families are
// Bonferroni-adjusted inside (k tested statistics) and Holm-tested across.
func TestHeadlineHolm(t *testing.T) {
	mk := func(metric string, p, delta float64, lower bool) report.ComparisonRow {
		return report.ComparisonRow{Candidate: "c", Metric: metric, Stat: StatP50, PDelta: p, DeltaAbs: delta, LowerIsBetter: lower, Verdict: report.VerdictNoDifference}
	}
	rows := []report.ComparisonRow{
		mk(TTFT, 0.004, 5, true),               // family p 0.008 (two tested) ≤ 0.05/4: worse
		mk(TTFT, 0.5, 1, true),                 //
		mk(E2E, 0.012, -3, true),               // 0.012 ≤ 0.05/3: better
		mk(ITL, 0.03, 1, true),                 // 0.03 > 0.05/2: stop
		mk(OutputTokensPerS, 0.001, -2, false), // 0.001 ≤ 0.05/5: worse (a drop)
		mk(ErrorRate, 0.001, 1, true),          // another candidate's row: ignored
		{Candidate: "c", Metric: NTPOT, PDelta: -1, Verdict: report.VerdictInsufficient},
	}
	rows[5].Candidate = "other"
	rows = append(rows, mk(TPOT, 0.9, 0, true))
	h := Headline(rows, "c", 0.95)
	if h.Verdict != report.HeadlineMixed || h.Families != 5 ||
		!slices.Equal(h.Worse, []string{OutputTokensPerS, TTFT}) || !slices.Equal(h.Better, []string{E2E}) {
		t.Errorf("headline %+v", h)
	}
	if got := Headline(rows[1:2], "c", 0.95); got.Verdict != report.HeadlineNoDifference {
		t.Errorf("one family at p 0.5: %+v", got)
	}
	if got := Headline(rows[6:7], "c", 0.95); got.Verdict != report.HeadlineInsufficient {
		t.Errorf("nothing tested: %+v", got)
	}
	if got := Headline(rows[:1], "c", 0.95); got.Verdict != report.HeadlineRegressed || got.Text() != "c: regressed (worse: "+TTFT+")" {
		t.Errorf("regressed: %+v %q", got, got.Text())
	}
}

// TestHeadlineOnShiftedAndIdentical: a 40 ms TTFT shift regresses the
// candidate; identical distributions, over 20 seeds, give no significant
// difference in at least 19 (across every metric family, not one row).
func TestHeadlineOnShiftedAndIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	rows, err := Compare(sideFrom("a", r, 400, 0), sideFrom("b", r, 400, 40), Options{Resamples: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if h := Headline(rows, "b", 0.95); h.Verdict != report.HeadlineRegressed || !slices.Contains(h.Worse, TTFT) {
		t.Errorf("shifted: %+v", h)
	}
	same := 0
	for rep := range 20 {
		r := rand.New(rand.NewPCG(uint64(rep), 5))
		rows, err := Compare(sideFrom("a", r, 300, 0), sideFrom("b", r, 300, 0), Options{Seed: uint64(rep + 1), Resamples: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if h := Headline(rows, "b", 0.95); h.Verdict == report.HeadlineNoDifference {
			same++
		} else {
			t.Logf("repetition %d: %s", rep, h.Text())
		}
	}
	if same < 19 {
		t.Errorf("identical: %d of 20 say no significant difference", same)
	}
}
