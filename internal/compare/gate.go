package compare

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/reprise-llm/reprise/internal/report"
)

// Gate is one --fail-if bound: the candidate fails when its Metric's Stat
// exceeds Bound in the direction of Op with confidence.
//
// Grammar (docs/compare.md), terms separated by commas:
//
//	term  = name op bound
//	name  = metric [ "_" stat ]        ttft_p99, e2e_mean, error_rate, output_tps
//	op    = ">" | "<"
//	bound = [ "+" | "-" ] number [ unit ]    unit: % ms s us (or none)
//
// A signed bound is a change against the baseline: "+10%" relative, "+50ms"
// absolute. An unsigned bound is a level of the candidate itself:
// "error_rate>0.5%", "ttft_p99>800ms". For proportions (error_rate,
// goodput) "%" means percentage points, signed or not.
type Gate struct {
	Text   string  // the term as written, trimmed
	Metric string  // canonical metric name, e.g. time_to_first_token_ms
	Stat   string  // p50, p90, p99, mean, or value
	Op     byte    // '>' (fails above) or '<' (fails below)
	Change bool    // signed bound: a delta against the baseline; else a level
	Pct    bool    // Change relative to the baseline, Bound in percent
	Bound  float64 // in the metric's unit (ms, req/s, tok/s, fraction), or percent when Pct
}

// metricAliases maps the short names of gates to metrics.
var metricAliases = map[string]string{
	"ttft": TTFT, "itl": ITL, "icl": ICL, "tpot": TPOT, "ntpot": NTPOT, "e2e": E2E, "latency": E2E,
	"rps": RequestsPerSecond, "throughput": RequestsPerSecond, "output_tps": OutputTokensPerS, "tps": OutputTokensPerS,
	"goodput": GoodputAttainment, "attainment": GoodputAttainment, "goodput_rps": GoodputPerSecond,
	"error_rate": ErrorRate, "errors": ErrorRate,
}

// metricUnit is each metric's unit, and whether it takes a statistic.
var metricUnit = map[string]string{
	TTFT: "ms", ITL: "ms", ICL: "ms", TPOT: "ms", NTPOT: "ms", E2E: "ms",
	RequestsPerSecond: "req/s", OutputTokensPerS: "tok/s", GoodputPerSecond: "req/s",
	GoodputAttainment: "fraction", ErrorRate: "fraction",
}

func init() {
	for m := range metricUnit {
		metricAliases[m] = m
	}
}

// GateError is a malformed --fail-if term.
type GateError struct {
	Term   string // the offending term
	Reason string
}

func (e *GateError) Error() string { return fmt.Sprintf("--fail-if term %q: %s", e.Term, e.Reason) }

// ParseFailIf parses a comma-separated list of gates, reporting every bad
// term (errors.Join of *GateError). An empty string is no gates.
func ParseFailIf(s string) ([]Gate, error) {
	var gates []Gate
	var errs []error
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, term := range strings.Split(s, ",") {
		g, err := parseGate(strings.TrimSpace(term))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		gates = append(gates, g)
	}
	return gates, errors.Join(errs...)
}

func parseGate(t string) (Gate, error) {
	bad := func(format string, args ...any) (Gate, error) {
		return Gate{}, &GateError{Term: t, Reason: fmt.Sprintf(format, args...)}
	}
	if t == "" {
		return bad("empty term (a stray comma?)")
	}
	i := strings.IndexAny(t, "<>")
	if i < 0 {
		return bad("no comparison: want name>bound or name<bound, e.g. ttft_p99>+10%%")
	}
	if strings.ContainsAny(t[i+1:], "<>=") {
		return bad("one comparison per term, > or < (no =)")
	}
	g := Gate{Text: t, Op: t[i]}
	name := strings.ToLower(strings.TrimSpace(t[:i]))
	if err := g.setName(name); err != "" {
		return bad("%s", err)
	}
	b := strings.TrimSpace(t[i+1:])
	if b == "" {
		return bad("no bound after %c", g.Op)
	}
	if b[0] == '+' || b[0] == '-' {
		g.Change = true
	}
	unit := strings.TrimLeft(b, "+-0123456789.eE")
	// An exponent swallowed by TrimLeft ("1e" of "1ems"?) is not a case
	// worth supporting; numbers are plain decimals.
	num := strings.TrimSpace(b[:len(b)-len(unit)])
	unit = strings.ToLower(strings.TrimSpace(unit))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || strings.Count(num, "+")+strings.Count(num, "-") > 1 {
		return bad("bound %q is not a number with an optional sign and unit (%%, ms, s, us)", b)
	}
	kind := metricUnit[g.Metric]
	switch unit {
	case "%":
		if kind == "fraction" {
			g.Bound = v / 100
		} else if g.Change {
			g.Pct, g.Bound = true, v
		} else {
			return bad("a level of %s needs its unit (%s), or a sign for a change against the baseline (+10%%)", g.Metric, kind)
		}
	case "ms", "s", "us", "µs":
		if kind != "ms" {
			return bad("unit %s does not apply to %s (%s)", unit, g.Metric, kind)
		}
		g.Bound = v * map[string]float64{"ms": 1, "s": 1000, "us": 0.001, "µs": 0.001}[unit]
	case "":
		if kind == "ms" {
			return bad("bound %q needs a unit: %% (with a sign), ms, s or us", b)
		}
		g.Bound = v
	default:
		return bad("unknown unit %q: want %%, ms, s or us", unit)
	}
	if !g.Change && g.Bound < 0 {
		return bad("a level cannot be negative")
	}
	return g, nil
}

