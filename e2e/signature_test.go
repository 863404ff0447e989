package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

// sigRegistry is a registry cosign signs in: its host and the pusher's credentials.
type sigRegistry struct {
	host   string
	pusher authn.Authenticator
}

// sigVariant is one way a signature reaches a registry: who signs, where, in which layout.
type sigVariant struct {
	name   string
	reg    sigRegistry
	signer *harness.Cosign
	flags  []string
	layout signature.Layout
	bundle bool
}

// sigKeys is the trusted key of a row and another key of the same type nobody configured.
type sigKeys struct {
	kind       string // "ecdsa" or "ed25519"
	key, other *harness.CosignKey
}

// sigExpect is a row's expected verdicts; note explains an expected divergence or a shared refusal.
type sigExpect struct {
	cosign, refresher bool
	reason            string // the refresher's signature.Reason when refused
	note              string
}

// sigCase prepares a repository and returns what to verify there.
type sigCase struct {
	name    string
	prepare func(c *sigCtx) (sigTarget, error)
	expect  func(v sigVariant, k sigKeys) sigExpect
	// ed25519ph: check that cosign's Ed25519 signature of the target is Ed25519ph by the key.
	ed25519ph bool
}

// sigTarget is a tag and the digest it resolves to, and the keys configured for it.
type sigTarget struct {
	repo, tag, digest string
	keys              []*harness.CosignKey
}

// sigCtx is one row's world.
type sigCtx struct {
	ctx  context.Context
	v    sigVariant
	k    sigKeys
	repo string // the row's own repository (without host)
}

// sigRow is one line of the agreement table.
type sigRow struct {
	c, layout, key, cosign, refresher, agree string
}

