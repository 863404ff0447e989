package refresher

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
)

// testKey is an ECDSA P-256 key that signs as cosign does (ASN.1 over SHA-256).
type testKey struct {
	priv *ecdsa.PrivateKey
	pub  signature.PublicKey
}

func newTestKey(t *testing.T, name string) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signature.ParsePublicKey(name, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return testKey{priv: priv, pub: pub}
}

// sign pushes a cosign .sig signature of digest in repo by k.
func (f *fixture) sign(t *testing.T, k testKey, repo, digest string) {
	t.Helper()
	payload, err := json.Marshal(map[string]any{"critical": map[string]any{
		"identity": map[string]string{"docker-reference": repo},
		"image":    map[string]string{"docker-manifest-digest": digest},
		"type":     signature.SimpleSigningType,
	}, "optional": nil})
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, h[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := f.srv.PushSimpleSigning(repo, digest, payload, base64.StdEncoding.EncodeToString(sig)); err != nil {
		t.Fatal(err)
	}
}

// registryGets counts the GETs the registry saw that are not token requests or version checks.
func (f *fixture) registryGets() int {
	n := 0
	for _, r := range f.srv.Requests() {
		if r.Method == "GET" && !r.IsToken() && !r.IsPing() {
			n++
		}
	}
	return n
}

// The signature gate: an unsigned push is refused (signature-missing, Event VerificationFailed,
// nothing but the status written), its verdict remembered (no GET, no Event on the next tick),
// re-checked after recheckAfter, and applied once signed; a signature by another key is invalid;
// a steady tick sends no GET.
func TestRunSignatureGate(t *testing.T) {
	const ingestorRepo = "ghcr.io/tracebloc/ingestor"
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		return deployment(annotations, ingestor)
	})
	f.cfg.Spec.Verification = &config.Verification{KeysConfigMap: "keys", RecheckAfter: config.Duration(time.Hour)}
	trusted, other := newTestKey(t, "release.pub"), newTestKey(t, "other.pub")
	tick := func(now time.Time) (Report, []string) {
		t.Helper()
		f.kube.ClearActions()
		opts := f.options()
		opts.Now, opts.Keys = func() time.Time { return now }, []signature.PublicKey{trusted.pub}
		report := f.run(t, opts)
		return report, f.patches(t)
	}

	f.srv.ResetRequests()
	if _, patches := tick(clock); len(patches) != 0 || f.registryGets() != 0 {
		t.Fatalf("steady tick: patches %q, %d GETs", patches, f.registryGets())
	}

	unsigned, err := f.srv.PushImage(ingestorRepo + ":prod")
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ResetRequests()
	report, patches := tick(clock)
	ing := report.Images[2]
	if ing.Decision != DecisionFailed || ing.Reason != signature.ReasonMissing || ing.Intended != DecisionUpdateEnv ||
		ing.Signature.State != SignatureUnsigned {
		t.Fatalf(
			"unsigned push: %s (%s, intended %s, signature %s): %v",
			ing.Decision,
			ing.Reason,
			ing.Intended,
			ing.Signature,
			ing.Err,
		)
	}
	if n := f.registryGets(); n > 3 {
		t.Errorf("%d GETs to find no signature, want at most 3", n)
	}
	if len(patches) != 1 || strings.Contains(patches[0], ingestorEnv) ||
		strings.Contains(patches[0], `"`+ingestorKey+`"`) {
		t.Errorf("patches %q: want the failed status only", patches)
	}
	if dep := f.deployment(t); apiEnv(dep)[ingestorEnv] == unsigned || dep.Annotations[ingestorKey] == unsigned {
		t.Fatal("the unsigned digest was applied")
	}
	st := f.status(t, "ingestor")
	if st.State != StateFailed || st.Refused.Digest != unsigned || st.Refused.Reason != signature.ReasonMissing ||
		st.Refused.Keys != signature.KeySetID([]signature.PublicKey{trusted.pub}) {
		t.Errorf("status after the refusal: %+v", st)
	}
	evs := f.events(t)[ReasonVerificationFailed]
	if len(evs) != 1 || !strings.Contains(evs[0].Note, unsigned) || !strings.Contains(evs[0].Note, "release.pub") {
		t.Fatalf("VerificationFailed events %+v: want one naming the digest and the key", evs)
	}

	// Remembered: no GET, no new Event, still refused.
	f.srv.ResetRequests()
	report, _ = tick(clock.Add(10 * time.Minute))
	if ing := report.Images[2]; ing.Decision != DecisionFailed || !ing.Signature.Remembered || f.registryGets() != 0 {
		t.Errorf("remembered refusal: %s, remembered %v, %d GETs", ing.Decision, ing.Signature.Remembered, f.registryGets())
	}
	if n := len(f.events(t)[ReasonVerificationFailed]); n != 1 {
		t.Errorf("%d VerificationFailed events after a remembered refusal, want still 1", n)
	}

	// Signed by a key not configured, re-checked after recheckAfter: invalid.
	f.sign(t, other, ingestorRepo, unsigned)
	report, _ = tick(clock.Add(61 * time.Minute))
	if ing := report.Images[2]; ing.Reason != signature.ReasonInvalid || ing.Signature.State != SignatureInvalid {
		t.Errorf("signed by another key: %s (%s): %v", ing.Decision, ing.Reason, ing.Err)
	}

	// Signed by the trusted key: applied once the verdict is re-checked.
	f.sign(t, trusted, ingestorRepo, unsigned)
	f.srv.ResetRequests()
	report, _ = tick(clock.Add(3 * time.Hour))
	// The fallback tag (absent), the .sig manifest and its payload.
	if n := f.registryGets(); n != 3 {
		t.Errorf("%d GETs to verify a .sig signature, want 3", n)
	}
	ing = report.Images[2]
	if ing.Decision != DecisionUpdateEnv || ing.Signature.State != SignatureVerified ||
		ing.Signature.Layout != signature.LayoutSigTag || ing.Signature.Key != "release.pub" {
		t.Fatalf("signed push: %s, signature %s: %v", ing.Decision, ing.Signature, ing.Err)
	}
	if dep := f.deployment(t); apiEnv(dep)[ingestorEnv] != unsigned || dep.Annotations[ingestorKey] != unsigned {
		t.Error("the signed digest was not applied")
	}
	if st := f.status(t, "ingestor"); st.Refused != (Refusal{}) {
		t.Errorf("the refusal outlived the apply: %+v", st.Refused)
	}
}

