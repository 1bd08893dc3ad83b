package stats

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/openai"
	"github.com/reprise-llm/reprise/internal/workload"
)

// ev builds events: c(at, tokens) a content event, role(at) a role delta,
// finish(at) a finish-only delta, usage(at) a usage-only event.
func c(at float64, tokens int) Event { return Event{At: ms(at), Choices: true, Tokens: tokens} }
func role(at float64) Event          { return Event{At: ms(at), Choices: true} }
func finish(at float64) Event        { return Event{At: ms(at), Choices: true} }
func usage(at float64) Event         { return Event{At: ms(at)} }

// peerTimelines are five streamed requests, every figure of which is
// worked out by hand in TestPeerDefinitions.
func peerTimelines() []Timeline {
	return []Timeline{
		{ // T1: completions style, one token per event, usage last.
			Sent: 0, End: ms(205), PromptTokens: 50, OutputTokens: 6,
			Events: []Event{c(100, 1), c(120, 1), c(140, 1), c(160, 1), c(180, 1), c(200, 1), usage(201)},
		},
		{ // T2: chat style: a role delta, 4 events of 3 tokens, a finish-only delta, usage.
			Intended: ms(990), Sent: ms(1000), End: ms(1300), PromptTokens: 80, OutputTokens: 12,
			Events: []Event{role(1050), c(1100, 3), c(1160, 3), c(1220, 3), c(1280, 3), finish(1290), usage(1291)},
		},
		{ // T3: two tokens in one event.
			Intended: ms(2000), Sent: ms(2000), End: ms(2110), PromptTokens: 20, OutputTokens: 2,
			Events: []Event{role(2040), c(2100, 2), usage(2101)},
		},
		{ // T4: one token.
			Intended: ms(3000), Sent: ms(3000), End: ms(3090), PromptTokens: 30, OutputTokens: 1,
			Events: []Event{c(3080, 1), usage(3081)},
		},
		{ // T5: ten tokens with a 300 ms stall.
			Intended: ms(4000), Sent: ms(4000), End: ms(4590), PromptTokens: 40, OutputTokens: 10,
			Events: []Event{c(4200, 1), c(4210, 1), c(4220, 1), c(4230, 1), c(4530, 1), c(4540, 1), c(4550, 1),
				c(4560, 1), c(4570, 1), c(4580, 1), usage(4581)},
		},
	}
}

// reprise runs timelines through Recorder as Reprise's client records them.
func reprise(ts []Timeline) Metrics {
	rs := make([]engine.Result, len(ts))
	for i, t := range ts {
		rs[i] = t.Result(i)
	}
	return Summarize(rs, Options{})
}

// defined collects f's values over ts where f defines one.
func defined(ts []Timeline, f func(Timeline) (float64, bool)) []float64 {
	var out []float64
	for _, t := range ts {
		if v, ok := f(t); ok {
			out = append(out, v)
		}
	}
	return out
}

func each(ts []Timeline, f func(Timeline) float64) []float64 {
	var out []float64
	for _, t := range ts {
		out = append(out, f(t))
	}
	return out
}

func pooled(ts []Timeline, f func(Timeline) []float64) []float64 {
	var out []float64
	for _, t := range ts {
		out = append(out, f(t)...)
	}
	return out
}

func unit(vs []float64) []Sample {
	out := make([]Sample, len(vs))
	for i, v := range vs {
		out[i] = Sample{v, 1}
	}
	return out
}

// nearestRank is the nearest-rank percentile of vs, computed here apart
// from the histogram.
func nearestRank(vs []float64, pct float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[NearestRank(pct, int64(len(s)))-1]
}

const tol = 1e-6 // ms: Reprise's per-request values are whole nanoseconds

func approx(a, b float64) bool { return math.Abs(a-b) <= tol*max(1, math.Abs(b)) }

// sameAsGuideLLM checks that a Reprise distribution is the GuideLLM summary
// of the same samples: every figure both report.
func sameAsGuideLLM(t *testing.T, name string, d Distribution, g PeerSummary) {
	t.Helper()
	if float64(d.Count) != g.Count || !approx(d.Mean, g.Mean) || !approx(d.StdDev, g.StdDev) || !approx(d.Min, g.Min) ||
		!approx(d.Max, g.Max) || !approx(d.P50, g.P50) || !approx(d.P90, g.P90) || !approx(d.P95, g.P95) || !approx(d.P99, g.P99) {
		t.Errorf("%s: Reprise %+v\nGuideLLM %+v", name, d, g)
	}
}

