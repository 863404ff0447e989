package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Reasons a registry answer fails an image with (ImageReport.Reason).
const (
	// ReasonNotAManifest: a GET that yields a digest answered something other than one of the
	// four manifest types (a captive portal's login page, a schema-1 manifest, a broken body).
	ReasonNotAManifest = "not-a-manifest"
	// ReasonTooLarge: an answer larger than the refresher reads (see MaxManifestBytes).
	ReasonTooLarge = "too-large"
)

// manifestTypes are the media types the refresher asks for and accepts as a manifest: an image
// or an index, OCI or Docker (schema 2). Schema 1 is not among them: its digest is not the
// sha256 of the body.
var manifestTypes = []types.MediaType{
	types.OCIImageIndex,
	types.OCIManifestSchema1,
	types.DockerManifestList,
	types.DockerManifestSchema2,
}

// NotManifestError is a GET answered with a body that is not a manifest of manifestTypes.
type NotManifestError struct {
	// ContentType is the answer's Content-Type, as sent.
	ContentType string
	Detail      string
}

func (e *NotManifestError) Error() string {
	return fmt.Sprintf("%s: the registry answered content type %q: %s", ReasonNotAManifest, e.ContentType, e.Detail)
}

// manifestDescriptor is the subset of a descriptor every manifest member must have.
type manifestDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      *int64 `json:"size"`
}

func (d manifestDescriptor) check(where string) error {
	if d.MediaType == "" {
		return fmt.Errorf("%s: no mediaType", where)
	}
	if _, err := v1.NewHash(d.Digest); err != nil {
		return fmt.Errorf("%s: digest %q: %w", where, truncateText(d.Digest, 80), err)
	}
	if d.Size == nil || *d.Size < 0 {
		return fmt.Errorf("%s: no size (or a negative one)", where)
	}
	return nil
}

// checkManifest returns the media type of body, answered with contentType: one of
// manifestTypes, named alike by the header and the body's mediaType field (if any), with
// schemaVersion 2 and the members that type requires (config and layers, or manifests). Anything
// else is a *NotManifestError.
func checkManifest(contentType string, body []byte) (types.MediaType, error) {
	fail := func(format string, args ...any) (types.MediaType, error) {
		return "", &NotManifestError{ContentType: truncateText(contentType, 120), Detail: fmt.Sprintf(format, args...)}
	}
	base, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fail("not a media type")
	}
	mt := types.MediaType(base)
	if !slices.Contains(manifestTypes, mt) {
		return fail("not one of the manifest types asked for (%s)", joinTypes(manifestTypes))
	}
	var m struct {
		SchemaVersion *int                  `json:"schemaVersion"`
		MediaType     string                `json:"mediaType"`
		Config        *manifestDescriptor   `json:"config"`
		Layers        *[]manifestDescriptor `json:"layers"`
		Manifests     *[]manifestDescriptor `json:"manifests"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return fail("the body is not JSON: %v", err)
	}
	if m.SchemaVersion == nil || *m.SchemaVersion != 2 {
		return fail("schemaVersion is not 2")
	}
	docker := mt == types.DockerManifestList || mt == types.DockerManifestSchema2
	switch {
	case m.MediaType == "" && docker:
		return fail("no mediaType field (a Docker manifest names its type)")
	case m.MediaType != "" && m.MediaType != base:
		return fail("the body's mediaType is %q", truncateText(m.MediaType, 120))
	}
	if mt.IsIndex() {
		if m.Manifests == nil || m.Config != nil || m.Layers != nil {
			return fail("an index needs manifests, and no config or layers")
		}
		for i, d := range *m.Manifests {
			if err := d.check(fmt.Sprintf("manifests[%d]", i)); err != nil {
				return fail("%v", err)
			}
		}
		return mt, nil
	}
	if m.Config == nil || m.Layers == nil || m.Manifests != nil {
		return fail("an image manifest needs config and layers, and no manifests")
	}
	if err := m.Config.check("config"); err != nil {
		return fail("%v", err)
	}
	for i, d := range *m.Layers {
		if err := d.check(fmt.Sprintf("layers[%d]", i)); err != nil {
			return fail("%v", err)
		}
	}
	return mt, nil
}

func joinTypes(ts []types.MediaType) string {
	var b bytes.Buffer
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(t))
	}
	return b.String()
}

// manifest is a manifest read and checked by getManifest.
type manifest struct {
	mediaType types.MediaType
	body      []byte
	// digest is the sha256 of body, the only digest a GET yields.
	digest string
}

// getManifest GETs ref's manifest (bounded by the run's transport, see boundedTransport) and
// checks it is one (checkManifest). Its digest is computed over the body, never taken from a
// header; for ref by digest it must be that digest.
func (r *Resolver) getManifest(ctx context.Context, ref name.Reference) (manifest, error) {
	desc, err := r.puller.Get(ctx, ref)
	if err != nil {
		return manifest{}, err
	}
	mt, err := checkManifest(string(desc.MediaType), desc.Manifest)
	if err != nil {
		return manifest{}, err
	}
	sum := sha256.Sum256(desc.Manifest)
	m := manifest{mediaType: mt, body: desc.Manifest, digest: "sha256:" + hex.EncodeToString(sum[:])}
	if d, ok := ref.(name.Digest); ok && d.DigestStr() != m.digest {
		return manifest{}, fmt.Errorf("the manifest answered for %s has digest %s", ref, m.digest)
	}
	return m, nil
}

// Reason is the reason of a registry failure that has one (ReasonPlatformMissing,
// ReasonNotAManifest, ReasonTooLarge), "" otherwise.
func Reason(err error) string {
	var notManifest *NotManifestError
	var tooLarge *TooLargeError
	switch {
	case IsPlatformMissing(err):
		return ReasonPlatformMissing
	case errors.As(err, &notManifest):
		return ReasonNotAManifest
	case errors.As(err, &tooLarge):
		return ReasonTooLarge
	}
	return ""
}
