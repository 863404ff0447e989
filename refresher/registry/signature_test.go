package registry

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tracebloc/image-refresh/internal/signature"
)

// sigRegistry is go-containerregistry's in-memory registry, counting requests; fail answers 500
// to the requests whose path contains it.
type sigRegistry struct {
	host string
	mu   sync.Mutex
	reqs []string
	fail string
	// bearer: challenge for a token from /token, as GHCR does.
	bearer bool
}

const testToken = "t0ken"

func newSigRegistry(t *testing.T, referrers bool) *sigRegistry {
	t.Helper()
	s := &sigRegistry{}
	backend := ggcrregistry.New(
		ggcrregistry.Logger(log.New(io.Discard, "", 0)),
		ggcrregistry.WithReferrersSupport(referrers),
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Method+" "+r.URL.Path)
		fail := s.fail != "" && strings.Contains(r.URL.Path, s.fail)
		bearer := s.bearer
		s.mu.Unlock()
		if bearer && r.URL.Path == "/token" {
			_ = json.NewEncoder(w).Encode(map[string]string{"token": testToken})
			return
		}
		if bearer && r.Header.Get("Authorization") != "Bearer "+testToken {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, r.Host))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		if fail {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.host = strings.TrimPrefix(srv.URL, "http://")
	return s
}

func (s *sigRegistry) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

func (s *sigRegistry) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
}

// testSigner signs as cosign does: ECDSA P-256 ASN.1 over SHA-256, pure Ed25519.
type testSigner struct {
	priv crypto.Signer
	key  signature.PublicKey
}

