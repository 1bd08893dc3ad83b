package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture/capturetest"
	"github.com/reprise-llm/reprise/internal/tracestest"
)

// The demo's client is the official openai-go SDK replaying the Azure trace;
// the proxy must capture what that real client library sends, one record
// per request, without the placeholder API key it carries.
func TestOpenAISDKClientThroughProxy(t *testing.T) {
	trace := filepath.Join(tracestest.Dir(t), tracestest.Azure)
	sim := start(t, bin("replay"), "sim", "--listen", "127.0.0.1:0", "--slots", "64", "--ttft-base", "5ms", "--itl-base", "1ms", "--itl-per-seq", "0s")
	dir := filepath.Join(t.TempDir(), "cap")
	px := start(t, bin("proxy"), "--listen", "127.0.0.1:0", "--upstream", sim.addr, "--capture-dir", dir)
	out, err := exec.Command(bin("demo-client"), "--base-url", px.addr+"/v1", "--trace", trace,
		"--from", "3m", "--minutes", "0.2", "--speedup", "6").CombinedOutput()
	if err != nil {
		t.Fatalf("demo-client: %v\n%s", err, out)
	}
	if err := px.stop(t); err != nil {
		t.Fatal(err)
	}
	recs := capturetest.Read(t, dir)
	if len(recs) < 10 {
		t.Fatalf("only %d records from the SDK client\n%s", len(recs), out)
	}
	if !strings.Contains(string(out), "0 failed") {
		t.Errorf("client reported failures:\n%s", out)
	}
	streamed := 0
	for _, r := range recs {
		if r.Status != 200 || r.Path != "/v1/chat/completions" || r.Model != "demo-model" || r.OutputTokens == 0 {
			t.Errorf("record %+v", r)
		}
		if r.Stream {
			streamed++
		}
	}
	if streamed == 0 || streamed == len(recs) {
		t.Errorf("%d of %d streamed; the client mixes both", streamed, len(recs))
	}
	all := string(mustReadAll(t, dir))
	if strings.Contains(all, "sk-demo-not-a-secret") {
		t.Fatal("the client's API key reached the capture")
	}
}
