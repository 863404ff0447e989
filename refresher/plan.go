package refresher

import (
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/internal/config"
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
	// began is when the tick began; zero when unknown (a plan outside Run).
	began time.Time
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

	obs := observe(dep, images)
	prevs, nexts := make([]Status, len(images)), make([]Status, len(images))
	for i, ti := range images {
		img, rep := ti.image, ti.report
		// A conflict re-plans on a fresh read.
		rep.Previous = dep.Annotations[img.Annotation]
		prev, corrections := readStatus(dep.Annotations[img.StatusAnnotation()], p.now)
		prevs[i], rep.Corrections = prev, corrections
		out := transition(transitionInput{
			image:      img,
			digest:     rep.Digest,
			lookupErr:  ti.lookupErr,
			refused:    ti.refused,
			refusal:    rep.Signature.refusal,
			dep:        dep,
			target:     obs,
			recorded:   rep.Previous,
			prev:       prev,
			noRollback: ti.noRollback,
			intended:   ti.intended,
			settings:   p,
		})
		rep.Decision, rep.Intended, rep.Reason, rep.Err, rep.Env, rep.ImageDigest =
			out.decision, out.intended, out.reason, out.err, out.env, out.image
		nexts[i] = out.next
		if out.change.Annotation != "" {
			annotate(img.Annotation, out.change.Annotation)
		}
		if out.change.Env != "" || out.change.Image != "" {
			i, ok := containerIndex[img.Target.Container]
			if !ok {
				i = len(containers)
				containerIndex[img.Target.Container] = i
				containers = append(containers, containerPatch{Name: img.Target.Container})
			}
			if out.change.Env != "" {
				containers[i].Env = append(containers[i].Env, envPatch{Name: img.Env, Value: out.change.Env})
			}
			if out.change.Image != "" {
				containers[i].Image = img.PinnedImage(out.change.Image)
			}
		}
		restart = restart || out.change.Restart
	}
	writes := containers != nil || restart || patch.Metadata.Annotations != nil
	for i, ti := range images {
		// A corrected status (see readStatus) is written once, so it is not corrected again
		// on every tick (a clamped time would never age).
		writes = writes || nexts[i] != prevs[i] || len(ti.report.Corrections) > 0
	}
	for i, ti := range images {
		next := nexts[i]
		if next == (Status{}) && len(ti.report.Corrections) > 0 {
			// An ignored status is replaced by a valid one, not by an empty one that the next
			// tick would ignore (and rewrite) again.
			next = Status{State: StateOK, Since: p.now.UTC().Format(time.RFC3339)}
		}
		// The API server makes any change of a Deployment's annotations (or spec) its next
		// generation. A patch that writes only annotations leaves a rollout in flight the same
		// rollout: the status follows it to that generation, or the next tick would no longer
		// see it as this refresher's (and would neither wait for it nor quarantine it). A patch
		// that changes the pod template starts another rollout, which is not this image's.
		switch {
		case writes && next.State == StateQuarantined:
			// A quarantine holds only on the Deployment as this refresher last wrote it (holds):
			// it follows every write of this refresher, the one that records it included.
			next.Generation = dep.Generation + 1
		case writes && !restart && containers == nil && inFlight(dep, next, obs.pending):
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
		patch.Spec.Template.Metadata = &metadataPatch{
			Annotations: map[string]string{config.RestartedAtAnnotation: p.now.Format(time.RFC3339)},
		}
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
		Name string `json:"name"`
		// Image is set-image's repository@digest; Env set-env's variables. Neither may be
		// null: a strategic-merge null deletes the field.
		Image string     `json:"image,omitempty"`
		Env   []envPatch `json:"env,omitempty"`
	}
	envPatch struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
)
