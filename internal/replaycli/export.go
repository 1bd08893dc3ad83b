package replaycli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/otelexport"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/workload"
)

const exportSynopsis = "replay export --format guidellm|otel|otel-spans [-o FILE] RESULTS|CAPTURE"

// exportFormats are the formats replay export writes, the default file
// each gets (in the results or capture directory), and whether it reads a
// capture too.
var exportFormats = map[string]struct {
	file    string
	capture bool
}{
	"guidellm":   {"guidellm-benchmarks.json", false},
	"otel":       {"spans.otlp.jsonl", true},
	"otel-spans": {"spans.guidellm.jsonl", true},
}

// runExport is replay export: saved results (or, for the OpenTelemetry
// formats, a capture) written in another tool's format: GuideLLM's
// benchmarks.json (schema v2), OTLP JSON GenAI spans for tracing backends
// and `otel:` workloads, or GuideLLM's span-per-line OTel layout.
func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlags("replay export")
	var format, out *string
	fs.Section("export", func(fs *flag.FlagSet) {
		format = fs.String("format", "guidellm", "output format: guidellm (GuideLLM's benchmarks.json, schema v2, from results), otel (OTLP JSON GenAI spans, a line per export request, from results with --save-requests records or from a capture; read back as otel:FILE) or otel-spans (one span a line, as GuideLLM reads OTel traces)")
		out = fs.String("o", "", "output `FILE`; - for standard output (default: the format's file in the results or capture directory)")
	})
	if err := fs.Parse(args, stdout, exportSynopsis); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return cli.UsageError("replay export: want one results directory, benchmarks.json or (otel) capture, got %d arguments", fs.NArg())
	}
	fm, ok := exportFormats[*format]
	if !ok {
		return cli.UsageError("replay export: unknown --format %q (formats: guidellm, otel, otel-spans)", *format)
	}
	in := fs.Arg(0)
	var write func(io.Writer) (string, error)
	var dir string
	if capPath, isCapture := workload.CapturePath(in); isCapture && fm.capture {
		layout, _ := otelexport.ParseLayout(*format)
		dir = capPath
		if st, err := os.Stat(capPath); err == nil && !st.IsDir() {
			dir = filepath.Dir(capPath)
		}
		write = func(w io.Writer) (string, error) {
			src, err := workload.OpenCapture(capPath, workload.OpenOptions{})
			if err != nil {
				return "", err
			}
			defer src.Close()
			n, err := otelexport.Workload(w, src, otelexport.Options{Layout: layout})
			return fmt.Sprintf("%d spans", n), err
		}
	} else {
		f, d, err := readResults(in)
		if err != nil {
			return err
		}
		dir = d
		write = func(w io.Writer) (string, error) {
			if !fm.capture {
				return fmt.Sprintf("%d benchmarks", len(f.Benchmarks)), report.WriteGuideLLM(w, f)
			}
			layout, _ := otelexport.ParseLayout(*format)
			n, err := otelexport.Results(w, f, otelexport.Options{Layout: layout})
			return fmt.Sprintf("%d spans", n), err
		}
	}
	if *out == "-" {
		bw := bufio.NewWriter(stdout)
		if _, err := write(bw); err != nil {
			return err
		}
		return bw.Flush()
	}
	path := *out
	if path == "" {
		path = filepath.Join(dir, fm.file)
	}
	var what string
	if err := report.WriteFileAtomic(path, func(w io.Writer) error {
		var err error
		what, err = write(w)
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%s, %s)\n", path, *format, what)
	return nil
}
