package replaycli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
)

const exportSynopsis = "replay export --format guidellm [-o FILE] RESULTS"

// exportFormats are the formats replay export writes, with the default
// file name each gets inside the results directory.
var exportFormats = map[string]struct {
	file  string
	write func(io.Writer, *report.File) error
}{
	"guidellm": {"guidellm-benchmarks.json", report.WriteGuideLLM},
}

// runExport is replay export: read a saved benchmarks.json and write it in
// another tool's format (GuideLLM's benchmarks.json, schema v2).
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay export", flag.ContinueOnError)
	format := fs.String("format", "guidellm", "output format: guidellm (GuideLLM's benchmarks.json, schema v2)")
	out := fs.String("o", "", "output `FILE`; - for standard output (default: guidellm-benchmarks.json in the results directory)")
	if err := parse(fs, flagsFirst(fs, args), stdout, exportSynopsis, nil); err != nil { // nil: the environment, os.LookupEnv semantics
		return err
	}
	if fs.NArg() != 1 {
		return cli.UsageError("replay export: want one results directory or benchmarks.json, got %d arguments", fs.NArg())
	}
	fm, ok := exportFormats[*format]
	if !ok {
		return cli.UsageError("replay export: unknown --format %q (formats: guidellm)", *format)
	}
	f, dir, err := readResults(fs.Arg(0))
	if err != nil {
		return err
	}
	if *out == "-" {
		bw := bufio.NewWriter(stdout)
		if err := fm.write(bw, f); err != nil {
			return err
		}
		return bw.Flush()
	}
	path := *out
	if path == "" {
		path = filepath.Join(dir, fm.file)
	}
	if err := report.WriteFileAtomic(path, func(w io.Writer) error { return fm.write(w, f) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s, %d benchmarks)\n", path, *format, len(f.Benchmarks))
	return nil
}
