package proxycli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/reprise-llm/reprise/internal/capture"
	"github.com/reprise-llm/reprise/internal/capture/capturetest"
)

// --hash-block-chars sets the block the records and the manifest carry
// (default capture.DefaultBlockChars); a block Mooncake's 2048 characters
// cannot be derived from is a usage error naming the flag.
func TestHashBlockCharsFlag(t *testing.T) {
	up := drainUpstream(t)
	for _, c := range []struct {
		args  []string
		block int
	}{{nil, capture.DefaultBlockChars}, {[]string{"--hash-block-chars", "64"}, 64}} {
		r := startRun(t, up.URL, c.args...)
		resp, err := http.Post(r.proxyURL+"/v1/completions", "application/json",
			strings.NewReader(`{"model":"m","prompt":"`+strings.Repeat("x", 300)+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.stop()
		if err := r.wait(t); err != nil {
			t.Fatal(err)
		}
		recs := capturetest.Read(t, r.dir)
		if len(recs) != 1 || recs[0].Block != c.block || len(recs[0].HashIDs) != (300+c.block-1)/c.block {
			t.Fatalf("%v: records %+v, want one with %d-character blocks", c.args, recs, c.block)
		}
		rd, err := capture.Open(r.dir)
		if err != nil {
			t.Fatal(err)
		}
		if m := rd.Manifest(); m.Block != c.block {
			t.Errorf("%v: manifest block %d, want %d", c.args, m.Block, c.block)
		}
		_ = rd.Close()
	}
	for _, bad := range []string{"100", "4096", "8"} {
		err := Run(context.Background(), []string{"--upstream", up.URL, "--capture-dir", t.TempDir(), "--hash-block-chars", bad}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--hash-block-chars") || !strings.Contains(err.Error(), bad) {
			t.Errorf("--hash-block-chars %s: error %v, want one naming the flag and the value", bad, err)
		}
	}
}
