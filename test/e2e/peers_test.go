package e2e

import (
	"bufio"
	"context"
	"fmt"
	"github.com/reprise-llm/reprise/internal/testenv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Tests here run the programs as users do: built binaries, real servers,
// real files. TestMain builds bin/ unless REPRISE_BIN points at a build.
var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		binDir = os.Getenv("REPRISE_BIN")
		if binDir == "" {
			dir, err := os.MkdirTemp("", "reprise-e2e-bin")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			cmd := exec.Command("go", "build", "-o", dir+"/", "../../cmd/...")
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				fmt.Fprintln(os.Stderr, "building binaries:", err)
				return 1
			}
			binDir = dir
		}
		return m.Run()
	}()
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// process is a program started for a test; it is killed at cleanup.
type process struct {
	cmd    *exec.Cmd
	addr   string // from its "listening on http://ADDR" line
	stderr *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs a program that prints "... http://ADDR ..." on stdout once it
// listens, and waits for that line.
func start(t *testing.T, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "REPRISE_ADMIN_LISTEN=127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "http://"); i >= 0 && !sent {
				f := strings.Fields(sc.Text()[i:])[0]
				addrc <- strings.TrimRight(f, ",")
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	select {
	case p.addr = <-addrc:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s exited before listening: %v\n%s", name, err, p.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not report its address in 60s\n%s", name, p.stderr.String())
	}
	return p
}

// stop sends SIGTERM and waits for the exit status.
func (p *process) stop(t *testing.T) error {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("process did not exit 60s after SIGTERM\n%s", p.stderr.String())
		return nil
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// guidellmMock starts GuideLLM's mock OpenAI-compatible server (installed
// from PyPI by `make test`), an implementation this project did not write.
func guidellmMock(t *testing.T, args ...string) string {
	t.Helper()
	exe := testenv.Need(t, "REPRISE_GUIDELLM", "`make test` installs GuideLLM and sets it")
	port := freePort(t)
	all := append([]string{"mock-server", "--host", "127.0.0.1", "--port", fmt.Sprint(port)}, args...)
	cmd := exec.Command(exe, all...)
	cmd.Env = append(os.Environ(), "HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1")
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	done := startServerProcess(t, cmd, "guidellm mock-server")
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		select {
		case <-done:
			t.Fatalf("guidellm mock-server exited:\n%s", logs.String())
		default:
		}
		resp, err := http.Get(url + "/v1/models")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("guidellm mock-server not ready in 90s:\n%s", logs.String())
	return ""
}

// mustReadAll returns every file of a capture directory decompressed as
// text (segments through the reader's own decoder would hide raw bytes, so
// this decompresses with zstd directly).
func mustReadAll(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".zst") {
			dec, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err = dec.DecodeAll(b, nil)
			dec.Close()
			if err != nil {
				t.Fatalf("decompressing %s: %v", f, err)
			}
		}
		all = append(all, b...)
	}
	return all
}

// startServerProcess starts a server the test needs and stops it when the
// test ends: SIGTERM, then a kill if it has not exited within 10 s. The
// returned channel is closed once it has exited.
func startServerProcess(t *testing.T, cmd *exec.Cmd, what string) (exited <-chan struct{}) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", what, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return done
}
