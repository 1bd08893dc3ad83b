// Package saturation detects over-saturation during a benchmark: the
// target no longer keeps up with the load, so latency and the backlog of
// requests in flight grow for as long as the benchmark lasts.
//
// It has two signals. The first re-implements GuideLLM's over-saturation
// detector (guidellm/scheduler/constraints/saturation.py, v0.8) with the
// same parameters, defaults and result keys, so a threshold tuned for one
// tool means the same in the other. The second, "backlog", watches offered
// against achieved rate and the growth of requests in flight over the whole
// benchmark; it catches the backlog that grows like √t when the load sits
// exactly at capacity, which GuideLLM's windowed slope test misses (see
// docs/metrics.md and TestGuideLLMSignalMissesSqrtBacklog).
package saturation

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Modes.
const (
	Enforce = "enforce" // stop the benchmark when a signal fires
	Monitor = "monitor" // only report
)

// Config holds the detector's parameters. The first group has GuideLLM's
// names (its OverSaturationConstraintArgs) and defaults.
type Config struct {
	// Mode is enforce (stop the benchmark: stop scheduling, then let the
	// requests in flight drain for up to --drain before they are cancelled;
	// GuideLLM cancels them at once) or monitor (report only). GuideLLM's
	// enabled=false is monitor, enabled=true enforce.
	Mode string
	// MinSeconds is how long the benchmark runs before any check (GuideLLM
	// min_seconds, 30).
	MinSeconds float64
	// MaxWindowSeconds bounds the age of the points the slopes are fitted
	// on (max_window_seconds, 120).
	MaxWindowSeconds float64
	// MOEThreshold is the largest relative margin of error, t·SE/slope, of
	// a slope that counts as positive (moe_threshold, 2.0).
	MOEThreshold float64
	// MinimumTTFT is the TTFT in seconds above which a request counts as a
	// violation; the GuideLLM signal fires only when at least half the TTFTs
	// in its window are violations (minimum_ttft, 2.5).
	MinimumTTFT float64
	// MaximumWindowRatio bounds each window to this fraction of every point
	// seen so far (maximum_window_ratio, 0.75).
	MaximumWindowRatio float64
	// MinimumWindowSize is the fewest points (capped at the seconds elapsed)
	// a slope is estimated from (minimum_window_size, 5).
	MinimumWindowSize int
	// Confidence is the two-sided confidence of the t quantile in the
	// margin of error (confidence, 0.95).
	Confidence float64

	// Backlog enables the second signal (default on; "backlog=false" turns
	// it off for a strictly GuideLLM-compatible run).
	Backlog bool
	// BacklogGrowth is the factor by which the mean in flight over the last
	// third of the inspected span must exceed that over its first third, the
	// thirds also rising in order (default 1.25).
	BacklogGrowth float64
	// BacklogMin is the least absolute growth, in requests in flight, that
	// counts (default 2), so a backlog of 1 → 2 is not an alarm.
	BacklogMin float64
	// RateDeficit fires the second signal on its own when requests complete
	// this fraction slower than they are sent over the second half of the
	// benchmark while in flight rises (default 0.1).
	RateDeficit float64
}

