package refresher

import "context"

// gate checks, when spec.platforms is set, every digest the plan would apply (restart,
// update-env, fill) and not checked yet against the required platforms: one GET of its manifest
// (plus its config blob for a single-platform image, see registry.CheckPlatforms). A refused
// digest — or one the registry could not describe — becomes the image's lookup error, so its
// image fails (reason platform-missing) and, for a rollout-restart image, no other change of
// the target rolls the pods out while the tag would pull it. It reports whether any image
// failed the gate, so the target must be planned again. Steady ticks send no GET.
func (t *target) gate(ctx context.Context, platforms []string) bool {
	if len(platforms) == 0 || t.resolver == nil {
		return false
	}
	refused := false
	for i := range t.images {
		ti := &t.images[i]
		if ti.gated || ti.lookupErr != nil || !appliesDigest(ti.report.Decision) {
			continue // checked, failed, or not applying a digest this tick (waiting, soaking)
		}
		ti.gated = true
		if err := t.resolver.CheckPlatforms(ctx, ti.image.Reference(), ti.report.Digest, platforms); err != nil {
			ti.lookupErr, ti.refused, refused = err, ti.report.Decision, true
		}
	}
	return refused
}