// An image with verify: false is exempt; the others still need a signature; no keys is an error.
func TestRunSignatureExemptionAndKeys(t *testing.T) {
	f := newFixture(t, deployment(nil))
	f.cfg.Spec.Verification = &config.Verification{KeysConfigMap: "keys"}
	if _, err := Run(t.Context(), f.cfg, f.options()); err == nil || !strings.Contains(err.Error(), "no public keys") {
		t.Fatalf("run without keys: %v, want an error naming the missing keys", err)
	}
	no := false
	for i := range f.cfg.Spec.Images {
		if f.cfg.Spec.Images[i].Name != "ingestor" {
			f.cfg.Spec.Images[i].Verify = &no
		}
	}
	opts := f.options()
	opts.Keys = []signature.PublicKey{newTestKey(t, "release.pub").pub}
	report, err := Run(t.Context(), f.cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	// First observation: the restart images only record (no signature needed); the ingestor's
	// fill moves what runs and its digest is unsigned.
	if got := decisions(report); got != "jobs-manager=record pods-monitor=record ingestor=failed" ||
		report.Images[2].Reason != signature.ReasonMissing {
		t.Errorf("decisions %s (%s)", got, report.Images[2].Reason)
	}
	for _, img := range report.Images[:2] {
		if img.Signature.State != "" {
			t.Errorf("%s: exempt or recording, but checked: %s", img.Name, img.Signature)
		}
	}
}

// With spec.verification, a rollback target (the status's previous digest, which anyone who
// may edit the Deployment can write) must be signed by a trusted key, checked again: an
// unsigned one the registry serves is not rolled back to — the failed digest is quarantined,
// the env left alone; a signed one is.
func TestRunRollbackTargetMustBeSigned(t *testing.T) {
	const ingestorRepo = "ghcr.io/tracebloc/ingestor"
	for _, signed := range []bool{false, true} {
		t.Run(map[bool]string{false: "unsigned previous", true: "signed previous"}[signed], func(t *testing.T) {
			trusted := newTestKey(t, "release.pub")
			var previous string
			f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
				var err error
				if previous, err = f.srv.PushImage(ingestorRepo + ":previous"); err != nil {
					t.Fatal(err)
				}
				annotations, _ := f.current()
				annotations[ingestorKey] = previous
				return deployment(annotations, env(previous))
			})
			if signed {
				f.sign(t, trusted, ingestorRepo, previous)
			}
			bad := f.digest["ingestor"]
			f.sign(t, trusted, ingestorRepo, bad)
			f.cfg.Spec.Verification = &config.Verification{KeysConfigMap: "keys"}
			tick := func(now time.Time) Report {
				t.Helper()
				f.kube.ClearActions()
				opts := f.options()
				opts.Now, opts.Keys = func() time.Time { return now }, []signature.PublicKey{trusted.pub}
				return f.run(t, opts)
			}
			if got := tick(clock).Images[2].Decision; got != DecisionUpdateEnv {
				t.Fatalf("first tick: %s", got)
			}
			stuck(t, f, 2, true)
			ing := tick(clock.Add(5 * time.Minute)).Images[2]
			dep := f.deployment(t)
			if signed {
				if ing.Decision != DecisionRolledBack || apiEnv(dep)[ingestorEnv] != previous {
					t.Errorf(
						"signed previous: %s (%q), env %s; want rolled back to %s",
						ing.Decision,
						ing.Reason,
						apiEnv(dep)[ingestorEnv],
						previous,
					)
				}
				return
			}
			if ing.Decision != DecisionQuarantined ||
				!strings.Contains(ing.Reason, "not rolled back to "+previous+": no trusted signature") ||
				apiEnv(dep)[ingestorEnv] != bad {
				t.Errorf(
					"unsigned previous: %s (%q), env %s; want quarantined without a rollback, env left at %s",
					ing.Decision,
					ing.Reason,
					apiEnv(dep)[ingestorEnv],
					bad,
				)
			}
		})
	}
}
