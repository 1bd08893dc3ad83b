package replaycli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
)

const reportSynopsis = "replay report [--output-dir DIR] [--quiet] RESULTS"

// runReport is replay report: read a saved benchmarks.json (a results
// directory or the file itself) and write report.html and benchmarks.csv
// again, with this build's renderer, and print the console table. The
// JSON is never rewritten: it is the record.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("replay report")
	var outDir *string
	var quiet *bool
	fs.Section("results", func(fs *flag.FlagSet) {
		outDir = fs.String("output-dir", "", "directory for report.html and benchmarks.csv (default: the results directory)")
		quiet = fs.Bool("quiet", false, "do not print the console table")
	})
	if err := fs.Parse(args, stdout, reportSynopsis); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.UsageError("replay report: want one results directory or benchmarks.json, got %d arguments", fs.NArg())
	}
	f, dir, err := readResults(fs.Arg(0))
	if err != nil {
		return err
	}
	if *outDir != "" {
		dir = *outDir
	}
	if err := report.WriteViews(dir, f); err != nil {
		return fmt.Errorf("writing report: %w", err)
	}
	if !*quiet {
		if err := report.WriteTable(stdout, f); err != nil {
			return err
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(dir, report.HTMLFile), filepath.Join(dir, report.CSVFile))
	return nil
}

// readResults reads benchmarks.json from a results directory or a file
// path, returning the directory it is in.
func readResults(path string) (*report.File, string, error) { return report.ReadResults(path) }
