// Package testenv gives tests what `make test` provides and a plain `go
// test` may lack: peer tools and data (GuideLLM, tokenizer files,
// llama.cpp's server) found through REPRISE_* environment variables. Under
// CI a missing one is a failure, since CI runs `make test`, which provides
// it; elsewhere the test is skipped with a message saying what provides it.
package testenv

import (
	"os"
	"testing"
)

// Need returns the value of the environment variable name. Unset, it fails
// the test under CI and skips it elsewhere; provides says what sets it
// (e.g. "`make test` installs GuideLLM and sets it").
func Need(t testing.TB, name, provides string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		Missing(t, name+" is not set", provides)
	}
	return v
}

// Missing ends a test that lacks what it needs: a failure under CI (the
// CI environment variable set), a skip elsewhere.
func Missing(t testing.TB, what, provides string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s: CI must run `make test` (%s)", what, provides)
	}
	t.Skipf("%s; %s", what, provides)
}