// TestCosignAgreement compares the refresher's signature gate with the real cosign CLI: images
// signed offline by cosign 3 (sigstore bundle: referrers API or fallback tag) and cosign 2 / cosign
// 3 --new-bundle-format=false (.sig tag), then tampered with go-containerregistry, are checked by
// `cosign verify --key` and by Resolver.VerifySignature; both verdicts are asserted against the
// table's expectations, which name every deliberate divergence.
func TestCosignAgreement(t *testing.T) {
	tools.Require(t, tools.DockerRegistry)
	for _, tool := range tools.Signing {
		tools.Require(t, tool)
	}
	began := time.Now()
	ctx := t.Context()
	dir := t.TempDir()
	plain, err := harness.StartRegistry(ctx, filepath.Join(dir, "registry"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	refs, err := harness.StartReferrersRegistry()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(refs.Close)
	if err := anonymousPushRefused(ctx, refs.Repository("agree/anonymous")); err != nil {
		t.Fatal(err)
	}
	auths := map[string]authn.Authenticator{plain.Host: plain.Pusher(), refs.Host: refs.Pusher()}
	cosign3, err := harness.NewCosign(tools.Cosign3, filepath.Join(dir, "cosign3"), auths)
	if err != nil {
		t.Fatal(err)
	}
	cosign2, err := harness.NewCosign(tools.Cosign2, filepath.Join(dir, "cosign2"), auths)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]sigKeys{}
	for _, kind := range []string{"ecdsa", "ed25519"} {
		var pair [2]*harness.CosignKey
		for i, prefix := range []string{kind, "other-" + kind} {
			if kind == "ecdsa" {
				pair[i], err = cosign3.GenerateKeyPair(ctx, prefix)
			} else {
				var priv ed25519.PrivateKey
				if _, priv, err = ed25519.GenerateKey(rand.Reader); err == nil {
					pair[i], err = cosign3.ImportKeyPair(ctx, prefix, priv)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		keys[kind] = sigKeys{kind: kind, key: pair[0], other: pair[1]}
	}
	plainReg := sigRegistry{host: plain.Host, pusher: plain.Pusher()}
	refsReg := sigRegistry{host: refs.Host, pusher: refs.Pusher()}
	variants := []sigVariant{
		{name: "sig-tag (cosign2, docker-registry)", reg: plainReg, signer: cosign2, layout: signature.LayoutSigTag},
		{name: "sig-tag (cosign3 --new-bundle-format=false, referrers registry)", reg: refsReg, signer: cosign3,
			flags: []string{"--new-bundle-format=false"}, layout: signature.LayoutSigTag},
		{
			name:   "referrers-tag (cosign3, docker-registry)",
			reg:    plainReg,
			signer: cosign3,
			layout: signature.LayoutReferrersTag,
			bundle: true,
		},
		{
			name:   "referrers-api (cosign3, referrers registry)",
			reg:    refsReg,
			signer: cosign3,
			layout: signature.LayoutReferrers,
			bundle: true,
		},
	}
	var (
		mu   sync.Mutex
		rows = map[string]sigRow{}
	)
	var order []string
	t.Run("rows", func(t *testing.T) {
		for ci, c := range sigCases() {
			for vi, v := range variants {
				for _, kind := range []string{"ecdsa", "ed25519"} {
					k := keys[kind]
					id := fmt.Sprintf("%02d-%d-%s", ci, vi, kind)
					order = append(order, id)
					t.Run(id, func(t *testing.T) {
						t.Parallel()
						row := runSigRow(t, c, v, k, cosign3, cosign2, fmt.Sprintf("agree/c%02d/v%d/%s", ci, vi, kind))
						mu.Lock()
						rows[id] = row
						mu.Unlock()
					})
				}
			}
		}
	})
	var table strings.Builder
	table.WriteString("| case | layout | key | cosign | refresher | agree |\n|---|---|---|---|---|---|\n")
	for _, id := range order {
		r, ok := rows[id]
		if !ok {
			r = sigRow{c: id, agree: "row did not finish"}
		}
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %s | %s |\n", r.c, r.layout, r.key, r.cosign, r.refresher, r.agree)
	}
	t.Logf("agreement of the refresher's signature gate with cosign %d rows, %s:\n%s",
		len(order), time.Since(began).Round(time.Second), table.String())
}

// runSigRow prepares one row, runs both verifiers and asserts their verdicts.
func runSigRow(t *testing.T, c sigCase, v sigVariant, k sigKeys, cosign3, cosign2 *harness.Cosign, repo string) sigRow {
	t.Helper()
	ctx := t.Context()
	want := c.expect(v, k)
	row := sigRow{c: c.name, layout: v.name, key: k.kind}
	sc := &sigCtx{ctx: ctx, v: v, k: k, repo: repo}
	target, err := c.prepare(sc)
	if err != nil {
		t.Fatalf("%s, %s, %s: preparing: %v", c.name, v.name, k.kind, err)
	}
	if c.ed25519ph && k.kind == "ed25519" {
		// The note's claim: what cosign wrote is a valid Ed25519ph signature by the key.
		if err := sc.checkEd25519ph(target.digest, k.key); err != nil {
			t.Error(err)
		}
	}
	ref := v.reg.host + "/" + target.repo + "@" + target.digest

	// cosign: verified when one of the configured keys verifies (cosign verify takes one key).
	verifiers := []*harness.Cosign{cosign3}
	if !v.bundle {
		verifiers = append(verifiers, cosign2)
	}
	var verdicts []string
	cosignOK := false
	for i, cv := range verifiers {
		ok := false
		var last string
		for _, key := range target.keys {
			res, err := cv.VerifyOffline(ctx, key, ref)
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode == 0 {
				ok = true
				break
			}
			last = lastLine(res.Stderr)
		}
		if !ok {
			t.Logf("cosign%d verify %s: %s", 3-i, ref, last)
		}
		if i == 0 {
			cosignOK = ok
		} else if ok != cosignOK {
			t.Errorf("cosign3 verify says %s, cosign2 verify %s for %s", mark(cosignOK), mark(ok), ref)
		}
		verdicts = append(verdicts, fmt.Sprintf("%s v%d", mark(ok), 3-i))
	}
	row.cosign = strings.Join(verdicts, ", ")
	if cosignOK != want.cosign {
		t.Errorf("cosign verify of %s: %s, want %s", ref, mark(cosignOK), mark(want.cosign))
	}

	// The refresher, anonymously as the CronJob pulls public images: resolve the tag, then verify.
	pubs := make([]signature.PublicKey, len(target.keys))
	for i, key := range target.keys {
		if pubs[i], err = signature.ParsePublicKey(key.Name+".pub", key.PublicPEM); err != nil {
			t.Fatalf("parsing %s: %v", key.Public, err)
		}
	}
	resolver, err := registry.NewResolver(registry.Options{Keychain: authn.NewMultiKeychain()})
	if err != nil {
		t.Fatal(err)
	}
	tagRef := v.reg.host + "/" + target.repo + ":" + target.tag
	if res := resolver.Resolve(ctx, []string{tagRef})[0]; res.Err != nil || res.Digest != target.digest {
		t.Fatalf("resolving %s: %s, %v; want %s", tagRef, res.Digest, res.Err, target.digest)
	}
	verdict, err := resolver.VerifySignature(ctx, tagRef, target.digest, pubs)
	refresherOK := err == nil
	reason := signature.Reason(err)
	switch {
	case refresherOK:
		row.refresher = fmt.Sprintf("✓ %s, %s", verdict.Layout, verdict.Key)
	case reason != "":
		row.refresher = "✗ " + reason
		t.Logf("refresher: %v", err)
	default:
		row.refresher = "error"
		t.Errorf("refresher: registry error (no verdict) for %s: %v", tagRef, err)
	}
	if refresherOK != want.refresher {
		t.Errorf("refresher verdict for %s: %s (%v), want %s", ref, mark(refresherOK), err, mark(want.refresher))
	}
	if refresherOK {
		wantKey := k.key.Name + ".pub"
		if verdict.Layout != v.layout || verdict.Key != wantKey {
			t.Errorf(
				"refresher verified %s in layout %s with key %s, want %s with %s",
				ref,
				verdict.Layout,
				verdict.Key,
				v.layout,
				wantKey,
			)
		}
	} else if reason != want.reason {
		t.Errorf("refresher reason for %s: %q, want %q", ref, reason, want.reason)
	}

	switch {
	case cosignOK == refresherOK && want.cosign == cosignOK && want.refresher == refresherOK:
		row.agree = "yes"
	case cosignOK != refresherOK && want.cosign == cosignOK && want.refresher == refresherOK:
		row.agree = "no, expected: " + want.note
	default:
		row.agree = fmt.Sprintf("**unexpected** (want cosign %s, refresher %s)", mark(want.cosign), mark(want.refresher))
	}
	if row.agree == "yes" && want.note != "" {
		row.agree += " (" + want.note + ")"
	}
	return row
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// Notes of the table.
const (
	noteEd25519 = "cosign sign signs with an Ed25519 key as Ed25519ph; " +
		"cosign verify --key and the refresher check pure Ed25519"
	noteRepo = "the refresher requires the .sig payload's docker-reference to name the verified repository; " +
		"cosign does not check it"
	noteBundle = "a bundle names no repository: both accept it in another repository"
)

// signedExpect is the expectation of a row whose configured key signed the digest.
func signedExpect(_ sigVariant, k sigKeys) sigExpect {
	if k.kind == "ed25519" {
		return sigExpect{reason: signature.ReasonInvalid, note: noteEd25519}
	}
	return sigExpect{cosign: true, refresher: true}
}

func refused(reason string) func(sigVariant, sigKeys) sigExpect {
	return func(sigVariant, sigKeys) sigExpect { return sigExpect{reason: reason} }
}

func sigCases() []sigCase {
	return []sigCase{
		{name: "signed digest", expect: signedExpect, ed25519ph: true, prepare: func(c *sigCtx) (sigTarget, error) {
			d, err := c.pushImage("v1")
			if err != nil {
				return sigTarget{}, err
			}
			return c.signed(d, "v1", c.k.key)
		}},
		{name: "signed index digest", expect: signedExpect, ed25519ph: true, prepare: func(c *sigCtx) (sigTarget, error) {
			d, _, err := c.pushIndex("v1")
			if err != nil {
				return sigTarget{}, err
			}
			return c.signed(d, "v1", c.k.key)
		}},
		{name: "child manifest signed, index verified", expect: refused(signature.ReasonMissing),
			prepare: func(c *sigCtx) (sigTarget, error) {
				d, child, err := c.pushIndex("v1")
				if err != nil {
					return sigTarget{}, err
				}
				if err := c.sign(child, c.k.key); err != nil {
					return sigTarget{}, err
				}
				return c.target(d, "v1", c.k.key), nil
			}},
		{name: "signed by a key not configured", expect: refused(signature.ReasonInvalid),
			prepare: func(c *sigCtx) (sigTarget, error) {
				d, err := c.pushImage("v1")
				if err != nil {
					return sigTarget{}, err
				}
				if err := c.sign(d, c.k.other); err != nil {
					return sigTarget{}, err
				}
				return c.target(d, "v1", c.k.key), nil
			}},
		{name: "payload tampered", expect: refused(signature.ReasonInvalid), prepare: func(c *sigCtx) (sigTarget, error) {
			return c.signedThen(func(d string) error { return c.tamper(d, true) })
		}},
		{name: "signature tampered", expect: refused(signature.ReasonInvalid), prepare: func(c *sigCtx) (sigTarget, error) {
			return c.signedThen(func(d string) error { return c.tamper(d, false) })
		}},
		{name: "signature copied from another digest", expect: refused(signature.ReasonInvalid),
			prepare: func(c *sigCtx) (sigTarget, error) {
				signedDigest, err := c.pushImage("v1")
				if err != nil {
					return sigTarget{}, err
				}
				other, err := c.pushImage("v2")
				if err != nil {
					return sigTarget{}, err
				}
				if err := c.sign(signedDigest, c.k.key); err != nil {
					return sigTarget{}, err
				}
				if err := c.copySignatureToDigest(signedDigest, other); err != nil {
					return sigTarget{}, err
				}
				return c.target(other, "v2", c.k.key), nil
			}},
		{name: "image and signature copied to another repository", expect: func(v sigVariant, k sigKeys) sigExpect {
			switch {
			case k.kind == "ed25519":
				return sigExpect{reason: signature.ReasonInvalid, note: noteEd25519}
			case v.bundle:
				return sigExpect{cosign: true, refresher: true, note: noteBundle}
			}
			return sigExpect{cosign: true, reason: signature.ReasonInvalid, note: noteRepo}
		}, prepare: func(c *sigCtx) (sigTarget, error) {
			d, err := c.pushImage("v1")
			if err != nil {
				return sigTarget{}, err
			}
			if err := c.sign(d, c.k.key); err != nil {
				return sigTarget{}, err
			}
			dst := c.repo + "-copy"
			if err := c.copyToRepository(d, "v1", dst); err != nil {
				return sigTarget{}, err
			}
			t := c.target(d, "v1", c.k.key)
			t.repo = dst
			return t, nil
		}},
		{name: "two keys configured, one signed", expect: signedExpect, prepare: func(c *sigCtx) (sigTarget, error) {
			d, err := c.pushImage("v1")
			if err != nil {
				return sigTarget{}, err
			}
			t, err := c.signed(d, "v1", c.k.key)
			t.keys = []*harness.CosignKey{c.k.other, c.k.key}
			return t, err
		}},
		{name: "unsigned", expect: refused(signature.ReasonMissing), prepare: func(c *sigCtx) (sigTarget, error) {
			d, err := c.pushImage("v1")
			return c.target(d, "v1", c.k.key), err
		}},
	}
}

func (c *sigCtx) target(digest, tag string, keys ...*harness.CosignKey) sigTarget {
	return sigTarget{repo: c.repo, tag: tag, digest: digest, keys: keys}
}

func (c *sigCtx) signed(digest, tag string, key *harness.CosignKey) (sigTarget, error) {
	if err := c.sign(digest, key); err != nil {
		return sigTarget{}, err
	}
	return c.target(digest, tag, key), nil
}

// signedThen pushes an image, signs it with the configured key and applies change to it.
func (c *sigCtx) signedThen(change func(digest string) error) (sigTarget, error) {
	d, err := c.pushImage("v1")
	if err != nil {
		return sigTarget{}, err
	}
	t, err := c.signed(d, "v1", c.k.key)
	if err != nil {
		return sigTarget{}, err
	}
	return t, change(d)
}

func (c *sigCtx) sign(digest string, key *harness.CosignKey) error {
	return c.v.signer.SignOffline(c.ctx, key, c.v.reg.host+"/"+c.repo+"@"+digest, c.v.flags...)
}

func (c *sigCtx) opts() []remote.Option {
	return []remote.Option{remote.WithAuth(c.v.reg.pusher), remote.WithContext(c.ctx)}
}

func (c *sigCtx) pushImage(tag string) (string, error) {
	img, err := random.Image(512, 1)
	if err != nil {
		return "", fmt.Errorf("generating image: %w", err)
	}
	ref, err := name.NewTag(c.v.reg.host + "/" + c.repo + ":" + tag)
	if err != nil {
		return "", fmt.Errorf("parsing tag: %w", err)
	}
	if err := remote.Write(ref, img, c.opts()...); err != nil {
		return "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	return d.String(), err
}

// pushIndex pushes a two-image index and returns its digest and its first child's.
func (c *sigCtx) pushIndex(tag string) (string, string, error) {
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		return "", "", fmt.Errorf("generating index: %w", err)
	}
	ref, err := name.NewTag(c.v.reg.host + "/" + c.repo + ":" + tag)
	if err != nil {
		return "", "", fmt.Errorf("parsing tag: %w", err)
	}
	if err := remote.WriteIndex(ref, idx, c.opts()...); err != nil {
		return "", "", fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return "", "", err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return "", "", err
	}
	return d.String(), m.Manifests[0].Digest.String(), nil
}

func sigTag(digest string) string      { return strings.Replace(digest, ":", "-", 1) + ".sig" }
func fallbackTag(digest string) string { return strings.Replace(digest, ":", "-", 1) }

// getManifest returns repo's manifest at reference (tag or digest) as the registry serves it.
func (c *sigCtx) getManifest(repo, reference string) ([]byte, types.MediaType, error) {
	ref, err := name.ParseReference(c.v.reg.host + "/" + repo + refSep(reference) + reference)
	if err != nil {
		return nil, "", fmt.Errorf("parsing %s: %w", reference, err)
	}
	desc, err := remote.Get(ref, c.opts()...)
	if err != nil {
		return nil, "", fmt.Errorf("getting %s: %w", ref, err)
	}
	return desc.Manifest, desc.MediaType, nil
}

func refSep(reference string) string {
	if strings.HasPrefix(reference, "sha256:") {
		return "@"
	}
	return ":"
}

// putManifest PUTs body under reference with a plain request: no referrers fallback upkeep.
func (c *sigCtx) putManifest(repo, reference string, mt types.MediaType, body []byte) (string, error) {
	r, err := name.NewRepository(c.v.reg.host + "/" + repo)
	if err != nil {
		return "", fmt.Errorf("parsing repository: %w", err)
	}
	tr, err := transport.NewWithContext(c.ctx, r.Registry, c.v.reg.pusher, http.DefaultTransport,
		[]string{r.Scope(transport.PushScope)})
	if err != nil {
		return "", fmt.Errorf("authenticating to push %s: %w", r, err)
	}
	u := fmt.Sprintf("http://%s/v2/%s/manifests/%s", r.RegistryStr(), r.RepositoryStr(), reference)
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPut, u, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("building PUT %s: %w", u, err)
	}
	req.Header.Set("Content-Type", string(mt))
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", fmt.Errorf("PUT %s: %w", u, err)
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusCreated, http.StatusOK); err != nil {
		return "", fmt.Errorf("PUT %s: %w", u, err)
	}
	h, _, err := v1.SHA256(bytes.NewReader(body))
	return h.String(), err
}

func (c *sigCtx) getBlob(repo string, d v1.Hash) ([]byte, error) {
	ref, err := name.NewDigest(c.v.reg.host + "/" + repo + "@" + d.String())
	if err != nil {
		return nil, fmt.Errorf("parsing blob reference: %w", err)
	}
	l, err := remote.Layer(ref, c.opts()...)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", ref, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", ref, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", ref, err)
	}
	return b, nil
}

func (c *sigCtx) putBlob(repo string, data []byte, mt types.MediaType) (v1.Hash, error) {
	r, err := name.NewRepository(c.v.reg.host + "/" + repo)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("parsing repository: %w", err)
	}
	l := static.NewLayer(data, mt)
	if err := remote.WriteLayer(r, l, c.opts()...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing blob to %s: %w", r, err)
	}
	return l.Digest()
}

// signatureManifest locates the signature artifact cosign wrote for digest in repo: the .sig
// manifest (reference = its tag) or the bundle referrer (reference = its digest).
func (c *sigCtx) signatureManifest(repo, digest string) (reference string, err error) {
	switch c.v.layout {
	case signature.LayoutSigTag:
		return sigTag(digest), nil
	case signature.LayoutReferrersTag:
		body, _, err := c.getManifest(repo, fallbackTag(digest))
		if err != nil {
			return "", err
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(body))
		if err != nil {
			return "", fmt.Errorf("parsing the fallback index of %s: %w", digest, err)
		}
		if len(idx.Manifests) != 1 {
			return "", fmt.Errorf("fallback index of %s: %d manifests, want 1", digest, len(idx.Manifests))
		}
		return idx.Manifests[0].Digest.String(), nil
	default:
		d, err := name.NewDigest(c.v.reg.host + "/" + repo + "@" + digest)
		if err != nil {
			return "", fmt.Errorf("parsing %s: %w", digest, err)
		}
		idx, err := remote.Referrers(d, c.opts()...)
		if err != nil {
			return "", fmt.Errorf("referrers of %s: %w", d, err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return "", fmt.Errorf("referrers of %s: %w", d, err)
		}
		if len(m.Manifests) != 1 {
			return "", fmt.Errorf("referrers of %s: %d, want 1", d, len(m.Manifests))
		}
		return m.Manifests[0].Digest.String(), nil
	}
}

// tamper changes the signature of digest in place, with go-containerregistry: the payload (the
// .sig layer's simple-signing JSON, the bundle's DSSE statement) when payload is set, else the
// signature bytes (the .sig layer annotation, the DSSE signature). The rest stays as cosign wrote it.
func (c *sigCtx) tamper(digest string, payload bool) error {
	reference, err := c.signatureManifest(c.repo, digest)
	if err != nil {
		return err
	}
	body, mt, err := c.getManifest(c.repo, reference)
	if err != nil {
		return err
	}
	var m v1.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("parsing signature manifest: %w", err)
	}
	var raw map[string]any // the manifest as cosign wrote it; only the layer is changed
	if err := json.Unmarshal(body, &raw); err != nil {
		return fmt.Errorf("parsing signature manifest: %w", err)
	}
	layer := raw["layers"].([]any)[0].(map[string]any)
	if !c.v.bundle {
		if !payload {
			ann := layer["annotations"].(map[string]any)
			ann[signature.SignatureAnnotation] = flipBase64(ann[signature.SignatureAnnotation].(string))
		} else {
			blob, err := c.getBlob(c.repo, m.Layers[0].Digest)
			if err != nil {
				return err
			}
			var p map[string]any
			if err := json.Unmarshal(blob, &p); err != nil {
				return fmt.Errorf("parsing simple-signing payload: %w", err)
			}
			p["optional"] = map[string]any{"tampered": "yes"}
			if err := c.replaceLayer(layer, p, m.Layers[0].MediaType); err != nil {
				return err
			}
		}
	} else {
		blob, err := c.getBlob(c.repo, m.Layers[0].Digest)
		if err != nil {
			return err
		}
		var b map[string]any
		if err := json.Unmarshal(blob, &b); err != nil {
			return fmt.Errorf("parsing bundle: %w", err)
		}
		env := b["dsseEnvelope"].(map[string]any)
		if payload {
			st, err := base64.StdEncoding.DecodeString(env["payload"].(string))
			if err != nil {
				return fmt.Errorf("decoding DSSE payload: %w", err)
			}
			var s map[string]any
			if err := json.Unmarshal(st, &s); err != nil {
				return fmt.Errorf("parsing statement: %w", err)
			}
			s["predicate"] = map[string]any{"tampered": "yes"}
			st, err = json.Marshal(s)
			if err != nil {
				return err
			}
			env["payload"] = base64.StdEncoding.EncodeToString(st)
		} else {
			sig := env["signatures"].([]any)[0].(map[string]any)
			sig["sig"] = flipBase64(sig["sig"].(string))
		}
		if err := c.replaceLayer(layer, b, m.Layers[0].MediaType); err != nil {
			return err
		}
	}
	newBody, err := json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("encoding signature manifest: %w", err)
	}
	switch c.v.layout {
	case signature.LayoutSigTag:
		_, err = c.putManifest(c.repo, reference, mt, newBody)
		return err
	case signature.LayoutReferrersTag:
		newDigest, err := c.putManifest(c.repo, sha256Of(newBody), mt, newBody)
		if err != nil {
			return err
		}
		return c.repointFallback(digest, reference, newDigest, int64(len(newBody)))
	default:
		if _, err := c.putManifest(c.repo, sha256Of(newBody), mt, newBody); err != nil {
			return err
		}
		return c.deleteManifest(c.repo, reference) // else the referrers API lists both
	}
}

