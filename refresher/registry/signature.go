package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
)

const (
	// maxSignatureObject bounds a signature manifest, referrers index, payload or bundle.
	maxSignatureObject = 1 << 20
	// maxCandidates bounds the referrers or .sig layers examined per layout (newest first).
	maxCandidates = 8
	// emptyConfigMediaType is the OCI empty descriptor's media type (the config of cosign's
	// referrer manifest, which go-containerregistry's registry reports as artifactType).
	emptyConfigMediaType = "application/vnd.oci.empty.v1+json"
)

// VerifySignature checks that digest, which ref ("repository:tag") resolved to, is signed by one
// of keys, offline and key-based, in a layout the real cosign CLI writes. It returns where the
// verifying signature was found; a *signature.Error (wrapped) for a digest that is unsigned
// (ReasonMissing) or whose signatures do not verify (ReasonInvalid); another error when the
// registry could not answer (no verdict).
//
// Discovery, in this order, until a signature verifies (tokens and version check are the
// lookup's):
//  1. GET the OCI referrers fallback index, tag sha256-<hex> (cosign 3 on registries without
//     the referrers API: Docker Hub, GHCR), then per sigstore bundle referrer its manifest and
//     its one blob;
//  2. GET tag sha256-<hex>.sig (cosign 2, cosign 3 --new-bundle-format=false), then per layer
//     its payload blob;
//  3. GET /v2/<repo>/referrers/sha256:<hex> once (no tag fallback: that is 1), then as in 1.
//
// Requests, one signature and the registry's answers (404 = absent):
//   - bundle under the fallback tag: 3 (index, manifest, blob);
//   - .sig: 3 (404, manifest, payload); on a registry with the referrers API likewise;
//   - bundle through the referrers API: 5 (404, 404, referrers, manifest, blob);
//   - unsigned: 3 (404, 404, and the referrers API's 404 or empty index);
//   - each further candidate examined costs 2 (bundle) or 1 (.sig layer); at most
//     maxCandidates per layout.
//
// Step 3's one GET needs the repository's token without go-containerregistry's automatic tag
// fallback: it goes through the run transport with the lookup's own credentials (the keychain's),
// so the lookup's recorded version check and token — kept per registry and identity — are
// replayed (no request). A registry challenging for Basic credentials cannot be served that way;
// it is asked through the Resolver's puller, which may repeat the fallback tag GET (one request
// more) when it has no referrers API.
func (r *Resolver) VerifySignature(
	ctx context.Context,
	ref, digest string,
	keys []signature.PublicKey,
) (signature.Verdict, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return signature.Verdict{}, fmt.Errorf("parsing reference %q: %w", ref, err)
	}
	if !config.ValidDigest(digest) {
		return signature.Verdict{}, fmt.Errorf("verifying the signature of %s: digest %q is not sha256:<64 hex>", tag, digest)
	}
	if len(keys) == 0 {
		return signature.Verdict{}, fmt.Errorf("verifying the signature of %s: no public keys", tag)
	}
	if err := r.run.skip(tag.RegistryStr()); err != nil {
		return signature.Verdict{}, fmt.Errorf("verifying the signature of %s: %w", tag, err)
	}
	ctx, cancel := context.WithTimeout(forRegistry(ctx, tag.RegistryStr()), r.timeout)
	defer cancel()
	v := &sigSearch{r: r, repo: tag.Context(), digest: digest, hex: strings.TrimPrefix(digest, "sha256:"), keys: keys}
	for _, step := range []func(context.Context) (signature.Verdict, bool, error){
		v.referrersTag,
		v.sigTag,
		v.referrersAPI,
	} {
		verdict, ok, err := step(ctx)
		if err != nil {
			return signature.Verdict{}, fmt.Errorf("verifying the signature of %s@%s: %w", tag.Context(), digest, err)
		}
		if ok {
			return verdict, nil
		}
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	e := &signature.Error{Reason: signature.ReasonMissing, Digest: digest, Repository: tag.Context().Name(), Keys: names}
	if len(v.failures) > 0 {
		e.Reason, e.Detail = signature.ReasonInvalid, strings.Join(v.failures, "; ")
	} else {
		e.Detail = fmt.Sprintf("looked in: referrers tag sha256-%s, sig tag sha256-%s.sig, referrers API", v.hex, v.hex)
	}
	return signature.Verdict{}, e
}

