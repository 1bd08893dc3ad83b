package replaycli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/reprise-llm/reprise/internal/bench"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
)

const mergeSynopsis = "replay merge [--output-dir DIR] SHARD_DIR... | RUN_DIR   (each the results of one replay run --shard i/N, or a directory holding them)"

// runMerge is replay merge: the shards of one split run as one result
// (bench.Merge), written like any other: replay compare, report and export
// read it.
func runMerge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("replay merge")
	var outDir string
	var labels cli.List
	var quiet bool
	fs.Section("results", func(fs *flag.FlagSet) {
		fs.StringVar(&outDir, "output-dir", "merged", "directory for the merged benchmarks.json, benchmarks.csv and report.html")
		fs.Var(&labels, "label", "key=value carried into every output")
		fs.BoolVar(&quiet, "quiet", false, "do not print the console table")
	})
	if err := fs.Parse(args, stdout, mergeSynopsis); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return cli.UsageError("replay merge: give the shards' results directories, or the directory holding them (%s)", mergeSynopsis)
	}
	lbl, err := parseLabels(labels)
	if err != nil {
		return cli.AsUsage(err)
	}
	file, err := bench.Merge(fs.Args())
	if err != nil {
		return err
	}
	file.Created, file.Labels = time.Now().UTC(), lbl
	file.Command = append([]string{"replay", "merge"}, args...)
	if err := report.WriteAll(outDir, file); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if !quiet {
		if err := report.WriteTable(stdout, file); err != nil {
			return err
		}
	}
	b := &file.Benchmarks[0]
	fmt.Fprintf(stdout, "\nmerged %d shards (%d requests) into %s (benchmarks.json, benchmarks.csv, report.html)\n", len(b.Shards), b.Metrics.Requests.Total, outDir)
	for _, s := range b.Shards {
		fmt.Fprintf(stdout, "  shard %s: %d requests, origin %+.1f ms after the first, first send at %.2f ms, client lag p99 %.2f ms, %s\n", s.Shard, s.Requests, s.StartOffsetMs, s.FirstSendMs, s.ClientLag.P99, s.StopReason)
	}
	gateSummary(stdout, b)
	return sloError(b)
}
