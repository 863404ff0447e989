package refresher

import (
	"encoding/json"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/refresher/config"
	"github.com/tracebloc/image-refresh/refresher/contract"
)

// targetImage is one floating image whose digest is known, acting on the target being planned.
type targetImage struct {
	index  int // in the config
	report *ImageReport
	image  config.Image
}

// planTarget decides every image of one Deployment against its live state and returns the
// single strategic-merge patch that carries all their changes, or nil when nothing changes.
// An image whose container (or env var) cannot be written fails alone; the others proceed.
// The patch names the resourceVersion it was planned on, so a concurrent write makes it a
// conflict instead of applying decisions made on stale state.
func planTarget(dep *appsv1.Deployment, images []targetImage, now time.Time) ([]byte, error) {
	patch := deploymentPatch{Metadata: metadataPatch{ResourceVersion: dep.ResourceVersion}}
	var containers []containerPatch
	containerIndex := map[string]int{}
	restart := false

	where := fmt.Sprintf("Deployment %s/%s", dep.Namespace, dep.Name)
	state := contract.CheckTargetState(dep)
	for _, ti := range images {
		img, rep := ti.image, ti.report
		rep.Decision, rep.Err = "", nil // a conflict re-plans on a fresh read
		rep.Previous, rep.Env = dep.Annotations[img.Annotation], ""
		if state != nil {
			rep.fail(fmt.Errorf("%s: %w", where, state))
			continue
		}
		container, v := contract.Container(dep, img)
		if v != nil {
			rep.fail(fmt.Errorf("%w in %s", v, where))
			continue
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
			rep.fail(fmt.Errorf("container %q of %s %w", container.Name, where, v))
			continue
		}
		change, err := Decide(img.Action, rep.Digest, live)
		if err != nil {
			rep.fail(err)
			continue
		}
		rep.Decision = change.Decision
		if change.Annotation != "" {
			if patch.Metadata.Annotations == nil {
				patch.Metadata.Annotations = map[string]string{}
			}
			patch.Metadata.Annotations[img.Annotation] = change.Annotation
		}
		if change.Env != "" {
			i, ok := containerIndex[container.Name]
			if !ok {
				i = len(containers)
				containerIndex[container.Name] = i
				containers = append(containers, containerPatch{Name: container.Name})
			}
			containers[i].Env = append(containers[i].Env, envPatch{Name: img.Env, Value: change.Env})
		}
		restart = restart || change.Restart
	}
	if patch.Metadata.Annotations == nil && containers == nil && !restart {
		return nil, nil
	}
	if restart || containers != nil {
		patch.Spec = &specPatch{}
	}
	if restart {
		patch.Spec.Template.Metadata = &metadataPatch{Annotations: map[string]string{config.RestartedAtAnnotation: now.Format(time.RFC3339)}}
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
		Name string     `json:"name"`
		Env  []envPatch `json:"env"`
	}
	envPatch struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
)
