// Package tracestest locates the public production traces the tests replay
// and inspect (a Mooncake conversation trace and an Azure LLM inference
// trace, read-only), which live beside the repository rather than in it.
package tracestest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// The public traces' file names inside Dir.
const (
	Mooncake = "mooncake-conversation.jsonl" // Kimi conversations, FAST'25: 12,031 rows, timestamps in ms, 512-token hash_ids
	Azure    = "azure-2023-code.csv"         // Azure LLM inference 2023, code: 8,819 rows of TIMESTAMP,ContextTokens,GeneratedTokens
)

// Dir returns the directory of the public traces: $REPRISE_TRACES when
// set (make test sets it), else shared/traces beside the repository, that
// is ../shared/traces from the module root (where CI and the developers'
// machines lay them). A test that needs them fails, never skips, when they
// are not there: a missing trace would otherwise pass for a green run.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("REPRISE_TRACES")
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Fatalf("public traces: %v (set REPRISE_TRACES)", err)
		}
		dir = filepath.Join(filepath.Dir(root), "shared", "traces")
	}
	for _, name := range []string{Mooncake, Azure} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("public traces not found in %s (set REPRISE_TRACES): %v", dir, err)
		}
	}
	return dir
}

// moduleRoot is the nearest directory at or above the working directory
// (the test's package directory) that holds a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod at or above the working directory")
		}
		dir = parent
	}
}