// sigSearch is one digest's discovery; failures are the candidates found that did not verify.
type sigSearch struct {
	r        *Resolver
	repo     name.Repository
	digest   string
	hex      string
	keys     []signature.PublicKey
	failures []string
}

func (v *sigSearch) fail(where, format string, args ...any) {
	v.failures = append(v.failures, where+": "+fmt.Sprintf(format, args...))
}

// referrersTag is step 1: the OCI fallback index tag sha256-<hex>.
func (v *sigSearch) referrersTag(ctx context.Context) (signature.Verdict, bool, error) {
	where := "referrers tag sha256-" + v.hex
	desc, err := v.r.puller.Get(ctx, v.repo.Tag("sha256-"+v.hex))
	if notFound(err) {
		return signature.Verdict{}, false, nil
	}
	if err != nil {
		return signature.Verdict{}, false, fmt.Errorf("reading %s: %w", where, err)
	}
	if len(desc.Manifest) > maxSignatureObject {
		v.fail(where, "index of %d bytes, more than %d", len(desc.Manifest), maxSignatureObject)
		return signature.Verdict{}, false, nil
	}
	index, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil || !desc.MediaType.IsIndex() {
		v.fail(where, "not an image index (%s): %v", desc.MediaType, err)
		return signature.Verdict{}, false, nil
	}
	return v.bundles(ctx, signature.LayoutReferrersTag, index.Manifests)
}

// referrersAPI is step 3: one GET of the referrers API.
func (v *sigSearch) referrersAPI(ctx context.Context) (signature.Verdict, bool, error) {
	index, err := v.fetchReferrers(ctx)
	if err != nil || index == nil {
		return signature.Verdict{}, false, err
	}
	return v.bundles(ctx, signature.LayoutReferrers, index.Manifests)
}

