package saturation

import (
	"math"
	"math/rand/v2"
	"time"
)

// queueAtCapacity drives d with a fluid model of a server at exactly its
// capacity: each second, Poisson(rate) arrivals join the queue and exactly
// rate requests leave it, so the backlog is a reflected random walk whose
// mean grows like √t. Each second it records the requests in flight
// (backlog plus the rate·service requests being served) and ten TTFTs,
// each the wait behind the backlog plus service. It returns the offset at
// which d first asked to stop (0 if never) and the final backlog.
func queueAtCapacity(d *Detector, seed uint64, rate float64, service time.Duration, seconds int, load float64) (time.Duration, float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var q float64
	var sent, done int
	serving := rate * service.Seconds()
	for s := 1; s <= seconds; s++ {
		a := poisson(rng, rate*load)
		q = math.Max(0, q+float64(a)-rate)
		sent += a
		done = sent - int(q) - int(serving)
		at := time.Duration(s) * time.Second
		stop := d.Sample(at, sent, max(done, 0))
		for i := 0; i < 10; i++ { // ten TTFT points a second: GuideLLM counts at most one a second anyway
			wait := q / rate
			if d.FirstToken(at, time.Duration((wait+service.Seconds()/2)*float64(time.Second))) {
				stop = true
			}
		}
		if stop {
			return at, q
		}
	}
	return 0, q
}

func poisson(rng *rand.Rand, mean float64) int {
	// Normal approximation is enough for means of 10 and more.
	if mean >= 10 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*rng.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= rng.Float64()
		if p < l {
			return k
		}
		k++
	}
}