func newTestSigner(t *testing.T, keyName string, ed bool) testSigner {
	t.Helper()
	var priv crypto.Signer
	var err error
	if ed {
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	} else {
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	key, err := signature.ParsePublicKey(keyName, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return testSigner{priv: priv, key: key}
}

func (s testSigner) sign(t *testing.T, msg []byte) string {
	t.Helper()
	var sig []byte
	var err error
	switch k := s.priv.(type) {
	case *ecdsa.PrivateKey:
		h := sha256.Sum256(msg)
		sig, err = ecdsa.SignASN1(rand.Reader, k, h[:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// sigLayer is one .sig layer: a simple-signing payload and its signature.
type sigLayer struct{ payload, sig string }

func simpleSigningLayer(t *testing.T, s testSigner, digest, dockerRef string) sigLayer {
	t.Helper()
	p, _ := json.Marshal(map[string]any{"critical": map[string]any{
		"identity": map[string]string{"docker-reference": dockerRef},
		"image":    map[string]string{"docker-manifest-digest": digest},
		"type":     signature.SimpleSigningType,
	}, "optional": nil})
	return sigLayer{payload: string(p), sig: s.sign(t, p)}
}

// pushSig writes tag sha256-<hex>.sig as cosign 2 does: an OCI image whose layers are the
// payloads, each with its signature annotation.
func pushSig(t *testing.T, repo name.Repository, digest string, layers ...sigLayer) {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:       static.NewLayer([]byte(l.payload), types.MediaType(signature.SimpleSigningMediaType)),
			Annotations: map[string]string{signature.SignatureAnnotation: l.sig},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(repo.Tag(strings.Replace(digest, ":", "-", 1)+".sig"), img); err != nil {
		t.Fatal(err)
	}
}

// cosignBundle is a bundle v0.3 as cosign 3 sign writes it with a key.
func cosignBundle(t *testing.T, s testSigner, digest, predicateType string) []byte {
	t.Helper()
	st, _ := json.Marshal(map[string]any{
		"_type":         signature.InTotoStatementType,
		"subject":       []any{map[string]any{"digest": map[string]string{"sha256": strings.TrimPrefix(digest, "sha256:")}}},
		"predicateType": predicateType,
		"predicate":     map[string]any{},
	})
	b, _ := json.Marshal(map[string]any{
		"mediaType":            signature.BundleMediaType,
		"verificationMaterial": map[string]any{"publicKey": map[string]string{"hint": "aGludA=="}},
		"dsseEnvelope": map[string]any{
			"payload":     base64.StdEncoding.EncodeToString(st),
			"payloadType": signature.InTotoPayloadType,
			"signatures":  []any{map[string]string{"sig": s.sign(t, signature.PAE(signature.InTotoPayloadType, st))}},
		},
	})
	return b
}

type rawManifest struct {
	raw []byte
	mt  types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mt, nil }

// pushReferrer writes a referrer of digest as cosign 3 does (pkg/oci/remote.WriteReferrer):
// empty config, one layer of layerType, subject, artifactType. go-containerregistry's Put
// updates the fallback tag where the registry has no referrers API, as for cosign.
func pushReferrer(
	t *testing.T,
	repo name.Repository,
	digest, artifactType, layerType string,
	blob []byte,
	annotations map[string]string,
) {
	t.Helper()
	subject, err := remote.Head(repo.Digest(digest))
	if err != nil {
		t.Fatal(err)
	}
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	layer := static.NewLayer(blob, types.MediaType(layerType))
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(repo, l); err != nil {
			t.Fatal(err)
		}
	}
	desc := func(l v1.Layer) map[string]any {
		d, _ := l.Digest()
		n, _ := l.Size()
		mt, _ := l.MediaType()
		return map[string]any{"mediaType": mt, "digest": d.String(), "size": n}
	}
	config := desc(cfg)
	config["artifactType"] = artifactType
	raw, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "artifactType": artifactType,
		"config": config, "layers": []any{desc(layer)},
		"subject": map[string]any{
			"mediaType": subject.MediaType,
			"digest":    subject.Digest.String(),
			"size":      subject.Size,
		},
		"annotations": annotations,
	})
	h, _, _ := v1.SHA256(bytes.NewReader(raw))
	if err := remote.Put(repo.Digest(h.String()), rawManifest{raw, types.OCIManifestSchema1}); err != nil {
		t.Fatal(err)
	}
}

func pushBundle(t *testing.T, repo name.Repository, digest string, bundle []byte) {
	t.Helper()
	pushReferrer(t, repo, digest, signature.BundleMediaType, signature.BundleMediaType, bundle,
		map[string]string{
			"dev.sigstore.bundle.content":           "dsse-envelope",
			signature.BundlePredicateTypeAnnotation: signature.CosignSignPredicateType,
		})
}

// TestVerifySignature: each layout cosign writes, found and verified within the request budget
// (counted after the lookup, whose version check the verification reuses).
func TestVerifySignature(t *testing.T) {
	release, other := newTestSigner(t, "release.pub", false), newTestSigner(t, "other.pub", true)
	edKey := newTestSigner(t, "ed.pub", true)
	for _, tc := range []struct {
		name      string
		referrers bool // the registry has the referrers API
		index     bool // the tag names an image index
		keys      []testSigner
		sign      func(t *testing.T, repo name.Repository, digest string)
		want      signature.Verdict
		reason    string // want a refusal
		detail    string
		requests  int
	}{
		{name: "bundle under the fallback tag", keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushBundle(t, repo, d, cosignBundle(t, release, d, signature.CosignSignPredicateType))
			},
			want: signature.Verdict{Layout: signature.LayoutReferrersTag, Key: "release.pub"}, requests: 3},
		{name: "sig tag, Ed25519, second key", keys: []testSigner{release, edKey},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushSig(t, repo, d, simpleSigningLayer(t, edKey, d, repo.Name()))
			},
			want: signature.Verdict{Layout: signature.LayoutSigTag, Key: "ed.pub"}, requests: 3},
		{name: "unsigned", keys: []testSigner{release}, sign: func(*testing.T, name.Repository, string) {},
			reason: signature.ReasonMissing, detail: "looked in", requests: 3},
		{name: "signed index", index: true, keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushBundle(t, repo, d, cosignBundle(t, release, d, signature.CosignSignPredicateType))
			},
			want: signature.Verdict{Layout: signature.LayoutReferrersTag, Key: "release.pub"}, requests: 3},
		{name: "only a child of the index signed", index: true, keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				child := childDigest(t, repo, d)
				pushSig(t, repo, child, simpleSigningLayer(t, release, child, repo.Name()))
				pushBundle(t, repo, child, cosignBundle(t, release, child, signature.CosignSignPredicateType))
			},
			reason: signature.ReasonMissing, requests: 3},
		{name: "bundle by another key", keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushBundle(t, repo, d, cosignBundle(t, other, d, signature.CosignSignPredicateType))
			},
			reason: signature.ReasonInvalid, detail: "does not verify", requests: 5},
		{name: "bundle of another digest", keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushBundle(t, repo, d, cosignBundle(t, release, otherDigest, signature.CosignSignPredicateType))
			},
			reason: signature.ReasonInvalid, detail: "no subject", requests: 5},
		{name: "attestation and SBOM skipped by their index entries, sig tag verifies", keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushReferrer(
					t,
					repo,
					d,
					signature.BundleMediaType,
					signature.BundleMediaType,
					cosignBundle(t, release, d, "https://slsa.dev/provenance/v1"),
					map[string]string{signature.BundlePredicateTypeAnnotation: "https://slsa.dev/provenance/v1"},
				)
				pushReferrer(t, repo, d, "application/spdx+json", "application/spdx+json", []byte("{}"), nil)
				pushSig(t, repo, d, simpleSigningLayer(t, release, d, repo.Name()))
			},
			want: signature.Verdict{Layout: signature.LayoutSigTag, Key: "release.pub"}, requests: 3},
		{name: "sig of another repository", keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushSig(t, repo, d, simpleSigningLayer(t, release, d, repo.Registry.Name()+"/someone/else"))
			},
			reason: signature.ReasonInvalid, detail: "docker-reference", requests: 4},
		{name: "sig with two layers, the older verifying", keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushSig(t, repo, d, simpleSigningLayer(t, release, d, repo.Name()), simpleSigningLayer(t, other, d, repo.Name()))
			},
			want: signature.Verdict{Layout: signature.LayoutSigTag, Key: "release.pub"}, requests: 4},
		{name: "referrers API: bundle", referrers: true, keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushBundle(t, repo, d, cosignBundle(t, release, d, signature.CosignSignPredicateType))
			},
			want: signature.Verdict{Layout: signature.LayoutReferrers, Key: "release.pub"}, requests: 5},
		{name: "referrers API: sig tag", referrers: true, keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushSig(t, repo, d, simpleSigningLayer(t, release, d, repo.Name()))
			},
			want: signature.Verdict{Layout: signature.LayoutSigTag, Key: "release.pub"}, requests: 3},
		{
			name:      "referrers API: unsigned",
			referrers: true,
			keys:      []testSigner{release},
			sign:      func(*testing.T, name.Repository, string) {},
			reason:    signature.ReasonMissing,
			requests:  3,
		},
		{name: "referrers API: bundle by another key", referrers: true, keys: []testSigner{release},
			sign: func(t *testing.T, repo name.Repository, d string) {
				pushBundle(t, repo, d, cosignBundle(t, other, d, signature.CosignSignPredicateType))
			},
			reason: signature.ReasonInvalid, detail: "referrers-api referrer", requests: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newSigRegistry(t, tc.referrers)
			ref := reg.host + "/tracebloc/ingestor:prod"
			tag, _ := name.NewTag(ref)
			var art remote.Taggable
			var err error
			if tc.index {
				art, err = random.Index(128, 1, 2)
			} else {
				art, err = random.Image(128, 1)
			}
			if err != nil {
				t.Fatal(err)
			}
			if idx, ok := art.(v1.ImageIndex); ok {
				err = remote.WriteIndex(tag, idx)
			} else {
				err = remote.Write(tag, art.(v1.Image))
			}
			if err != nil {
				t.Fatal(err)
			}
			r := newSigResolver(t)
			res := r.Resolve(context.Background(), []string{ref})[0]
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			tc.sign(t, tag.Context(), res.Digest)
			reg.reset()

			var keys []signature.PublicKey
			for _, k := range tc.keys {
				keys = append(keys, k.key)
			}
			verdict, err := r.VerifySignature(context.Background(), ref, res.Digest, keys)
			switch {
			case tc.reason == "" && (err != nil || verdict != tc.want):
				t.Errorf("VerifySignature = %+v, %v; want %+v", verdict, err, tc.want)
			case tc.reason != "" && (signature.Reason(err) != tc.reason || !strings.Contains(fmt.Sprint(err), tc.detail)):
				t.Errorf("VerifySignature = %+v, %v; want %s with %q", verdict, err, tc.reason, tc.detail)
			case tc.reason != "" && !strings.Contains(err.Error(), tc.reason+": no signature of "+res.Digest):
				t.Errorf("error %q does not name the reason and digest", err)
			}
			if got := reg.requests(); len(got) != tc.requests {
				t.Errorf("%d requests, want %d:\n  %s", len(got), tc.requests, strings.Join(got, "\n  "))
			}
		})
	}
}

