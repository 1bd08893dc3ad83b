package bench

import (
	"testing"

	"github.com/reprise-llm/reprise/internal/engine"
)

func TestRequestedRateOfARescaledTrace(t *testing.T) {
	for _, tt := range []struct {
		profile       string
		rate, rescale float64
		want          float64
	}{
		{engine.ProfileConstant, 5, 0, 5},
		{engine.ProfileGamma, 7, 0, 7},
		{engine.ProfileTrace, 0, 12.5, 12.5},
		{engine.ProfileTrace, 0, 0, 0},
		{engine.ProfileThroughput, 0, 0, 0},
	} {
		if got := requestedRate(engine.Config{Profile: tt.profile, Rate: tt.rate}, tt.rescale); got != tt.want {
			t.Errorf("%s rate %v rescale %v: %v, want %v", tt.profile, tt.rate, tt.rescale, got, tt.want)
		}
	}
}
