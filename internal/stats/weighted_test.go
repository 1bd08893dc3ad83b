package stats

import (
	"math"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/engine"
)

// A value of weight w counts as w equal values: every figure of a weighted
// histogram equals that of a plain one fed each value w times, below the
// exact limit (exact order statistics) and past it (HDR), merged or not.
func TestWeightedHistogramEqualsRepeatedValues(t *testing.T) {
	for _, entries := range []int{7, ExactLimit + 10} {
		weighted, repeated := NewLatencyHistogram(), NewLatencyHistogram()
		half := NewLatencyHistogram() // the second half, merged in afterwards
		for i := range entries {
			v := float64((i*7919)%1009) / 7 // scrambled, with repeats
			w := int64(1 + i%4)
			if i < entries/2 {
				weighted.RecordWeighted(v, w)
			} else {
				half.RecordWeighted(v, w)
			}
			for range w {
				repeated.Record(v)
			}
		}
		weighted.RecordWeighted(5, 0)  // a weight of 0 records nothing,
		weighted.RecordWeighted(5, -2) // nor does a negative one
		weighted.Merge(half)
		got, want := weighted.Distribution(), repeated.Distribution()
		if got.Count != want.Count || got.P50 != want.P50 || got.P90 != want.P90 || got.P99 != want.P99 ||
			got.P999 != want.P999 || got.Min != want.Min || got.Max != want.Max {
			t.Errorf("%d entries: weighted %+v\nrepeated %+v", entries, got, want)
		}
		if math.Abs(got.Mean-want.Mean) > 1e-9*want.Mean || math.Abs(got.StdDev-want.StdDev) > 1e-9*want.StdDev {
			t.Errorf("%d entries: mean/std %v/%v, repeated %v/%v", entries, got.Mean, got.StdDev, want.Mean, want.StdDev)
		}
		gc, wc := weighted.CDF(), repeated.CDF()
		for i := range gc.V {
			if gc.V[i] != wc.V[i] {
				t.Errorf("%d entries: CDF at q=%v is %v, repeated %v", entries, gc.Q[i], gc.V[i], wc.V[i])
				break
			}
		}
		if entries > ExactLimit && !weighted.inexact {
			t.Errorf("%d entries kept exactly, past ExactLimit", entries)
		}
	}
}

// The exact limit counts entries, not weights: a token-weighted metric
// keeps one exact entry per request however long its output.
func TestWeightedEntriesCountAgainstTheExactLimit(t *testing.T) {
	h := NewLatencyHistogram()
	for i := range ExactLimit {
		h.RecordWeighted(float64(i), 1000)
	}
	if h.inexact || len(h.exact) != ExactLimit || h.Count() != 1000*ExactLimit {
		t.Errorf("inexact %v, %d entries, count %d", h.inexact, len(h.exact), h.Count())
	}
	// Merging a weighted histogram into a plain one keeps both weightings.
	plain := NewLatencyHistogram()
	plain.Record(1)
	small := NewLatencyHistogram()
	small.RecordWeighted(2, 3)
	plain.Merge(small)
	if d := plain.Distribution(); d.Count != 4 || d.P50 != 2 || d.Min != 1 || math.Abs(d.Mean-7.0/4) > 1e-12 {
		t.Errorf("merged %+v: want count 4, p50 2, min 1, mean 7/4", d)
	}
}

// tokenFixture is four streamed requests of different lengths, one token
// per event, numbers chosen so every figure below is worked out by hand.
func tokenFixture() []engine.Result {
	req := func(i int, sent float64, n int, gap float64) engine.Result {
		r := engine.Result{Index: i, Stream: true, Status: 200, Intended: ms(sent), Sent: ms(sent),
			PromptTokens: 10, OutputTokens: n, Events: n + 2} // a role event, n content events, [DONE]
		at := sent + 100 // TTFT 100 ms
		r.FirstToken = ms(at)
		for range n {
			r.Chunks = append(r.Chunks, ms(at))
			r.ChunkTokens = append(r.ChunkTokens, 1)
			r.LastToken = ms(at)
			at += gap
		}
		r.End = r.LastToken + ms(5)
		return r
	}
	return []engine.Result{
		req(0, 0, 2, 10),    // ITL 10 ms, 1 gap
		req(1, 1000, 11, 2), // ITL 2 ms, 10 gaps
		req(2, 2000, 4, 30), // ITL 30 ms, 3 gaps
		req(3, 3000, 1, 0),  // no ITL
	}
}

