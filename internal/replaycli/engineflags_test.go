package replaycli

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/report"
	"github.com/reprise-llm/reprise/internal/sim"
)

func TestRunEngineFlagsAgainstTheSimulator(t *testing.T) {
	cfg := sim.DefaultConfig()
	cfg.TTFTBase, cfg.ITLBase, cfg.ITLPerSeq = 2*time.Millisecond, time.Millisecond, 0
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The simulator over h2c: --http2 sends with prior knowledge.
	srv := httptest.NewUnstartedServer(s)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err = Run(context.Background(), []string{"run", "--target", srv.URL, "--workload", "synthetic:prompt_tokens=30,output_tokens=5,samples=40",
		"--profile", "gamma", "--rate", "400", "--burstiness", "0.5", "--warmup", "5", "--cooldown", "10%", "--max-requests", "30",
		"--max-errors", "5", "--http2", "--spin", "1ms", "--quiet", "--output-dir", dir}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	fh, err := os.Open(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	file, err := report.ReadJSON(fh)
	if err != nil {
		t.Fatal(err)
	}
	b := file.Benchmarks[0]
	m := b.Metrics
	// 30 sent: 5 warmup, 3 (10%) cooldown, 22 measured.
	if m.Requests.Total != 22 || m.Requests.Successful != 22 || m.Excluded.Warmup != 5 || m.Excluded.Cooldown != 3 {
		t.Errorf("requests %+v, excluded %+v", m.Requests, m.Excluded)
	}
	c := b.Config
	if c["stop_reason"] != "max_requests" || c["burstiness"] != 0.5 || c["warmup"] != "5" || c["cooldown"] != "10%" ||
		c["http2"] != true || c["spin_s"] != 0.001 || c["max_errors"] != float64(5) || c["in_flight_at_stop"] == nil || c["cancelled_by_drain"] != float64(0) {
		t.Errorf("config %v", c)
	}
	if m.RequestedRate != 400 || m.LagThresholdMs != 10 {
		t.Errorf("requested rate %v, lag threshold %v", m.RequestedRate, m.LagThresholdMs)
	}
}

func TestEngineFlagUsageErrors(t *testing.T) {
	base := []string{"run", "--target", "http://127.0.0.1:1", "--workload", "synthetic:prompt_tokens=1,output_tokens=1,samples=1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--profile", "poisson", "--rate", "5", "--burstiness", "0.5"}, "--burstiness"},
		{[]string{"--profile", "gamma", "--rate", "5", "--burstiness", "-1"}, "--burstiness"},
		{[]string{"--profile", "constant", "--rate", "5", "--warmup", "1.5"}, "--warmup"},
		{[]string{"--profile", "constant", "--rate", "5", "--cooldown", "tenish"}, "--cooldown"},
		{[]string{"--profile", "constant", "--rate", "5", "--max-error-rate", "1.2"}, "--max-error-rate"},
		{[]string{"--profile", "constant", "--rate", "5", "--ca-cert", "x.pem", "--insecure-skip-verify"}, "--ca-cert"},
		{[]string{"--profile", "sweep", "--max-seconds", "1", "--warmup", "1.5"}, "--warmup"}, // sweeps take the engine flags too
	} {
		var out bytes.Buffer
		err := Run(context.Background(), append(append([]string{}, base...), tc.args...), &out, &out)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error naming %s", tc.args, err, tc.want)
		}
	}
}

func TestDegradedWarning(t *testing.T) {
	var w bytes.Buffer
	b := report.Benchmark{Name: "cand"}
	degradedWarning(&w, &b)
	if w.Len() != 0 {
		t.Fatalf("warning for a healthy benchmark: %q", w.String())
	}
	b.Metrics.Degraded, b.Metrics.ClientLag.P99, b.Metrics.LagThresholdMs = true, 23.4, 10
	degradedWarning(&w, &b)
	if got := w.String(); !strings.HasPrefix(got, "warning: cand: degraded") || !strings.Contains(got, "23.4 ms") {
		t.Errorf("warning %q", got)
	}
}
