package ociimage

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The benchmark the tests run through the image's programs: a few short
// requests, one at a time, on loopback.
var benchArgs = []string{
	"--workload", "synthetic:prompt_tokens=8,output_tokens=4,samples=4",
	"--profile", "synchronous", "--max-requests", "4", "--scrape-metrics", "off",
}

// tree runs the programs of an unpacked image. As root it runs them as a
// runtime would: chrooted into the tree, as the image's user 65532:65532,
// with only the image's environment, so nothing outside the tree and
// nothing writable but the one data directory is there to lean on.
// Otherwise it runs them in place as the calling user.
type tree struct {
	root     string
	chroot   bool
	env      []string
	data     string // the writable directory as the programs see it
	hostData string // the same on the host
}

// newTree makes the tree read-only (a-w: the programs' user cannot write
// it) but for one data directory, the stand-in for a mounted volume.
func newTree(t *testing.T, root string, env []string) *tree {
	tr := &tree{root: root, env: env, chroot: os.Geteuid() == 0}
	if tr.chroot {
		tr.data, tr.hostData = "/data", filepath.Join(root, "data")
		if err := os.Mkdir(tr.hostData, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(tr.hostData, UID, GID); err != nil {
			t.Fatal(err)
		}
		t.Logf("running the programs chrooted into the unpacked image as %d:%d", UID, GID)
	} else {
		tr.hostData = t.TempDir()
		tr.data = tr.hostData
		t.Logf("not root: running the programs in place as uid %d (no chroot)", os.Geteuid())
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == tr.hostData {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(p, info.Mode().Perm()&^0o222)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // so that t.TempDir can remove it as any user
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	return tr
}

func (tr *tree) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if tr.chroot {
		// The child chroots, then drops to the user, then runs the path
		// as the tree resolves it.
		cmd = exec.CommandContext(ctx, BinDir+"/"+prog, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Chroot:     tr.root,
			Credential: &syscall.Credential{Uid: UID, Gid: GID, Groups: []uint32{}},
		}
		cmd.Dir = "/"
	} else {
		cmd = exec.CommandContext(ctx, filepath.Join(tr.root, BinDir, prog), args...)
	}
	cmd.Env = tr.env
	return cmd
}

func runFromTree(t *testing.T, root string, env []string) {
	tr := newTree(t, root, env)
	before := listTree(t, root, tr.hostData)

	t.Run("help", func(t *testing.T) {
		for _, prog := range []string{"replay", "proxy"} {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			out, err := tr.command(ctx, prog, "--help").CombinedOutput()
			cancel()
			if err != nil || !strings.Contains(string(out), "usage: "+prog) {
				t.Errorf("%s --help: %v\n%s", prog, err, out)
			}
		}
	})

	t.Run("sim-proxy-replay", func(t *testing.T) {
		sim := startProgram(t, tr.command(t.Context(), "replay", "sim", "--listen", "127.0.0.1:0"), nil)
		px := startProgram(t, tr.command(t.Context(), "proxy", "--listen", "127.0.0.1:0", "--upstream", sim.url,
			"--capture-dir", tr.data+"/capture", "--admin-listen", "127.0.0.1:0"), nil)
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		args := append([]string{"run", "--target", px.url, "--output-dir", tr.data + "/out"}, benchArgs...)
		if out, err := tr.command(ctx, "replay", args...).CombinedOutput(); err != nil {
			t.Fatalf("replay run: %v\n%s", err, out)
		}
		st, err := os.Stat(filepath.Join(tr.hostData, "out", "benchmarks.json"))
		if err != nil {
			t.Fatalf("replay run wrote no results: %v", err)
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; tr.chroot && uid != UID {
			t.Errorf("results owned by uid %d: the programs did not run as %d", uid, UID)
		}
		// Anywhere but the data directory, writing fails.
		results := "/results"
		if !tr.chroot {
			results = filepath.Join(tr.root, "results")
		}
		args = append([]string{"run", "--target", sim.url, "--output-dir", results}, benchArgs...)
		out, err := tr.command(ctx, "replay", args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permission denied") {
			t.Errorf("replay run --output-dir %s in the read-only tree: %v, want permission denied\n%s", results, err, out)
		}
		if err := px.stop(); err != nil {
			t.Fatalf("proxy after SIGTERM: %v\n%s", err, px.stderr.String())
		}
		out, err = tr.command(ctx, "replay", "inspect", tr.data+"/capture").CombinedOutput()
		if err != nil {
			t.Fatalf("replay inspect: %v\n%s", err, out)
		}
		if !regexp.MustCompile(`(?m)^requests\s+4 `).Match(out) {
			t.Errorf("the proxy's capture should hold the 4 requests:\n%s", out)
		}
	})

	if after := listTree(t, root, tr.hostData); !slices.Equal(before, after) {
		t.Errorf("the programs changed the tree outside the data directory:\nbefore %q\nafter  %q", before, after)
	}
}

// listTree lists the entries under root with their modes, but those under skip.
func listTree(t *testing.T, root, skip string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d", p, info.Mode(), info.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// program is a server started from the image; it is killed at cleanup.
type program struct {
	cmd    *exec.Cmd
	url    string // from the "... listening on http://ADDR ..." line
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listenURL = regexp.MustCompile(`listening on (http://[^\s,]+)`)

// startProgram starts cmd and waits for its "listening on http://" line.
// kill ends it at cleanup (nil: kill the process).
func startProgram(t *testing.T, cmd *exec.Cmd, kill func()) *program {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &program{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd.Args[0], err)
	}
	t.Cleanup(func() {
		if kill != nil {
			kill()
		} else {
			_ = cmd.Process.Kill()
		}
		p.done <- <-p.done
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listenURL.FindStringSubmatch(sc.Text()); m != nil && len(urls) == 0 && p.url == "" {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	select {
	case p.url = <-urls:
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s exited before listening: %v\n%s", strings.Join(cmd.Args, " "), err, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not listen in 30s\n%s", strings.Join(cmd.Args, " "), p.stderr.String())
	}
	return p
}

// stop sends SIGTERM and returns the exit status.
func (p *program) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		return fmt.Errorf("still running 30s after SIGTERM")
	}
}

// ociRuntime is runc or crun, run as root with its state in a temporary
// directory.
type ociRuntime struct {
	bin, state string
	spec       map[string]any // the runtime's own default config.json
	root       string         // the unpacked image, every container's root
	env        []string
}

// runInRuntime runs the image's programs as containers from an OCI runtime
// bundle, as a kubelet's runtime would: a read-only root, user 65532:65532,
// no capabilities, the host's network namespace (loopback only is used),
// a bind mount for the one writable directory.
func runInRuntime(t *testing.T, root string, env []string) {
	t.Run("oci-runtime", func(t *testing.T) {
		bin := os.Getenv("REPRISE_OCI_RUNTIME")
		if bin == "" {
			for _, name := range []string{"crun", "runc"} {
				if p, err := exec.LookPath(name); err == nil {
					bin = p
					break
				}
			}
		}
		if bin == "" {
			t.Skip("no OCI runtime: neither crun nor runc is on PATH (Debian's runc package provides one; REPRISE_OCI_RUNTIME names another)")
		}
		if os.Geteuid() != 0 {
			t.Skip("running a container with the image's user 65532 needs root here: a rootless runtime maps only the caller's uid into the container")
		}
		rt := &ociRuntime{bin: bin, state: t.TempDir(), root: root, env: env}
		specDir := t.TempDir()
		cmd := exec.CommandContext(t.Context(), bin, "spec")
		cmd.Dir = specDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s spec: %v\n%s", bin, err, out)
		}
		b, err := os.ReadFile(filepath.Join(specDir, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &rt.spec); err != nil {
			t.Fatalf("%s spec: %v", bin, err)
		}
		t.Logf("runtime %s", bin)

		t.Run("help", func(t *testing.T) {
			for _, prog := range []string{"replay", "proxy"} {
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				cmd, _ := rt.container(t, ctx, "help-"+prog, []string{BinDir + "/" + prog, "--help"}, "")
				out, err := cmd.CombinedOutput()
				cancel()
				if err != nil || !strings.Contains(string(out), "usage: "+prog) {
					t.Errorf("%s --help in a container: %v\n%s", prog, err, out)
				}
			}
		})

		t.Run("sim-replay", func(t *testing.T) {
			simCmd, killSim := rt.container(t, t.Context(), "sim", []string{BinDir + "/replay", "sim", "--listen", "127.0.0.1:0"}, "")
			sim := startProgram(t, simCmd, killSim)
			out := t.TempDir()
			if err := os.Chown(out, UID, GID); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			args := append([]string{BinDir + "/replay", "run", "--target", sim.url, "--output-dir", "/out/run"}, benchArgs...)
			cmd, _ := rt.container(t, ctx, "run", args, out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("replay run in a container: %v\n%s", err, b)
			}
			if _, err := os.Stat(filepath.Join(out, "run", "benchmarks.json")); err != nil {
				t.Errorf("replay run wrote no results to its mounted directory: %v", err)
			}
			// The root is mounted read-only: writing anywhere else fails.
			args = append([]string{BinDir + "/replay", "run", "--target", sim.url, "--output-dir", "/results"}, benchArgs...)
			cmd, _ = rt.container(t, ctx, "run-ro", args, "")
			if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "read-only file system") {
				t.Errorf("replay run --output-dir /results in a container: %v, want a read-only file system\n%s", err, b)
			}
		})
	})
}

// container writes a bundle for one container running args and returns
// the runtime's `run` command for it (foreground, the container's stdio
// its own) and a function that kills the container (killing the runtime's
// process would leave the container running). out, when set, is
// bind-mounted read-write at /out. At cleanup the container is killed and
// deleted.
func (rt *ociRuntime) container(t *testing.T, ctx context.Context, name string, args []string, out string) (*exec.Cmd, func()) {
	t.Helper()
	id := fmt.Sprintf("reprise-image-test-%d-%s", os.Getpid(), name)
	var spec map[string]any
	b, _ := json.Marshal(rt.spec)
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = args
	proc["env"] = rt.env
	proc["cwd"] = "/"
	proc["user"] = map[string]any{"uid": UID, "gid": GID}
	proc["noNewPrivileges"] = true
	delete(proc, "capabilities") // none at all
	spec["root"] = map[string]any{"path": rt.root, "readonly": true}
	spec["hostname"] = "reprise"
	linux := spec["linux"].(map[string]any)
	var nss []any
	for _, ns := range linux["namespaces"].([]any) {
		if ns.(map[string]any)["type"] != "network" { // the host's: servers on its loopback
			nss = append(nss, ns)
		}
	}
	linux["namespaces"] = nss
	if out != "" {
		spec["mounts"] = append(spec["mounts"].([]any), map[string]any{
			"destination": "/out", "type": "bind", "source": out, "options": []string{"rbind", "rw"},
		})
	}
	bundle := t.TempDir()
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	kill := func() { _ = exec.Command(rt.bin, "--root", rt.state, "kill", id, "KILL").Run() }
	t.Cleanup(func() {
		kill()
		_ = exec.Command(rt.bin, "--root", rt.state, "delete", "--force", id).Run()
	})
	return exec.CommandContext(ctx, rt.bin, "--root", rt.state, "run", "--bundle", bundle, id), kill
}
