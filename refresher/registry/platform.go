package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

// ReasonPlatformMissing is the reason of a digest the platform gate refused.
const ReasonPlatformMissing = "platform-missing"

// PlatformError is a digest the platform gate (spec.platforms) refused: its image index lacks
// required platforms, or it is a single-platform image of another platform than the only one
// required.
type PlatformError struct {
	Reference, Digest string
	// Missing are the required platforms the digest lacks, in spec.platforms order; Have
	// the platforms it offers.
	Missing, Have []string
}

func (e *PlatformError) Error() string {
	have := "none"
	if len(e.Have) > 0 {
		have = strings.Join(e.Have, ", ")
	}
	return fmt.Sprintf("%s: %s at %s lacks platform %s (it has %s); waiting for the tag to move to a complete digest",
		ReasonPlatformMissing, e.Reference, e.Digest, strings.Join(e.Missing, ", "), have)
}

// CheckPlatforms gates digest, which ref ("repository:tag") resolved to, on the required
// platforms (spec.platforms entries). It costs one GET of the manifest by digest — an image
// index lists its platforms — and, for a single-platform image manifest, one more GET of its
// config blob, which names the platform. Tokens and the version check are those of the
// lookup. It returns a *PlatformError when a platform is missing, another error when the
// registry could not answer, nil when the digest passes (or no platform is required).
func (r *Resolver) CheckPlatforms(ctx context.Context, ref, digest string, required []string) error {
	if len(required) == 0 {
		return nil
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return fmt.Errorf("parsing reference %q: %w", ref, err)
	}
	if err := r.run.skip(tag.RegistryStr()); err != nil {
		return fmt.Errorf("checking the platforms of %s: %w", tag, err)
	}
	ctx, cancel := context.WithTimeout(forRegistry(ctx, tag.RegistryStr()), r.timeout)
	defer cancel()
	m, err := r.getManifest(ctx, tag.Context().Digest(digest))
	if err != nil {
		return fmt.Errorf("checking the platforms of %s: reading manifest %s: %w", tag, digest, err)
	}
	var have []v1.Platform
	if m.mediaType.IsIndex() {
		index, err := v1.ParseIndexManifest(bytes.NewReader(m.body))
		if err != nil {
			return fmt.Errorf("checking the platforms of %s: parsing index %s: %w", tag, digest, err)
		}
		for _, m := range index.Manifests {
			if m.Platform != nil && m.Platform.OS != "unknown" {
				have = append(have, *m.Platform)
			}
		}
	} else {
		p, err := r.imagePlatform(ctx, tag.Context(), m.body)
		if err != nil {
			return fmt.Errorf("checking the platforms of %s: image %s: %w", tag, digest, err)
		}
		if p == nil || p.OS == "" || p.Architecture == "" {
			return &PlatformError{Reference: ref, Digest: digest, Missing: slices.Clone(required)}
		}
		have = []v1.Platform{*p}
	}
	var missing []string
	for _, want := range required {
		w, err := config.ParsePlatform(want)
		if err != nil {
			return fmt.Errorf("spec.platforms %q: %w", want, err)
		}
		if !slices.ContainsFunc(have, func(p v1.Platform) bool { return platformMatches(w, p) }) {
			missing = append(missing, want)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	names := make([]string, len(have))
	for i, p := range have {
		names[i] = platformString(p)
	}
	return &PlatformError{Reference: ref, Digest: digest, Missing: missing, Have: names}
}

// imagePlatform is the platform an image manifest's config blob names (the one extra GET), read
// only when its declared size is at most MaxConfigBytes.
func (r *Resolver) imagePlatform(ctx context.Context, repo name.Repository, manifest []byte) (*v1.Platform, error) {
	m, err := v1.ParseManifest(bytes.NewReader(manifest))
	if err != nil {
		return nil, fmt.Errorf("parsing the manifest: %w", err)
	}
	b, err := r.readBlob(ctx, repo, "config blob", m.Config, MaxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing the config: %w", err)
	}
	return cf.Platform(), nil
}

// platformMatches: OS and architecture equal; the variant too when the requirement names one.
func platformMatches(want, have v1.Platform) bool {
	return want.OS == have.OS && want.Architecture == have.Architecture &&
		(want.Variant == "" || want.Variant == have.Variant)
}

func platformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// IsPlatformMissing reports whether err is (or wraps) a *PlatformError.
func IsPlatformMissing(err error) bool {
	var pe *PlatformError
	return errors.As(err, &pe)
}
