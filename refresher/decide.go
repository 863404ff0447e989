package refresher

import (
	"fmt"

	"github.com/tracebloc/image-refresh/internal/config"
)

// Decision is what the refresher did (or, in a dry run, would do) about one image.
type Decision string

const (
	// DecisionPinned: the config fixes the digest; the image is neither polled nor touched.
	DecisionPinned Decision = "pinned"
	// DecisionFailed: the registry lookup or the target failed, the patch was rejected, or the
	// image waited more than spec.waitLimit ticks; nothing about the image changed but its
	// status annotation. ImageReport.Intended is the decision that was not carried out.
	DecisionFailed Decision = "failed"
	// DecisionWaiting: a change (or the rollout of the last one) waits for the target: paused,
	// being deleted, its last rollout not complete, or another image's tag unresolved. Nothing
	// about the image changed but its status annotation.
	DecisionWaiting Decision = "waiting"
	// DecisionUnchanged: the target already reflects the registry digest.
	DecisionUnchanged Decision = "unchanged"
	// DecisionRecord (rollout-restart, no annotation yet): first observation; record the
	// digest, do not restart.
	DecisionRecord Decision = "record"
	// DecisionRestart (rollout-restart, annotation differs): restart the rollout, record.
	DecisionRestart Decision = "restart"
	// DecisionAdopt (set-env, no annotation, env holds a digest): record the env's digest,
	// leave the env alone; a newer registry digest is applied on the next run.
	DecisionAdopt Decision = "adopt"
	// DecisionFill (set-env, no annotation, no env digest): set the env and record.
	DecisionFill Decision = "fill"
	// DecisionUpdateEnv (set-env, annotation differs): set the env (that is the rollout;
	// no restart annotation) and record.
	DecisionUpdateEnv Decision = "update-env"
	// DecisionDrift (set-env, annotation current, env differs — a helm upgrade, rollout undo
	// or manual edit): set the env back to the recorded digest. For set-image, the container's
	// image is not repository@A (a helm upgrade renders the tag again): set it back.
	DecisionDrift Decision = "drift"
	// DecisionUpdateImage (set-image, annotation differs): set the container's image to
	// repository@R (that is the rollout) and record.
	DecisionUpdateImage Decision = "update-image"
)

// Live is the state of the target a decision starts from.
type Live struct {
	// Annotation is the target's audit annotation (A); "" when absent. A value that is not a
	// sha256 digest (a placeholder) counts as absent: the first run records, never restarts.
	Annotation string
	// Env is the value of the env var on the target container (L, set-env only); "" when
	// absent. A value that is not a sha256 digest counts as absent, so it is overwritten.
	Env string
	// Image is the digest the target container's image is pinned to (L, set-image only); ""
	// when it runs the repository by tag.
	Image string
}

// pinned is L, the digest the pod template pins for an action that pins one ("" otherwise).
func (l Live) pinned(action config.Action) string {
	switch action {
	case config.ActionSetEnv:
		return l.Env
	case config.ActionSetImage:
		return l.Image
	}
	return ""
}

// Change is what a decision writes; empty fields are left alone. Env and Image are the digest
// the env var, or the container's image (as repository@digest), is set to.
type Change struct {
	Decision   Decision
	Annotation string
	Env        string
	Image      string
	Restart    bool
}

// rollsOut reports whether the change writes the pod template: a new rollout.
func (c Change) rollsOut() bool { return c.Env != "" || c.Image != "" || c.Restart }

// Decide applies the decision table to one floating image whose tag currently points at
// digest (R). It is pure: the same inputs always give the same change. An action outside the
// table gives DecisionFailed and an error.
func Decide(action config.Action, digest string, live Live) (Change, error) {
	recorded := live.Annotation
	if !config.ValidDigest(recorded) {
		recorded = ""
	}
	switch action {
	case config.ActionRolloutRestart:
		switch recorded {
		case "":
			return Change{Decision: DecisionRecord, Annotation: digest}, nil
		case digest:
			return Change{Decision: DecisionUnchanged}, nil
		default:
			return Change{Decision: DecisionRestart, Annotation: digest, Restart: true}, nil
		}
	case config.ActionSetEnv:
		env := live.Env
		if !config.ValidDigest(env) {
			env = ""
		}
		switch {
		case recorded == "" && env != "":
			return Change{Decision: DecisionAdopt, Annotation: env}, nil
		case recorded == "":
			return Change{Decision: DecisionFill, Annotation: digest, Env: digest}, nil
		case recorded != digest:
			c := Change{Decision: DecisionUpdateEnv, Annotation: digest}
			if env != digest {
				c.Env = digest
			}
			return c, nil
		case env != digest:
			return Change{Decision: DecisionDrift, Env: digest}, nil
		default:
			return Change{Decision: DecisionUnchanged}, nil
		}
	case config.ActionSetImage:
		// The first observation records only; a container not at repository@A is drift, healed.
		switch {
		case recorded == "":
			return Change{Decision: DecisionRecord, Annotation: digest}, nil
		case recorded != digest:
			c := Change{Decision: DecisionUpdateImage, Annotation: digest}
			if live.Image != digest {
				c.Image = digest
			}
			return c, nil
		case live.Image != digest:
			return Change{Decision: DecisionDrift, Image: digest}, nil
		default:
			return Change{Decision: DecisionUnchanged}, nil
		}
	}
	// Validation admits only the actions above; a caller that skipped it learns why.
	return Change{Decision: DecisionFailed}, fmt.Errorf("unknown action %q: want one of %v", action, config.Actions)
}
