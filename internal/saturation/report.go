package saturation

// Report is the detector's state at the end of a benchmark, written to
// benchmarks.json as "over_saturation". The keys from TTFTSlope to
// IsOverSaturated are GuideLLM's metadata keys, with its meaning: the last
// evaluation of its test (nil slopes: never estimated).
type Report struct {
	TTFTSlope          *float64 `json:"ttft_slope"`           // s of TTFT per s of benchmark
	TTFTSlopeMOE       *float64 `json:"ttft_slope_moe"`       // relative margin of error
	TTFTN              int      `json:"ttft_n"`               // TTFT points in the window
	TTFTViolations     int      `json:"ttft_violations"`      // of them, above minimum_ttft
	ConcurrentSlope    *float64 `json:"concurrent_slope"`     // requests per s
	ConcurrentSlopeMOE *float64 `json:"concurrent_slope_moe"` // relative margin of error
	ConcurrentN        int      `json:"concurrent_n"`         // concurrency points in the window
	IsOverSaturated    bool     `json:"is_over_saturated"`    // GuideLLM's verdict at the last check

	Mode string `json:"mode"` // enforce or monitor
	// Detected says some signal fired; Signal names the first, DetectedAtS
	// when (seconds since the origin); Fired lists every signal that fired.
	Detected    bool     `json:"detected"`
	Signal      string   `json:"signal,omitempty"`
	DetectedAtS float64  `json:"detected_at_s,omitempty"`
	Fired       []Firing `json:"fired,omitempty"`
	// InFlightThirds is the mean in flight over the thirds of the span the
	// backlog signal inspected; OfferedRate and CompletedRate (req/s) its
	// second-half rates. Absent when it never evaluated.
	InFlightThirds *[3]float64 `json:"in_flight_thirds,omitempty"`
	OfferedRate    float64     `json:"offered_rate,omitempty"`
	CompletedRate  float64     `json:"completed_rate,omitempty"`
	// Params are the parameters in force, under GuideLLM's names.
	Params map[string]any `json:"params"`
}

// Report returns the detector's current state.
func (d *Detector) Report() Report {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.cfg
	r := Report{
		TTFTN: d.ttft.n, TTFTViolations: d.violations, ConcurrentN: d.conc.n, IsOverSaturated: d.isOver,
		Mode: c.Mode, Detected: len(d.fired) > 0, Fired: append([]Firing(nil), d.fired...),
		Params: map[string]any{
			"min_seconds": c.MinSeconds, "max_window_seconds": c.MaxWindowSeconds, "moe_threshold": c.MOEThreshold,
			"minimum_ttft": c.MinimumTTFT, "maximum_window_ratio": c.MaximumWindowRatio,
			"minimum_window_size": c.MinimumWindowSize, "confidence": c.Confidence, "enabled": c.Mode == Enforce,
			"backlog": c.Backlog, "backlog_growth": c.BacklogGrowth, "backlog_min": c.BacklogMin, "rate_deficit": c.RateDeficit,
		},
	}
	if d.ttft.haveSlope {
		s, m := d.ttft.lastSlope, d.ttft.lastMOE
		r.TTFTSlope, r.TTFTSlopeMOE = &s, &m
	}
	if d.conc.haveSlope {
		s, m := d.conc.lastSlope, d.conc.lastMOE
		r.ConcurrentSlope, r.ConcurrentSlopeMOE = &s, &m
	}
	if len(d.fired) > 0 {
		r.Signal, r.DetectedAtS = d.fired[0].Signal, d.fired[0].AtS
	}
	if d.last.evaluated {
		th := d.last.thirds
		r.InFlightThirds, r.OfferedRate, r.CompletedRate = &th, d.last.offered, d.last.completed
	}
	return r
}
