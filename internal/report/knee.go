package report

// Knee is a knee sweep's analysis (replay run --profile knee;
// internal/bench's AnalyzeKnee states the rule): where output throughput
// stops rising with concurrency.
type Knee struct {
	// Status is KneeFound or KneeNone; Reason says why in words.
	Status string `json:"status"`
	Reason string `json:"reason"`
	// Rule is the detection rule, with its thresholds.
	Rule string `json:"rule"`
	// Concurrency is the knee, where the rising and flat segments cross;
	// SaturationConcurrency the first measured concurrency at or above it
	// (its benchmark: SaturationBenchmark).
	Concurrency           float64 `json:"concurrency,omitempty"`
	SaturationConcurrency float64 `json:"saturation_concurrency,omitempty"`
	SaturationBenchmark   string  `json:"saturation_benchmark,omitempty"`
	// The fit: the best breakpoint's concurrency, the normalized slopes
	// before and after it, their ratio, how much two segments cut one
	// line's squared error, and the breakpoint's share of peak throughput.
	BreakpointConcurrency float64 `json:"breakpoint_concurrency,omitempty"`
	PreSlope              float64 `json:"pre_slope,omitempty"`
	TailSlope             float64 `json:"tail_slope"`
	SlopeRatio            float64 `json:"slope_ratio"`
	FitImprovement        float64 `json:"fit_improvement,omitempty"`
	ThroughputFraction    float64 `json:"throughput_fraction,omitempty"`
	// Concurrencies are those analysed; Refined those added around the
	// first analysis's knee, whose result is Initial.
	Concurrencies []int `json:"concurrencies"`
	Refined       []int `json:"refined,omitempty"`
	Initial       *Knee `json:"initial,omitempty"`
}

// Knee statuses.
const (
	KneeFound = "ok"
	KneeNone  = "no_knee"
)
