package replaycli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/cli"
)

// A --target ending in /v1 would get a bare 404 for every request (replay
// appends /v1/chat/completions itself): every command that takes one
// refuses it as a usage error naming the flag and the URL to use instead,
// before sending anything.
func TestTargetEndingInV1IsAUsageError(t *testing.T) {
	wl := "synthetic:prompt_tokens=5,output_tokens=2,samples=2"
	for _, args := range [][]string{
		{"run", "--target", "http://127.0.0.1:9/v1", "--workload", wl},
		{"run", "--target", "http://127.0.0.1:9/v1/", "--workload", wl, "--profile", "sweep", "--max-requests", "2"},
		{"capacity", "--target", "http://127.0.0.1:9/v1", "--workload", wl, "--slo", "ttft<=1s", "--max-requests", "2"},
		{"compare", "--target", "base=http://127.0.0.1:9", "--target", "cand=http://127.0.0.1:9/v1", "--workload", wl},
	} {
		var out, errb bytes.Buffer
		err := Run(context.Background(), args, &out, &errb)
		want := "use --target http://127.0.0.1:9"
		if args[0] == "compare" {
			want = "--target cand=http://127.0.0.1:9/v1: Reprise adds /v1/... itself; use --target cand=http://127.0.0.1:9"
		}
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("replay %s: %v, want a usage error containing %q", strings.Join(args, " "), err, want)
		}
	}
}

// When every request gets 404 Not Found (a target with a path the server
// does not serve), the run's error says to check --target's path.
func TestEvery404HintsAtTheTargetPath(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"run", "--target", srv.URL + "/gateway", "--workload",
		"synthetic:prompt_tokens=5,output_tokens=2,samples=3", "--profile", "synchronous", "--output-dir", t.TempDir()}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "every one 404 Not Found") || !strings.Contains(err.Error(), "check the path of --target") {
		t.Fatalf("run against a server that answers 404: %v\n%s", err, errb.String())
	}
}
