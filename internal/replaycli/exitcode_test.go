package replaycli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/slo"
)

// TestCompareGateExitCodes: a failed gate exits 3; an undecided one warns
// on stderr and exits 0, or 3 with --fail-on-undecided (B6, B7); SLO and
// capacity failures are checks too, usage and other errors are not.
func TestCompareGateExitCodes(t *testing.T) {
	a, b := compareSim(t, 10*time.Millisecond, 31), compareSim(t, 10*time.Millisecond, 32)
	args := []string{"compare", "--target", "a=" + a, "--target", "b=" + b,
		"--workload", "synthetic:prompt_tokens=20,output_tokens=4,samples=40", "--profile", "constant", "--rate", "80",
		"--mode", "parallel", "--save-requests", "--quiet", "--fail-if", "ttft_p99>+10%"}
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := Run(context.Background(), append(args, "--output-dir", dir), &out, &errb)
	if err != nil || ExitCode(err) != ExitOK {
		t.Fatalf("undecided gate: %v (exit %d)\n%s", err, ExitCode(err), out.String())
	}
	if !strings.Contains(errb.String(), "warning: gate ttft_p99>+10% is undecided for b: needs at least 300 samples") {
		t.Errorf("stderr lacks the warning:\n%s", errb.String())
	}
	errb.Reset()
	err = Run(context.Background(), []string{"compare", "--output-dir", t.TempDir(), "--fail-if", "ttft_p99>+10%", "--fail-on-undecided", dir}, &out, &errb)
	if !errors.Is(err, ErrGateFailed) || ExitCode(err) != ExitCheckFailed || !strings.Contains(err.Error(), "undecided") {
		t.Errorf("--fail-on-undecided: %v (exit %d)", err, ExitCode(err))
	}
	err = Run(context.Background(), []string{"compare", "--output-dir", t.TempDir(), "--fail-if", "ttft_p50>-50%", dir}, &out, &errb)
	if ExitCode(err) != ExitCheckFailed {
		t.Errorf("failed gate: %v, exit %d, want 3", err, ExitCode(err))
	}
	for err, want := range map[error]int{
		nil:                                ExitOK,
		fmt.Errorf("%w: x", ErrGateFailed): ExitCheckFailed,
		sloError(&report.Benchmark{Name: "c", SLO: &slo.Report{Spec: "ttft_p99<=1ms"}}): ExitCheckFailed,
		fmt.Errorf("capacity: %w", fmt.Errorf("%w: even 1 req/s fails", ErrNoCapacity)): ExitCheckFailed,
		Run(context.Background(), []string{"compare", "--bogus"}, &out, &out):           ExitUsage,
		errors.New("connection refused"):                                                ExitError,
	} {
		if got := ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, want)
		}
	}
}
