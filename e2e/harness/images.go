package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The Go main packages the node runs as images, by image name.
var NodeImagePackages = map[string]string{
	"pause":        "./e2e/images/pause",
	"jobs-manager": "./e2e/images/jobsmanager",
	"pods-monitor": "./e2e/images/podsmonitor",
	"ingestor":     "./e2e/images/ingestor",
	"refresher":    "./cmd/refresher",
}

// NodeImages are the images built for the node, by name.
type NodeImages map[string]v1.Image

// BuildGoImages builds each Go main package (module-relative, by image name) as a static
// linux/amd64 binary and wraps it in a one-layer OCI image: /<name>, entrypoint /<name>,
// user 65532. The images are reproducible (fixed timestamps).
//
// This is the one place images are made; internal/ociimage replaces it once it lands.
func BuildGoImages(ctx context.Context, root, dir string, pkgs map[string]string) (NodeImages, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating image build dir: %w", err)
	}
	out := NodeImages{}
	for name, pkg := range pkgs {
		bin := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
		killGroupOnCancel(cmd)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
		}
		data, err := os.ReadFile(bin)
		if err != nil {
			return nil, err
		}
		var layer bytes.Buffer
		tw := tar.NewWriter(&layer)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
		if err := tw.Close(); err != nil {
			return nil, err
		}
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layer.Bytes())), nil },
			tarball.WithMediaType(types.OCILayer))
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", name, err)
		}
		img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), l)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", name, err)
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		cf.Config.Entrypoint = []string{"/" + name}
		cf.Config.User = "65532:65532"
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, fmt.Errorf("image %s: %w", name, err)
		}
		out[name] = img
	}
	return out, nil
}

// Generation is img with a label e2e.image-refresh.io/generation=n: the same program under
// a new digest, as a new build of an image would be.
func Generation(img v1.Image, n int) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels["e2e.image-refresh.io/generation"] = strconv.Itoa(n)
	return mutate.ConfigFile(img, cf)
}

// MultiArch is an image index holding img for linux/amd64 and a linux/arm64 entry (the same
// files labelled arm64: never run here, it only makes the tag a real multi-arch index).
func MultiArch(img v1.Image) (v1.ImageIndex, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	arm := cf.DeepCopy()
	arm.Architecture = "arm64"
	armImg, err := mutate.ConfigFile(img, arm)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: armImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	), nil
}

// PushArtifact pushes an image or index to repo:tag (repo without the registry host) with the
// pusher's credentials and returns its digest.
func (r *Registry) PushArtifact(ctx context.Context, repo, tag string, t interface {
	Digest() (v1.Hash, error)
}) (string, error) {
	switch v := t.(type) {
	case v1.ImageIndex:
		return r.push(ctx, repo, tag, v)
	case v1.Image:
		return r.push(ctx, repo, tag, v)
	}
	return "", fmt.Errorf("pushing %s:%s: unsupported artifact %T", repo, tag, t)
}
