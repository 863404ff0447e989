package signature

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// What cosign writes (github.com/sigstore/cosign/v3 v3.1.2, sigstore-go v1.2.1).
const (
	// SimpleSigningMediaType is the media type of a .sig manifest's layers (pkg/types).
	SimpleSigningMediaType = "application/vnd.dev.cosignproject.cosign.simplesigning.v1+json"
	// SignatureAnnotation holds a .sig layer's base64 signature (pkg/oci/static).
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
	// SimpleSigningType is critical.type of a simple-signing payload (sigstore payload.CosignSignatureType).
	SimpleSigningType = "cosign container image signature"
	// BundleMediaType is the referrer manifest's artifactType and its one layer's media type.
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// BundleMediaTypePrefix starts every sigstore bundle media type (cosign's pkg/oci/remote.Bundle).
	BundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	// BundlePredicateTypeAnnotation is the referrer manifest's annotation naming the predicate.
	BundlePredicateTypeAnnotation = "dev.sigstore.bundle.predicateType"
	// InTotoPayloadType is the DSSE payloadType of an in-toto statement.
	InTotoPayloadType = "application/vnd.in-toto+json"
	// InTotoStatementType is the in-toto Statement v1 _type.
	InTotoStatementType = "https://in-toto.io/Statement/v1"
	// CosignSignPredicateType is the predicateType cosign sign writes (pkg/types.CosignSignPredicateType).
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
)

// The bounds sigstore-go puts on a statement (pkg/verify/signature.go).
const (
	maxSubjects       = 1024
	maxSubjectDigests = 32
)

// simpleSigning is cosign's payload (sigstore pkg/signature/payload.SimpleContainerImage).
type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
}

// VerifySimpleSigning verifies one .sig layer: signatureB64 (its SignatureAnnotation) must be a
// signature of payload by one of keys, and the payload a simple-signing claim of digest in
// repository. It returns the name of the first key (in keys order) that verifies, or an *Error
// with ReasonInvalid.
//
// Mirrored from cosign (pkg/cosign/verify.go verifyOCISignature, then SimpleClaimVerifier in
// pkg/cosign/verifiers.go): the signature is checked over the payload bytes first, then
// critical.image.docker-manifest-digest must equal digest. Divergence, stricter than cosign:
// critical.type must be SimpleSigningType and critical.identity.docker-reference must name
// repository (cosign verify checks neither; a signature copied from another repository's image
// of the same digest passes cosign but not this gate).
func VerifySimpleSigning(payload []byte, signatureB64 string, digest, repository string, keys []PublicKey) (string,
	error) {
	invalid := func(format string, args ...any) error {
		return &Error{Reason: ReasonInvalid, Digest: digest, Repository: repository, Keys: keyNames(keys),
			Detail: fmt.Sprintf(format, args...)}
	}
	sig, err := base64.StdEncoding.DecodeString(signatureB64)
	if err != nil {
		return "", invalid("signature annotation is not base64: %v", err)
	}
	key, ok := verifyAny(keys, payload, sig)
	if !ok {
		return "", invalid("the signature does not verify with any key")
	}
	var p simpleSigning
	if err := json.Unmarshal(payload, &p); err != nil {
		return "", invalid("parsing the simple-signing payload: %v", err)
	}
	if p.Critical.Type != SimpleSigningType {
		return "", invalid("payload critical.type %q, want %q", p.Critical.Type, SimpleSigningType)
	}
	if got := p.Critical.Image.DockerManifestDigest; got != digest {
		return "", invalid("the payload signs %q, not this digest", got)
	}
	if err := sameRepository(p.Critical.Identity.DockerReference, repository); err != nil {
		return "", invalid("payload critical.identity.docker-reference: %v", err)
	}
	return key, nil
}

// sameRepository checks that ref (a repository, optionally with a tag or digest) names the
// repository want, both normalized as go-containerregistry does (docker.io → index.docker.io,
// library/ for official images).
func sameRepository(ref, want string) error {
	wantRepo, err := name.NewRepository(want)
	if err != nil {
		return fmt.Errorf("parsing the configured repository %q: %w", want, err)
	}
	if ref == "" {
		return errors.New("empty")
	}
	got, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("parsing %q: %w", ref, err)
	}
	if got.Context().Name() != wantRepo.Name() {
		return fmt.Errorf("%q names repository %s, not %s", ref, got.Context().Name(), wantRepo.Name())
	}
	return nil
}

