// Package ociimage builds the OCI image of Reprise's programs without Docker
// or a registry: static Go binaries (CGO_ENABLED=0) on an empty base, with
// the system's CA bundle and passwd/group entries for one non-root user,
// written as an OCI image layout and as a tarball that docker load, podman
// load and crane push accept. Builds are reproducible: every time stamp is
// Spec.Epoch, so one source tree gives one digest.
//
// Why not ko (v0.19.1): ko builds one Go program per image, on a base image
// it pulls from a registry unless configured with a local one; this image is
// two programs and a CA bundle on an empty base, which go-containerregistry's
// empty, mutate and layout packages (ko's own foundation) assemble directly.
package ociimage

import (
	"errors"
	"fmt"
	"os"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Paths and identity inside the image.
const (
	// BinDir holds the programs, /usr/local/bin/<name>.
	BinDir = "/usr/local/bin"
	// CABundlePath is where the CA bundle goes (Debian's path, which Go's
	// crypto/x509 reads first on Linux); the config's SSL_CERT_FILE names it too.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	// UID and GID of the image's only user, "reprise" (65532, the number
	// distroless images use for "nonroot", so cluster policies written for
	// them apply).
	UID = 65532
	GID = 65532
	// UserName is that user's name in /etc/passwd and /etc/group.
	UserName = "reprise"
)

// Spec describes the image to build. Its field comments are the
// documentation of scripts/mkimage's flags.
type Spec struct {
	// ModuleDir is the directory of the Go module whose programs are built;
	// go build runs there.
	ModuleDir string
	// Go is the go command to build with (default "go").
	Go string
	// Programs are the main packages to build, relative to ModuleDir
	// (./cmd/replay); each is installed as BinDir/<last path element>. The
	// first is the image's entrypoint.
	Programs []string
	// Platforms are the platforms to build for (linux/amd64, linux/arm64):
	// one image each, gathered in one image index.
	Platforms []v1.Platform
	// CABundle is the host's PEM file of certificate authorities copied to
	// CABundlePath.
	CABundle string
	// Epoch is the modification time of every file and the creation time of
	// the image and its history (SOURCE_DATE_EPOCH; the zero Time means the
	// Unix epoch). Fixed times make two builds of one tree byte-identical.
	Epoch time.Time
	// Source, Version and Revision are the org.opencontainers.image.source,
	// .version and .revision labels and annotations (empty: left out).
	Source, Version, Revision string
}

// Validate reports every problem of the spec at once.
func (s Spec) Validate() error {
	var errs []error
	if s.ModuleDir == "" {
		errs = append(errs, errors.New("no module directory"))
	}
	if len(s.Programs) == 0 {
		errs = append(errs, errors.New("no programs to build"))
	}
	seen := map[string]bool{}
	for _, p := range s.Programs {
		n := path.Base(p)
		if seen[n] {
			errs = append(errs, fmt.Errorf("two programs named %s", n))
		}
		seen[n] = true
	}
	if len(s.Platforms) == 0 {
		errs = append(errs, errors.New("no platforms"))
	}
	plats := map[string]bool{}
	for _, p := range s.Platforms {
		if p.OS != "linux" {
			errs = append(errs, fmt.Errorf("platform %s: only linux images are built", p.String()))
		}
		if plats[p.String()] {
			errs = append(errs, fmt.Errorf("platform %s given twice", p.String()))
		}
		plats[p.String()] = true
	}
	if s.CABundle == "" {
		errs = append(errs, errors.New("no CA bundle"))
	} else if _, err := os.Stat(s.CABundle); err != nil {
		errs = append(errs, fmt.Errorf("CA bundle: %w (Debian's ca-certificates package provides /etc/ssl/certs/ca-certificates.crt)", err))
	}
	return errors.Join(errs...)
}

// epoch is the time stamp of files, config and history.
func (s Spec) epoch() time.Time {
	if s.Epoch.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return s.Epoch.UTC()
}

// goCmd is the go command.
func (s Spec) goCmd() string {
	if s.Go == "" {
		return "go"
	}
	return s.Go
}

// labels are the OCI labels of the config, also the annotations of the
// manifests and the index.
func (s Spec) labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "reprise",
		"org.opencontainers.image.description": "Reprise: capture LLM API traffic (proxy) and replay it against candidate deployments (replay)",
	}
	for k, v := range map[string]string{
		"org.opencontainers.image.source":   s.Source,
		"org.opencontainers.image.version":  s.Version,
		"org.opencontainers.image.revision": s.Revision,
	} {
		if v != "" {
			l[k] = v
		}
	}
	return l
}