const otherDigest = "sha256:2222222222222222222222222222222222222222222222222222222222222222"

func newSigResolver(t *testing.T) *Resolver {
	t.Helper()
	r, err := NewResolver(
		Options{Transport: http.DefaultTransport.(*http.Transport).Clone(), Keychain: authn.NewMultiKeychain()},
	)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func childDigest(t *testing.T, repo name.Repository, index string) string {
	t.Helper()
	idx, err := remote.Index(repo.Digest(index))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Manifests[0].Digest.String()
}

// TestVerifySignatureRegistryErrors: a registry that cannot answer gives no verdict, and its
// host is not asked again in the run.
func TestVerifySignatureRegistryErrors(t *testing.T) {
	release := newTestSigner(t, "release.pub", false)
	for _, fail := range []string{"/manifests/sha256-", ".sig", "/referrers/"} {
		t.Run(fail, func(t *testing.T) {
			reg := newSigRegistry(t, true)
			ref := reg.host + "/tracebloc/ingestor:prod"
			tag, _ := name.NewTag(ref)
			img, _ := random.Image(128, 1)
			if err := remote.Write(tag, img); err != nil {
				t.Fatal(err)
			}
			r := newSigResolver(t)
			res := r.Resolve(context.Background(), []string{ref})[0]
			reg.mu.Lock()
			reg.fail = fail
			reg.mu.Unlock()
			_, err := r.VerifySignature(context.Background(), ref, res.Digest, []signature.PublicKey{release.key})
			if err == nil || signature.Reason(err) != "" {
				t.Fatalf("VerifySignature = %v, want a registry error, no verdict", err)
			}
			reg.reset()
			if _, err := r.VerifySignature(context.Background(), ref, res.Digest, []signature.PublicKey{release.key}); err ==
				nil || len(reg.requests()) != 0 {
				t.Errorf("second verification: %v after %d requests, want skipped", err, len(reg.requests()))
			}
		})
	}
}

// TestVerifySignatureBounds: an oversized or mis-described signature blob is refused unread.
func TestVerifySignatureBounds(t *testing.T) {
	release := newTestSigner(t, "release.pub", false)
	reg := newSigRegistry(t, false)
	ref := reg.host + "/tracebloc/ingestor:prod"
	tag, _ := name.NewTag(ref)
	img, _ := random.Image(128, 1)
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	r := newSigResolver(t)
	res := r.Resolve(context.Background(), []string{ref})[0]
	big := simpleSigningLayer(t, release, res.Digest, tag.Context().Name())
	big.payload += strings.Repeat(" ", maxSignatureObject)
	pushSig(t, tag.Context(), res.Digest, big)
	reg.reset()
	_, err := r.VerifySignature(context.Background(), ref, res.Digest, []signature.PublicKey{release.key})
	if signature.Reason(err) != signature.ReasonInvalid || !strings.Contains(err.Error(), "blob of") {
		t.Fatalf("VerifySignature = %v, want %s for the oversized blob", err, signature.ReasonInvalid)
	}
	for _, q := range reg.requests() {
		if strings.Contains(q, "/blobs/") {
			t.Errorf("oversized blob fetched: %s", q)
		}
	}
	for _, bad := range []struct{ ref, digest string }{{"nota:ref:", res.Digest}, {ref, "sha256:abc"}} {
		if _, err := r.VerifySignature(context.Background(), bad.ref, bad.digest, []signature.PublicKey{release.key}); err ==
			nil || signature.Reason(err) != "" {
			t.Errorf("VerifySignature(%q, %q) = %v, want an input error", bad.ref, bad.digest, err)
		}
	}
}

// TestVerifySignatureBearer: behind a bearer challenge (as GHCR and Docker Hub send), the
// verification uses the lookup's token, the referrers API's one GET included: no new token or
// version check, three requests for an unsigned digest.
func TestVerifySignatureBearer(t *testing.T) {
	for _, referrers := range []bool{false, true} {
		t.Run(fmt.Sprintf("referrers API %v", referrers), func(t *testing.T) {
			reg := newSigRegistry(t, referrers)
			reg.bearer = true
			ref := reg.host + "/tracebloc/ingestor:prod"
			tag, _ := name.NewTag(ref)
			img, _ := random.Image(128, 1)
			if err := remote.Write(tag, img, remote.WithAuth(&authn.Bearer{Token: testToken})); err != nil {
				t.Fatal(err)
			}
			r := newSigResolver(t)
			res := r.Resolve(context.Background(), []string{ref})[0]
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			reg.reset()
			_, err := r.VerifySignature(
				context.Background(),
				ref,
				res.Digest,
				[]signature.PublicKey{newTestSigner(t, "release.pub", false).key},
			)
			if signature.Reason(err) != signature.ReasonMissing {
				t.Fatalf("VerifySignature = %v, want %s", err, signature.ReasonMissing)
			}
			if got := reg.requests(); len(got) != 3 ||
				slices.ContainsFunc(got, func(q string) bool {
					return strings.Contains(q, "/token") ||
						strings.HasSuffix(q, "/v2/")
				}) {
				t.Errorf("requests, want 3 with the lookup's token:\n  %s", strings.Join(got, "\n  "))
			}
		})
	}
}