// bundle is the part of a sigstore bundle (protobuf-specs Bundle, JSON) a key-based check reads.
type bundle struct {
	MediaType            string `json:"mediaType"`
	VerificationMaterial *struct {
		PublicKey *struct {
			Hint string `json:"hint"`
		} `json:"publicKey"`
		Certificate          json.RawMessage `json:"certificate"`
		X509CertificateChain json.RawMessage `json:"x509CertificateChain"`
	} `json:"verificationMaterial"`
	DsseEnvelope *struct {
		Payload     string `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig   string `json:"sig"`
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	} `json:"dsseEnvelope"`
	MessageSignature json.RawMessage `json:"messageSignature"`
}

// statement is an in-toto Statement v1.
type statement struct {
	Type    string `json:"_type"`
	Subject []struct {
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	PredicateType string `json:"predicateType"`
}

// VerifyBundle verifies one sigstore bundle (JSON) as cosign 3 sign writes it for an image: a
// DSSE envelope over an in-toto statement whose subject is digest, signed by one of keys. It
// returns the name of the first key (in keys order) that verifies, or an *Error with
// ReasonInvalid (Repository left empty: a bundle names no repository).
//
// Mirrored from cosign verify's new-bundle path (pkg/cosign/verify.go
// verifyImageAttestationsSigstoreBundle → VerifyNewBundle → sigstore-go verify.Verifier with
// WithKey, WithNoObserverTimestamps under --insecure-ignore-tlog, then IntotoSubjectClaimVerifier
// in pkg/cosign/verifiers.go): bundle v0.3 media type (pkg/oci/remote.Bundle needs ≥ v0.3),
// public-key verification material, a DSSE envelope (not a message signature) with exactly one
// signature (sigstore-go verifyEnvelope) over PAE(payloadType, payload), payloadType in-toto
// (bundle Envelope.Statement), at most 1024 subjects of at most 32 hex digests each
// (limitSubjects, verifyEnvelopeWithArtifactDigests), and a subject whose sha256 is digest's hex.
// Divergence, stricter than cosign: _type must be InTotoStatementType and predicateType
// CosignSignPredicateType (cosign verify accepts any predicate by the key, e.g. an attestation);
// newer bundle versions than v0.3 are refused; the key hint is not used (cosign ignores it too).
func VerifyBundle(bundleJSON []byte, digest string, keys []PublicKey) (string, error) {
	invalid := func(format string, args ...any) error {
		return &Error{Reason: ReasonInvalid, Digest: digest, Keys: keyNames(keys), Detail: fmt.Sprintf(format, args...)}
	}
	var b bundle
	if err := json.Unmarshal(bundleJSON, &b); err != nil {
		return "", invalid("parsing the bundle: %v", err)
	}
	if b.MediaType != BundleMediaType && b.MediaType != BundleMediaTypePrefix+"+json;version=0.3" {
		return "", invalid("bundle media type %q, want %q", b.MediaType, BundleMediaType)
	}
	switch vm := b.VerificationMaterial; {
	case vm == nil:
		return "", invalid("the bundle has no verification material")
	case vm.PublicKey == nil:
		return "", invalid("the bundle's verification material is a certificate, not a public key (keyless signatures are " +
			"not verified)")
	}
	env := b.DsseEnvelope
	if env == nil {
		return "", invalid("the bundle has no DSSE envelope")
	}
	if env.PayloadType != InTotoPayloadType {
		return "", invalid("DSSE payloadType %q, want %q", env.PayloadType, InTotoPayloadType)
	}
	if len(env.Signatures) != 1 {
		return "", invalid("the DSSE envelope has %d signatures, want exactly 1", len(env.Signatures))
	}
	payload, err := decodeBase64(env.Payload)
	if err != nil {
		return "", invalid("DSSE payload: %v", err)
	}
	sig, err := decodeBase64(env.Signatures[0].Sig)
	if err != nil {
		return "", invalid("DSSE signature: %v", err)
	}
	key, ok := verifyAny(keys, PAE(env.PayloadType, payload), sig)
	if !ok {
		return "", invalid("the DSSE signature does not verify with any key")
	}
	var st statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return "", invalid("parsing the in-toto statement: %v", err)
	}
	if st.Type != InTotoStatementType {
		return "", invalid("statement _type %q, want %q", st.Type, InTotoStatementType)
	}
	if st.PredicateType != CosignSignPredicateType {
		return "", invalid("statement predicateType %q, want %q", st.PredicateType, CosignSignPredicateType)
	}
	if len(st.Subject) > maxSubjects {
		return "", invalid("the statement has %d subjects, more than %d", len(st.Subject), maxSubjects)
	}
	want, found := strings.TrimPrefix(digest, "sha256:"), false
	for _, s := range st.Subject {
		if len(s.Digest) > maxSubjectDigests {
			return "", invalid("a subject has %d digests, more than %d", len(s.Digest), maxSubjectDigests)
		}
		for _, d := range s.Digest {
			if _, err := hex.DecodeString(d); err != nil {
				return "", invalid("a subject digest is not hex: %q", d)
			}
		}
		found = found || s.Digest["sha256"] == want
	}
	if !found {
		return "", invalid("no subject of the statement is this digest")
	}
	return key, nil
}

// PAE is DSSE's pre-authentication encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// decodeBase64 decodes a protobuf JSON bytes field: standard or URL alphabet, padded or not.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding,
		base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// verifyAny returns the name of the first key that verifies sig over msg.
func verifyAny(keys []PublicKey, msg, sig []byte) (string, bool) {
	for _, k := range keys {
		if k.verify(msg, sig) {
			return k.Name, true
		}
	}
	return "", false
}
