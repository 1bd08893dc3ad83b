package stats

import (
	"math"

	"github.com/reprise-llm/reprise/internal/engine"
)

// TokenMismatch compares the token counts the replayer asked for with those
// the server reported in usage, over successful requests that have both:
// the check that synthesised prompts had the lengths the workload recorded
// (a tokenizer differing from the server's, or a chat template's tokens,
// shows here), and that forced output lengths were honoured (a server
// without ignore_eos stops early: the shortfall).
type TokenMismatch struct {
	// Compared counts requests with a requested length and server usage.
	Compared int64 `json:"compared"`
	// Exact counts those whose reported count equals the requested one.
	Exact int64 `json:"exact"`
	// MeanDiff, MinDiff and MaxDiff are reported − requested, tokens.
	MeanDiff float64 `json:"mean_diff"`
	MinDiff  float64 `json:"min_diff"`
	MaxDiff  float64 `json:"max_diff"`
	// AbsDiff is the distribution of |reported − requested|, tokens.
	AbsDiff Distribution `json:"abs_diff"`
}

// mismatch accumulates one TokenMismatch.
type mismatch struct {
	n, exact   int64
	sum        float64
	minD, maxD float64
	abs        *Histogram
}

func newMismatch() *mismatch { return &mismatch{abs: NewCountHistogram()} }

func (m *mismatch) record(requested, reported int) {
	d := float64(reported - requested)
	if m.n == 0 || d < m.minD {
		m.minD = d
	}
	if m.n == 0 || d > m.maxD {
		m.maxD = d
	}
	m.n++
	m.sum += d
	if d == 0 {
		m.exact++
	}
	m.abs.Record(math.Abs(d))
}

func (m *mismatch) merge(o *mismatch) {
	if o.n == 0 {
		return
	}
	if m.n == 0 || o.minD < m.minD {
		m.minD = o.minD
	}
	if m.n == 0 || o.maxD > m.maxD {
		m.maxD = o.maxD
	}
	m.n += o.n
	m.exact += o.exact
	m.sum += o.sum
	m.abs.Merge(o.abs)
}

func (m *mismatch) result() *TokenMismatch {
	if m.n == 0 {
		return nil
	}
	return &TokenMismatch{Compared: m.n, Exact: m.exact, MeanDiff: m.sum / float64(m.n), MinDiff: m.minD, MaxDiff: m.maxD, AbsDiff: m.abs.Distribution()}
}

// recordMismatch adds a successful request's token counts to the prompt and
// output comparisons, when the server reported usage and the workload asked
// for a length.
func (rec *Recorder) recordMismatch(r *engine.Result) {
	if !r.TokensFromUsage {
		return
	}
	if r.RequestedPromptTokens > 0 {
		rec.promptMismatch.record(r.RequestedPromptTokens, r.PromptTokens)
	}
	if r.RequestedOutputTokens > 0 {
		rec.outputMismatch.record(r.RequestedOutputTokens, r.OutputTokens)
	}
}
