package ociimage

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// WriteLayout writes the index as an OCI image layout in dir (replacing the
// layout there, and refusing a directory that holds anything else), named
// ref ("reprise:latest") the way docker save names it: the descriptor in
// index.json carries org.opencontainers.image.ref.name (the tag, which
// skopeo's oci:DIR:TAG and podman read) and io.containerd.image.name (the
// full name, which containerd and Docker's containerd store read).
func WriteLayout(dir string, idx v1.ImageIndex, ref string) error {
	anns, err := refAnnotations(ref)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err == nil {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	} else if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("refusing to replace %s: not an OCI image layout", dir)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing layout %s: %w", dir, err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(anns)); err != nil {
		return fmt.Errorf("writing layout %s: %w", dir, err)
	}
	return nil
}

// refAnnotations names an image in an index.json as docker save does.
func refAnnotations(ref string) (map[string]string, error) {
	t, err := name.NewTag(ref)
	if err != nil {
		return nil, fmt.Errorf("image name %q: %w", ref, err)
	}
	full := t.Name()
	if t.RegistryStr() == name.DefaultRegistry {
		full = "docker.io/" + t.RepositoryStr() + ":" + t.TagStr()
	}
	return map[string]string{
		"org.opencontainers.image.ref.name": t.TagStr(),
		"io.containerd.image.name":          full,
	}, nil
}

// dockerManifest is one entry of a docker save archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// WriteArchive writes the layout in layoutDir as one tar file that is both
// an OCI image layout (podman load, skopeo's oci-archive:, Docker's
// containerd image store: every platform) and a docker save archive: a
// manifest.json names the first platform's image by ref for the classic
// docker load and for crane push, which take one image. This is the format
// docker save itself writes since Docker 25. Entries are sorted and stamped
// epoch, so equal layouts give equal archives.
func WriteArchive(archive, layoutDir, ref string, epoch time.Time) error {
	if _, err := refAnnotations(ref); err != nil {
		return err
	}
	dm, err := firstImage(layoutDir, ref)
	if err != nil {
		return err
	}
	dmJSON, err := json.Marshal([]dockerManifest{dm})
	if err != nil {
		return err
	}
	var names []string
	err = filepath.WalkDir(layoutDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == layoutDir {
			return nil
		}
		rel, err := filepath.Rel(layoutDir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "manifest.json" {
			return nil // written from dm
		}
		switch {
		case d.IsDir():
			names = append(names, rel+"/")
		case d.Type().IsRegular():
			names = append(names, rel)
		default:
			return fmt.Errorf("%s: neither a file nor a directory", p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	names = append(names, "manifest.json")
	slices.Sort(names)

	if err := os.MkdirAll(filepath.Dir(archive), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(archive), "."+filepath.Base(archive)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	tw := tar.NewWriter(tmp)
	for _, n := range names {
		if err := writeArchiveEntry(tw, layoutDir, n, dmJSON, epoch.UTC()); err != nil {
			tmp.Close()
			return fmt.Errorf("writing %s: %w", archive, err)
		}
	}
	if err := errors.Join(tw.Close(), tmp.Close()); err != nil {
		return fmt.Errorf("writing %s: %w", archive, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), archive)
}

func writeArchiveEntry(tw *tar.Writer, layoutDir, n string, dmJSON []byte, epoch time.Time) error {
	if n[len(n)-1] == '/' {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755, ModTime: epoch})
	}
	if n == "manifest.json" {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(dmJSON)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(dmJSON)
		return err
	}
	f, err := os.Open(filepath.Join(layoutDir, filepath.FromSlash(n)))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: st.Size(), ModTime: epoch}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// firstImage is the docker save manifest of the layout's first image (the
// first platform of its index), named ref.
func firstImage(layoutDir, ref string) (dockerManifest, error) {
	img, err := FirstImage(layoutDir)
	if err != nil {
		return dockerManifest{}, err
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return dockerManifest{}, err
	}
	m, err := img.Manifest()
	if err != nil {
		return dockerManifest{}, err
	}
	dm := dockerManifest{Config: blobPath(cfg), RepoTags: []string{ref}}
	for _, l := range m.Layers {
		dm.Layers = append(dm.Layers, blobPath(l.Digest))
	}
	return dm, nil
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// FirstImage reads the first image of the first index of an OCI layout as
// WriteLayout writes it (index.json → image index → images).
func FirstImage(layoutDir string) (v1.Image, error) {
	idx, err := Index(layoutDir)
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(im.Manifests) == 0 {
		return nil, fmt.Errorf("layout %s: the image index is empty", layoutDir)
	}
	return idx.Image(im.Manifests[0].Digest)
}

// Index reads the image index of an OCI layout as WriteLayout writes it:
// index.json holds exactly one descriptor, that of the image index.
func Index(layoutDir string) (v1.ImageIndex, error) {
	root, err := layout.ImageIndexFromPath(layoutDir)
	if err != nil {
		return nil, fmt.Errorf("reading layout %s: %w", layoutDir, err)
	}
	m, err := root.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading layout %s: %w", layoutDir, err)
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		return nil, fmt.Errorf("layout %s: index.json should hold one image index, holds %d descriptors", layoutDir, len(m.Manifests))
	}
	return root.ImageIndex(m.Manifests[0].Digest)
}
