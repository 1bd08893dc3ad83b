package reporttest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/reprise-llm/reprise/internal/report"
)

// Read returns the results a run, compare or report wrote to dir: its
// benchmarks.json (report.JSONFile) as report.ReadJSON parses it, failing
// the test if the file is missing or unreadable.
func Read(t testing.TB, dir string) *report.File {
	t.Helper()
	path := filepath.Join(dir, report.JSONFile)
	fh, err := os.Open(path)
	if err != nil {
		t.Fatalf("reporttest: %v", err)
	}
	defer fh.Close()
	f, err := report.ReadJSON(fh)
	if err != nil {
		t.Fatalf("reporttest: %s: %v", path, err)
	}
	return f
}
