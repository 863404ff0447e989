// Package ociimage builds reproducible multi-platform OCI images of a Go main package with
// go-containerregistry: no Docker, no base image. Each platform's image is one layer holding
//
//	/usr/local/bin/<binary>              the static binary (CGO_ENABLED=0), mode 0755
//	/etc/ssl/certs/ca-certificates.crt   Go's fallback roots (NSS) + the caller's extra CAs
//	/etc/passwd, /etc/group              root and nonroot (65532)
//	/tmp                                 mode 1777
//	                                     + the caller's extra files
//
// run as 65532:65532 with the binary as entrypoint and no shell. Every tar entry is owned by
// 0:0 and dated Options.Created, the entries are sorted and the gzip stream is deterministic,
// so the same source, toolchain and options give the same index digest.
//
// Build compiles and assembles; Compile and Assemble are its two halves. WriteLayout writes
// the index as an OCI image layout directory, Push sends it to a registry.
package ociimage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Paths inside every image.
const (
	BinDir       = "/usr/local/bin"
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	WorkingDir   = "/"
	// User is the numeric nonroot user and group the image runs as (distroless' nonroot).
	User = "65532:65532"
	// PathEnv is the PATH of the image's environment.
	PathEnv = "/usr/local/bin:/usr/bin:/bin"
)

// OCI annotation keys, used both as image config labels and as manifest/index annotations.
const (
	AnnotationSource      = "org.opencontainers.image.source"
	AnnotationRevision    = "org.opencontainers.image.revision"
	AnnotationVersion     = "org.opencontainers.image.version"
	AnnotationCreated     = "org.opencontainers.image.created"
	AnnotationLicenses    = "org.opencontainers.image.licenses"
	AnnotationTitle       = "org.opencontainers.image.title"
	AnnotationDescription = "org.opencontainers.image.description"
	// AnnotationRefName names the index in an OCI layout's index.json.
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// DefaultPlatforms are built when Options.Platforms is empty.
var DefaultPlatforms = []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}

// Options describe one image build.
type Options struct {
	// Package is the Go main package to build, as go build takes it ("./cmd/refresher").
	Package string
	// Dir is where go build runs (the module root); default the current directory.
	Dir string
	// Binary is the binary's name under /usr/local/bin; default the last element of Package.
	Binary string
	// Args are the image's default arguments (config Cmd) after the entrypoint.
	Args []string
	// LDFlags are appended to "-s -w -buildid=" (e.g. "-X pkg.Version=v1.2.3").
	LDFlags string
	// Platforms to build; default DefaultPlatforms. OS must be linux.
	Platforms []v1.Platform
	// Created dates the config, the history and every tar entry (truncated to seconds).
	// Required: pass SOURCE_DATE_EPOCH or the commit time for a reproducible build.
	Created time.Time
	// Metadata becomes OCI labels and annotations; empty fields are left out.
	Metadata Metadata
	// ExtraCAs are PEM CA certificates appended to the bundle (e.g. a private registry's).
	ExtraCAs [][]byte
	// Files are extra regular files in the layer.
	Files []File
	// Env is added to the config environment after PATH and SSL_CERT_FILE ("KEY=value").
	Env []string
	// Logger receives progress; default slog.Default().
	Logger *slog.Logger
}

// Metadata is the image's OCI metadata (org.opencontainers.image.*).
type Metadata struct {
	Title, Description, Version, Revision, Source, Licenses string
}

// File is an extra regular file in the image.
type File struct {
	// Path is absolute and clean, e.g. "/etc/app/config.yaml".
	Path string
	Data []byte
	// Mode is the permission bits; default 0644.
	Mode os.FileMode
}

// Binary is one platform's compiled program.
type Binary struct {
	Platform v1.Platform
	Data     []byte
}

// Result is a built image index and its per-platform images, in Options.Platforms order.
type Result struct {
	Index  v1.ImageIndex
	Digest v1.Hash
	Images []PlatformImage
}

// PlatformImage is one platform's image of a Result.
type PlatformImage struct {
	Platform v1.Platform
	Image    v1.Image
	// Digest is the manifest digest.
	Digest v1.Hash
	// LayerSize is the compressed size of the single layer, in bytes.
	LayerSize int64
}

// Build compiles Options.Package for every platform and assembles the index.
func Build(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	bins, err := Compile(ctx, opts)
	if err != nil {
		return nil, err
	}
	return Assemble(bins, opts)
}