// fetchReferrers GETs /v2/<repo>/referrers/<digest>; nil when the registry has no referrers
// API or lists no referrer.
func (v *sigSearch) fetchReferrers(ctx context.Context) (*v1.IndexManifest, error) {
	where := "referrers API"
	reg := v.repo.Registry
	challenge, err := transport.Ping(ctx, reg, v.r.run) // the lookup's version check, replayed
	if err != nil {
		return nil, fmt.Errorf("%s: version check: %w", where, err)
	}
	d := v.repo.Digest(v.digest)
	if strings.EqualFold(challenge.Scheme, "basic") {
		idx, err := remote.Referrers(d, remote.Reuse(v.r.puller), remote.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		return m, nil
	}
	// The lookup's own credentials: its token (kept per registry and identity) is replayed.
	auth, err := authn.Resolve(ctx, v.r.keychain, v.repo)
	if err != nil {
		return nil, fmt.Errorf("%s: credentials: %w", where, err)
	}
	tr, err := transport.NewWithContext(ctx, reg, auth, v.r.run, []string{v.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	scheme := "https"
	if challenge.Insecure {
		scheme = "http"
	}
	u := fmt.Sprintf("%s://%s/v2/%s/referrers/%s", scheme, reg.RegistryStr(), v.repo.RepositoryStr(), v.digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	req.Header.Set("Accept", string(types.OCIImageIndex))
	resp, err := (&http.Client{Transport: tr, CheckRedirect: noRedirect}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(
		resp,
		http.StatusOK,
		http.StatusNotFound,
		http.StatusBadRequest,
		http.StatusNotAcceptable,
	); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(mt) != string(types.OCIImageIndex) {
		return nil, nil // no referrers API (as go-containerregistry judges it)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSignatureObject+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading: %w", where, err)
	}
	if len(b) > maxSignatureObject {
		v.fail(where, "index of more than %d bytes", maxSignatureObject)
		return nil, nil
	}
	index, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		v.fail(where, "parsing the index: %v", err)
		return nil, nil
	}
	return index, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// referrerManifest is an OCI 1.1 image manifest with its artifactType.
type referrerManifest struct {
	MediaType    types.MediaType   `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       v1.Descriptor     `json:"config"`
	Layers       []v1.Descriptor   `json:"layers"`
	Annotations  map[string]string `json:"annotations"`
}

// bundles examines the sigstore bundle referrers among descs, newest (last) first.
func (v *sigSearch) bundles(
	ctx context.Context,
	layout signature.Layout,
	descs []v1.Descriptor,
) (signature.Verdict, bool, error) {
	examined := 0
	for _, d := range slices.Backward(descs) {
		if !maybeBundle(d) {
			continue
		}
		where := fmt.Sprintf("%s referrer %s", layout, d.Digest)
		if examined == maxCandidates {
			v.fail(string(layout), "more than %d referrers, the older ones not examined", maxCandidates)
			break
		}
		examined++
		if d.Size <= 0 || d.Size > maxSignatureObject {
			v.fail(where, "manifest of %d bytes, want 1 to %d", d.Size, maxSignatureObject)
			continue
		}
		desc, err := v.r.puller.Get(ctx, v.repo.Digest(d.Digest.String()))
		if notFound(err) {
			v.fail(where, "listed but its manifest is absent")
			continue
		}
		if err != nil {
			return signature.Verdict{}, false, fmt.Errorf("reading %s: %w", where, err)
		}
		var m referrerManifest
		if err := json.Unmarshal(desc.Manifest, &m); err != nil {
			v.fail(where, "parsing the manifest: %v", err)
			continue
		}
		isBundle := strings.HasPrefix(m.ArtifactType, signature.BundleMediaTypePrefix) ||
			slices.ContainsFunc(m.Layers, func(l v1.Descriptor) bool {
				return strings.HasPrefix(string(l.MediaType), signature.BundleMediaTypePrefix)
			})
		if !isBundle {
			examined-- // another tool's referrer (an SBOM, a Notation signature): not a candidate
			continue
		}
		if pt, ok := m.Annotations[signature.BundlePredicateTypeAnnotation]; ok && pt != signature.CosignSignPredicateType {
			examined-- // an attestation (cosign attest), not a signature
			continue
		}
		if len(m.Layers) != 1 || !strings.HasPrefix(string(m.Layers[0].MediaType), signature.BundleMediaTypePrefix) {
			v.fail(where, "a bundle referrer must have exactly one bundle layer, it has %d layers", len(m.Layers))
			continue
		}
		blob, ok, err := v.blob(ctx, where, m.Layers[0])
		if err != nil {
			return signature.Verdict{}, false, err
		}
		if !ok {
			continue
		}
		key, err := signature.VerifyBundle(blob, v.digest, v.keys)
		if err != nil {
			v.fail(where, "%s", detail(err))
			continue
		}
		return signature.Verdict{Layout: layout, Key: key}, true, nil
	}
	return signature.Verdict{}, false, nil
}

// maybeBundle judges an index entry before its manifest is fetched: another tool's artifact type
// or cosign's annotation of another predicate rule it out. The manifest has the last word
// (go-containerregistry's registry reports the config media type as artifactType).
func maybeBundle(d v1.Descriptor) bool {
	if pt, ok := d.Annotations[signature.BundlePredicateTypeAnnotation]; ok && pt != signature.CosignSignPredicateType {
		return false
	}
	switch {
	case d.MediaType != "" && d.MediaType != types.OCIManifestSchema1:
		return false
	case d.ArtifactType == "", d.ArtifactType == emptyConfigMediaType,
		strings.HasPrefix(d.ArtifactType, signature.BundleMediaTypePrefix):
		return true
	}
	return false
}

// sigTag is step 2: tag sha256-<hex>.sig, each layer a simple-signing payload.
func (v *sigSearch) sigTag(ctx context.Context) (signature.Verdict, bool, error) {
	where := "sig tag sha256-" + v.hex + ".sig"
	desc, err := v.r.puller.Get(ctx, v.repo.Tag("sha256-"+v.hex+".sig"))
	if notFound(err) {
		return signature.Verdict{}, false, nil
	}
	if err != nil {
		return signature.Verdict{}, false, fmt.Errorf("reading %s: %w", where, err)
	}
	if len(desc.Manifest) > maxSignatureObject {
		v.fail(where, "manifest of %d bytes, more than %d", len(desc.Manifest), maxSignatureObject)
		return signature.Verdict{}, false, nil
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil || !desc.MediaType.IsImage() {
		v.fail(where, "not an image manifest (%s): %v", desc.MediaType, err)
		return signature.Verdict{}, false, nil
	}
	if len(m.Layers) == 0 {
		v.fail(where, "no layers")
	}
	for i, l := range slices.Backward(m.Layers) {
		lwhere := fmt.Sprintf("%s layer %d", where, i)
		if len(m.Layers)-i > maxCandidates {
			v.fail(where, "more than %d layers, the older ones not examined", maxCandidates)
			break
		}
		sig, ok := l.Annotations[signature.SignatureAnnotation]
		if !ok {
			v.fail(lwhere, "no %s annotation", signature.SignatureAnnotation)
			continue
		}
		payload, ok, err := v.blob(ctx, lwhere, l)
		if err != nil {
			return signature.Verdict{}, false, err
		}
		if !ok {
			continue
		}
		key, err := signature.VerifySimpleSigning(payload, sig, v.digest, v.repo.Name(), v.keys)
		if err != nil {
			v.fail(lwhere, "%s", detail(err))
			continue
		}
		return signature.Verdict{Layout: signature.LayoutSigTag, Key: key}, true, nil
	}
	return signature.Verdict{}, false, nil
}

// blob reads the blob l describes, at most maxSignatureObject bytes, and checks its sha256. ok
// is false (and the failure recorded) for a blob that is too large, absent or not what l says.
func (v *sigSearch) blob(ctx context.Context, where string, l v1.Descriptor) ([]byte, bool, error) {
	if l.Digest.Algorithm != "sha256" {
		v.fail(where, "blob digest %s is not sha256", l.Digest)
		return nil, false, nil
	}
	b, err := v.r.readBlob(ctx, v.repo, "blob", l, maxSignatureObject)
	var tooLarge *TooLargeError
	var mismatch *blobMismatchError
	switch {
	case err == nil:
		return b, true, nil
	case errors.As(err, &tooLarge):
		v.fail(where, "blob of %d bytes, want 1 to %d", l.Size, maxSignatureObject)
	case errors.As(err, &mismatch):
		v.fail(where, "%v", mismatch)
	case notFound(err):
		v.fail(where, "blob %s absent", l.Digest)
	default:
		return nil, false, fmt.Errorf("reading %s blob: %w", where, err)
	}
	return nil, false, nil
}

// detail is a verification failure without the repetition of digest and keys.
func detail(err error) string {
	var e *signature.Error
	if errors.As(err, &e) && e.Detail != "" {
		return e.Detail
	}
	return err.Error()
}

// notFound reports whether err says the manifest or blob is not there: 404, NAME_UNKNOWN,
// MANIFEST_UNKNOWN or BLOB_UNKNOWN.
func notFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		switch d.Code {
		case transport.NameUnknownErrorCode, transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode:
			return true
		}
	}
	return false
}
