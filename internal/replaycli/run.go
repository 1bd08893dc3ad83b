// Package replaycli is the replay program: a small table of subcommands,
// each with its own flag set. cmd/replay only wires signals and calls Run.
package replaycli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/reprise-llm/reprise/internal/cli"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"run":      {"run one benchmark of a workload against a target", runBench},
	"sim":      {"serve the built-in OpenAI-compatible simulator", runSim},
	"inspect":  {"summarise what a capture or trace holds", runInspect},
	"capacity": {"find the highest rate that meets --slo, by bisection", runCapacity},
	"report":   {"re-render report.html, benchmarks.csv and the table from a saved benchmarks.json", runReport},
	"export":   {"write saved results in another tool's format (--format guidellm)", runExport},
	"compare":  {"compare deployments (or saved results) with confidence intervals, verdicts and --fail-if gates", runCompare},
	"merge":    {"join the results of a run split across processes or pods (run --shard i/N) into one", runMerge},
}

// Run dispatches to the subcommand named by args[0].
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return cli.UsageError("a command is required")
		}
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		return cli.UsageError("unknown command %q (commands: %s)", args[0], strings.Join(names(), ", "))
	}
	err := c.run(ctx, args[1:], stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	// Errors of the libraries name settings by their fields (engine.Config's,
	// a plan's, the workload transforms'); the user set flags.
	return cli.MapFields(err, planFlags)
}

func names() []string {
	var out []string
	for n := range commands {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: replay COMMAND [flags]   (replay COMMAND --help for its flags)")
	fmt.Fprintln(w)
	for _, n := range names() {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
}