// sameValues checks that a Reprise distribution holds exactly the values
// vs, one each: count, mean, spread, extremes and nearest-rank percentiles.
func sameValues(t *testing.T, name string, d Distribution, vs []float64) {
	t.Helper()
	l := LinearSummary(vs)
	if float64(d.Count) != l.Count || !approx(d.Mean, l.Mean) || !approx(d.StdDev, l.StdDev) || !approx(d.Min, l.Min) || !approx(d.Max, l.Max) ||
		!approx(d.P50, nearestRank(vs, 50)) || !approx(d.P90, nearestRank(vs, 90)) || !approx(d.P99, nearestRank(vs, 99)) {
		t.Errorf("%s: Reprise %+v, values %v", name, d, vs)
	}
}

// TestPeerDefinitions feeds one set of timelines through each peer's
// definitions (peerdefs_test.go) and through Reprise's recorder: where the
// definitions are the same the figures must be equal; where they are not,
// the values are pinned from the timelines by hand.
func TestPeerDefinitions(t *testing.T) {
	ts := peerTimelines()
	m := reprise(ts)

	t.Run("GuideLLM", func(t *testing.T) {
		// GuideLLM weights ITL by n − 1 and TPOT by n: Reprise's token-weighted
		// distributions are its figures, every one of them.
		var itl, tpot, perIter []Sample
		for _, tl := range ts {
			itl = append(itl, GuideLLMITL(tl))
			tpot = append(tpot, GuideLLMTPOT(tl))
			perIter = append(perIter, GuideLLMOutputTokensPerIteration(tl)...)
		}
		g := GuideLLMSummary(itl)
		sameAsGuideLLM(t, "inter_token_latency_ms", m.InterTokenLatencyTokenWeighted, g)
		// By hand: gaps Σ(last − first) = 100 + 180 + 0 + 380 over Σ(n − 1) = 5 + 11 + 1 + 9;
		// the median token gap is T1's 20 ms (cumulative weight 1, 12, 17, 26 over
		// 0, 180/11, 20, 380/9), where one count per request gives T2's 180/11.
		if g.Count != 26 || !approx(g.Mean, 660.0/26) || g.P50 != 20 || !approx(g.P90, 380.0/9) {
			t.Errorf("GuideLLM ITL %+v", g)
		}
		if !approx(m.InterTokenLatency.Mean, (20+180.0/11+0+380.0/9)/4) || !approx(m.InterTokenLatency.P50, 180.0/11) || m.InterTokenLatency.Count != 4 {
			t.Errorf("request-weighted ITL %+v", m.InterTokenLatency)
		}
		g = GuideLLMSummary(tpot)
		sameAsGuideLLM(t, "time_per_output_token_ms", m.TimePerOutputTokenTokenWeighted, g)
		// Σ(last token − sent) = 200 + 280 + 100 + 80 + 580 over Σn = 31 tokens.
		if g.Count != 31 || !approx(g.Mean, 1240.0/31) {
			t.Errorf("GuideLLM TPOT %+v", g)
		}
		sameAsGuideLLM(t, "output_tokens_per_iteration", m.OutputTokensPerChunk, GuideLLMSummary(perIter))
		sameAsGuideLLM(t, "time_to_first_token_ms", m.TimeToFirstToken, GuideLLMSummary(unit(defined(ts, GuideLLMTTFT))))
		sameAsGuideLLM(t, "request_latency", m.RequestLatency, GuideLLMSummary(unit(each(ts, GuideLLMRequestLatency))))
		sameAsGuideLLM(t, "request_streaming_iterations_count", m.StreamEvents, GuideLLMSummary(unit(each(ts, GuideLLMStreamIterations))))
	})

	t.Run("vLLM", func(t *testing.T) {
		// vLLM's ITL is Reprise's inter-chunk latency where every event with
		// choices carries content (T1, T4, T5); a role delta and a finish-only
		// delta add gaps (T2: 50 before the first content, 10 after the last;
		// T3: 60).
		plain := []Timeline{ts[0], ts[3], ts[4]}
		sameValues(t, "itl (content-only streams)", reprise(plain).InterChunkLatency, pooled(plain, VLLMITL))
		all := pooled(ts, VLLMITL)
		if len(all) != int(m.InterChunkLatency.Count)+3 || slices.Max(all) != 300 || !slices.Contains(all, 50) || !slices.Contains(all, 60) {
			t.Errorf("vLLM ITL %v, Reprise ICL count %d", all, m.InterChunkLatency.Count)
		}
		// vLLM's TPOT is Reprise's per-request ITL where the first and last
		// events with choices carry content; T2 counts from its role delta to
		// its finish delta, (290 − 50)/11, and T3 (60 − 0)/1.
		sameValues(t, "tpot (content-only streams)", reprise(plain).InterTokenLatency, defined(plain, VLLMTPOT))
		tp := defined(ts, VLLMTPOT)
		if want := []float64{20, 240.0 / 11, 60, 380.0 / 9}; !slices.EqualFunc(tp, want, approx) {
			t.Errorf("vLLM TPOT %v, want %v", tp, want)
		}
		// TTFT from the role delta: 50 and 40 ms where Reprise waits for content (100, 100).
		if tt := defined(ts, VLLMTTFT); !slices.EqualFunc(tt, []float64{100, 50, 40, 80, 200}, approx) {
			t.Errorf("vLLM TTFT %v", tt)
		}
		// E2EL ends at the last event with choices, before the usage event and [DONE].
		if l := each(ts, VLLMLatency); !slices.EqualFunc(l, []float64{200, 290, 100, 80, 580}, approx) {
			t.Errorf("vLLM E2EL %v", l)
		}
	})

	t.Run("AIPerf", func(t *testing.T) {
		// AIPerf's ITL is Reprise's inter_token_latency_ms, request by request,
		// and its inter-chunk latency Reprise's; they summarise differently:
		// p50 of the four ITLs interpolated, (180/11 + 20)/2, against the
		// nearest rank's 180/11.
		itl := defined(ts, AIPerfITL)
		sameValues(t, "inter_token_latency", m.InterTokenLatency, itl)
		if p := LinearSummary(itl).P50; !approx(p, (180.0/11+20)/2) || approx(p, m.InterTokenLatency.P50) {
			t.Errorf("AIPerf ITL p50 %v, Reprise %v", p, m.InterTokenLatency.P50)
		}
		sameValues(t, "inter_chunk_latency", m.InterChunkLatency, pooled(ts, AIPerfICL))
		sameValues(t, "time_to_first_token", m.TimeToFirstToken, defined(ts, AIPerfTTFT))
		// Its request latency ends at the last content response: 5, 20, 10,
		// 10 and 10 ms before the end Reprise times.
		lat := defined(ts, AIPerfRequestLatency)
		if want := []float64{200, 280, 100, 80, 580}; !slices.EqualFunc(lat, want, approx) {
			t.Errorf("AIPerf request latency %v, want %v", lat, want)
		}
	})

	t.Run("inference-perf", func(t *testing.T) {
		// Its TPOT is Reprise's per-request ITL; its NTPOT and request latency
		// are Reprise's.
		sameValues(t, "time_per_output_token", m.InterTokenLatency, defined(ts, InferencePerfTPOT))
		sameValues(t, "normalized_time_per_output_token", m.NormalizedTimePerOutputToken, each(ts, InferencePerfNTPOT))
		sameValues(t, "request_latency", m.RequestLatency, each(ts, InferencePerfRequestLatency))
		// TTFT only for requests with more than one token time: T4 is left out.
		if tt := defined(ts, InferencePerfTTFT); len(tt) != int(m.TimeToFirstToken.Count)-1 {
			t.Errorf("inference-perf TTFT %v, Reprise count %d", tt, m.TimeToFirstToken.Count)
		}
		// Its ITL is one gap per token: Σ(n − 1) = 26 gaps, 0 between the
		// tokens of one event (8 in T2, 1 in T3), where Reprise's inter-chunk
		// latency has one gap per event (17).
		itl := pooled(ts, InferencePerfITL)
		zeros := 0
		for _, v := range itl {
			if v == 0 {
				zeros++
			}
		}
		if len(itl) != 26 || zeros != 9 || m.InterChunkLatency.Count != 17 {
			t.Errorf("inference-perf ITL %v (%d zeros), Reprise ICL count %d", itl, zeros, m.InterChunkLatency.Count)
		}
		// A server that packs 4 tokens into each of 8 events: 24 of the 31
		// token gaps are 0, so the p50 inference-perf reports is 0 ms (issue
		// 17), while Reprise's ITL is 7 gaps of 40 ms over 31 tokens.
		packed := Timeline{Sent: 0, End: ms(400), OutputTokens: 32}
		for i := range 8 {
			packed.Events = append(packed.Events, c(100+40*float64(i), 4))
		}
		p := LinearSummary(InferencePerfITL(packed))
		pm := reprise([]Timeline{packed})
		if p.P50 != 0 || p.Count != 31 || !approx(pm.InterTokenLatency.Mean, 280.0/31) || pm.InterChunkLatency.P50 != 40 {
			t.Errorf("packed: inference-perf ITL %+v; Reprise ITL %+v, ICL %+v", p, pm.InterTokenLatency, pm.InterChunkLatency)
		}
	})
}