// Token-weighted distributions count a request once per gap (ITL) or per
// token (TPOT, NTPOT); the request-weighted ones once.
func TestTokenWeightedMetrics(t *testing.T) {
	m := Summarize(tokenFixture(), Options{})
	// Request-weighted ITL: 10, 2, 30 → mean 14, nearest-rank p50 (2nd of 3) 10.
	checkDist(t, "itl", m.InterTokenLatency, 3, 14, 2, 30, -1, 10, 30, 30)
	// Token-weighted: 10 ×1, 2 ×10, 30 ×3 → 14 gaps, mean Σ(last − first)/Σ(n − 1)
	// = (10 + 20 + 90)/14; sorted 2 ×10, 10, 30 ×3: p50 (7th) 2, p90 (13th) 30.
	checkDist(t, "itl token-weighted", m.InterTokenLatencyTokenWeighted, 14, 120.0/14, 2, 30, -1, 2, 30, 30)
	// TPOT per request (last − sent)/n: 110/2 = 55, 120/11, 190/4 = 47.5, 100/1.
	// Token-weighted: Σ(last − sent)/Σn = (110 + 120 + 190 + 100)/18 over 18 tokens;
	// sorted 120/11 ×11, 47.5 ×4, 55 ×2, 100: p50 (9th) 120/11, p90 (17th) 55, p99 100.
	checkDist(t, "tpot token-weighted", m.TimePerOutputTokenTokenWeighted, 18, 520.0/18, 120.0/11, 100, -1, 120.0/11, 55, 100)
	checkDist(t, "tpot", m.TimePerOutputToken, 4, (55+120.0/11+47.5+100)/4, 120.0/11, 100, -1, 47.5, 100, 100)
	// NTPOT (end − sent)/n token-weighted: Σ(end − sent)/Σn = (115 + 125 + 195 + 105)/18.
	near(t, "ntpot token-weighted mean", m.NormalizedTimePerOutputTokenTokenWeighted.Mean, 540.0/18)
	if m.NormalizedTimePerOutputTokenTokenWeighted.Count != 18 {
		t.Errorf("ntpot token-weighted count %d, want 18", m.NormalizedTimePerOutputTokenTokenWeighted.Count)
	}
	if c := m.CDF[CDFInterTokenLatencyTokenWeighted]; len(c.V) != len(CDFQuantiles) || c.V[50] != 2 || c.V[len(c.V)-1] != 30 {
		t.Errorf("token-weighted ITL CDF %v", c.V)
	}
}

// With every output of one length the two weightings agree: the issue's
// point that they differ only when lengths differ.
func TestWeightingsAgreeForEqualLengths(t *testing.T) {
	var rs []engine.Result
	for i := range 9 {
		r := tokenFixture()[1] // 11 tokens
		r.Index = i
		gap := ms(float64(1 + i%4))
		for j := range r.Chunks {
			r.Chunks[j] = r.FirstToken + time.Duration(j)*gap
		}
		r.LastToken = r.Chunks[len(r.Chunks)-1]
		rs = append(rs, r)
	}
	m := Summarize(rs, Options{})
	a, b := m.InterTokenLatency, m.InterTokenLatencyTokenWeighted
	if a.P50 != b.P50 || a.P90 != b.P90 || a.P99 != b.P99 || a.Min != b.Min || a.Max != b.Max || math.Abs(a.Mean-b.Mean) > 1e-12 || b.Count != 10*a.Count {
		t.Errorf("request-weighted %+v\ntoken-weighted %+v", a, b)
	}
}