// replaceLayer uploads v (JSON) as the layer's new blob and points the layer descriptor at it.
func (c *sigCtx) replaceLayer(layer map[string]any, v any, mt types.MediaType) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding tampered blob: %w", err)
	}
	h, err := c.putBlob(c.repo, data, mt)
	if err != nil {
		return err
	}
	layer["digest"], layer["size"] = h.String(), len(data)
	return nil
}

// repointFallback rewrites the fallback index of digest so that its entry old is now new.
func (c *sigCtx) repointFallback(digest, old, newDigest string, size int64) error {
	body, mt, err := c.getManifest(c.repo, fallbackTag(digest))
	if err != nil {
		return err
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return fmt.Errorf("parsing fallback index: %w", err)
	}
	for _, e := range raw["manifests"].([]any) {
		if d := e.(map[string]any); d["digest"] == old {
			d["digest"], d["size"] = newDigest, size
		}
	}
	body, err = json.Marshal(raw)
	if err != nil {
		return fmt.Errorf("encoding fallback index: %w", err)
	}
	_, err = c.putManifest(c.repo, fallbackTag(digest), mt, body)
	return err
}

func (c *sigCtx) deleteManifest(repo, digest string) error {
	ref, err := name.NewDigest(c.v.reg.host + "/" + repo + "@" + digest)
	if err != nil {
		return fmt.Errorf("parsing %s: %w", digest, err)
	}
	if err := remote.Delete(ref, c.opts()...); err != nil {
		return fmt.Errorf("deleting %s: %w", ref, err)
	}
	return nil
}