// Compile builds Options.Package for every platform with go build: CGO_ENABLED=0, -trimpath,
// -buildvcs=false, -ldflags "-s -w -buildid= <LDFlags>", GOAMD64=v1 / GOARM64=v8.0, and the
// caller's GOFLAGS less those that change the binary (-ldflags, -gcflags, -race, -cover...).
// Each binary must be a static ELF executable for its architecture (see StaticELF).
func Compile(ctx context.Context, opts Options) ([]Binary, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "ociimage-build-")
	if err != nil {
		return nil, fmt.Errorf("creating build dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	logger := opts.logger()
	var bins []Binary
	for i, p := range opts.platforms() {
		out := filepath.Join(tmp, fmt.Sprintf("%d-%s", i, opts.binary()))
		began := time.Now()
		if err := goBuild(ctx, opts, p, out); err != nil {
			return nil, err
		}
		data, err := os.ReadFile(out)
		if err != nil {
			return nil, fmt.Errorf("reading the %s binary: %w", p, err)
		}
		if err := StaticELF(data, p.Architecture); err != nil {
			return nil, fmt.Errorf("the %s binary of %s: %w", p, opts.Package, err)
		}
		logger.Info("compiled", "package", opts.Package, "platform", p.String(), "bytes", len(data), "duration",
			time.Since(began).Round(time.Millisecond).String())
		bins = append(bins, Binary{Platform: p, Data: data})
	}
	return bins, nil
}

func goBuild(ctx context.Context, opts Options, p v1.Platform, out string) error {
	ldflags := strings.TrimSpace("-s -w -buildid= " + opts.LDFlags)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out,
		opts.Package)
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), goEnv(p)...)
	// Let go build stop its compilers before it is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	output, err := cmd.CombinedOutput()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = errors.Join(ctxErr, err)
		}
		return fmt.Errorf("go build %s for %s: %w\n%s", opts.Package, p, err, output)
	}
	return nil
}

// goEnv is the environment of a build for p. It pins the microarchitecture levels to the
// baseline, so a developer's GOAMD64=v3 neither changes the digest nor the machines it runs on.
func goEnv(p v1.Platform) []string {
	env := []string{"CGO_ENABLED=0", "GOOS=" + p.OS, "GOARCH=" + p.Architecture, "GOFLAGS=" + goflags()}
	switch p.Architecture {
	case "amd64":
		env = append(env, "GOAMD64=v1")
	case "arm64":
		env = append(env, "GOARM64=v8.0")
	case "arm":
		env = append(env, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	}
	return env
}

// goflags keeps the caller's GOFLAGS but drops those that would make the binary differ.
func goflags() string {
	var keep []string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if strings.HasPrefix(f, "-ldflags") || strings.HasPrefix(f, "-gcflags") || strings.HasPrefix(f, "-race") ||
			strings.HasPrefix(f, "-cover") || strings.HasPrefix(f, "-buildvcs") || strings.HasPrefix(f, "-trimpath") {
			continue
		}
		keep = append(keep, f)
	}
	return strings.Join(keep, " ")
}

func (o Options) validate() error {
	var errs []error
	if o.Package == "" {
		errs = append(errs, errors.New("package is required"))
	}
	if b := o.binary(); b == "" || b == "." || b == ".." || strings.ContainsAny(b, `/\`) {
		errs = append(errs, fmt.Errorf("binary name %q is not a file name (set Binary)", b))
	}
	if o.Created.IsZero() {
		errs = append(errs, errors.New("created time is required (SOURCE_DATE_EPOCH or the commit time)"))
	} else if o.Created.Unix() < 0 {
		errs = append(errs, fmt.Errorf("created time %s is before 1970", o.Created))
	}
	seen := map[string]bool{}
	for _, p := range o.platforms() {
		if err := checkPlatform(p); err != nil {
			errs = append(errs, err)
		}
		if seen[p.String()] {
			errs = append(errs, fmt.Errorf("platform %s given twice", p))
		}
		seen[p.String()] = true
	}
	reserved := map[string]bool{path.Join(BinDir, o.binary()): true, CABundlePath: true, "/etc/passwd": true,
		"/etc/group": true}
	for i, f := range o.Files {
		switch {
		case !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || f.Path == "/":
			errs = append(errs, fmt.Errorf("files[%d]: path %q is not absolute and clean", i, f.Path))
		case reserved[f.Path]:
			errs = append(errs, fmt.Errorf("files[%d]: path %s is written by the build", i, f.Path))
		case dirs(o)[f.Path]:
			errs = append(errs, fmt.Errorf("files[%d]: path %s is a directory of the image", i, f.Path))
		case f.Mode&^os.ModePerm != 0:
			errs = append(errs, fmt.Errorf("files[%d]: mode %s is not a permission mode", i, f.Mode))
		}
		reserved[f.Path] = true
	}
	for i, e := range o.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			errs = append(errs, fmt.Errorf("env[%d]: %q is not KEY=value", i, e))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("image options: %w", errors.Join(errs...))
	}
	return nil
}

func checkPlatform(p v1.Platform) error {
	if p.OS != "linux" {
		return fmt.Errorf("platform %s: only linux images are built", p)
	}
	if p.Architecture == "" {
		return fmt.Errorf("platform %s: architecture is required", p)
	}
	if p.OSVersion != "" || len(p.OSFeatures) > 0 || len(p.Features) > 0 {
		return fmt.Errorf("platform %s: os.version and features are not supported", p)
	}
	switch {
	case p.Variant == "":
	case p.Architecture == "arm" && slices.Contains([]string{"v5", "v6", "v7"}, p.Variant):
	default:
		return fmt.Errorf("platform %s: variant %q is not supported", p, p.Variant)
	}
	return nil
}

func (o Options) platforms() []v1.Platform {
	if len(o.Platforms) == 0 {
		return DefaultPlatforms
	}
	return o.Platforms
}

func (o Options) binary() string {
	if o.Binary != "" {
		return o.Binary
	}
	return path.Base(filepath.ToSlash(o.Package))
}

func (o Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

// ParsePlatform parses "os/arch[/variant]".
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	if err := checkPlatform(p); err != nil {
		return v1.Platform{}, err
	}
	return p, nil
}
