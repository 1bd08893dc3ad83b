package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Output file names inside a results directory.
const (
	JSONFile = "benchmarks.json"
	CSVFile  = "benchmarks.csv"
	HTMLFile = "report.html"
)

// WriteAll writes benchmarks.json, benchmarks.csv and report.html into dir,
// creating it if needed, and comparison.csv when f holds a comparison. Each file is written to a temporary name in dir
// and renamed into place, so a reader never sees a half-written file and a
// failure leaves the previous results intact.
func WriteAll(dir string, f *File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating results directory: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, JSONFile), func(w io.Writer) error { return WriteJSON(w, f) }); err != nil {
		return err
	}
	return WriteViews(dir, f)
}

// WriteViews writes benchmarks.csv and report.html (and comparison.csv when
// f holds a comparison) into dir from f (a re-render of a saved
// benchmarks.json, which it leaves alone).
func WriteViews(dir string, f *File) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating results directory: %w", err)
	}
	for _, out := range []struct {
		name  string
		write func(io.Writer, *File) error
	}{{CSVFile, WriteCSV}, {ComparisonCSVFile, WriteComparisonCSV}, {HTMLFile, WriteHTML}} {
		if out.name == ComparisonCSVFile && f.Comparison == nil {
			continue
		}
		if err := writeAtomic(filepath.Join(dir, out.name), func(w io.Writer) error { return out.write(w, f) }); err != nil {
			return err
		}
	}
	return nil
}

// WriteFileAtomic writes path through write: to a temporary file in the
// same directory, renamed into place once complete.
func WriteFileAtomic(path string, write func(io.Writer) error) error {
	return writeAtomic(path, write)
}

// writeAtomic writes path via a temporary file in the same directory, synced
// before the rename.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriter(tmp)
	if err := write(bw); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := errors.Join(bw.Flush(), tmp.Chmod(0o644), tmp.Sync()); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