// copySignatureToDigest makes the signature of signed appear as other's: the .sig manifest or the
// fallback index copied byte for byte to other's tag; through the referrers API, the referrer
// manifest with its subject changed to other (the only way to list it for other).
func (c *sigCtx) copySignatureToDigest(signed, other string) error {
	switch c.v.layout {
	case signature.LayoutSigTag, signature.LayoutReferrersTag:
		from, to := sigTag(signed), sigTag(other)
		if c.v.layout == signature.LayoutReferrersTag {
			from, to = fallbackTag(signed), fallbackTag(other)
		}
		body, mt, err := c.getManifest(c.repo, from)
		if err != nil {
			return err
		}
		_, err = c.putManifest(c.repo, to, mt, body)
		return err
	default:
		reference, err := c.signatureManifest(c.repo, signed)
		if err != nil {
			return err
		}
		body, mt, err := c.getManifest(c.repo, reference)
		if err != nil {
			return err
		}
		subjectBody, subjectType, err := c.getManifest(c.repo, other)
		if err != nil {
			return err
		}
		var raw map[string]any
		if err := json.Unmarshal(body, &raw); err != nil {
			return fmt.Errorf("parsing referrer: %w", err)
		}
		raw["subject"] = map[string]any{"mediaType": subjectType, "digest": other, "size": len(subjectBody)}
		body, err = json.Marshal(raw)
		if err != nil {
			return fmt.Errorf("encoding referrer: %w", err)
		}
		_, err = c.putManifest(c.repo, sha256Of(body), mt, body)
		return err
	}
}

