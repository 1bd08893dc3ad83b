package replaycli

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/slo"
	"github.com/reprise-llm/reprise/internal/stats"
)

// The console lines the benchmarking commands print after the results
// table.

// conversationLine prints, for a workload of conversations (multi-turn
// sessions, agentic graphs), how long whole conversations took, and each
// kind of call in a tool loop.
func conversationLine(w io.Writer, b *report.Benchmark) {
	m := &b.Metrics
	if m.ConversationLatency == nil {
		return
	}
	c := m.ConversationLatency
	line := fmt.Sprintf("%s: %d conversations; a whole conversation took p50 %.1f ms, p99 %.1f ms (%d complete)", b.Name, m.Conversations, c.P50, c.P99, c.Count)
	kinds := make([]string, 0, len(m.LatencyByTurnKind))
	for k := range m.LatencyByTurnKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		d := m.LatencyByTurnKind[k]
		line += fmt.Sprintf("; %s calls p50 %.1f ms (%d)", k, d.P50, d.Count)
	}
	fmt.Fprintln(w, line)
}

// networkLine prints the network between the replayer and the target,
// measured before the benchmark, beside its TTFT: every latency the
// replayer measures holds a round trip of it.
func networkLine(w io.Writer, b *report.Benchmark) {
	c := &b.Config
	if c.NetworkFirstByteMs == nil {
		return
	}
	connect := "not measured"
	if c.NetworkConnectMs != nil {
		connect = fmt.Sprintf("%.2f ms", *c.NetworkConnectMs)
	}
	fmt.Fprintf(w, "%s: network to the target (measured from here before the run): connect %s, first byte of GET /v1/models %.2f ms; TTFT p50 %.2f ms includes a round trip of it\n",
		b.Name, connect, *c.NetworkFirstByteMs, b.Metrics.TimeToFirstToken.P50)
}

// serverLines prints what the target's side says of a benchmark: its
// prompt cache's share (from usage, and from the engine's counters when
// scraped) next to what the workload's prefix structure predicts, and its
// requests running and waiting when they disagree with the client's
// requests in flight (issue 18: a server still busy with requests the
// client gave up on).
func serverLines(w io.Writer, b *report.Benchmark) {
	m, sm := &b.Metrics, b.ServerMetrics
	var parts []string
	if m.CachedTokenShare > 0 {
		parts = append(parts, fmt.Sprintf("%.1f%% of prompt tokens cached (usage)", 100*m.CachedTokenShare))
	}
	if sm != nil && sm.PrefixCacheHitRate != nil {
		parts = append(parts, fmt.Sprintf("%.1f%% by the server's counters (%s)", 100**sm.PrefixCacheHitRate, orDash(sm.Engine)))
	}
	if len(parts) > 0 {
		line := b.Name + ": prompt cache: " + strings.Join(parts, ", ")
		if p := b.Config.WorkloadPrefixShare; p != nil {
			line += fmt.Sprintf("; the workload's prefix structure predicts %.1f%%", 100**p)
		}
		fmt.Fprintln(w, line)
	}
	if sm == nil {
		return
	}
	run, okR := sm.RunningGauge()
	wait, okW := sm.WaitingGauge()
	if !okR && !okW {
		return
	}
	server := sm.Gauges[run].Mean + sm.Gauges[wait].Mean
	client := m.ConcurrencyMean
	if math.Abs(server-client) > max(2, 0.5*client) {
		fmt.Fprintf(w, "%s: the server held %.1f requests on average (running + waiting) while the client had %.1f in flight: %s\n", b.Name, server, client,
			map[bool]string{true: "it was still serving requests the client had given up on (cancelled, timed out), or other clients'", false: "it reports fewer than the client sent (a gateway's own queue, or several replicas behind one URL)"}[server > client])
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// gateSummary prints one line per benchmark about the detector and SLOs.
func gateSummary(w io.Writer, b *report.Benchmark) {
	if s := b.Saturation; s != nil {
		if s.Detected {
			fmt.Fprintf(w, "%s: over-saturated (%s at %.1fs, %s mode)\n", b.Name, s.Signal, s.DetectedAtS, s.Mode)
		} else {
			fmt.Fprintf(w, "%s: no over-saturation detected\n", b.Name)
		}
	}
	if v := b.SLO; v != nil {
		verdict := "PASS"
		if !v.Pass {
			verdict = "FAIL"
		}
		var parts []string
		for _, t := range v.Terms {
			mark := "ok"
			if !t.Pass {
				mark = "FAIL"
			}
			value := fmt.Sprintf("%.1fms", t.ValueMs)
			if math.IsInf(t.ValueMs, 1) {
				value = "∞ (a failed request)"
			}
			parts = append(parts, fmt.Sprintf("%s=%s %s", t.Text, value, mark))
		}
		att := 0.0
		if b.Metrics.Goodput != nil {
			att = b.Metrics.Goodput.Attainment
		}
		failed := ""
		if len(v.Terms) > 0 && v.Terms[0].Failed > 0 {
			failed = fmt.Sprintf("; %d failed requests count as violations", v.Terms[0].Failed)
		}
		from := v.From
		if from == "" {
			from = slo.FromSent
		}
		fmt.Fprintf(w, "%s: SLO %s (%s; latency from %s send; attainment %.1f%%%s)\n", b.Name, verdict, strings.Join(parts, ", "), from, 100*att, failed)
	}
}

// tokenShortfall prints, after the results table, one line when the target
// produced fewer output tokens than were forced (it ignored ignore_eos, or
// --ignore-eos off let it stop), and one when it counted prompts
// differently from what was synthesised (another tokenizer, a chat
// template's tokens, a multi-turn history).
func tokenShortfall(w io.Writer, name string, m *stats.Metrics) {
	if o := m.OutputTokenMismatch; o != nil && o.MeanDiff < 0 {
		fmt.Fprintf(w, "%s: output shortfall: %d of %d requests got a different output length than forced, %.1f tokens short on average (min diff %+g): "+
			"the target stopped early — it ignores ignore_eos (or --ignore-eos off); output-bound latencies are understated\n",
			name, o.Compared-o.Exact, o.Compared, -o.MeanDiff, o.MinDiff)
	}
	if p := m.PromptTokenMismatch; p != nil && p.Exact < p.Compared {
		fmt.Fprintf(w, "%s: prompt tokens: the target counted %d of %d prompts differently than requested, %+.1f tokens on average (%+g to %+g): "+
			"its tokenizer or chat template differs from --tokenizer (multi-turn history also adds tokens)\n",
			name, p.Compared-p.Exact, p.Compared, p.MeanDiff, p.MinDiff, p.MaxDiff)
	}
}
