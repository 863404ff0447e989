package refresher

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/tracebloc/image-refresh/internal/config"
)

// FuzzDecide drives the decision and planning of one image (planTarget, which applies Decide)
// over ticks with the same registry answer, from any live state: audit annotation, env value,
// status annotation, paused, rollout complete or not, and a rollout-restart image of the same
// target whose lookup fails. Each tick's patch is applied as the API server would. Properties:
//   - no flapping: while the registry does not move, the values written to the audit annotation
//     and the env never return to one written before (they converge: adopt, then update-env);
//   - nothing is written on doubt: a tick that waits or fails writes only the status annotation;
//   - a steady state writes nothing: on a target that can roll out (not paused, rollouts
//     complete, every tag resolved) the third tick sends no patch at all.
func FuzzDecide(f *testing.F) {
	r := digestOf('a')
	f.Add(true, "", "", "", byte('a'), false, true, false, int64(1))
	f.Add(true, digestOf('b'), "", "", byte('a'), false, true, false, int64(3))
	f.Add(false, "", digestOf('b'), "", byte('a'), false, true, false, int64(1))
	f.Add(false, r, "latest", `{"state":"failed","since":"x","failures":3}`, byte('a'), false, true, false, int64(2))
	f.Add(false, digestOf('b'), digestOf('b'), `{"state":"waiting","waits":4}`, byte('c'), false, false, false, int64(1))
	f.Add(true, "pending", "", `{"state":"ok","generation":7,"digest":"x"}`, byte('c'), true, true, false, int64(7))
	f.Add(false, digestOf('b'), digestOf('b'), "", byte('a'), false, true, true, int64(1))
	f.Fuzz(
		func(
			t *testing.T,
			restart bool,
			annotation, envValue, status string,
			digestChar byte,
			paused, settles, otherFails bool,
			generation int64,
		) {
			if generation < 0 || generation > 1<<40 {
				return
			}
			cfgImage, env := config.Image{
				Name:       "ingestor",
				Repository: "ghcr.io/tracebloc/ingestor",
				Tag:        "prod",
				Action:     config.ActionSetEnv,
				Env:        ingestorEnv,
				Target: config.Target{
					Kind:      config.KindDeployment,
					Name:      deploymentName,
					Namespace: namespace,
					Container: "api",
				},
				Annotation: ingestorKey,
			}, envValue
			if restart {
				cfgImage = config.Image{
					Name:       "jobs-manager",
					Repository: "docker.io/tracebloc/jobs-manager",
					Tag:        "prod",
					Action:     config.ActionRolloutRestart,
					Target: config.Target{
						Kind:      config.KindDeployment,
						Name:      deploymentName,
						Namespace: namespace,
						Container: "api",
					},
					Annotation: jobsManagerKey,
				}
				env = ""
			}
			var dep *appsv1.Deployment
			if env != "" {
				dep = deployment(
					map[string]string{cfgImage.Annotation: annotation, cfgImage.StatusAnnotation(): status},
					corev1.EnvVar{Name: ingestorEnv, Value: env},
				)
			} else {
				dep = deployment(map[string]string{cfgImage.Annotation: annotation, cfgImage.StatusAnnotation(): status})
			}
			dep.Spec.Paused = paused
			dep.Generation, dep.Status.ObservedGeneration = generation, generation
			if !settles {
				dep.Status.ReadyReplicas = 0
			}
			registry := "sha256:" + strings.Repeat(string("0123456789abcdef"[digestChar%16]), 64)
			now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

			written := map[string][]string{} // audit annotation and env: the values written, in order
			var patch []byte
			for tick := 1; tick <= 3; tick++ {
				rep := &ImageReport{Name: cfgImage.Name, Digest: registry}
				images := []targetImage{{report: rep, image: cfgImage}}
				if otherFails {
					other := podsMonitorImage()
					images = append(
						images,
						targetImage{index: 1, report: &ImageReport{Name: other.Name}, image: other, lookupErr: errLookup},
					)
				}
				var err error
				if patch, err = planTarget(
					dep,
					images,
					tickSettings{now: now.Add(time.Duration(tick) * 15 * time.Minute), waitTimeout: 30 * time.Minute},
				); err != nil {
					t.Fatalf("tick %d: %v", tick, err)
				}
				if patch == nil {
					continue
				}
				p := applyPatch(t, dep, patch, settles)
				audit, wroteAudit := p.Metadata.Annotations[cfgImage.Annotation]
				var envWrites []string
				if p.Spec != nil && p.Spec.Template.Spec != nil {
					for _, c := range p.Spec.Template.Spec.Containers {
						for _, e := range c.Env {
							envWrites = append(envWrites, e.Value)
						}
					}
				}
				if rep.Decision == DecisionWaiting || rep.Decision == DecisionFailed {
					if wroteAudit || len(envWrites) > 0 || (p.Spec != nil && p.Spec.Template.Metadata != nil) {
						t.Fatalf("tick %d: %s, yet the patch writes more than the status: %s", tick, rep.Decision, patch)
					}
				}
				for key, values := range map[string][]string{"annotation": cond(wroteAudit, audit), "env": envWrites} {
					for _, v := range values {
						if slices.Contains(written[key], v) && written[key][len(written[key])-1] != v {
							t.Fatalf("tick %d: %s flaps back to %s (written before: %v); registry %s", tick, key, v, written[key], registry)
						}
						written[key] = append(written[key], v)
					}
				}
			}
			if !paused && settles && !otherFails && patch != nil {
				t.Fatalf("the third tick on a target that can roll out still patched: %s", patch)
			}
		},
	)
}