// copyToRepository copies the image at digest (tagged tag) and its signature artifacts, byte for
// byte, from the row's repository to dst in the same registry.
func (c *sigCtx) copyToRepository(digest, tag, dst string) error {
	if err := c.copyManifest(digest, dst, tag); err != nil {
		return err
	}
	switch c.v.layout {
	case signature.LayoutSigTag:
		return c.copyManifest(sigTag(digest), dst, sigTag(digest))
	case signature.LayoutReferrersTag:
		reference, err := c.signatureManifest(c.repo, digest)
		if err != nil {
			return err
		}
		if err := c.copyManifest(reference, dst, reference); err != nil {
			return err
		}
		return c.copyManifest(fallbackTag(digest), dst, fallbackTag(digest))
	default:
		reference, err := c.signatureManifest(c.repo, digest)
		if err != nil {
			return err
		}
		return c.copyManifest(reference, dst, reference)
	}
}

// copyManifest copies an image manifest's blobs and the manifest itself, or an index (whose
// children are in the same repository) with its children, to dst:as.
func (c *sigCtx) copyManifest(reference, dst, as string) error {
	body, mt, err := c.getManifest(c.repo, reference)
	if err != nil {
		return err
	}
	if mt.IsIndex() {
		idx, err := v1.ParseIndexManifest(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("parsing index %s: %w", reference, err)
		}
		for _, d := range idx.Manifests {
			if err := c.copyManifest(d.Digest.String(), dst, d.Digest.String()); err != nil {
				return err
			}
		}
	} else {
		m, err := v1.ParseManifest(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("parsing manifest %s: %w", reference, err)
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			blob, err := c.getBlob(c.repo, d.Digest)
			if err != nil {
				return err
			}
			if _, err := c.putBlob(dst, blob, d.MediaType); err != nil {
				return err
			}
		}
	}
	_, err = c.putManifest(dst, as, mt, body)
	return err
}

