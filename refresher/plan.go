package refresher

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/refresher/config"
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

	for _, ti := range images {
		img, rep := ti.image, ti.report
		rep.Decision, rep.Err = "", nil // a conflict re-plans on a fresh read
		rep.Previous, rep.Env = dep.Annotations[img.Annotation], ""
		container := findContainer(dep, img.Target.Container)
		if container == nil {
			rep.fail(fmt.Errorf("container %q not found in Deployment %s/%s", img.Target.Container, dep.Namespace, dep.Name))
			continue
		}
		if img.Action == config.ActionRolloutRestart {
			if err := checkRestartPullsTag(dep, container, img); err != nil {
				rep.fail(err)
				continue
			}
		}
		live := Live{Annotation: rep.Previous}
		if img.Action == config.ActionSetEnv {
			if env := findEnv(container, img.Env); env != nil {
				if env.ValueFrom != nil {
					rep.fail(fmt.Errorf("env %s of container %q in Deployment %s/%s is set from valueFrom; refusing to overwrite it", img.Env, container.Name, dep.Namespace, dep.Name))
					continue
				}
				live.Env, rep.Env = env.Value, env.Value
			}
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

// checkRestartPullsTag returns why restarting container would not start the digest img's tag
// points at — it runs a digest, another reference, or does not pull on every start — or nil.
// Recording the digest anyway would claim a change the pods never got.
func checkRestartPullsTag(dep *appsv1.Deployment, container *corev1.Container, img config.Image) error {
	where := fmt.Sprintf("container %q of Deployment %s/%s", container.Name, dep.Namespace, dep.Name)
	polled, err := name.NewTag(img.Reference())
	if err != nil {
		return fmt.Errorf("parsing reference %q: %w", img.Reference(), err)
	}
	running, err := name.ParseReference(container.Image)
	if err != nil {
		return fmt.Errorf("%s runs %q, which is not an image reference (%w): run %s there with imagePullPolicy: Always while it floats",
			where, container.Image, err, polled)
	}
	if _, pinned := running.(name.Digest); pinned {
		return fmt.Errorf("%s runs the digest-pinned image %s: a rollout restart would start that digest again, not the one %s points at; run %s there with imagePullPolicy: Always while it floats, or pin the digest in the config",
			where, container.Image, polled, polled)
	}
	if running.Name() != polled.Name() {
		return fmt.Errorf("%s runs %s, not %s: a rollout restart would not start the digest %s points at; run %s there, or set the image's repository and tag in the config to what the container runs",
			where, container.Image, polled, polled, polled)
	}
	if policy := config.EffectivePullPolicy(string(container.ImagePullPolicy), container.Image); policy != string(corev1.PullAlways) {
		found := "imagePullPolicy " + policy
		if container.ImagePullPolicy == "" {
			found = "no imagePullPolicy, which Kubernetes defaults to " + policy
		}
		return fmt.Errorf("%s runs %s with %s: a rollout restart would start the cached image instead of pulling the digest the tag now points at; set imagePullPolicy: Always on that container while %s floats",
			where, container.Image, found, img.Name)
	}
	return nil
}

func findContainer(dep *appsv1.Deployment, name string) *corev1.Container {
	for i := range dep.Spec.Template.Spec.Containers {
		if c := &dep.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	return nil
}

func findEnv(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if e := &c.Env[i]; e.Name == name {
			return e
		}
	}
	return nil
}
