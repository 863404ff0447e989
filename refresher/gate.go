package refresher

import (
	"context"
	"fmt"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

// gates are the checks a digest must pass before a change applies it: a trusted signature
// (spec.verification) and the required platforms (spec.platforms).
type gates struct {
	cfg        *config.RefreshConfig
	resolver   *registry.Resolver
	signatures *signatureGate // nil when no image needs a signature
}

// gate checks every digest the plan would apply (restart, update-env, fill) and not checked yet
// this tick: first its signature, when the image needs one (see signatureGate), then the
// required platforms (one GET of its manifest, plus its config blob for a single-platform image,
// see registry.CheckPlatforms). A refused digest — or one the registry could not describe —
// becomes the image's lookup error, so its image fails (reason signature-missing,
// signature-invalid or platform-missing) and, for a rollout-restart image, no other change of
// the target rolls the pods out while the tag would pull it. It reports whether any image failed
// the gate, so the target must be planned again. Steady ticks send no request.
func (t *target) gate(ctx context.Context, g gates, p tickSettings) bool {
	refused := false
	for i := range t.images {
		ti := &t.images[i]
		if ti.report.Decision == DecisionRolledBack && ti.noRollback == "" && g.resolver != nil {
			if reason := t.checkRollback(ctx, g, ti, p); reason != "" {
				ti.noRollback, refused = reason, true
			}
			continue
		}
		if ti.gated || ti.lookupErr != nil || !appliesDigest(ti.report.Decision) {
			continue // checked, failed, or not applying a digest this tick (waiting, soaking)
		}
		ti.gated = true
		if err := t.checkDigest(ctx, g, ti, p); err != nil {
			ti.lookupErr, ti.refused, refused = err, ti.report.Decision, true
		}
	}
	return refused
}

func (t *target) checkDigest(ctx context.Context, g gates, ti *targetImage, p tickSettings) error {
	rep := ti.report
	if g.signatures != nil && g.cfg.VerificationRequired(ti.image) {
		prev := parseStatus(t.dep.Annotations[ti.image.StatusAnnotation()], p.now)
		check := g.signatures.check(ctx, ti.image, rep.Digest, prev.Refused, p.now)
		rep.Signature = check
		if check.err != nil {
			return check.err
		}
	}
	if len(g.cfg.Spec.Platforms) == 0 || g.resolver == nil {
		return nil
	}
	return g.resolver.CheckPlatforms(ctx, ti.image.Reference(), rep.Digest, g.cfg.Spec.Platforms)
}

// checkRollback is the rollback target's check: the previous digest comes from the status
// annotation, which anyone who may edit the Deployment can write, so it is rolled back to only
// when the registry serves it in the image's own repository (one HEAD) and, when the image
// needs a signature (spec.verification), a trusted key signed it — checked again, not taken
// from the annotation's word. Only when a rollback is due. It returns why not, "" when it may.
func (t *target) checkRollback(ctx context.Context, g gates, ti *targetImage, p tickSettings) string {
	prev := parseStatus(t.dep.Annotations[ti.image.StatusAnnotation()], p.now)
	if err := g.resolver.Serves(ctx, ti.image.Repository, prev.Previous); err != nil {
		return fmt.Sprintf("the registry does not serve it (%v)", err)
	}
	if g.signatures != nil && g.cfg.VerificationRequired(ti.image) {
		if check := g.signatures.check(ctx, ti.image, prev.Previous, Refusal{}, p.now); check.err != nil {
			return fmt.Sprintf("no trusted signature (%v)", check.err)
		}
	}
	return ""
}
