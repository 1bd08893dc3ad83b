package ociimage

import (
	"archive/tar"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const systemCABundle = "/etc/ssl/certs/ca-certificates.crt"

func TestValidateJoinsEveryProblem(t *testing.T) {
	err := Spec{
		Programs:  []string{"./cmd/replay", "./other/replay"},
		Platforms: []v1.Platform{{OS: "windows", Architecture: "amd64"}},
		CABundle:  filepath.Join(t.TempDir(), "missing.crt"),
	}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no module directory", "two programs named replay", "only linux images", "CA bundle", "ca-certificates"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestWriteLayoutRefusesOtherDirectories(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(dir, nil, "reprise:test"); err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Fatalf("got %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Fatalf("the directory was touched: %v", err)
	}
}

// TestImage builds the image of the real programs for this host's
// architecture with scripts/mkimage, as `make image` does (which adds the
// other platforms), checks what a registry and a runtime would read from
// it, unpacks its layers as a runtime does and runs the programs from them:
// --help, and the simulator, the proxy and a short benchmark through it on
// loopback, on a root the programs' user cannot write. With runc or crun at
// hand it also runs them as containers from an OCI runtime bundle with a
// read-only root.
//
// mkimage runs as its own process: compressing and hashing the 40 MB of
// binaries in this test binary would take about 40 s under -race.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds proxy and replay twice as static binaries and runs them")
	}
	if runtime.GOOS != "linux" {
		t.Skip("the image holds linux executables; this host is " + runtime.GOOS)
	}
	if _, err := os.Stat(systemCABundle); err != nil {
		t.Fatalf("the image copies the system's CA bundle: %v (Debian's ca-certificates package)", err)
	}
	const (
		source   = "https://github.com/reprise-llm/reprise"
		version  = "v0.0.0-test"
		revision = "0123456789abcdef0123456789abcdef01234567"
	)
	epoch := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	moduleDir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	mkimage := filepath.Join(tmp, "mkimage")
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", mkimage, "./scripts/mkimage")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building scripts/mkimage: %v\n%s", err, out)
	}
	build := func(name string) (layoutDir, archive string) {
		t.Helper()
		layoutDir, archive = filepath.Join(tmp, name), filepath.Join(tmp, name+".tar")
		cmd := exec.CommandContext(t.Context(), mkimage, "-platforms", "linux/"+runtime.GOARCH,
			"-layout", layoutDir, "-archive", archive, "-name", "reprise:test", "-ca-bundle", systemCABundle,
			"-source", source, "-version", version, "-revision", revision, "-work-dir", filepath.Join(tmp, name+"-bin"))
		cmd.Dir = moduleDir
		cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch.Unix()))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("mkimage: %v\n%s", err, out)
		}
		t.Logf("mkimage: %s", out)
		return layoutDir, archive
	}
	layoutDir, archive := build("image")

	// What a registry and a runtime read back from the layout on disk.
	idx, err := Index(layoutDir)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("reproducible", func(t *testing.T) {
		layout2, archive2 := build("image2")
		idx2, err := Index(layout2)
		if err != nil {
			t.Fatal(err)
		}
		if d1, d2 := digest(t, idx), digest(t, idx2); d1 != d2 {
			// Name the layers that differ: the programs' alone means the
			// binaries did, which an edit to the tree between the two
			// builds also explains.
			t.Errorf("two builds of one tree: index digests %s and %s; layers %v and %v", d1, d2, layerDigests(t, layoutDir), layerDigests(t, layout2))
		}
		if a, b := fileSum(t, archive), fileSum(t, archive2); a != b {
			t.Errorf("two builds of one tree: archives differ (sha256 %x and %x)", a, b)
		}
	})

	img, err := FirstImage(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}

	t.Run("layout", func(t *testing.T) {
		root, err := layout.ImageIndexFromPath(layoutDir)
		if err != nil {
			t.Fatal(err)
		}
		rm, err := root.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		anns := rm.Manifests[0].Annotations
		if anns["org.opencontainers.image.ref.name"] != "test" || anns["io.containerd.image.name"] != "docker.io/library/reprise:test" {
			t.Errorf("index.json names the image %v", anns)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 1 {
			t.Fatalf("image index: %s with %d manifests", im.MediaType, len(im.Manifests))
		}
		if p := im.Manifests[0].Platform; p == nil || p.OS != "linux" || p.Architecture != runtime.GOARCH {
			t.Errorf("platform %v, want linux/%s", p, runtime.GOARCH)
		}
		if im.Annotations["org.opencontainers.image.revision"] != revision {
			t.Errorf("index annotations %v", im.Annotations)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || len(m.Layers) != 2 {
			t.Fatalf("manifest %s, config %s, %d layers", m.MediaType, m.Config.MediaType, len(m.Layers))
		}
		for _, l := range m.Layers {
			if l.MediaType != types.OCILayer {
				t.Errorf("layer %s is %s", l.Digest, l.MediaType)
			}
		}
	})

	t.Run("config", func(t *testing.T) {
		c := cfg.Config
		if c.User != "65532:65532" {
			t.Errorf("user %q, want 65532:65532", c.User)
		}
		if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/replay"}) || len(c.Cmd) != 0 {
			t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
		}
		if c.WorkingDir != "/" {
			t.Errorf("working directory %q", c.WorkingDir)
		}
		for _, e := range []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "PATH=/usr/local/bin"} {
			if !slices.Contains(c.Env, e) {
				t.Errorf("env %q lacks %s", c.Env, e)
			}
		}
		for k, v := range map[string]string{
			"org.opencontainers.image.source":   source,
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.revision": revision,
		} {
			if c.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
			}
		}
		if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
			t.Errorf("config platform %s/%s", cfg.OS, cfg.Architecture)
		}
		if !cfg.Created.Time.Equal(epoch) || len(cfg.History) != 2 || !cfg.History[1].Created.Time.Equal(epoch) {
			t.Errorf("created %v, history %+v: want every time %v", cfg.Created, cfg.History, epoch)
		}
	})

	t.Run("archive", func(t *testing.T) {
		checkArchive(t, archive, layoutDir, img, epoch)
	})

	root := filepath.Join(tmp, "rootfs")
	if !t.Run("layers", func(t *testing.T) {
		hdrs := unpack(t, mutate.Extract(img), root)
		checkTree(t, hdrs, root)
	}) {
		return // nothing to run
	}
	runFromTree(t, root, cfg.Config.Env)
	runInRuntime(t, root, cfg.Config.Env)
}

