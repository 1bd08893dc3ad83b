package bench

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/stats"
	"github.com/reprise-llm/reprise/internal/workload"
)

// Warnings prints a source's warnings to w, each once: as soon as a reader
// has one (a likely unit mistake is seen before a long replay starts, not
// after it), and at the end those only the transforms know, with the count
// of skipped invalid lines.
type Warnings struct {
	mu      sync.Mutex
	w       io.Writer
	printed map[string]bool
}

// NewWarnings prints to w.
func NewWarnings(w io.Writer) *Warnings { return &Warnings{w: w, printed: map[string]bool{}} }

// Print prints msg unless it was printed already.
func (p *Warnings) Print(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed[msg] {
		return
	}
	p.printed[msg] = true
	fmt.Fprintf(p.w, "warning: %s\n", msg)
}

// Finish prints src's warnings not printed yet and returns the number of
// invalid lines it skipped (also printed when any).
func (p *Warnings) Finish(src workload.Source) int {
	if s, ok := src.(interface{ Warnings() []string }); ok {
		for _, msg := range s.Warnings() {
			p.Print(msg)
		}
	}
	skipped := 0
	if s, ok := src.(interface{ Skipped() int }); ok {
		skipped = s.Skipped()
	}
	if skipped > 0 {
		p.mu.Lock()
		fmt.Fprintf(p.w, "skipped %d invalid workload lines (--skip-invalid)\n", skipped)
		p.mu.Unlock()
	}
	return skipped
}

// Cores spinning wants (runtime.NumCPU): one for the spinning dispatcher,
// one for the goroutines reading responses, one for the rest of the
// process and the host; and one more for a target on the same host, whose
// event loop a spinner otherwise takes turns with. Issue 17 measured the
// cost on 2 cores next to a local server: the server saw its arrivals'
// gaps deviate more with --spin 1ms (median absolute deviation 0.69–1.07
// ms) than without (0.46 ms).
const (
	spinMinCores      = 3
	spinMinCoresLocal = 4
)

// SpinWarning is the warning for spinning on a host of cores cores too
// small for it (see spinMinCores); empty when spinning is off, does not
// apply (closed loops) or has the cores it needs.
func SpinWarning(cfg engine.Config, cores int) string {
	if cfg.Spin <= 0 || !OpenLoop(cfg.Profile) {
		return ""
	}
	need, also := spinMinCores, ""
	if loopbackTarget(cfg.Target) {
		need, also = spinMinCoresLocal, " and the target on this host"
	}
	if cores >= need {
		return ""
	}
	return fmt.Sprintf("--spin %v keeps a core busy before every due time, and this host has %d (--spin wants %d: the spinner, the client's readers, the rest%s): "+
		"the arrivals can come out less even, not more; drop --spin, or run the client on a host with cores to spare", cfg.Spin, cores, need, also)
}

// warnSpin prints this host's SpinWarning, once per invocation.
func warnSpin(warn *Warnings, cfg engine.Config) {
	if msg := SpinWarning(cfg, runtime.NumCPU()); msg != "" {
		warn.Print(msg)
	}
}

