package refresher

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

// SignatureState is what the signature gate found for the digest an image would apply.
type SignatureState string

const (
	// SignatureVerified: one of the trusted keys signed the digest.
	SignatureVerified SignatureState = "verified"
	// SignatureUnsigned: no signature of the digest was found (signature-missing).
	SignatureUnsigned SignatureState = "unsigned"
	// SignatureInvalid: signatures were found, none verifies by a trusted key for this digest and
	// repository (signature-invalid).
	SignatureInvalid SignatureState = "invalid"
	// SignatureUnknown: the registry could not answer; no verdict.
	SignatureUnknown SignatureState = "unknown"
)

// SignatureCheck is the signature gate's answer for one digest.
type SignatureCheck struct {
	State SignatureState
	// Layout is where the verifying signature was found, Key the key that verified it.
	Layout signature.Layout
	Key    string
	// Remembered: the verdict is the status annotation's (Status.Refused), nothing was fetched.
	Remembered bool
	err        error
	// refusal is what the status remembers of an unsigned or invalid verdict.
	refusal Refusal
}

// signatureGate verifies, for one tick, the digests that images needing a signature would
// apply. Each repository@digest is verified once per tick, whichever targets share it, and a
// digest refused earlier is not fetched again until the tag moves, the keys change or
// spec.verification.recheckAfter passes (on Docker Hub a GET of a signature manifest is a pull).
type signatureGate struct {
	resolver *registry.Resolver
	keys     []signature.PublicKey
	names    []string
	keySet   string
	recheck  time.Duration

	mu       sync.Mutex
	verdicts map[string]func() (signature.Verdict, error)
}

func newSignatureGate(
	cfg *config.RefreshConfig,
	resolver *registry.Resolver,
	keys []signature.PublicKey,
) (*signatureGate, error) {
	needed := false
	for _, img := range cfg.Floating() {
		needed = needed || cfg.VerificationRequired(img)
	}
	if !needed {
		return nil, nil
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf(
			"spec.verification is set but no public keys were given (the CronJob mounts ConfigMap %s at %s)",
			cfg.Spec.Verification.KeysConfigMap,
			config.KeysMountPath,
		)
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.Name
	}
	return &signatureGate{
		resolver: resolver, keys: keys, names: names, keySet: signature.KeySetID(keys),
		recheck: cfg.Spec.Verification.EffectiveRecheckAfter(), verdicts: map[string]func() (signature.Verdict, error){},
	}, nil
}

// check verifies digest, which img's tag resolved to; refused is the image's remembered refusal.
func (g *signatureGate) check(
	ctx context.Context,
	img config.Image,
	digest string,
	refused Refusal,
	now time.Time,
) SignatureCheck {
	if until, ok := g.remembered(refused, digest, now); ok {
		err := &signature.Error{Reason: refused.Reason, Digest: digest, Repository: img.Repository, Keys: g.names,
			Detail: fmt.Sprintf(
				"verdict of %s remembered, checked again after %s or when the tag moves or the keys change",
				refused.At,
				until.Format(time.RFC3339),
			)}
		return SignatureCheck{State: stateOf(err), Remembered: true, err: err, refusal: refused}
	}
	key := img.Repository + "@" + digest
	g.mu.Lock()
	verify, ok := g.verdicts[key]
	if !ok {
		verify = sync.OnceValues(func() (signature.Verdict, error) {
			return g.resolver.VerifySignature(ctx, img.Reference(), digest, g.keys)
		})
		g.verdicts[key] = verify
	}
	g.mu.Unlock()
	verdict, err := verify()
	if err != nil {
		check := SignatureCheck{State: stateOf(err), err: fmt.Errorf("verifying the signature of %s: %w", digest, err)}
		if reason := signature.Reason(err); reason != "" {
			check.refusal = Refusal{Digest: digest, Reason: reason, Keys: g.keySet, At: now.UTC().Format(time.RFC3339)}
		}
		return check
	}
	return SignatureCheck{State: SignatureVerified, Layout: verdict.Layout, Key: verdict.Key}
}

// remembered reports whether refused still stands for digest at now, and until when.
func (g *signatureGate) remembered(refused Refusal, digest string, now time.Time) (time.Time, bool) {
	if refused.Digest != digest || refused.Keys != g.keySet {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339, refused.At)
	if err != nil {
		return time.Time{}, false
	}
	until := at.Add(g.recheck)
	return until, now.Before(until)
}

// String is how the plan and the status view show the check: "verified (referrers-tag, release.pub)",
// "unsigned", "invalid", "unknown"; "-" when no check was made.
func (c SignatureCheck) String() string {
	switch {
	case c.State == "":
		return "-"
	case c.Layout != "":
		return fmt.Sprintf("%s (%s, %s)", c.State, c.Layout, c.Key)
	case c.Remembered:
		return string(c.State) + " (remembered)"
	}
	return string(c.State)
}

func stateOf(err error) SignatureState {
	switch signature.Reason(err) {
	case signature.ReasonMissing:
		return SignatureUnsigned
	case signature.ReasonInvalid:
		return SignatureInvalid
	}
	return SignatureUnknown
}