// checkArchive reads the tarball as each of its consumers does.
func checkArchive(t *testing.T, archive, layoutDir string, img v1.Image, epoch time.Time) {
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := t.TempDir()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if !h.ModTime.Equal(epoch) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: mtime %v uid %d gid %d, want %v, 0, 0", h.Name, h.ModTime, h.Uid, h.Gid, epoch)
		}
		p := filepath.Join(out, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("entries not sorted: %q", names)
	}
	// An OCI layout (podman load, skopeo oci-archive:, containerd).
	idx, err := Index(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Index(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	if digest(t, idx) != digest(t, want) {
		t.Errorf("archive's layout holds index %s, bin layout %s", digest(t, idx), digest(t, want))
	}
	// A docker save archive (classic docker load, crane push FILE): the same
	// config and layers as the layout's first image.
	dimg, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := dimg.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	wc, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	if dc != wc {
		t.Errorf("manifest.json config %s, layout config %s", dc, wc)
	}
	dl, err := dimg.Layers()
	if err != nil {
		t.Fatal(err)
	}
	wl, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != len(wl) {
		t.Fatalf("manifest.json has %d layers, the layout %d", len(dl), len(wl))
	}
	for i := range dl {
		a, err := dl[i].Digest()
		if err != nil {
			t.Fatal(err)
		}
		b, err := wl[i].Digest()
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("layer %d: %s in manifest.json, %s in the layout", i, a, b)
		}
	}
}

// unpack writes the flattened file system (mutate.Extract has applied the
// layers in order, whiteouts included) under root, the way a runtime's
// snapshotter would, and returns the headers by path.
func unpack(t *testing.T, rc io.ReadCloser, root string) map[string]*tar.Header {
	t.Helper()
	defer rc.Close()
	hdrs := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(strings.TrimPrefix(h.Name, "/"))
		if !filepath.IsLocal(name) {
			t.Fatalf("layer entry %q leaves the root", h.Name)
		}
		hdrs[name] = h
		p := filepath.Join(root, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)&os.ModePerm); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("layer entry %s of type %q: the image holds only files and directories", h.Name, h.Typeflag)
		}
	}
}

// checkTree checks the unpacked file system: the one non-root user, the
// system's CA bundle, static executables, nothing the user can write.
func checkTree(t *testing.T, hdrs map[string]*tar.Header, root string) {
	names := make([]string, 0, len(hdrs))
	for n, h := range hdrs {
		names = append(names, n)
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want root (the user cannot change the programs)", n, h.Uid, h.Gid)
		}
		if h.Mode&0o022 != 0 {
			t.Errorf("%s: mode %o is group- or world-writable", n, h.Mode)
		}
	}
	slices.Sort(names)
	want := []string{
		"etc", "etc/group", "etc/passwd", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt",
		"usr", "usr/local", "usr/local/bin", "usr/local/bin/proxy", "usr/local/bin/replay",
	}
	if !slices.Equal(names, want) {
		t.Errorf("the image holds %q, want exactly %q (no /tmp, nothing else)", names, want)
	}
	passwd := readFile(t, filepath.Join(root, "etc/passwd"))
	if passwd != "reprise:x:65532:65532:reprise:/nonexistent:/sbin/nologin\n" {
		t.Errorf("/etc/passwd:\n%s", passwd)
	}
	if g := readFile(t, filepath.Join(root, "etc/group")); g != "reprise:x:65532:\n" {
		t.Errorf("/etc/group:\n%s", g)
	}
	if readFile(t, filepath.Join(root, CABundlePath)) != readFile(t, systemCABundle) {
		t.Errorf("%s differs from the system's", CABundlePath)
	}
	for _, prog := range []string{"replay", "proxy"} {
		p := filepath.Join(root, "usr/local/bin", prog)
		if m := hdrs["usr/local/bin/"+prog].Mode; m != 0o755 {
			t.Errorf("%s: mode %o, want 755", prog, m)
		}
		f, err := elf.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, ph := range f.Progs {
			if ph.Type == elf.PT_INTERP || ph.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is dynamically linked (%v): the empty base has no libc", prog, ph.Type)
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s has a symbol table: not built with -s", prog)
		}
		f.Close()
	}
}

func layerDigests(t *testing.T, layoutDir string) []string {
	t.Helper()
	img, err := FirstImage(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, l := range m.Layers {
		ds = append(ds, l.Digest.Hex[:12])
	}
	return ds
}

func digest(t *testing.T, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