// DefaultConfig is GuideLLM's defaults plus the backlog signal's.
func DefaultConfig() Config {
	return Config{
		Mode: Enforce, MinSeconds: 30, MaxWindowSeconds: 120, MOEThreshold: 2, MinimumTTFT: 2.5,
		MaximumWindowRatio: 0.75, MinimumWindowSize: 5, Confidence: 0.95,
		Backlog: true, BacklogGrowth: 1.25, BacklogMin: 2, RateDeficit: 0.1,
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Mode != Enforce && c.Mode != Monitor {
		errs = append(errs, fmt.Errorf("mode %q: want enforce or monitor", c.Mode))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"min_seconds", c.MinSeconds}, {"max_window_seconds", c.MaxWindowSeconds}, {"moe_threshold", c.MOEThreshold},
		{"minimum_ttft", c.MinimumTTFT}, {"backlog_min", c.BacklogMin}} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("%s %v: want a non-negative number", f.name, f.v))
		}
	}
	if !(c.MaximumWindowRatio >= 0 && c.MaximumWindowRatio <= 1) {
		errs = append(errs, fmt.Errorf("maximum_window_ratio %v: want 0..1", c.MaximumWindowRatio))
	}
	if !(c.Confidence > 0 && c.Confidence < 1) {
		errs = append(errs, fmt.Errorf("confidence %v: want strictly between 0 and 1", c.Confidence))
	}
	if c.MinimumWindowSize < 0 {
		errs = append(errs, fmt.Errorf("minimum_window_size %d: want >= 0", c.MinimumWindowSize))
	}
	if !(c.BacklogGrowth >= 1) || math.IsInf(c.BacklogGrowth, 0) {
		errs = append(errs, fmt.Errorf("backlog_growth %v: want a number >= 1", c.BacklogGrowth))
	}
	if !(c.RateDeficit > 0 && c.RateDeficit < 1) {
		errs = append(errs, fmt.Errorf("rate_deficit %v: want strictly between 0 and 1", c.RateDeficit))
	}
	return errors.Join(errs...)
}

// Parse reads a --detect-saturation value: a mode, optionally followed by
// comma-separated key=value overrides with GuideLLM's parameter names, e.g.
// "enforce", "monitor,min_seconds=10,minimum_ttft=0.5", "enforce,backlog=false".
// An empty string or "on" is enforce with the defaults. GuideLLM's
// enabled=false (detect and report, do not stop) selects monitor and
// enabled=true enforce; the later of a mode and an enabled key wins.
func Parse(s string) (Config, error) {
	c := DefaultConfig()
	terms := strings.Split(s, ",")
	if m := strings.TrimSpace(terms[0]); !strings.Contains(m, "=") {
		switch m {
		case "", "on", "true":
		default:
			c.Mode = m
		}
		terms = terms[1:]
	}
	var errs []error
	for _, t := range terms {
		k, v, ok := strings.Cut(strings.TrimSpace(t), "=")
		if !ok {
			errs = append(errs, fmt.Errorf("%q: want key=value", t))
			continue
		}
		if k == "mode" {
			c.Mode = v
			continue
		}
		if k == "enabled" { // GuideLLM's: whether a detection stops the benchmark
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("enabled=%s: want true or false", v))
				continue
			}
			c.Mode = Monitor
			if b {
				c.Mode = Enforce
			}
			continue
		}
		if k == "backlog" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("backlog=%s: want true or false", v))
			}
			c.Backlog = b
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%s: want a number", k, v))
			continue
		}
		switch k {
		case "min_seconds":
			c.MinSeconds = f
		case "max_window_seconds":
			c.MaxWindowSeconds = f
		case "moe_threshold":
			c.MOEThreshold = f
		case "minimum_ttft":
			c.MinimumTTFT = f
		case "maximum_window_ratio":
			c.MaximumWindowRatio = f
		case "minimum_window_size":
			if f != math.Trunc(f) {
				errs = append(errs, fmt.Errorf("minimum_window_size=%s: want an integer", v))
			}
			c.MinimumWindowSize = int(f)
		case "confidence":
			c.Confidence = f
		case "backlog_growth":
			c.BacklogGrowth = f
		case "backlog_min":
			c.BacklogMin = f
		case "rate_deficit":
			c.RateDeficit = f
		default:
			errs = append(errs, fmt.Errorf("unknown parameter %q (want enabled, min_seconds, max_window_seconds, moe_threshold, minimum_ttft, maximum_window_ratio, minimum_window_size, confidence, backlog, backlog_growth, backlog_min, rate_deficit)", k))
		}
	}
	if err := errors.Join(append(errs, c.Validate())...); err != nil {
		return c, fmt.Errorf("--detect-saturation %q: %w", s, err)
	}
	return c, nil
}
