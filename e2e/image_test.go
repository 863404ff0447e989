package e2e

import (
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/ociimage"
)

// TestRefresherImageServed checks that the refresher image the world built and pushed is what
// the registry serves for its tag, anonymously as a kubelet would pull it: the same index
// digest, an OCI index of linux/amd64 and linux/arm64 whose manifests are those built.
func TestRefresherImageServed(t *testing.T) {
	w := setup(t)
	built := w.refresherImage
	digest, err := w.registry.Resolve(t.Context(), harness.RefresherImageRepo, harness.RefresherImageTag)
	if err != nil {
		t.Fatal(err)
	}
	if digest != built.Digest.String() {
		t.Fatalf("HEAD %s: digest %s, built %s", w.refresherImageRef, digest, built.Digest)
	}
	ref, err := name.NewTag(w.refresherImageRef)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIImageIndex {
		t.Errorf("served media type %q, want %q", m.MediaType, types.OCIImageIndex)
	}
	var platforms []string
	for i, d := range m.Manifests {
		if d.Platform == nil {
			t.Fatalf("manifest %s has no platform", d.Digest)
		}
		platforms = append(platforms, d.Platform.String())
		if i < len(built.Images) && d.Digest != built.Images[i].Digest {
			t.Errorf("%s manifest served %s, built %s", d.Platform, d.Digest, built.Images[i].Digest)
		}
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf("served platforms %v, want %v", platforms, want)
	}
	img, err := idx.Image(built.Images[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Config.Entrypoint, []string{ociimage.BinDir + "/refresher"}) || cfg.Config.User != ociimage.User {
		t.Errorf("served config entrypoint %q user %q", cfg.Config.Entrypoint, cfg.Config.User)
	}
}
