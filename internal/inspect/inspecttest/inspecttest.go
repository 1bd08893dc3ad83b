// Package inspecttest reads the summary `replay inspect` prints, for the
// tests of internal/inspect and of the command.
package inspecttest

import (
	"regexp"
	"testing"
)

// Field returns the value of the summary line labelled label in out (the
// label, two or more spaces, the value), and fails the test when there is
// no such line.
func Field(t testing.TB, out, label string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `\s{2,}(.*)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q line in:\n%s", label, out)
	}
	return m[1]
}
