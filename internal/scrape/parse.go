package scrape

import (
	"fmt"
	"io"
	"math"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Kind is how a kept series is summarised.
type Kind int

// Kinds. Prometheus's untyped series are summarised as gauges.
const (
	Gauge Kind = iota
	Counter
)

func (k Kind) String() string {
	if k == Counter {
		return "counter"
	}
	return "gauge"
}

// Value is one kept family's value in one exposition, aggregated over its
// label sets (see Parse).
type Value struct {
	Kind Kind
	V    float64
}

// maxBody bounds one exposition; vLLM's, histograms included, is a few
// hundred KiB per model.
const maxBody = 32 << 20

// Parse reads one exposition in the Prometheus text format (version 0.0.4)
// and returns the value of every gauge, counter or untyped family for which
// keep(name) is true, keyed by the family name as exposed. A family with
// several label sets (vLLM labels by model_name and, with data
// parallelism, by engine) is aggregated: counters and gauges are summed,
// except gauges that are fractions — names ending in _perc, _rate or
// _ratio, and the engines' Fractions — which are averaged. Histograms and summaries are skipped. A
// family with a NaN or infinite sample is left out of this exposition, as
// results never hold non-finite numbers.
//
// A malformed exposition is an error naming the line, from expfmt.
func Parse(r io.Reader, keep func(name string) bool) (map[string]Value, error) {
	lr := &io.LimitedReader{R: r, N: maxBody + 1}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(lr)
	if lr.N <= 0 {
		return nil, fmt.Errorf("exposition larger than %d MiB", maxBody>>20)
	}
	if err != nil {
		return nil, err
	}
	out := map[string]Value{}
	for name, f := range fams {
		if !keep(name) {
			continue
		}
		kind := Gauge
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			kind = Counter
		case dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
		default:
			continue
		}
		v, ok := aggregate(name, kind, f.GetMetric())
		if ok {
			out[name] = Value{Kind: kind, V: v}
		}
	}
	return out, nil
}

// aggregate combines a family's label sets as Parse documents; ok is false
// for an empty family or one with a non-finite sample.
func aggregate(name string, kind Kind, ms []*dto.Metric) (v float64, ok bool) {
	if len(ms) == 0 {
		return 0, false
	}
	for _, m := range ms {
		var x float64
		switch {
		case m.GetCounter() != nil:
			x = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			x = m.GetGauge().GetValue()
		default:
			x = m.GetUntyped().GetValue()
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
		v += x
	}
	if kind == Gauge && isFraction(name) {
		v /= float64(len(ms))
	}
	return v, !math.IsInf(v, 0) // a sum of huge values may overflow
}

// isFraction reports whether a gauge is a ratio that is averaged, not
// summed, over label sets.
func isFraction(name string) bool {
	if isEngineFraction(name) {
		return true
	}
	for _, s := range []string{"_perc", "_rate", "_ratio"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// Matcher returns the keep function for Parse: a family is kept when its
// name is one of names, or is one of names followed by _total (Prometheus
// clients expose counter c as c_total).
func Matcher(names []string) func(string) bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(name string) bool {
		return set[name] || (strings.HasSuffix(name, "_total") && set[strings.TrimSuffix(name, "_total")])
	}
}
