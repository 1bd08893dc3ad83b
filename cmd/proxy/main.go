// Command proxy forwards OpenAI-compatible traffic to an inference gateway
// unchanged and records each request's shape and timings. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/proxycli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := proxycli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "proxy: %v\n", err)
		if errors.Is(err, cli.ErrUsage) {
			fmt.Fprintln(os.Stderr, "run 'proxy --help' for usage")
			os.Exit(2)
		}
		os.Exit(1)
	}
}
