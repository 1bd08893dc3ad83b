package proxycli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reprise-llm/reprise/filters/wasm/capturefilter"
	"github.com/reprise-llm/reprise/filters/wasm/filtertest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/cli"
	"github.com/reprise-llm/reprise/internal/ingest/wire"
)

// `proxy --ingest-listen ADDR --capture-dir DIR`, no --upstream: the
// proxy-wasm filter (run natively on the SDK's host emulator) fetches the
// hash key from the program, ships its records, and they land in the
// capture on disk, readable by the capture reader, hashed with the key the
// manifest names; the admin /metrics counts them.
func TestIngestCollectorWritesFilterRecords(t *testing.T) {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	dir := filepath.Join(t.TempDir(), "cap")
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--ingest-listen", "127.0.0.1:0", "--capture-dir", dir, "--admin-listen", "127.0.0.1:0"}, stdout, stderr)
	}()
	re := regexp.MustCompile(`ingest listening on (http://\S+) [\s\S]*admin on (\S+) `)
	var m []string
	for deadline := time.Now().Add(30 * time.Second); m == nil; {
		m = re.FindStringSubmatch(stdout.String())
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v\n%s", err, stderr.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest listener did not start\n%s", stderr.String())
		}
	}
	ingestURL, admin := m[1], m[2]
	// proxytest logs every host call and batch through the log package.
	defer log.SetOutput(log.Writer())
	log.SetOutput(io.Discard)

	h, err := filtertest.NewHost(filtertest.Native, capturefilter.NewVM(), nil,
		[]byte(`{"collector_cluster": "collector", "content": "hashed"}`), filtertest.Options{Collector: ingestURL, Answer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Flush(); err != nil { // the key
		t.Fatal(err)
	}
	long := strings.Repeat("shared system prompt ", 200)
	for i, q := range []string{"one", "two", "three"} {
		body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"` + long + q + `"}]}`
		err := h.Do(filtertest.Exchange{Method: "POST", Path: "/v1/chat/completions", Body: [][]byte{[]byte(body)},
			Headers: [][2]string{{"x-request-id", "r" + string(rune('0'+i))}}, Status: 200,
			RespHeaders: [][2]string{{"content-type", "text/event-stream"}},
			Chunks:      [][]byte{[]byte("data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n"), []byte("data: [DONE]\n\n")}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Flush(); err != nil {
		t.Fatal(err)
	}
	if sent, _ := h.GetCounterMetric(capturefilter.MetricSent); sent != 3 {
		t.Fatalf("filter counted %d records sent, want 3\n%s", sent, stderr.String())
	}
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "reprise_ingest_records_written_total 3") {
		t.Errorf("/metrics lacks the ingest counters:\n%s", metrics)
	}
	keyResp, err := http.Get(ingestURL + wire.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	var k wire.Key
	if err := json.NewDecoder(keyResp.Body).Decode(&k); err != nil {
		t.Fatal(err)
	}
	keyResp.Body.Close()

	stop() // SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("Run did not return after SIGTERM\n%s", stderr.String())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var man capture.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		t.Fatal(err)
	}
	if man.KeyID != k.KeyID || !strings.Contains(man.Source, "wasm ingest listen=") {
		t.Errorf("manifest key id %q (served %q), source %q", man.KeyID, k.KeyID, man.Source)
	}
	recs := readRecords(t, dir)
	if len(recs) != 3 {
		t.Fatalf("capture holds %d records, want 3", len(recs))
	}
	for i, r := range recs {
		if r.Source != capture.SourceWasm || r.Model != "m" || len(r.HashIDs) != 3 || len(r.ChunksUS) != 1 || r.RequestID == "" {
			t.Errorf("record %d: %+v", i, r)
		}
		if r.HashIDs[0] != recs[0].HashIDs[0] || r.HashIDs[1] != recs[0].HashIDs[1] {
			t.Errorf("record %d: shared prefix lost: %v vs %v", i, r.HashIDs, recs[0].HashIDs)
		}
	}
	if strings.Contains(stderr.String(), "shared system prompt") {
		t.Error("the program logged prompt text")
	}
}

// The ingest flags are checked with the others, every problem at once;
// without --upstream the capture content is still checked.
func TestIngestFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--capture-dir", dir, "--ingest-listen", "127.0.0.1:0", "--ingest-max-batch-bytes", "0", "--ingest-max-record-bytes", "-1",
			"--capture-content", "all"},
			[]string{"--ingest-max-batch-bytes 0: must be positive", "--ingest-max-record-bytes -1: must be positive", `--capture-content "all"`}},
		{[]string{"--capture-dir", dir, "--ingest-listen", "127.0.0.1:0", "--shadow", "http://c"},
			[]string{"--shadow configures the reverse proxy and needs --upstream"}},
	} {
		err := Run(context.Background(), tc.args, io.Discard, io.Discard)
		if !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%v: %v, want a usage error", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if strings.Count(err.Error(), w) != 1 {
				t.Errorf("%v: %v: want %q once", tc.args, err, w)
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("a refused command line created the capture directory: %v", err)
	}
}
