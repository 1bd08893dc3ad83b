// Package workloadtest reads workloads whole for tests of the packages
// above internal/workload (its own tests have their own drain: this
// package imports it).
package workloadtest

import (
	"errors"
	"io"
	"testing"

	"github.com/reprise-llm/reprise/internal/workload"
)

// Drain reads src to its end and closes it when it is an io.Closer; a
// read error fails the test.
func Drain(t testing.TB, src workload.Source) []workload.Request {
	t.Helper()
	out, err := readAll(src)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Read opens spec with default options and reads it whole; an error fails
// the test, naming spec.
func Read(t testing.TB, spec string) []workload.Request {
	t.Helper()
	src, err := workload.Open(spec, workload.OpenOptions{})
	if err != nil {
		t.Fatalf("workload %s: %v", spec, err)
	}
	out, err := readAll(src)
	if err != nil {
		t.Fatalf("workload %s: %v", spec, err)
	}
	return out
}

func readAll(src workload.Source) ([]workload.Request, error) {
	if c, ok := src.(io.Closer); ok {
		defer c.Close()
	}
	var out []workload.Request
	for {
		r, err := src.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}
