// Package simtest starts Reprise's built-in simulator (internal/sim) for
// tests: a real OpenAI-compatible server with a capacity model, on
// loopback, gone when the test ends.
//
// Tests vary the simulator through plain func(*sim.Config) modifiers
// applied to sim.DefaultConfig, so a field added to sim.Config is usable
// here without changing this package:
//
//	url, s := simtest.Start(t, func(c *sim.Config) {
//		c.Slots, c.TTFTBase, c.ITLBase = 4, 10*time.Millisecond, 2*time.Millisecond
//	})
//	... s.Stats().GenerationTokens ...
package simtest

import (
	"net/http/httptest"
	"testing"

	"github.com/reprise-llm/reprise/internal/sim"
)

// New returns a simulator configured as sim.DefaultConfig changed by mods,
// in order, failing the test if the result does not validate. It is for
// tests that serve it themselves (over h2c, or behind a recording
// handler); the rest use Start.
func New(t testing.TB, mods ...func(*sim.Config)) *sim.Server {
	t.Helper()
	cfg := sim.DefaultConfig()
	for _, mod := range mods {
		mod(&cfg)
	}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatalf("simtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start serves New(t, mods...) from an httptest server on 127.0.0.1 and
// returns its base URL (http://127.0.0.1:PORT, no trailing slash) and the
// simulator, whose Stats are the server's own counts. The server closes
// when the test and its subtests end, before the simulator does.
func Start(t testing.TB, mods ...func(*sim.Config)) (url string, s *sim.Server) {
	t.Helper()
	s = New(t, mods...)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close) // cleanups run last-first: the server, then the simulator
	return srv.URL, s
}
