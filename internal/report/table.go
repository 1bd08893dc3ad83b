package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the console summary: one column per benchmark, one row
// per headline figure (requests, errors, throughput, TTFT/ITL/e2e
// percentiles, send lag).
func WriteTable(w io.Writer, f *File) error {
	rows := summaryRows(f.Benchmarks)
	// Numbers align right; labels are padded to one width so they read left-aligned.
	width := 0
	for _, r := range rows {
		width = max(width, len(r.Label))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	var b strings.Builder
	b.WriteString(strings.Repeat(" ", width) + "\t")
	for i := range f.Benchmarks {
		b.WriteString(cell(benchTitle(&f.Benchmarks[i])) + "\t")
	}
	fmt.Fprintln(tw, b.String())
	for _, r := range rows {
		b.Reset()
		b.WriteString(fmt.Sprintf("%-*s", width, cell(r.Label)) + "\t")
		for i := range f.Benchmarks {
			b.WriteString(cell(r.Value(&f.Benchmarks[i])) + "\t")
		}
		fmt.Fprintln(tw, b.String())
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing table: %w", err)
	}
	return nil
}

// benchTitle is the benchmark's column heading.
func benchTitle(b *Benchmark) string {
	if b.Baseline && !strings.Contains(b.Name, "baseline") {
		return b.Name + " (baseline)"
	}
	return b.Name
}

// cell keeps tabs and newlines in names from breaking the layout.
func cell(s string) string {
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}
