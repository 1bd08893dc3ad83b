package replaycli

import (
	"errors"

	"github.com/reprise-llm/reprise/internal/cli"
)

// Exit codes of the replay program (README.md, docs/compare.md).
const (
	// ExitOK: the command did what was asked and every check passed.
	ExitOK = 0
	// ExitError: it could not do what was asked (an unreachable target, an
	// unreadable workload, a run in which nothing succeeded).
	ExitError = 1
	// ExitUsage: the command line is wrong.
	ExitUsage = 2
	// ExitCheckFailed: the measurement worked and its answer is "no" — a
	// compare --fail-if gate failed (the candidate regressed), a run or
	// sweep missed its --slo, capacity found no rate meeting the SLOs. A
	// pipeline can tell this from a broken benchmark.
	ExitCheckFailed = 3
)

// ErrSLOFailed is wrapped by the error of a benchmark that does not meet
// its --slo (exit ExitCheckFailed).
var ErrSLOFailed = errors.New("SLO not met")

// ExitCode is the exit status for the error Run returned.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, cli.ErrUsage):
		return ExitUsage
	case errors.Is(err, ErrGateFailed), errors.Is(err, ErrSLOFailed), errors.Is(err, ErrNoCapacity):
		return ExitCheckFailed
	}
	return ExitError
}
