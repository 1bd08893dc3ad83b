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
	"github.com/reprise-llm/reprise/internal/report/reporttest"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

func TestRunEngineFlagsAgainstTheSimulator(t *testing.T) {
	// The simulator over h2c: --http2 sends with prior knowledge.
	srv := httptest.NewUnstartedServer(simtest.New(t, quickConfig))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	err := Run(context.Background(), []string{"run", "--target", srv.URL, "--workload", "synthetic:prompt_tokens=30,output_tokens=5,samples=40",
		"--profile", "gamma", "--rate", "400", "--burstiness", "0.5", "--warmup", "5", "--cooldown", "10%", "--max-requests", "30",
		"--max-errors", "5", "--http2", "--spin", "1ms", "--quiet", "--output-dir", dir}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	file := reporttest.Read(t, dir)
	b := file.Benchmarks[0]
	m := b.Metrics
	// 30 sent: 5 warmup, 3 (10%) cooldown, 22 measured.
	if m.Requests.Total != 22 || m.Requests.Successful != 22 || m.Excluded.Warmup != 5 || m.Excluded.Cooldown != 3 {
		t.Errorf("requests %+v, excluded %+v", m.Requests, m.Excluded)
	}
	c := b.Config
	if c.StopReason != "max_requests" || c.Burstiness != 0.5 || c.Warmup != "5" || c.Cooldown != "10%" ||
		!c.HTTP2 || c.SpinS != 0.001 || c.MaxErrors != 5 || c.InFlightAtStop == nil || c.CancelledByDrain == nil || *c.CancelledByDrain != 0 {
		t.Errorf("config %+v", c)
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
