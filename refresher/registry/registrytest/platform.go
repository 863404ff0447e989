package registrytest

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// PushPlatformImage uploads a random single-platform image whose config names platform (os,
// architecture, variant) as ref and returns its manifest digest.
func (s *Server) PushPlatformImage(ref string, platform v1.Platform) (string, error) {
	img, err := platformImage(platform)
	if err != nil {
		return "", err
	}
	return s.push(ref, img)
}

// PushPlatformIndex uploads an image index with one random image per platform as ref and
// returns the index digest; a half-pushed multi-arch tag is an index lacking a platform.
func (s *Server) PushPlatformIndex(ref string, platforms ...v1.Platform) (string, error) {
	var adds []mutate.IndexAddendum
	for _, p := range platforms {
		img, err := platformImage(p)
		if err != nil {
			return "", err
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	return s.push(ref, mutate.AppendManifests(empty.Index, adds...))
}

func platformImage(p v1.Platform) (v1.Image, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return nil, fmt.Errorf("generating image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the generated config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting the platform %s/%s: %w", p.OS, p.Architecture, err)
	}
	return img, nil
}
