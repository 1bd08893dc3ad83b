package ociimage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Binaries are one platform's compiled programs.
type Binaries struct {
	Platform v1.Platform
	// Files maps a program's name, as installed under BinDir, to the path
	// of its executable.
	Files map[string]string
}

// Build compiles the spec's programs for each platform into workDir and
// assembles the image index.
func Build(ctx context.Context, spec Spec, workDir string) (v1.ImageIndex, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	var all []Binaries
	for _, p := range spec.Platforms {
		dir := filepath.Join(workDir, p.OS+"-"+p.Architecture+p.Variant)
		b, err := Compile(ctx, spec, p, dir)
		if err != nil {
			return nil, err
		}
		all = append(all, b)
	}
	return Assemble(spec, all)
}

// Compile builds the spec's programs for one platform into outDir as static
// executables: CGO_ENABLED=0 (no libc to ship), -trimpath (no build paths,
// so the bytes do not depend on where the tree is checked out) and -s -w (no
// symbol table or DWARF: smaller layers).
func Compile(ctx context.Context, spec Spec, p v1.Platform, outDir string) (Binaries, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return Binaries{}, err
	}
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", outDir + string(filepath.Separator)}
	args = append(args, spec.Programs...)
	cmd := exec.CommandContext(ctx, spec.goCmd(), args...)
	cmd.Dir = spec.ModuleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	if p.Architecture == "arm" && p.Variant != "" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("go build for %s: %w\n%s", p.String(), err, out.Bytes())
	}
	b := Binaries{Platform: p, Files: map[string]string{}}
	for _, prog := range spec.Programs {
		n := path.Base(prog)
		b.Files[n] = filepath.Join(outDir, n)
	}
	return b, nil
}

// Assemble makes one image per platform, each of two layers, and the index
// over them:
//
//  1. the base, the same for every platform: /etc/passwd and /etc/group
//     with the one user (no root entry), the CA bundle;
//  2. the programs under BinDir, owned by root and not writable by the user.
//
// There is no /tmp and nothing writable: the programs write only to the
// directories their flags name (--capture-dir, --output-dir), which a
// deployment mounts, so a read-only root filesystem suffices.
func Assemble(spec Spec, all []Binaries) (v1.ImageIndex, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	epoch := spec.epoch()
	ca, err := os.ReadFile(spec.CABundle)
	if err != nil {
		return nil, fmt.Errorf("reading CA bundle: %w", err)
	}
	base, err := newLayer(epoch, baseFiles(ca))
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	labels := spec.labels()
	entry := path.Join(BinDir, path.Base(spec.Programs[0]))
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range all {
		files, err := programFiles(spec, b)
		if err != nil {
			return nil, err
		}
		progs, err := newLayer(epoch, files)
		if err != nil {
			return nil, fmt.Errorf("programs layer for %s: %w", b.Platform.String(), err)
		}
		cfg := &v1.ConfigFile{
			Architecture: b.Platform.Architecture,
			OS:           b.Platform.OS,
			Variant:      b.Platform.Variant,
			Created:      v1.Time{Time: epoch},
			RootFS:       v1.RootFS{Type: "layers"},
			Config: v1.Config{
				User:       fmt.Sprintf("%d:%d", UID, GID),
				Entrypoint: []string{entry},
				WorkingDir: "/",
				Env: []string{
					"PATH=" + BinDir,
					"SSL_CERT_FILE=" + CABundlePath,
				},
				Labels: labels,
			},
		}
		img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			return nil, err
		}
		img, err = mutate.Append(img,
			mutate.Addendum{Layer: base, History: v1.History{
				Created:   v1.Time{Time: epoch},
				CreatedBy: "ociimage: /etc/passwd, /etc/group (user " + UserName + "), " + CABundlePath,
				Comment:   "base",
			}},
			mutate.Addendum{Layer: progs, History: v1.History{
				Created:   v1.Time{Time: epoch},
				CreatedBy: "ociimage: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' " + strings.Join(spec.Programs, " "),
				Comment:   "programs",
			}},
		)
		if err != nil {
			return nil, err
		}
		img = mutate.Annotations(img, labels).(v1.Image)
		p := b.Platform
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return mutate.Annotations(idx, labels).(v1.ImageIndex), nil
}

// baseFiles are the platform-independent files.
func baseFiles(ca []byte) []file {
	passwd := fmt.Sprintf("%s:x:%d:%d:%s:/nonexistent:/sbin/nologin\n", UserName, UID, GID, UserName)
	group := fmt.Sprintf("%s:x:%d:\n", UserName, GID)
	return []file{
		{name: "/etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "/etc/group", mode: 0o644, data: []byte(group)},
		{name: CABundlePath, mode: 0o644, data: ca},
	}
}

// programFiles reads one platform's executables.
func programFiles(spec Spec, b Binaries) ([]file, error) {
	var files []file
	for _, prog := range spec.Programs {
		n := path.Base(prog)
		src, ok := b.Files[n]
		if !ok {
			return nil, fmt.Errorf("platform %s: no executable for %s", b.Platform.String(), n)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		files = append(files, file{name: path.Join(BinDir, n), mode: 0o755, data: data})
	}
	return files, nil
}
