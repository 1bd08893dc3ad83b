// Command replay reissues captured, public or synthetic LLM workloads
// against candidate deployments and measures them. See README.md.
//
// Exit status: 0 success; 1 an error; 2 a usage error; 3 a check that
// failed (a compare --fail-if gate, an --slo, no capacity) — see
// replaycli.ExitCode.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/reprise-llm/reprise/internal/replaycli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := replaycli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "replay: %v\n", err)
		os.Exit(replaycli.ExitCode(err))
	}
}
