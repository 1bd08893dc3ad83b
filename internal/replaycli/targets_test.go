package replaycli

import (
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// The simulators the command tests run against, each declared once as a
// change to sim.DefaultConfig (simtest's modifiers), with what it is for.

// smallConfig is a simulator of 4 slots and no jitter: each request of 20
// output tokens (smallWorkload) holds a slot for about 5 + 20×5 = 105 ms,
// so its capacity is about 4 / 0.105 ≈ 38 req/s (simCapacity).
func smallConfig(c *sim.Config) {
	c.Slots, c.TTFTBase, c.PrefillPerToken, c.ITLBase, c.ITLPerSeq, c.Jitter = 4, 5*time.Millisecond, 0, 5*time.Millisecond, 0, 0
}

const (
	smallWorkload = "synthetic:prompt_tokens=30,output_tokens=20,samples=100000"
	simCapacity   = 4 / 0.105 // req/s of smallConfig
	// fastDetector checks from 3 s and counts TTFTs above 100 ms as
	// violations, so that seconds of overload on the small simulator are
	// enough.
	fastDetector = "min_seconds=3,minimum_ttft=0.1"
)

// smallSim serves smallConfig and returns its URL.
func smallSim(t *testing.T) string {
	t.Helper()
	url, _ := simtest.Start(t, smallConfig)
	return url
}

// boundedQueue bounds the simulator's waiting queue to one request: a
// request beyond it gets 429 at once.
func boundedQueue(c *sim.Config) { c.MaxWaiting = 1 }

// quickConfig answers in 2 ms and decodes a token a millisecond whatever
// the load: for tests that need replies, not a capacity.
func quickConfig(c *sim.Config) {
	c.TTFTBase, c.ITLBase, c.ITLPerSeq = 2*time.Millisecond, time.Millisecond, 0
}

// quickSim serves quickConfig and returns its URL.
func quickSim(t *testing.T) string {
	t.Helper()
	url, _ := simtest.Start(t, quickConfig)
	return url
}

// fastSim serves a simulator faster still (1 ms to the first token, 50 µs
// a token) whose replies, when not forced to a length by ignore_eos, end
// after 4 tokens on average, and returns its URL.
func fastSim(t *testing.T) string {
	t.Helper()
	url, _ := simtest.Start(t, func(c *sim.Config) {
		c.TTFTBase, c.ITLBase, c.ITLPerSeq, c.NaturalOutputMean = time.Millisecond, 50*time.Microsecond, 0, 4
	})
	return url
}