// GuideLLM's per-request counts: total tokens, SSE events, and output
// tokens per content event spread its way.
func TestRecordCounts(t *testing.T) {
	rs := tokenFixture()
	rs = append(rs, engine.Result{Index: 4, Status: 200, Sent: ms(4000), FirstToken: ms(4100), LastToken: ms(4100), End: ms(4100),
		PromptTokens: 7, OutputTokens: 6}) // not streamed: no events, its 6 tokens at once
	m := Summarize(rs, Options{})
	// Total tokens: 12, 21, 14, 11, 13.
	checkDist(t, "total tokens", m.TotalTokens, 5, 71.0/5, 11, 21, -1, 13, 21, 21)
	// Events: n + 2 for the streamed (4, 13, 6, 3) and 0 for the last.
	checkDist(t, "stream events", m.StreamEvents, 5, 26.0/5, 0, 13, -1, 4, 13, 13)
	// Per chunk: request 0 → 1, then (2 − 1)/1 = 1 ×1; request 1 → 1, then
	// 10/10 = 1 ×10; request 2 → 1, then 3/3 = 1 ×3; request 3 (one event) →
	// 1; request 4 (not streamed) → 6. Count 1+1 + 1+10 + 1+3 + 1 + 1 = 19.
	checkDist(t, "tokens per chunk", m.OutputTokensPerChunk, 19, 24.0/19, 1, 6, -1, 1, 1, 6)
	checkDist(t, "tokens per later chunk", m.OutputTokensPerChunkAfterFirst, 14, 1, 1, 1, 0, 1, 1, 1)

	// Uneven chunks: 9 tokens in 3 events → 1, then 8/2 = 4 twice.
	r := engine.Result{Stream: true, Status: 200, Sent: 0, FirstToken: ms(10), LastToken: ms(30), End: ms(31),
		Chunks: msList(10, 20, 30), ChunkTokens: []int{1, 1, 1}, OutputTokens: 9, Events: 4}
	m = Summarize([]engine.Result{r}, Options{})
	checkDist(t, "uneven tokens per chunk", m.OutputTokensPerChunk, 3, 3, 1, 4, -1, 4, 4, 4)
	checkDist(t, "uneven tokens per later chunk", m.OutputTokensPerChunkAfterFirst, 2, 4, 4, 4, 0, 4, 4, 4)
}

// Concurrency's time-weighted distribution, from spans worked out by hand.
func TestConcurrencyDistribution(t *testing.T) {
	span := func(i int, sent, end float64) engine.Result {
		return engine.Result{Index: i, Status: 200, Sent: ms(sent), FirstToken: ms(end), LastToken: ms(end), End: ms(end), OutputTokens: 1}
	}
	// Over [0, 1000] ms: one in flight 0–100, three 100–300, two 300–400,
	// three 400–500, one 500–800, none 800–900, one 900–1000.
	m := Summarize([]engine.Result{
		span(0, 0, 500), span(1, 100, 800), span(2, 400, 500), span(3, 900, 1000), span(4, 100, 300),
	}, Options{})
	c := m.InFlight
	// Time at each level: 0 → 100 ms, 1 → 100 + 300 + 100 = 500, 2 → 100, 3 → 300.
	// Mean (0·100 + 1·500 + 2·100 + 3·300)/1000 = 1.6 = concurrency_mean.
	// Cumulative: 0 → 10%, 1 → 60%, 2 → 70%, 3 → 100%: p50 1, p90 3.
	if c.Count != 5 || c.Min != 0 || c.Max != 3 || c.P50 != 1 || c.Median != 1 || c.P90 != 3 || c.P95 != 3 || c.P99 != 3 {
		t.Errorf("concurrency %+v", c)
	}
	near(t, "concurrency mean", c.Mean, 1.6)
	near(t, "concurrency mean (concurrency_mean)", c.Mean, m.ConcurrencyMean)
	// Variance Σ t(L − 1.6)²/T = (100·2.56 + 500·0.36 + 100·0.16 + 300·1.96)/1000 = 1.04.
	near(t, "concurrency std_dev", c.StdDev, math.Sqrt(1.04))
	if float64(m.ConcurrencyMax) != c.Max {
		t.Errorf("max %v, concurrency_max %d", c.Max, m.ConcurrencyMax)
	}
	cdf := m.CDF[CDFInFlight]
	if len(cdf.V) != len(CDFQuantiles) || cdf.V[0] != 0 || cdf.V[10] != 0 || cdf.V[11] != 1 || cdf.V[60] != 1 ||
		cdf.V[61] != 2 || cdf.V[70] != 2 || cdf.V[71] != 3 || cdf.V[len(cdf.V)-1] != 3 {
		t.Errorf("concurrency CDF %v", cdf.V)
	}
}