var errLookup = &lookupError{}

type lookupError struct{}

func (*lookupError) Error() string {
	return "resolving docker.io/tracebloc/pods-monitor:prod: 429 Too Many Requests"
}

func cond(ok bool, v string) []string {
	if ok {
		return []string{v}
	}
	return nil
}

// applyPatch applies a refresher patch to dep as the API server would (annotations and env
// merged by key; a pod-template change makes the next generation), then plays the Deployment
// controller: the generation is observed, and the rollout completes when settles.
func applyPatch(t *testing.T, dep *appsv1.Deployment, patch []byte, settles bool) deploymentPatch {
	t.Helper()
	var p deploymentPatch
	if err := json.Unmarshal(patch, &p); err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	if p.Metadata.ResourceVersion != dep.ResourceVersion {
		t.Fatalf("patch planned on resourceVersion %q, the object has %q", p.Metadata.ResourceVersion, dep.ResourceVersion)
	}
	before := dep.DeepCopy()
	for k, v := range p.Metadata.Annotations {
		dep.Annotations[k] = v
	}
	if p.Spec != nil {
		if m := p.Spec.Template.Metadata; m != nil {
			if dep.Spec.Template.Annotations == nil {
				dep.Spec.Template.Annotations = map[string]string{}
			}
			for k, v := range m.Annotations {
				dep.Spec.Template.Annotations[k] = v
			}
		}
		if s := p.Spec.Template.Spec; s != nil {
			for _, cp := range s.Containers {
				c := containerNamed(dep, cp.Name)
				for _, e := range cp.Env {
					i := slices.IndexFunc(c.Env, func(x corev1.EnvVar) bool { return x.Name == e.Name })
					if i < 0 {
						c.Env = append(c.Env, corev1.EnvVar{Name: e.Name, Value: e.Value})
					} else {
						c.Env[i].Value = e.Value
					}
				}
			}
		}
	}
	// As the API server does: any change of the spec or the annotations is the next generation.
	if !apiequality.Semantic.DeepEqual(before.Spec, dep.Spec) ||
		!apiequality.Semantic.DeepEqual(before.Annotations, dep.Annotations) {
		dep.Generation++
	}
	dep.Status.ObservedGeneration = dep.Generation
	if settles {
		dep.Status.UpdatedReplicas, dep.Status.ReadyReplicas, dep.Status.Replicas = 1, 1, 1
	} else {
		dep.Status.ReadyReplicas = 0
	}
	dep.ResourceVersion += "1"
	return p
}
