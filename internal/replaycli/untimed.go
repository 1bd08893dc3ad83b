package replaycli

import (
	"fmt"
	"io"

	"github.com/reprise-llm/reprise/internal/engine"
	"github.com/reprise-llm/reprise/internal/workload"
)

// untimedTrace is the error (a usage error to its callers) of --profile trace (the default) with a
// workload that has no arrival times: synthetic: and prompt files yield
// every request at offset 0, so trace would send them all at once, with
// scheduled_rate 0 and not a word (issue 17). nil for any other profile or
// workload, and for a workload that does not open (its own error is
// reported when the benchmark opens it).
func untimedTrace(profile, spec string) error {
	if profile != engine.ProfileTrace || !untimedWorkload(spec) {
		return nil
	}
	return fmt.Errorf("--profile trace (the default) replays the workload's recorded arrival times, and %s has none: every request would be sent at once. "+
		"Give it a rate (--profile poisson --rate R, or constant, gamma) or a closed loop (--profile concurrent --concurrency N, synchronous, throughput)", spec)
}

// untimedWorkload reports whether spec opens as a workload without arrival
// times: a synthetic: spec or a file of prompts, however it was named.
// Captures are never opened here: they are timed, and may be large.
func untimedWorkload(spec string) bool {
	if _, ok := workload.CapturePath(spec); ok {
		return false
	}
	src, err := workload.Open(spec, workload.OpenOptions{})
	if err != nil {
		return false
	}
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	switch src.(type) {
	case *workload.Synthetic, *workload.Prompts:
		return true
	}
	return false
}
