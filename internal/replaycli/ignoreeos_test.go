package replaycli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report/reporttest"
)

// strictSim is the simulator behind a front that, like a strict
// OpenAI-compatible API, answers 400 to a body with ignore_eos.
func strictSim(t *testing.T) *httptest.Server {
	t.Helper()
	inner := fastSim(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if bytes.Contains(body, []byte(`"ignore_eos"`)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":{"message":"Unrecognized request argument supplied: ignore_eos","type":"invalid_request_error"}}`)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, inner+r.URL.Path, bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A target that rejects ignore_eos fails the run with a hint to turn it
// off; with --ignore-eos off the same run succeeds.
func TestIgnoreEOSRejectedHintsOff(t *testing.T) {
	srv := strictSim(t)
	args := []string{"run", "--target", srv.URL, "--workload", "synthetic:prompt_tokens=20,output_tokens=5,samples=3",
		"--profile", "synchronous", "--quiet"}
	var out bytes.Buffer
	err := Run(context.Background(), append(args, "--output-dir", t.TempDir()), &out, &out)
	if err == nil || !strings.Contains(err.Error(), "rerun with --ignore-eos off") {
		t.Fatalf("ignore_eos rejected: %v, want a hint to rerun with --ignore-eos off", err)
	}
	out.Reset()
	if err := Run(context.Background(), append(args, "--output-dir", t.TempDir(), "--ignore-eos", "off"), &out, &out); err != nil {
		t.Fatalf("--ignore-eos off: %v\n%s", err, out.String())
	}
}

// --ignore-eos off sends max_tokens alone; the simulator then stops early
// (natural lengths of mean 4 against 60 forced) and the run says so after
// the table. With the default (on) the lengths are met and nothing is said.
func TestIgnoreEOSOffReportsShortfall(t *testing.T) {
	url := fastSim(t)
	for _, mode := range []string{"auto", "off"} {
		dir := t.TempDir()
		var out, errb bytes.Buffer
		err := Run(context.Background(), []string{"run", "--target", url, "--workload", "synthetic:prompt_tokens=20,output_tokens=60,samples=10",
			"--profile", "synchronous", "--output-dir", dir, "--quiet", "--ignore-eos", mode}, &out, &errb)
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, errb.String())
		}
		said := strings.Contains(out.String(), "output shortfall")
		if said != (mode == "off") {
			t.Errorf("--ignore-eos %s: shortfall line printed %v:\n%s", mode, said, out.String())
		}
		m := reporttest.Read(t, dir).Benchmarks[0].Metrics.OutputTokenMismatch
		if m == nil || (mode == "off") != (m.MeanDiff < 0) {
			t.Errorf("--ignore-eos %s: output mismatch %+v", mode, m)
		}
	}
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"run", "--target", url, "--workload", "synthetic:prompt_tokens=1,output_tokens=1", "--ignore-eos", "maybe"}, &out, &out); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("--ignore-eos maybe: %v, want a usage error", err)
	}
}
