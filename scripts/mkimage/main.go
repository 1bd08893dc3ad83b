// Command mkimage builds the OCI image of proxy and replay without Docker
// or a registry (`make image`): static binaries for each platform on an
// empty base, the system's CA bundle, one non-root user (65532). It writes
// an OCI image layout (bin/image) and one tarball (bin/reprise-image.tar)
// that is both an OCI layout and a docker save archive. See
// internal/ociimage.
//
//	go run ./scripts/mkimage [-platforms linux/amd64,linux/arm64] [-name reprise:latest]
//
// SOURCE_DATE_EPOCH (seconds) stamps every file and the config; unset, the
// Unix epoch. The version and revision labels come from git when it can
// tell them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/reprise-llm/reprise/internal/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		layoutDir = fs.String("layout", "bin/image", "OCI image layout directory to write (replaced)")
		archive   = fs.String("archive", "bin/reprise-image.tar", "tarball to write: an OCI layout and a docker save archive in one (empty: none)")
		platforms = fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms; the first is the one the archive's manifest.json names")
		ref       = fs.String("name", "reprise:latest", "name the layout and archive give the image")
		ca        = fs.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of certificate authorities to copy into the image")
		source    = fs.String("source", "https://github.com/reprise-llm/reprise", "org.opencontainers.image.source label")
		version   = fs.String("version", "", "org.opencontainers.image.version label (default: git describe --always --dirty)")
		revision  = fs.String("revision", "", "org.opencontainers.image.revision label (default: git rev-parse HEAD)")
		workDir   = fs.String("work-dir", "", "directory for the compiled binaries (default: a temporary one, removed)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	spec := ociimage.Spec{
		ModuleDir: ".",
		Go:        os.Getenv("GO"),
		Programs:  []string{"./cmd/replay", "./cmd/proxy"},
		CABundle:  *ca,
		Source:    *source,
		Version:   orGit(*version, "describe", "--always", "--dirty"),
		Revision:  orGit(*revision, "rev-parse", "HEAD"),
	}
	var errs []error
	for _, p := range strings.Split(*platforms, ",") {
		pl, err := v1.ParsePlatform(strings.TrimSpace(p))
		if err != nil {
			errs = append(errs, fmt.Errorf("-platforms: %w", err))
			continue
		}
		spec.Platforms = append(spec.Platforms, *pl)
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("SOURCE_DATE_EPOCH: %w", err))
		}
		spec.Epoch = time.Unix(sec, 0)
	}
	if err := errors.Join(append(errs, spec.Validate())...); err != nil {
		return err
	}

	dir := *workDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "mkimage-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	start := time.Now()
	idx, err := ociimage.Build(ctx, spec, dir)
	if err != nil {
		return err
	}
	if err := ociimage.WriteLayout(*layoutDir, idx, *ref); err != nil {
		return err
	}
	if *archive != "" {
		if err := ociimage.WriteArchive(*archive, *layoutDir, *ref, spec.Epoch); err != nil {
			return err
		}
	}
	return describe(stdout, idx, *layoutDir, *archive, *ref, time.Since(start))
}

// describe prints what was written: the index digest (the one a registry
// will show after a push) and each platform's image digest.
func describe(w io.Writer, idx v1.ImageIndex, layoutDir, archive, ref string, took time.Duration) error {
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s %s  (%s, %.1fs)\n", ref, d, layoutDir, took.Seconds())
	for _, m := range im.Manifests {
		fmt.Fprintf(w, "  %-12s %s\n", m.Platform.String(), m.Digest)
	}
	if archive != "" {
		fmt.Fprintf(w, "%s: docker load -i / podman load -i it; push every platform with crane push %s REF or skopeo copy --all oci:%s docker://REF\n",
			archive, layoutDir, layoutDir)
	}
	return nil
}

// orGit returns v, or else the output of git with args (empty when git
// cannot tell: no git, not a checkout).
func orGit(v string, args ...string) string {
	if v != "" {
		return v
	}
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
