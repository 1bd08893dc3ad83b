package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable writes the console summary: one column per benchmark, one row
// per headline figure (requests, errors, throughput, TTFT/ITL/e2e
// percentiles, send lag). Labels a benchmark sets itself are rows under
// the header; the file's labels, shared by all, a "labels:" footer.
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
	// Labels that differ by benchmark head their columns; those shared by
	// all go in the footer.
	for _, k := range benchLabelKeys(f) {
		b.Reset()
		b.WriteString(fmt.Sprintf("%-*s", width, cell(k)) + "\t")
		for i := range f.Benchmarks {
			v, _ := f.Label(&f.Benchmarks[i], k)
			b.WriteString(cell(v) + "\t")
		}
		fmt.Fprintln(tw, b.String())
	}
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
	if len(f.Labels) > 0 {
		var kvs []string
		for _, k := range sortedKeys(f.Labels) {
			kvs = append(kvs, k+"="+f.Labels[k])
		}
		if _, err := fmt.Fprintln(w, "labels: "+cell(strings.Join(kvs, " "))); err != nil {
			return fmt.Errorf("writing table: %w", err)
		}
	}
	return nil
}

// benchLabelKeys are the label keys for which some benchmark's own value
// is not the file's, sorted.
func benchLabelKeys(f *File) []string {
	own := map[string]bool{}
	for i := range f.Benchmarks {
		for k, v := range f.Benchmarks[i].Labels {
			if w, ok := f.Labels[k]; !ok || w != v {
				own[k] = true
			}
		}
	}
	return sortedKeys(own)
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

// WriteComparisonTable writes a comparison as an aligned table: one block
// per candidate, one line per metric and statistic, with the delta, its
// confidence interval, the rank test's p-value and the verdict.
func WriteComparisonTable(w io.Writer, rows []ComparisonRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, t := range comparisonTables(rows) {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, cell(t.Title))
		fmt.Fprintln(tw, "metric\tstat\tbaseline\tcandidate\tdelta\tinterval\tp\tverdict\t")
		for _, r := range t.Rows {
			verdict := r.Verdict
			if r.Gate != "" {
				verdict += " (fails " + r.Gate + ")"
			}
			fmt.Fprintln(tw, strings.Join([]string{cell(r.Metric), cell(r.Stat), r.Baseline, r.Candidate, r.Delta, r.CI, r.P, cell(verdict)}, "\t")+"\t")
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing comparison table: %w", err)
	}
	return nil
}