// setName resolves "ttft_p99", "e2e", "error_rate" to a metric and a
// statistic; it returns a reason when the name is not understood.
func (g *Gate) setName(name string) string {
	if m, ok := metricAliases[name]; ok {
		if metricUnit[m] == "ms" {
			g.Metric, g.Stat = m, StatMean
			return "a latency needs a statistic: " + name + "_p50, _p90, _p99 or _mean"
		}
		g.Metric, g.Stat = m, StatValue
		return ""
	}
	j := strings.LastIndex(name, "_")
	if j < 0 {
		return fmt.Sprintf("unknown metric %q (%s)", name, knownNames)
	}
	m, ok := metricAliases[name[:j]]
	if !ok {
		return fmt.Sprintf("unknown metric %q (%s)", name[:j], knownNames)
	}
	stat := name[j+1:]
	if metricUnit[m] != "ms" {
		return fmt.Sprintf("%s takes no statistic (write %s)", name[:j], name[:j])
	}
	if _, ok := statQuantile[stat]; !ok && stat != StatMean {
		return fmt.Sprintf("unknown statistic %q: want p50, p90, p99 or mean", stat)
	}
	g.Metric, g.Stat = m, stat
	return ""
}

const knownNames = "known: ttft, itl, icl, tpot, ntpot, e2e with _p50/_p90/_p99/_mean; error_rate, rps, output_tps, goodput, goodput_rps"

// String is the gate in canonical form; ParseFailIf(g.String()) gives g
// back (but for Text).
func (g Gate) String() string {
	name := g.Metric
	if g.Stat != StatValue {
		name += "_" + g.Stat
	}
	sign := ""
	if g.Change && !math.Signbit(g.Bound) {
		sign = "+"
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	switch {
	case g.Pct:
		return name + string(g.Op) + sign + num(g.Bound) + "%"
	case metricUnit[g.Metric] == "ms":
		return name + string(g.Op) + sign + num(g.Bound) + "ms"
	case metricUnit[g.Metric] == "fraction":
		return name + string(g.Op) + sign + num(g.Bound*100) + "%"
	}
	return name + string(g.Op) + sign + num(g.Bound)
}

// Check decides the gate on a comparison row of its metric and statistic.
// It fails only when the bound is exceeded with confidence: for ">" the
// interval's low end is above the bound, for "<" its high end below it.
// A row with insufficient data leaves the gate undecided.
func (g Gate) Check(r *report.ComparisonRow) report.GateResult {
	res := report.GateResult{Gate: g.Text, Candidate: r.Candidate, Status: report.GatePass}
	lo, hi, point, unit := r.CandidateCILow, r.CandidateCIHigh, r.CandidateValue, r.Unit
	what := "value"
	switch {
	case g.Pct:
		lo, hi, point, unit, what = r.CILowPct, r.CIHighPct, r.DeltaPct, "%", "change"
	case g.Change:
		lo, hi, point, what = r.CILowAbs, r.CIHighAbs, r.DeltaAbs, "change"
	}
	show := func(v float64) string {
		switch unit {
		case "fraction":
			return strconv.FormatFloat(100*v, 'g', 4, 64) + "%"
		case "%":
			return strconv.FormatFloat(v, 'f', 1, 64) + "%"
		}
		return strconv.FormatFloat(v, 'g', 4, 64) + " " + unit
	}
	res.Detail = fmt.Sprintf("%s %s, %s interval [%s, %s] at %.4g%%", what, show(point), what, show(lo), show(hi), 100*r.Confidence)
	if g.Pct && r.RelativeUndefined {
		res.Status = report.GateUndecided
		res.Detail = "no relative change: the baseline is 0 or the metric is a proportion; " + res.Detail
		return res
	}
	if r.Verdict == report.VerdictInsufficient {
		res.Status = report.GateUndecided
		res.Detail = r.Note
		return res
	}
	if (g.Op == '>' && lo > g.Bound) || (g.Op == '<' && hi < g.Bound) {
		res.Status = report.GateFail
	}
	return res
}

// Evaluate checks every gate against every candidate's row of the gate's
// metric and statistic, marks the rows of failed gates, and returns the
// results. A gate whose metric has no row for a candidate is undecided.
func Evaluate(gates []Gate, rows []report.ComparisonRow, candidates []string) []report.GateResult {
	var out []report.GateResult
	for _, g := range gates {
		for _, cand := range candidates {
			found := false
			for i := range rows {
				r := &rows[i]
				if r.Candidate != cand || r.Metric != g.Metric || r.Stat != g.Stat {
					continue
				}
				found = true
				res := g.Check(r)
				if res.Status == report.GateFail {
					if r.Gate != "" {
						r.Gate += ", "
					}
					r.Gate += g.Text
				}
				out = append(out, res)
			}
			if !found {
				out = append(out, report.GateResult{Gate: g.Text, Candidate: cand, Status: report.GateUndecided,
					Detail: "no " + g.Metric + " in the comparison (goodput needs --slo; latencies need successful requests)"})
			}
		}
	}
	return out
}