func sha256Of(b []byte) string {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h.String()
}

// flipBase64 flips one bit of the decoded bytes (in the middle) and re-encodes them.
func flipBase64(s string) string {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return "AAAA" + s
	}
	b[len(b)/2] ^= 0x01
	return base64.StdEncoding.EncodeToString(b)
}

// checkEd25519ph checks that the one signature cosign wrote for digest is key's Ed25519ph
// signature (RFC 8032, SHA-512 prehash) of the signed message: the payload (.sig) or the DSSE PAE.
func (c *sigCtx) checkEd25519ph(digest string, key *harness.CosignKey) error {
	reference, err := c.signatureManifest(c.repo, digest)
	if err != nil {
		return err
	}
	body, _, err := c.getManifest(c.repo, reference)
	if err != nil {
		return err
	}
	m, err := v1.ParseManifest(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("parsing the signature manifest of %s: %w", digest, err)
	}
	if len(m.Layers) != 1 {
		return fmt.Errorf("signature manifest of %s: %d layers, want 1", digest, len(m.Layers))
	}
	blob, err := c.getBlob(c.repo, m.Layers[0].Digest)
	if err != nil {
		return err
	}
	var msg, sig []byte
	if !c.v.bundle {
		msg = blob
		sig, err = base64.StdEncoding.DecodeString(m.Layers[0].Annotations[signature.SignatureAnnotation])
	} else {
		var b struct {
			DsseEnvelope struct {
				Payload, PayloadType string
				Signatures           []struct{ Sig string }
			}
		}
		if err := json.Unmarshal(blob, &b); err != nil {
			return fmt.Errorf("parsing the bundle of %s: %w", digest, err)
		}
		if len(b.DsseEnvelope.Signatures) != 1 {
			return fmt.Errorf("bundle of %s: %d DSSE signatures, want 1", digest, len(b.DsseEnvelope.Signatures))
		}
		var payload []byte
		if payload, err = base64.StdEncoding.DecodeString(b.DsseEnvelope.Payload); err != nil {
			return fmt.Errorf("decoding the DSSE payload of %s: %w", digest, err)
		}
		msg = signature.PAE(b.DsseEnvelope.PayloadType, payload)
		sig, err = base64.StdEncoding.DecodeString(b.DsseEnvelope.Signatures[0].Sig)
	}
	if err != nil {
		return fmt.Errorf("decoding the signature of %s: %w", digest, err)
	}
	pub := key.PrivateKey.(ed25519.PrivateKey).Public().(ed25519.PublicKey)
	h := sha512.Sum512(msg)
	if err := ed25519.VerifyWithOptions(pub, h[:], sig, &ed25519.Options{Hash: crypto.SHA512}); err != nil {
		return fmt.Errorf("cosign's Ed25519 signature of %s is not Ed25519ph by %s: %w", digest, key.Name, err)
	}
	if ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("cosign's Ed25519 signature of %s verifies as pure Ed25519: the note is wrong", digest)
	}
	return nil
}

// anonymousPushRefused checks that the token handshake guards repo: an anonymous push fails.
func anonymousPushRefused(ctx context.Context, repo string) error {
	img, err := random.Image(64, 1)
	if err != nil {
		return fmt.Errorf("generating image: %w", err)
	}
	ref, err := name.NewTag(repo + ":anonymous")
	if err != nil {
		return fmt.Errorf("parsing tag: %w", err)
	}
	err = remote.Write(ref, img, remote.WithContext(ctx), remote.WithAuth(authn.Anonymous))
	var terr *transport.Error
	switch {
	case err == nil:
		return fmt.Errorf("anonymous push to %s succeeded, want 401 (token auth)", ref)
	case !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized:
		return fmt.Errorf("anonymous push to %s, want 401 (token auth): %w", ref, err)
	}
	return nil
}
