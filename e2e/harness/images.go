package harness

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tracebloc/image-refresh/internal/ociimage"
)

// NodeImagePackages are the Go main packages the node runs as images, by image name. The refresher is not among
// them: the node runs the product's own image (BuildRefresherImage, as `make image` builds it).
var NodeImagePackages = map[string]string{
	"pause":        "./e2e/images/pause",
	"jobs-manager": "./e2e/images/jobsmanager",
	"pods-monitor": "./e2e/images/podsmonitor",
	"ingestor":     "./e2e/images/ingestor",
}

// NodeImages are the images built for the node, by name.
type NodeImages map[string]v1.Image

// BuildGoImages builds each Go main package (module-relative, by image name) into a
// linux/amd64 image with internal/ociimage, as the refresher's own image is built: the static
// binary at /usr/local/bin/<name> as entrypoint, user 65532, reproducible.
func BuildGoImages(ctx context.Context, root string, pkgs map[string]string) (NodeImages, error) {
	out := NodeImages{}
	for name, pkg := range pkgs {
		res, err := ociimage.Build(ctx, ociimage.Options{
			Package: pkg, Dir: root, Binary: name,
			Platforms: []v1.Platform{{OS: "linux", Architecture: "amd64"}},
			Created:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			Metadata:  ociimage.Metadata{Title: name, Version: "e2e"},
			Logger:    slog.New(slog.DiscardHandler),
		})
		if err != nil {
			return nil, fmt.Errorf("building image %s: %w", name, err)
		}
		out[name] = res.Images[0].Image
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

// Crashing is img as a broken build: its config sets E2E_CRASH=1, on which the programs of
// e2e/images exit 1 (a container that crash-loops, an ingestion Job that fails).
func Crashing(img v1.Image) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config.Env = append(cf.Config.Env, "E2E_CRASH=1")
	return mutate.ConfigFile(img, cf)
}

// MultiArch is an image index holding img for linux/amd64 and a linux/arm64 entry (the same
// files labelled arm64: never run here, it only makes the tag a real multi-arch index).
func MultiArch(img v1.Image) (v1.ImageIndex, error) {
	return Index(img, "amd64", "arm64")
}

// Index is an image index holding img for each linux architecture of archs: img itself for
// its own architecture (amd64 for the node's images), the same files labelled with the
// architecture for the others.
func Index(img v1.Image, archs ...string) (v1.ImageIndex, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range archs {
		entry := img
		if arch != cf.Architecture {
			other := cf.DeepCopy()
			other.Architecture = arch
			if entry, err = mutate.ConfigFile(img, other); err != nil {
				return nil, err
			}
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: entry, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}},
		})
	}
	return idx, nil
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
