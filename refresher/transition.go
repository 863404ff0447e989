package refresher

import (
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
)

// transitionInput is everything one image's decision on one tick depends on. The tick gathers
// it — the registry's answer and the gates' verdicts, the target as read, the image's previous
// status, the time — and applies the output; transition itself reads and writes nothing.
type transitionInput struct {
	image config.Image
	// digest is the registry's answer (R); lookupErr a failed lookup or a gate's refusal, refused
	// the decision that refusal stopped, refusal the signature verdict to remember.
	digest    string
	lookupErr error
	refused   Decision
	refusal   Refusal
	// dep is the target as read, target what planning observed of it for every image,
	// recorded its audit annotation (A).
	dep      *appsv1.Deployment
	target   targetObservation
	recorded string
	// prev is the image's status as read (readStatus: validated, clamped).
	prev Status
	// noRollback and intended are this tick's earlier verdicts (see targetImage).
	noRollback, intended string
	settings             tickSettings
}

// targetObservation is what every image of one target is decided against.
type targetObservation struct {
	where string
	// state is why the target cannot roll out (paused, being deleted), pending why its last
	// rollout is not complete, unresolved the rollout-restart images whose tag did not resolve.
	state      *contract.Violation
	pending    string
	unresolved []string
}

func observe(dep *appsv1.Deployment, images []targetImage) targetObservation {
	obs := targetObservation{
		where:   contract.KeyString(config.TargetKey{Kind: contract.ViewKind(dep), Namespace: dep.Namespace, Name: dep.Name}),
		state:   contract.CheckTargetState(dep),
		pending: RolloutPending(dep),
	}
	for _, ti := range images {
		if ti.lookupErr != nil && ti.image.Action == config.ActionRolloutRestart {
			obs.unresolved = append(obs.unresolved, ti.image.Name)
		}
	}
	return obs
}

// transitionOutput is one image's outcome: the decision (and what it did not carry out), the
// patch fragment, the status to record and what was observed of the env var.
type transitionOutput struct {
	decision, intended Decision
	reason             string
	err                error
	change             Change
	next               Status
	env, image         string
}

// transition is the tick as one pure function per image: the decision table (Decide), then as
// branches the quarantine and rollback of a failed rollout, the soak, the settled check and
// the wait limit; a registry, gate or target failure fails the image. Its status moves only on
// a transition (statusAfter): a steady outcome records nothing. TestDecisionTable has a case
// for every row of docs/refresher.md's decision table; FuzzDecide drives it over ticks.
func transition(in transitionInput) transitionOutput {
	o := decide(in)
	out := transitionOutput{env: o.env, image: o.image}
	out.decision, out.intended, out.reason, out.err = o.report()
	prev, now := in.prev, in.settings.now
	switch {
	case out.err != nil:
		s := statusAfter(prev, StateFailed, out.err.Error(), now)
		if in.refusal.Digest != "" {
			s.Refused = in.refusal // remembered, so the next ticks do not fetch it again
		}
		s.WaitingSince = o.waitingSince // kept while the wait goes on past the timeout
		out.next = s
		return out
	case out.decision == DecisionWaiting:
		s := statusAfter(prev, StateWaiting, out.reason, now)
		s.WaitingSince = o.waitingSince
		out.next = s
		return out
	}
	out.change = o.Change
	switch {
	case o.status != nil:
		out.next = *o.status // soaking, quarantined, rolled back
	case o.rollsOut():
		// The patch changes the pod template: the API server makes it the next generation.
		out.next = appliedStatus(
			prev,
			in.digest,
			Live{Annotation: in.recorded, Env: o.env, Image: o.image},
			o.Change,
			in.dep,
			now,
		)
	default:
		s := prev // steady: nothing to record
		if prev.State != "" && prev.State != StateOK {
			s = statusAfter(prev, StateOK, "", now)
		}
		s.Pending, s.PendingSince = "", "" // the tag is back at the recorded digest
		out.next = s
	}
	return out
}

// imageOutcome is what planning decided for one image: a change to write, a wait or a failure.
type imageOutcome struct {
	Change
	// intended is the decision that waits or failed (if any was made).
	intended Decision
	wait     string
	err      error
	// waitingSince is when the image began to wait (RFC 3339), while it waits or failed for
	// waiting longer than spec.waitTimeout.
	waitingSince string
	// note is why the image soaks, is quarantined or was rolled back; status its status
	// after the tick when the decision sets it (soaking, quarantined, rolled-back).
	note   string
	status *Status
	// env is the env var's value on the target container (L, set-env), image the digest its
	// image is pinned to (L, set-image), as observed.
	env, image string
}

