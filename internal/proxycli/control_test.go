package proxycli

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	controlv1 "github.com/reprise-llm/reprise/api/reprise/control/v1"
	"github.com/reprise-llm/reprise/internal/sim"
	"github.com/reprise-llm/reprise/internal/sim/simtest"
)

// The proxy program serves the control API on --admin-listen behind
// --admin-token, and a tail open at SIGTERM ends.
func TestRunServesControlAPI(t *testing.T) {
	upstream, _ := simtest.Start(t, func(c *sim.Config) { c.TTFTBase, c.ITLBase = time.Millisecond, 100*time.Microsecond })
	dir := filepath.Join(t.TempDir(), "cap")
	run, m := startProgram(t, regexp.MustCompile(`proxy listening on (http://\S+),[\s\S]*admin on (\S+) `),
		"--upstream", upstream, "--capture-dir", dir, "--listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0", "--admin-token", "tok", "--upstream-wait", "0")
	proxyURL, adminAddr := m[1], m[2]

	conn, err := grpc.NewClient(adminAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rpc := controlv1.NewControlClient(conn)
	auth := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer tok")
	st, err := rpc.Status(auth, &controlv1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Upstream != upstream || st.CaptureDir != dir || st.CaptureContent != "hashed" || st.CaptureState != controlv1.CaptureState_CAPTURE_STATE_HEALTHY {
		t.Errorf("status %v", st)
	}
	if _, err := rpc.Stats(context.Background(), &controlv1.StatsRequest{}); err == nil {
		t.Error("Stats without the token succeeded")
	}

	tail, err := rpc.TailRecords(auth, &controlv1.TailRecordsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tail.Header(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", proxyURL+"/v1/completions", strings.NewReader(`{"model":"m","prompt":"hello","max_tokens":3}`))
	req.Header.Set("X-Request-Id", "run-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	msg, err := tail.Recv()
	if err != nil || msg.Record.RequestId != "run-1" || msg.Record.Path != "/v1/completions" || msg.Record.Status != 200 {
		t.Fatalf("tail: %v %v", msg, err)
	}

	adminReq, _ := http.NewRequest("GET", "http://"+adminAddr+"/v1/stats", nil)
	adminReq.Header.Set("Authorization", "Bearer tok")
	if resp, err := http.DefaultClient.Do(adminReq); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/stats: %v %v", resp, err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"requests":"1"`) {
			t.Errorf("GET /v1/stats: %s", b)
		}
	}

	run.stop() // SIGTERM
	if err := run.wait(t); err != nil {
		t.Fatalf("Run: %v\n%s", err, run.stderr.String())
	}
	if _, err := tail.Recv(); err != io.EOF {
		t.Errorf("the tail stream at shutdown: %v, want a normal end (EOF)", err)
	}
}
