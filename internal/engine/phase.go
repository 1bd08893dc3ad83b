package engine

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Phases a Result can be marked with; an empty Phase is measured.
const (
	PhaseWarmup   = "warmup"
	PhaseCooldown = "cooldown"
)

// Portion is how much of a run --warmup or --cooldown covers: a duration
// ("10s"), a number of requests ("50") or a fraction ("5%", "0.05"). At
// most one field is set; the zero value is none.
//
// A fraction is of --max-seconds when the run is bounded by time only, and
// otherwise of the requests the run sent.
type Portion struct {
	Duration time.Duration
	Count    int
	Fraction float64 // in [0, 1)
}

// ParsePortion parses a --warmup or --cooldown value. The empty string is
// the zero Portion.
func ParsePortion(s string) (Portion, error) {
	const want = "want a duration such as 10s, a count such as 50, or a fraction such as 5%% or 0.05"
	v := strings.TrimSpace(s)
	if v == "" {
		return Portion{}, nil
	}
	if pct, ok := strings.CutSuffix(v, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || !(f >= 0 && f < 100) {
			return Portion{}, fmt.Errorf("%q: want a percentage in [0%%, 100%%)", s)
		}
		return Portion{Fraction: f / 100}, nil
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return Portion{}, fmt.Errorf("%q: a count must not be negative", s)
		}
		return Portion{Count: n}, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if !(f >= 0 && f < 1) {
			return Portion{}, fmt.Errorf("%q: a fraction must be in [0, 1) (a count has no decimal point)", s)
		}
		return Portion{Fraction: f}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return Portion{}, fmt.Errorf("%q: "+want, s)
	}
	if d < 0 {
		return Portion{}, fmt.Errorf("%q: a duration must not be negative", s)
	}
	return Portion{Duration: d}, nil
}

// String is the Portion as ParsePortion reads it back; "" for none.
func (p Portion) String() string {
	switch {
	case p.Duration > 0:
		return p.Duration.String()
	case p.Count > 0:
		return strconv.Itoa(p.Count)
	case p.Fraction > 0:
		return strconv.FormatFloat(p.Fraction*100, 'g', -1, 64) + "%"
	}
	return ""
}

// IsZero reports whether p covers nothing.
func (p Portion) IsZero() bool { return p.Duration == 0 && p.Count == 0 && p.Fraction == 0 }

func (p Portion) validate() error {
	set := 0
	for _, b := range []bool{p.Duration != 0, p.Count != 0, p.Fraction != 0} {
		if b {
			set++
		}
	}
	var errs []error
	if set > 1 {
		errs = append(errs, errors.New("set one of a duration, a count or a fraction"))
	}
	if p.Duration < 0 || p.Count < 0 {
		errs = append(errs, errors.New("must not be negative"))
	}
	if !(p.Fraction >= 0 && p.Fraction < 1) {
		errs = append(errs, fmt.Errorf("fraction %v: must be in [0, 1)", p.Fraction))
	}
	return errors.Join(errs...)
}

// markPhases sets Phase on the results (ordered by Index) that fall in the
// warmup or cooldown. Requests are ordered by intended send time; a count
// takes the first or last requests; a warmup duration d those intended in
// [first intended, first intended + d), a cooldown duration those intended
// in [stopAt − d, stopAt], stopAt being when scheduling stopped. A request
// in both is warmup.
func markPhases(results []Result, cfg *Config, stopAt time.Duration) {
	if len(results) == 0 || (cfg.Warmup.IsZero() && cfg.Cooldown.IsZero()) {
		return
	}
	order := make([]int, len(results))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(results[a].Intended, results[b].Intended) })
	first := results[order[0]].Intended
	n := len(results)
	warmN, warmD := cfg.portion(cfg.Warmup, n)
	coolN, coolD := cfg.portion(cfg.Cooldown, n)
	for rank, i := range order {
		r := &results[i]
		switch {
		case rank < warmN || (warmD > 0 && r.Intended-first < warmD):
			r.Phase = PhaseWarmup
		case rank >= n-coolN || (coolD > 0 && stopAt-r.Intended <= coolD):
			r.Phase = PhaseCooldown
		}
	}
}

// portion resolves p to a count or a duration for a run that sent n
// requests: a fraction is of MaxSeconds when only time bounds the run, else
// of n (rounded to the nearest request).
func (c *Config) portion(p Portion, n int) (count int, d time.Duration) {
	switch {
	case p.Count > 0:
		return p.Count, 0
	case p.Duration > 0:
		return 0, p.Duration
	case p.Fraction > 0 && c.MaxSeconds > 0 && c.MaxRequests == 0 && c.limit() > 0:
		return 0, time.Duration(p.Fraction * float64(c.limit()))
	case p.Fraction > 0:
		return int(math.Round(p.Fraction * float64(n))), 0
	}
	return 0, 0
}