// LinearSummary is numpy's linear-interpolation percentile: rank p·(n − 1).
func TestLinearSummary(t *testing.T) {
	s := LinearSummary([]float64{40, 10, 30, 20})
	// Ranks: p50 → 1.5 (between 20 and 30), p90 → 2.7, p99 → 2.97.
	if s.Count != 4 || s.Mean != 25 || s.P50 != 25 || !approx(s.P90, 37) || !approx(s.P99, 39.7) || !approx(s.StdDev, math.Sqrt(125)) {
		t.Errorf("%+v", s)
	}
	if (LinearSummary(nil) != PeerSummary{}) || (GuideLLMSummary([]Sample{{5, 0}}) != PeerSummary{}) {
		t.Error("empty summaries are not zero")
	}
}

// Timeline.Result is what Reprise's client records: a real server streams
// each timeline's events (role deltas, content, finish-only deltas, usage,
// [DONE]) to the engine, whose results have the same events, chunks and
// token counts.
func TestTimelineResultIsWhatTheClientRecords(t *testing.T) {
	ts := peerTimelines()
	index := regexp.MustCompile(`"content":"(\d+)"`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := index.FindSubmatch(body)
		if m == nil {
			http.Error(w, "no index", http.StatusBadRequest)
			return
		}
		i, _ := strconv.Atoi(string(m[1]))
		tl := ts[i]
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range tl.Events {
			var data string
			switch {
			case e.Content():
				data = fmt.Sprintf(`{"choices":[{"index":0,"delta":{"content":%q}}]}`, strings.Repeat("tok ", e.Tokens))
			case e.Choices:
				data = `{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}`
			default:
				data = fmt.Sprintf(`{"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d}}`, tl.PromptTokens, tl.OutputTokens)
			}
			_, _ = fmt.Fprintf(w, "data: %s\n\n", data)
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer srv.Close()
	src := &sliceSource{}
	for i := range ts {
		src.reqs = append(src.reqs, workload.Request{Index: i, Endpoint: openai.Chat, Stream: true, OutputTokens: ts[i].OutputTokens})
	}
	run, err := engine.Execute(context.Background(), engine.Config{Target: srv.URL, Profile: engine.ProfileSynchronous}, src, chatBodies{})
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != len(ts) {
		t.Fatalf("%d results for %d timelines", len(run.Results), len(ts))
	}
	for _, got := range run.Results {
		want := ts[got.Index].Result(got.Index)
		if !got.OK() || got.Events != want.Events || got.NumChunks() != want.NumChunks() || !slices.Equal(got.ChunkTokens, want.ChunkTokens) ||
			got.OutputTokens != want.OutputTokens || got.PromptTokens != want.PromptTokens || !got.TokensFromUsage ||
			got.FirstEvent <= 0 || got.FirstEvent > got.FirstToken || got.FirstToken > got.LastToken || got.LastToken > got.End {
			t.Errorf("timeline %d: engine recorded %+v\nTimeline.Result %+v", got.Index, got, want)
		}
	}
}
