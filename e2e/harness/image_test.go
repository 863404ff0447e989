package harness

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tracebloc/image-refresh/internal/ociimage"
)

// TestPushIndexImage pushes an index assembled by internal/ociimage (OCI media types, two
// platforms, annotations) to the real distribution registry and pulls it back anonymously.
func TestPushIndexImage(t *testing.T) {
	ctx := context.Background()
	reg := startTestRegistry(t)
	opts := ociimage.Options{
		Package:  "./cmd/app",
		Created:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Metadata: ociimage.Metadata{Version: "v1"},
	}
	var bins []ociimage.Binary
	for _, p := range ociimage.DefaultPlatforms {
		bins = append(bins, ociimage.Binary{Platform: p, Data: []byte("not really a " + p.String() + " binary")})
	}
	built, err := ociimage.Assemble(bins, opts)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := reg.PushIndexImage(ctx, "team/built", "v1", built.Index)
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := reg.Resolve(ctx, "team/built", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if pushed != built.Digest.String() || resolved != pushed {
		t.Fatalf("built %s, pushed %s, resolves to %s", built.Digest, pushed, resolved)
	}
	ref, err := name.NewTag(reg.Repository("team/built") + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range m.Manifests {
		platforms = append(platforms, d.Platform.String())
	}
	if m.MediaType != types.OCIImageIndex || !slices.Equal(platforms, []string{"linux/amd64", "linux/arm64"}) ||
		m.Annotations[ociimage.AnnotationVersion] != "v1" {
		t.Errorf("served index %s %v annotations %v", m.MediaType, platforms, m.Annotations)
	}
	img, err := idx.Image(built.Images[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("arm64 image layers %d, %v; want 1", len(layers), err)
	}
	if size, err := layers[0].Size(); err != nil || size != built.Images[1].LayerSize {
		t.Errorf("served layer %d bytes (%v), built %d", size, err, built.Images[1].LayerSize)
	}
}