// loopbackTarget reports whether target's host is this host's loopback:
// localhost or a loopback address.
func loopbackTarget(target string) bool {
	u, err := url.Parse(target)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// degradedWarning prints a warning line for a degraded benchmark, naming
// each criterion that fired (stats.Metrics.DegradedBy; results from before
// the criteria were named: the client lag).
func degradedWarning(w io.Writer, b *report.Benchmark) {
	m := &b.Metrics
	if !m.Degraded {
		return
	}
	by := m.DegradedBy
	if len(by) == 0 {
		by = []string{stats.DegradedClientLag}
	}
	var why []string
	arrival := false
	for _, c := range by {
		s := m.ArrivalShape
		switch {
		case c == stats.DegradedClientLag:
			why = append(why, fmt.Sprintf("the client's own send lag p99 is %.1f ms (threshold %.0f ms)", m.ClientLag.P99, m.LagThresholdMs))
		case c == stats.DegradedArrivalKS && s != nil:
			arrival = true
			why = append(why, fmt.Sprintf("the gaps between its sends are not the schedule's: KS distance %.3f against a 1%% critical value of %.3f (degraded above %.3f)",
				s.KSDistance, s.KSCritical1Pct, s.KSCritical1Pct+stats.ArrivalKSMargin))
		case c == stats.DegradedCompressedGaps && s != nil:
			arrival = true
			why = append(why, fmt.Sprintf("%.1f%% of the gaps meant to be %v or more went out under %v (%d of %d; degraded above %.0f%%)",
				100*s.CompressedGapFraction, stats.SpacedGap, stats.CompressedGap, s.CompressedGaps, s.SpacedGaps, 100*stats.MaxCompressedGapFraction))
		}
	}
	hint := ""
	if arrival {
		hint = " (timers batched on a busy host, a stalled dispatcher: --spin on a host with cores to spare, or a lower rate)"
	}
	fmt.Fprintf(w, "warning: %s: degraded: %s; the load generator, not the target, limited or reshaped this benchmark%s\n", b.Name, strings.Join(why, "; "), hint)
}

// prefixPrediction counts, while a benchmark's workload is read, the
// prompt tokens a prefix cache would serve from the workload's own prefix
// structure: each request's leading run of blocks (hash ids) seen in an
// earlier request of the benchmark, as `replay inspect` counts prefix
// reuse. A multi-turn session also reuses its own history, which the ids
// do not show: no prediction is made for workloads with sessions.
type prefixPrediction struct {
	seen           map[uint64]struct{}
	hit, prompt    int64
	sessions, used bool
}

func (p *prefixPrediction) add(r *workload.Request) {
	if r.Session != "" {
		p.sessions = true
	}
	if r.PromptTokens <= 0 {
		return
	}
	p.used = true
	p.prompt += int64(r.PromptTokens)
	block := r.BlockTokens
	if block <= 0 {
		block = workload.MooncakeBlockTokens
	}
	leading, hit := true, 0
	for _, id := range r.HashIDs {
		key := uint64(block)<<32 | uint64(id)
		if _, ok := p.seen[key]; ok && leading {
			hit++
			continue
		}
		leading = false
		p.seen[key] = struct{}{}
	}
	p.hit += int64(min(hit*block, r.PromptTokens))
}

// share is the predicted cached share of prompt tokens; ok is false for a
// workload with sessions or without token counts.
func (p *prefixPrediction) share() (float64, bool) {
	if p.sessions || !p.used || p.prompt == 0 {
		return 0, false
	}
	return float64(p.hit) / float64(p.prompt), true
}

// cacheMargin is how far above the workload's own prefix structure a
// benchmark's cached share may go before it is called out: an engine
// caches at its own block size, and a synthesised prompt's partial last
// block may still match.
const cacheMargin = 0.25

// cacheWarning warns when the target served far more of the benchmark's
// prompt tokens from its cache (usage.prompt_tokens_details.cached_tokens)
// than the workload's prefix structure predicts: the prompts were in its
// cache before the benchmark started, and its latencies are better than
// this workload alone would get (issue 18).
func cacheWarning(w io.Writer, b *report.Benchmark, predicted float64) {
	got := b.Metrics.CachedTokenShare
	if !(got > predicted+cacheMargin) {
		return
	}
	fmt.Fprintf(w, "warning: %s: the target served %.0f%% of prompt tokens from its prefix cache, while the workload's own prefix structure predicts %.0f%%: "+
		"its cache held these prompts before the benchmark (an earlier run with --reuse-prompts or the same --prompt-namespace, or another client), so its latencies are better than this workload alone would get\n",
		b.Name, 100*got, 100*predicted)
}

// graphWarning warns when conversation-graph calls came after nodes the
// benchmark did not replay (a filter or a limit left them out): those
// calls did not wait for them, so they went out earlier than in
// production.
func graphWarning(w io.Writer, b *report.Benchmark) {
	if n := b.Config.GraphUnresolvedAfter; n > 0 {
		fmt.Fprintf(w, "warning: %s: %d conversation-graph waits were skipped: a call came after a node this benchmark did not replay (filtered out by --filter-model, --filter-status or --window, or listed after it in the file), so it went out earlier than in production\n", b.Name, n)
	}
}
