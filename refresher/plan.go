package refresher

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/refresher/config"
	"github.com/tracebloc/image-refresh/refresher/contract"
)

// targetImage is one floating image acting on the target being planned: its digest is in the
// report, or lookupErr says why the registry could not give it.
type targetImage struct {
	index     int // in the config
	report    *ImageReport
	image     config.Image
	lookupErr error
	// gated: the digest passed (or failed, see lookupErr) the platform gate this tick;
	// refused is the decision a refused digest would have carried out.
	gated   bool
	refused Decision
	// noRollback is why the rollback target (the status's previous digest) may not be applied:
	// the registry does not serve it in the image's repository (see gates.checkRollback).
	noRollback string
	// intended is the digest this tick's first plan rolled out for the image, before a conflict
	// made it re-read the target: a rollout to it found in flight then is a concurrent tick's
	// doing this very moment, not one to wait for.
	intended string
}

// tickSettings are what every target of one tick is planned with: the tick's time and the
// config's limits.
type tickSettings struct {
	now time.Time
	// waitTimeout is spec.waitTimeout: how long an image may wait before it fails.
	waitTimeout time.Duration
	// rolloutTimeout is spec.rolloutTimeout: how long a rollout the refresher started may
	// take to settle before it is quarantined (see quarantineOutcome).
	rolloutTimeout time.Duration
}

// planTarget decides every image of one Deployment against its live state and returns the
// single strategic-merge patch that carries all their changes and status transitions, or nil
// when nothing changes. An image whose container (or env var) cannot be written fails alone;
// the others proceed. A change waits (nothing but the image's status is written) while the
// target is paused or being deleted, and a change that rolls the pods out also while the last
// rollout is pending or while a rollout-restart image of the target could not be resolved (its
// pods would pull the tag's new digest with nothing recording it). The patch names the
// resourceVersion it was planned on, so a concurrent write makes it a conflict instead of
// applying decisions made on stale state.
func planTarget(dep *appsv1.Deployment, images []targetImage, p tickSettings) ([]byte, error) {
	patch := deploymentPatch{Metadata: metadataPatch{ResourceVersion: dep.ResourceVersion}}
	var containers []containerPatch
	containerIndex := map[string]int{}
	restart := false
	annotate := func(key, value string) {
		if patch.Metadata.Annotations == nil {
			patch.Metadata.Annotations = map[string]string{}
		}
		patch.Metadata.Annotations[key] = value
	}

	where := fmt.Sprintf("Deployment %s/%s", dep.Namespace, dep.Name)
	state := contract.CheckTargetState(dep)
	pending := RolloutPending(dep)
	var unresolved []string
	for _, ti := range images {
		if ti.lookupErr != nil && ti.image.Action == config.ActionRolloutRestart {
			unresolved = append(unresolved, ti.image.Name)
		}
	}
	prevs, nexts := make([]Status, len(images)), make([]Status, len(images))
	for i, ti := range images {
		img, rep := ti.image, ti.report
		// A conflict re-plans on a fresh read.
		rep.Decision, rep.Intended, rep.Err, rep.Reason = "", "", nil, ""
		rep.Previous, rep.Env = dep.Annotations[img.Annotation], ""
		prev, corrections := readStatus(dep.Annotations[img.StatusAnnotation()], p.now)
		prevs[i], rep.Corrections = prev, corrections
		nexts[i] = func() Status {
			change := decideImage(dep, ti, where, state, pending, unresolved, prev, p)
			rep.Decision, rep.Intended, rep.Reason, rep.Err = change.report()
			switch {
			case rep.Err != nil:
				s := statusAfter(prev, StateFailed, rep.Err.Error(), p.now)
				if r := rep.Signature.refusal; r.Digest != "" {
					s.Refused = r // remembered, so the next ticks do not fetch it again
				}
				s.WaitingSince = change.waitingSince // kept while the wait goes on past the timeout
				return s
			case rep.Decision == DecisionWaiting:
				s := statusAfter(prev, StateWaiting, rep.Reason, p.now)
				s.WaitingSince = change.waitingSince
				return s
			}
			if change.Annotation != "" {
				annotate(img.Annotation, change.Annotation)
			}
			if change.Env != "" {
				i, ok := containerIndex[img.Target.Container]
				if !ok {
					i = len(containers)
					containerIndex[img.Target.Container] = i
					containers = append(containers, containerPatch{Name: img.Target.Container})
				}
				containers[i].Env = append(containers[i].Env, envPatch{Name: img.Env, Value: change.Env})
			}
			restart = restart || change.Restart
			if change.status != nil {
				return *change.status // soaking, quarantined, rolled back
			}
			if change.Env != "" || change.Restart {
				// This patch changes the pod template: the API server makes it the next generation.
				return appliedStatus(prev, rep, Live{Annotation: rep.Previous, Env: rep.Env}, change.Change, dep, p.now)
			}
			s := prev // steady: nothing to record
			if prev.State != "" && prev.State != StateOK {
				s = statusAfter(prev, StateOK, "", p.now)
			}
			s.Pending, s.PendingSince = "", "" // the tag is back at the recorded digest
			return s
		}()
	}
	writes := containers != nil || restart || patch.Metadata.Annotations != nil
	for i, ti := range images {
		// A corrected status (see readStatus) is written once, so it is not corrected again
		// on every tick (a clamped time would never age).
		writes = writes || nexts[i] != prevs[i] || len(ti.report.Corrections) > 0
	}
	for i, ti := range images {
		next := nexts[i]
		// The API server makes any change of a Deployment's annotations (or spec) its next
		// generation. A patch that writes only annotations leaves a rollout in flight the same
		// rollout: the status follows it to that generation, or the next tick would no longer
		// see it as this refresher's (and would neither wait for it nor quarantine it). A patch
		// that changes the pod template starts another rollout, which is not this image's.
		if writes && !restart && containers == nil && inFlight(dep, next, pending) {
			next.Generation++
		}
		ti.report.Status = next
		if next != prevs[i] || len(ti.report.Corrections) > 0 {
			annotate(ti.image.StatusAnnotation(), next.encode())
		}
	}
	if !writes {
		return nil, nil
	}
	if restart || containers != nil {
		patch.Spec = &specPatch{}
	}
	if restart {
		patch.Spec.Template.Metadata = &metadataPatch{Annotations: map[string]string{config.RestartedAtAnnotation: p.now.Format(time.RFC3339)}}
	}
	if containers != nil {
		patch.Spec.Template.Spec = &podSpecPatch{Containers: containers}
	}
	data, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("encoding patch for Deployment %s/%s: %w", dep.Namespace, dep.Name, err)
	}
	return data, nil
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

