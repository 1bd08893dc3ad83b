// Package slo parses service-level objectives (--slo) and checks a
// benchmark against them: each term passes or fails, and the per-request
// thresholds give attainment and goodput through internal/stats.
//
// Grammar (whitespace around terms is ignored):
//
//	spec   = term { "," term }
//	term   = metric [ "_" pct ] op number unit
//	metric = "ttft" | "itl" | "tpot" | "e2e"
//	pct    = "p" digits [ "." digits ]   (p50 … p99.9; also "mean")
//	op     = "<=" | "<"
//	unit   = "ms" | "s"
//
// "ttft_p99<=200ms" holds when the 99th percentile of time to first token
// is at most 200 ms, a failed request counting as infinitely slow;
// "ttft<=200ms" (no percentile) holds when every request's is. Every term's
// threshold is also a per-request threshold for attainment and goodput.
// Metrics: ttft = time_to_first_token_ms, itl = inter_token_latency_ms
// (vLLM's TPOT), tpot = time_per_output_token_ms (GuideLLM's), e2e =
// request_latency_ms; docs/metrics.md defines each.
package slo

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Metrics a term may name.
const (
	TTFT = "ttft"
	ITL  = "itl"
	TPOT = "tpot"
	E2E  = "e2e"
)

// Term is one objective.
type Term struct {
	Text   string `json:"term"`   // as written, trimmed
	Metric string `json:"metric"` // ttft, itl, tpot or e2e
	// Percentile is in (0, 100]; 0 means the mean; 100 means every request
	// (a term without a percentile).
	Percentile  float64 `json:"percentile"`
	Mean        bool    `json:"mean,omitempty"`
	Strict      bool    `json:"strict,omitempty"` // "<" rather than "<="
	ThresholdMs float64 `json:"threshold_ms"`
}

// Spec is a parsed --slo value.
type Spec struct {
	Text  string `json:"spec"`
	Terms []Term `json:"terms"`
	// FromIntended measures ttft, tpot and e2e from each request's intended
	// send rather than its actual send (--slo-from intended); Parse leaves
	// it false.
	FromIntended bool `json:"from_intended,omitempty"`
}

// SyntaxError names the bad term, its place in the list and where it
// starts in the whole value.
type SyntaxError struct {
	Term  string
	Index int // 1-based: the Index-th comma-separated term
	Pos   int // 1-based character (byte) position of the term's start in the whole value
	Msg   string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("--slo term %d %q at character %d: %s", e.Index, e.Term, e.Pos, e.Msg)
}

// Parse reads a --slo value; every bad term is reported (errors.Join of
// *SyntaxError).
func Parse(s string) (*Spec, error) {
	spec := &Spec{Text: s}
	var errs []error
	pos := 0
	for i, raw := range strings.Split(s, ",") {
		lead := len(raw) - len(strings.TrimLeft(raw, " \t"))
		t := strings.TrimSpace(raw)
		term, msg := parseTerm(t)
		if msg != "" {
			errs = append(errs, &SyntaxError{Term: t, Index: i + 1, Pos: pos + lead + 1, Msg: msg})
		} else {
			spec.Terms = append(spec.Terms, term)
		}
		pos += len(raw) + 1
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return spec, nil
}

func parseTerm(t string) (Term, string) {
	if t == "" {
		return Term{}, "empty term (want e.g. ttft_p99<=200ms)"
	}
	term := Term{Text: t, Percentile: 100}
	i := strings.IndexByte(t, '<')
	if i < 0 {
		return term, "no comparison: want <= or <, e.g. ttft_p99<=200ms"
	}
	lhs, rhs := t[:i], t[i+1:]
	if strings.HasPrefix(rhs, "=") {
		rhs = rhs[1:]
	} else {
		term.Strict = true
	}
	lhs, rhs = strings.TrimSpace(lhs), strings.TrimSpace(rhs)
	metric, stat, hasStat := strings.Cut(lhs, "_")
	switch metric {
	case TTFT, ITL, TPOT, E2E:
		term.Metric = metric
	default:
		return term, fmt.Sprintf("unknown metric %q (want ttft, itl, tpot or e2e)", metric)
	}
	if hasStat {
		switch {
		case stat == "mean":
			term.Mean, term.Percentile = true, 0
		case strings.HasPrefix(stat, "p") && len(stat) > 1:
			digits := stat[1:]
			if strings.Trim(digits, "0123456789.") != "" || strings.Count(digits, ".") > 1 || digits[0] == '.' {
				return term, fmt.Sprintf("percentile %q: want p followed by a number, e.g. p99 or p99.9", stat)
			}
			// "p999" is the usual short form of p99.9, as in benchmarks.json.
			if digits == "999" {
				digits = "99.9"
			}
			p, err := strconv.ParseFloat(digits, 64)
			if err != nil || !(p > 0 && p <= 100) {
				return term, fmt.Sprintf("percentile %q: want between p0 (exclusive) and p100", stat)
			}
			term.Percentile = p
		default:
			return term, fmt.Sprintf("statistic %q: want a percentile such as p99 or mean", stat)
		}
	}
	var unit float64
	switch {
	case strings.HasSuffix(rhs, "ms"):
		unit, rhs = 1, strings.TrimSuffix(rhs, "ms")
	case strings.HasSuffix(rhs, "s"):
		unit, rhs = 1000, strings.TrimSuffix(rhs, "s")
	default:
		return term, fmt.Sprintf("threshold %q: want a number with a unit, ms or s", rhs)
	}
	rhs = strings.TrimSpace(rhs)
	v, err := strconv.ParseFloat(rhs, 64)
	if err != nil || strings.ContainsAny(rhs, "xXpP_") || math.IsInf(v, 0) || math.IsNaN(v) {
		return term, fmt.Sprintf("threshold %q: not a number", rhs)
	}
	if !(v > 0) {
		return term, fmt.Sprintf("threshold %v: must be positive", v)
	}
	term.ThresholdMs = v * unit
	return term, ""
}

// String writes the spec back in canonical form.
func (s *Spec) String() string {
	parts := make([]string, len(s.Terms))
	for i, t := range s.Terms {
		parts[i] = t.String()
	}
	return strings.Join(parts, ",")
}

// String writes the term in canonical form (thresholds in ms).
func (t Term) String() string {
	name := t.Metric
	switch {
	case t.Mean:
		name += "_mean"
	case t.Percentile < 100:
		name += "_p" + strconv.FormatFloat(t.Percentile, 'f', -1, 64)
	}
	op := "<="
	if t.Strict {
		op = "<"
	}
	return name + op + strconv.FormatFloat(t.ThresholdMs, 'f', -1, 64) + "ms"
}
