package refresher

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/refresher/registry"
)

const (
	// DecisionRolledBack (set-env): the rollout of the digest this refresher last applied
	// failed (ProgressDeadlineExceeded, or not settled within spec.rolloutTimeout); the env
	// and the audit annotation are set back to the previous digest in one patch and the bad
	// digest is quarantined.
	DecisionRolledBack Decision = "rolled-back"
	// DecisionQuarantined: the registry digest is quarantined — its rollout failed — and is
	// not applied until the tag moves to another digest. For a rollout-restart image (its pods
	// pull the tag, so a restart cannot roll back) this is also the decision of the tick that
	// detects the failed rollout: the workload needs a human.
	DecisionQuarantined Decision = "quarantined"
)

// Event reasons of quarantine and rollback.
const (
	ReasonQuarantined = "Quarantined"
	ReasonRolledBack  = "RolledBack"
)

// failedRollout says why the rollout of the last change this refresher wrote for the image
// failed, "" when it did not (or there is none): that rollout is still in flight (inFlight),
// the audit annotation still records the digest, and the rollout exceeded its progress
// deadline or has not settled within rolloutTimeout of the change.
func failedRollout(
	dep *appsv1.Deployment,
	annotation string,
	prev Status,
	pending string,
	now time.Time,
	rolloutTimeout time.Duration,
) string {
	if prev.State == StateQuarantined || !inFlight(dep, prev, pending) ||
		!config.ValidDigest(prev.Digest) || prev.Digest != annotation || prev.Digest == prev.Quarantined {
		return ""
	}
	if _, exceeded := progressDeadlineExceeded(dep); exceeded {
		return fmt.Sprintf("the rollout of %s (generation %d) %s", prev.Digest, prev.Generation, pending)
	}
	applied := prev.Applied
	if applied == "" {
		applied = prev.Since
	}
	t, err := time.Parse(time.RFC3339, applied)
	if err != nil || now.Before(t.Add(rolloutTimeout)) {
		return ""
	}
	return fmt.Sprintf(
		"the rollout of %s (generation %d) has not settled %s after the change (spec.rolloutTimeout): %s",
		prev.Digest,
		prev.Generation,
		rolloutTimeout,
		pending,
	)
}

// quarantineOutcome is the safety decision taken before a change: a failed rollout of the
// last applied digest is quarantined (and, for set-env with a previous digest, rolled back);
// a registry digest already quarantined is held. ok is false when neither applies.
// noRollback, when set, says why the previous digest may not be rolled back to: the failed
// digest is quarantined without a rollback.
func quarantineOutcome(
	dep *appsv1.Deployment,
	img config.Image,
	digest string,
	live Live,
	change Change,
	prev Status,
	pending, noRollback string,
	p tickSettings,
) (imageOutcome, bool) {
	now := p.now.UTC().Format(time.RFC3339)
	// Zero (a plan outside Run) is an unset spec.rolloutTimeout: the config's default, never
	// "at once". The config says what unset means, once.
	timeout := config.Spec{RolloutTimeout: config.Duration(p.rolloutTimeout)}.EffectiveRolloutTimeout()
	if why := failedRollout(dep, live.Annotation, prev, pending, p.now, timeout); why != "" {
		bad := prev.Digest
		if img.Action.Pins() && live.pinned(img.Action) == bad && config.ValidDigest(prev.Previous) && prev.Previous != bad &&
			noRollback == "" {
			next := Status{State: StateQuarantined, Since: now, Digest: prev.Previous, Applied: now, Quarantined: bad}
			back := Change{Decision: DecisionRolledBack, Annotation: prev.Previous, Env: prev.Previous}
			what := "env " + img.Env
			if img.Action == config.ActionSetImage {
				back.Env, back.Image = "", prev.Previous
				what = "the image of container " + img.Target.Container
			}
			return imageOutcome{
				Change: back,
				note:   fmt.Sprintf("%s; %s set back to %s, %s quarantined until the tag moves", why, what, prev.Previous, bad),
				status: &next,
			}, true
		}
		next := prev
		next.State, next.Since, next.Quarantined, next.WaitingSince, next.Error = StateQuarantined, now, bad, "", ""
		help := "no previous digest to roll back to"
		switch {
		case img.Action == config.ActionRolloutRestart:
			help = "its pods pull the tag, so a restart cannot roll back"
		case noRollback != "":
			help = "not rolled back to " + prev.Previous + ": " + noRollback
		}
		return imageOutcome{
			Change: Change{Decision: DecisionQuarantined},
			note: fmt.Sprintf(
				"%s; %s quarantined (%s): the workload needs a human; the refresher acts again when the tag moves",
				why,
				bad,
				help,
			),
			status: &next,
		}, true
	}
	if !holds(prev, dep, digest) {
		return imageOutcome{}, false
	}
	next := prev
	next.Pending, next.PendingSince = "", ""
	return imageOutcome{
		Change:   Change{Decision: DecisionQuarantined},
		intended: change.Decision,
		note:     fmt.Sprintf("%s is quarantined (its rollout failed); waiting for the tag to move", digest),
		status:   &next,
	}, true
}

// holds reports whether prev holds the registry digest back: a quarantine this refresher
// recorded for it, on the Deployment as this refresher last wrote it. The status annotation is
// input, not truth — anyone who may edit the Deployment can write a quarantine — but the API
// server makes every write of a Deployment (an annotation too) its next generation, and a
// quarantine records the generation of this refresher's own write (planTarget). A quarantine
// written by hand, or one that outlived another writer's change (helm upgrade, kubectl edit),
// holds nothing: the digest is applied again and, if its rollout fails again, quarantined again.
func holds(prev Status, dep *appsv1.Deployment, digest string) bool {
	return prev.State == StateQuarantined && prev.Quarantined == digest && prev.Generation != 0 &&
		prev.Generation == dep.Generation
}

// appliedStatus is the status after a change that rolls the pods out: ok since now, at the
// generation the patch makes, remembering the digest it replaced (the rollback target); a
// quarantine ends with it. A drift repair re-applies the recorded digest: its previous one stays.
func appliedStatus(prev Status, digest string, live Live, change Change, dep *appsv1.Deployment, now time.Time) Status {
	ts := now.UTC().Format(time.RFC3339)
	s := Status{State: StateOK, Since: ts, Digest: digest, Generation: dep.Generation +
		1, Applied: ts, Previous: prev.Previous}
	if change.Annotation != "" && change.Annotation != live.Annotation {
		s.Previous = ""
		switch {
		case config.ValidDigest(live.Env):
			s.Previous = live.Env
		case config.ValidDigest(live.Image):
			s.Previous = live.Image
		case config.ValidDigest(live.Annotation):
			s.Previous = live.Annotation
		}
	}
	return s
}

// failReason is the reason a failed image reports: the registry's (registry.Reason:
// platform-missing, not-a-manifest, too-large) or the signature gate's (signature-…), "" when the
// error says it all.
func failReason(err error) string {
	if r := registry.Reason(err); r != "" {
		return r
	}
	return signature.Reason(err)
}