// decideImage plans one image against the live Deployment (see planTarget).
func decideImage(dep *appsv1.Deployment, ti targetImage, where string, state *contract.Violation, pending string, unresolved []string, prev Status, p tickSettings) imageOutcome {
	img, rep := ti.image, ti.report
	if ti.lookupErr != nil {
		return imageOutcome{err: ti.lookupErr, intended: ti.refused}
	}
	container, v := contract.Container(dep, img)
	if v != nil {
		return imageOutcome{err: fmt.Errorf("%w in %s", v, where)}
	}
	live := Live{Annotation: rep.Previous}
	switch img.Action {
	case config.ActionRolloutRestart:
		v = contract.CheckRestart(img, container)
	case config.ActionSetEnv:
		live.Env, v = contract.LiveEnv(container, img.Env)
		rep.Env = live.Env
	}
	if v != nil {
		return imageOutcome{err: fmt.Errorf("container %q of %s %w", container.Name, where, v)}
	}
	change, err := Decide(img.Action, rep.Digest, live)
	if err != nil {
		return imageOutcome{err: err}
	}
	if o, ok := quarantineOutcome(dep, img, rep, live, change, prev, pending, ti.noRollback, p); ok {
		return o
	}
	if o, ok := soakOutcome(img, rep.Digest, change, prev, p.now); ok {
		return o
	}
	rollout := change.Env != "" || change.Restart
	// The rollout a quarantine left failing never settles: a new digest replaces it.
	supersedes := prev.State == StateQuarantined && prev.Generation != 0 && prev.Generation == dep.Generation
	var wait string
	switch {
	case state != nil && change.Decision != DecisionUnchanged:
		wait = fmt.Sprintf("%s: %s", where, state)
	case rollout && pending != "" && !supersedes:
		wait = fmt.Sprintf("%s: %s; %s waits for it (at most one rollout in flight)", where, pending, change.Decision)
	case rollout && len(unresolved) > 0:
		wait = fmt.Sprintf("%s: a rollout now would also pull the unresolved tag of %s, and nothing would record that digest; %s waits until it resolves", where, strings.Join(unresolved, ", "), change.Decision)
	case change.Decision == DecisionUnchanged && inFlight(dep, prev, pending) && (ti.intended == "" || ti.intended != prev.Digest):
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

// The strategic-merge patch of a Deployment. Containers and their env vars are lists merged
// by name, so the patch changes only the variables it names.
type (
	deploymentPatch struct {
		Metadata metadataPatch `json:"metadata"`
		Spec     *specPatch    `json:"spec,omitempty"`
	}
	metadataPatch struct {
		ResourceVersion string            `json:"resourceVersion,omitempty"`
		Annotations     map[string]string `json:"annotations,omitempty"`
	}
	specPatch struct {
		Template templatePatch `json:"template"`
	}
	templatePatch struct {
		Metadata *metadataPatch `json:"metadata,omitempty"`
		Spec     *podSpecPatch  `json:"spec,omitempty"`
	}
	podSpecPatch struct {
		Containers []containerPatch `json:"containers"`
	}
	containerPatch struct {
		Name string     `json:"name"`
		Env  []envPatch `json:"env"`
	}
	envPatch struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
)