func (o imageOutcome) report() (decision, intended Decision, reason string, err error) {
	switch {
	case o.err != nil:
		return DecisionFailed, o.intended, failReason(o.err), o.err
	case o.wait != "":
		return DecisionWaiting, o.intended, o.wait, nil
	}
	return o.Decision, o.intended, o.note, nil
}

// decide is the decision of transition: a change to write, a wait or a failure.
func decide(in transitionInput) imageOutcome {
	img, dep, prev, p := in.image, in.dep, in.prev, in.settings
	where, pending := in.target.where, in.target.pending
	if in.lookupErr != nil {
		return imageOutcome{err: in.lookupErr, intended: in.refused}
	}
	container, v := contract.Container(dep, img)
	if v != nil {
		return imageOutcome{err: fmt.Errorf("%w in %s", v, where)}
	}
	live := Live{Annotation: in.recorded}
	switch img.Action {
	case config.ActionRolloutRestart:
		v = contract.CheckRestart(img, container)
	case config.ActionSetEnv:
		live.Env, v = contract.LiveEnv(container, img.Env)
	case config.ActionSetImage:
		live.Image, v = contract.LiveImage(img, container)
	}
	if v != nil {
		return imageOutcome{
			err:   fmt.Errorf("container %q of %s %w", container.Name, where, v),
			env:   live.Env,
			image: live.Image,
		}
	}
	change, err := Decide(img.Action, in.digest, live)
	if err != nil {
		return imageOutcome{err: err, env: live.Env, image: live.Image}
	}
	o := func() imageOutcome {
		if o, ok := quarantineOutcome(dep, img, in.digest, live, change, prev, pending, in.noRollback, p); ok {
			return o
		}
		if o, ok := soakOutcome(img, in.digest, change, prev, p.now); ok {
			return o
		}
		return settle(in, change)
	}()
	o.env, o.image = live.Env, live.Image
	return o
}

// twin reports whether the rollout in flight is a twin tick's doing — another run of this
// refresher at the same time (the scheduled Job and a kubectl create job --from): the change
// to the digest this tick would apply was written after this tick began (its status's applied
// time, to the second), or this tick's own first plan meant it before a conflict showed it
// done. Such a rollout is not one to wait for: the twin waits for it.
func twin(in transitionInput) bool {
	prev := in.prev
	if prev.Digest == "" || prev.Digest != in.digest {
		return false
	}
	if in.intended == prev.Digest {
		return true
	}
	applied, err := time.Parse(time.RFC3339, prev.Applied)
	began := in.settings.began
	return err == nil && !began.IsZero() && !applied.Before(began.Truncate(time.Second))
}

// settle is the settled check and the wait limit: a change that would roll out waits while the
// target's last rollout is pending (at most one in flight), and fails once it waited longer
// than spec.waitTimeout.
func settle(in transitionInput, change Change) imageOutcome {
	dep, prev, p := in.dep, in.prev, in.settings
	where, state, pending, unresolved := in.target.where, in.target.state, in.target.pending, in.target.unresolved
	rollout := change.rollsOut()
	// The rollout a quarantine left failing never settles: a new digest replaces it.
	supersedes := prev.State == StateQuarantined && prev.Generation != 0 && prev.Generation == dep.Generation
	var wait string
	switch {
	case state != nil && change.Decision != DecisionUnchanged:
		wait = fmt.Sprintf("%s: %s", where, state)
	case rollout && pending != "" && !supersedes:
		wait = fmt.Sprintf("%s: %s; %s waits for it (at most one rollout in flight)", where, pending, change.Decision)
	case rollout && len(unresolved) > 0:
		wait = fmt.Sprintf(
			"%s: a rollout now would also pull the unresolved tag of %s, and nothing would record that digest; "+
				"%s waits until it resolves",
			where,
			strings.Join(unresolved, ", "),
			change.Decision,
		)
	case change.Decision == DecisionUnchanged && inFlight(dep, prev, pending) && !twin(in):
		// The rollout this image's last change started has not completed.
		wait = fmt.Sprintf("%s: the rollout to %s has not completed: %s", where, prev.Digest, pending)
	}
	if wait == "" {
		return imageOutcome{Change: change}
	}
	since := p.now.UTC()
	if t, err := time.Parse(time.RFC3339, prev.WaitingSince); err == nil && t.Before(since) {
		since = t
	}
	waitingSince := since.Format(time.RFC3339)
	if waited := p.now.Sub(since); waited > p.waitTimeout {
		return imageOutcome{intended: change.Decision, waitingSince: waitingSince,
			err: fmt.Errorf("waiting since %s, longer than spec.waitTimeout %s: %s", waitingSince, p.waitTimeout, wait)}
	}
	return imageOutcome{intended: change.Decision, wait: wait, waitingSince: waitingSince}
}
