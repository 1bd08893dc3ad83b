package proxycli

import (
	"encoding/json"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/filters/wasm/capturefilter"
	"github.com/reprise-llm/reprise/filters/wasm/filtertest"
	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/ingest/wire"
)

// `proxy --ingest-listen ADDR --capture-dir DIR`, no --upstream: the
// proxy-wasm filter (run natively on the SDK's host emulator) fetches the
// hash key from the program, ships its records, and they land in the
// capture on disk, readable by the capture reader, hashed with the key the
// manifest names; the admin /metrics counts them.
func TestIngestCollectorWritesFilterRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	run, m := startProgram(t, regexp.MustCompile(`ingest listening on (http://\S+) [\s\S]*admin on (\S+) `),
		"--ingest-listen", "127.0.0.1:0", "--capture-dir", dir, "--admin-listen", "127.0.0.1:0")
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
		t.Fatalf("filter counted %d records sent, want 3\n%s", sent, run.stderr.String())
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

	run.stop() // SIGTERM
	if err := run.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, run.stderr.String())
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
	recs := capturetest.Read(t, dir)
	if len(recs) != 3 {
		t.Fatalf("capture holds %d records, want 3", len(recs))
	}
	for i, r := range recs {
		if r.Source != capture.SourceWasm || r.Model != "m" || len(r.HashIDs) < 3 || len(r.HashIDs) != len(recs[0].HashIDs) || len(r.ChunksUS) != 1 || r.RequestID == "" {
			t.Errorf("record %d: %+v", i, r)
		}
		if r.HashIDs[0] != recs[0].HashIDs[0] || r.HashIDs[1] != recs[0].HashIDs[1] {
			t.Errorf("record %d: shared prefix lost: %v vs %v", i, r.HashIDs, recs[0].HashIDs)
		}
	}
	if strings.Contains(run.stderr.String(), "shared system prompt") {
		t.Error("the program logged prompt text")
	}
}

// The ingest flags are checked with the others, every problem at once;
// without --upstream the capture content is still checked.
func TestIngestFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cap")
	checkRefused(t, dir, []usageCase{
		{[]string{"--capture-dir", dir, "--ingest-listen", "127.0.0.1:0", "--ingest-max-batch-bytes", "0", "--ingest-max-record-bytes", "-1",
			"--capture-content", "all"},
			[]string{"--ingest-max-batch-bytes 0: must be positive", "--ingest-max-record-bytes -1: must be positive", `--capture-content "all"`}},
		{[]string{"--capture-dir", dir, "--ingest-listen", "127.0.0.1:0", "--shadow", "http://c"},
			[]string{"--shadow configures the reverse proxy and needs --upstream"}},
	})
}
