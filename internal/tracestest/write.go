package tracestest

import (
	"os"
	"path/filepath"
	"testing"
)

// Write writes data to a file called name in a new directory under
// t.TempDir() and returns its path: a test's own small workload (a
// Mooncake or Azure trace, a prompt file), named so that its extension
// says its format as a user's file would.
func Write(t testing.TB, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatalf("tracestest: %v", err)
	}
	return path
}
