package bench

import "testing"

func TestSweepRatesAreGuideLLMs(t *testing.T) {
	// numpy.linspace(2, 20, 9)[1:]
	got := sweepRates(2, 20, 10)
	want := []float64{4.25, 6.5, 8.75, 11, 13.25, 15.5, 17.75, 20}
	if len(got) != len(want) {
		t.Fatalf("%v", got)
	}
	for i := range want {
		if d := got[i] - want[i]; d > 1e-9 || d < -1e-9 {
			t.Fatalf("%v, want %v", got, want)
		}
	}
}
