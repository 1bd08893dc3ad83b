package proxycli

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The client-facing server has bounds on idle keep-alive connections and
// on slow request headers by default.
func TestClientServerTimeoutDefaults(t *testing.T) {
	var o options
	fs := flags(&o)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if o.idleTimeout != 2*time.Minute || o.headerWait != 30*time.Second {
		t.Fatalf("idle %v, read-header %v", o.idleTimeout, o.headerWait)
	}
}

// --idle-timeout: a keep-alive connection left idle is closed by the proxy.
func TestIdleClientConnectionIsClosed(t *testing.T) {
	up := drainUpstream(t)
	r := startRun(t, up.URL, "--idle-timeout", "50ms")
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.proxyURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model":"m","prompt":"x"}`
	if _, err := io.WriteString(conn, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "+
		strconv.Itoa(len(body))+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("status %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: read %v, want EOF (closed by the proxy)", err)
	}
	r.stop()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}

// REPRISE_ADMIN_LISTEN set to "" turns the admin listener off (the
// variable is set, so it counts, though empty).
func TestEmptyAdminListenEnvTurnsAdminOff(t *testing.T) {
	up := drainUpstream(t)
	t.Setenv("REPRISE_ADMIN_LISTEN", "")
	run, _ := startProgram(t, regexp.MustCompile(`proxy listening on`), "--upstream", up.URL, "--capture-dir", filepath.Join(t.TempDir(), "cap"),
		"--listen", "127.0.0.1:0", "--upstream-wait", "0")
	run.stop()
	if err := run.wait(t); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(run.stdout.String(), "admin on") {
		t.Errorf("admin listener started although REPRISE_ADMIN_LISTEN is empty:\n%s", run.stdout.String())
	}
}
