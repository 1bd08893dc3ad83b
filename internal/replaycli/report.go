package replaycli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
)

const reportSynopsis = "replay report [--output-dir DIR] [--quiet] RESULTS"

// runReport is replay report: read a saved benchmarks.json (a results
// directory or the file itself) and write report.html and benchmarks.csv
// again, with this build's renderer, and print the console table. The
// JSON is never rewritten: it is the record.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("replay report", flag.ContinueOnError)
	outDir := fs.String("output-dir", "", "directory for report.html and benchmarks.csv (default: the results directory)")
	quiet := fs.Bool("quiet", false, "do not print the console table")
	if err := parse(fs, flagsFirst(fs, args), stdout, reportSynopsis, nil); err != nil { // nil: the environment, os.LookupEnv semantics
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
func readResults(path string) (*report.File, string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, "", fmt.Errorf("reading results: %w", err)
	}
	file, dir := path, filepath.Dir(path)
	if st.IsDir() {
		file, dir = filepath.Join(path, report.JSONFile), path
	}
	fh, err := os.Open(file)
	if err != nil {
		return nil, "", fmt.Errorf("reading results: %w", err)
	}
	defer fh.Close()
	f, err := report.ReadJSON(fh)
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", file, err)
	}
	return f, dir, nil
}

// flagsFirst moves positional arguments after the flags, so that
// `replay export DIR -o FILE` parses like `replay export -o FILE DIR`
// (the flag package stops at the first positional argument). A value
// following a flag that takes one stays with it; "--" ends the flags.
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			return append(append(flags, "--"), pos...)
		case !strings.HasPrefix(a, "-") || a == "-":
			pos = append(pos, a)
		default:
			flags = append(flags, a)
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if f := fs.Lookup(name); f != nil && !hasValue && !isBool(f) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		}
	}
	if len(pos) > 0 {
		flags = append(flags, "--")
	}
	return append(flags, pos...)
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
