package refresher

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/tracebloc/image-refresh/internal/config"
)

// A rollout restart only starts the digest the tag now points at when the container runs that
// tag and pulls it; otherwise recording the digest would claim a change the pods never got.
func TestPlanTargetRestartNeedsThePolledTagPulledAlways(t *testing.T) {
	pinned := "docker.io/tracebloc/jobs-manager@" + digestOf('e')
	for _, tc := range []struct {
		name      string
		action    config.Action // default rollout-restart
		tag       string        // of the polled reference; default prod
		container string        // the target container, as YAML
		// wantErr are fragments of the error; none means the image is planned.
		wantErr []string
	}{
		{
			name:      "the polled tag, Always",
			container: "{name: api, image: docker.io/tracebloc/jobs-manager:prod, imagePullPolicy: Always}",
		},
		{
			name:      "the polled tag spelled with index.docker.io",
			container: "{name: api, image: index.docker.io/tracebloc/jobs-manager:prod, imagePullPolicy: Always}",
		},
		{
			name:      "the polled tag without the registry",
			container: "{name: api, image: tracebloc/jobs-manager:prod, imagePullPolicy: Always}",
		},
		{
			name:      "latest without a policy is pulled Always",
			tag:       "latest",
			container: "{name: api, image: docker.io/tracebloc/jobs-manager}",
		},
		{
			name:      "digest-pinned",
			container: "{name: api, image: '" + pinned + "', imagePullPolicy: Always}",
			wantErr: []string{`container "api" of Deployment tracebloc/stg-jobs-manager`, "digest-pinned image " +
				pinned, "docker.io/tracebloc/jobs-manager:prod", "pin the digest in the config"},
		},
		{
			name: "tag and digest",
			container: "{name: api, image: 'docker.io/tracebloc/jobs-manager:prod@" + digestOf('e') +
				"', imagePullPolicy: Always}",
			wantErr: []string{"digest-pinned image docker.io/tracebloc/jobs-manager:prod@" + digestOf('e')},
		},
		{
			name:      "another tag",
			container: "{name: api, image: docker.io/tracebloc/jobs-manager:stg, imagePullPolicy: Always}",
			wantErr: []string{
				`container "api" of Deployment tracebloc/stg-jobs-manager runs docker.io/tracebloc/jobs-manager:stg, ` +
					`not docker.io/tracebloc/jobs-manager:prod`,
				"set the image's repository and tag",
			},
		},
		{
			name:      "another repository",
			container: "{name: api, image: ghcr.io/tracebloc/jobs-manager:prod, imagePullPolicy: Always}",
			wantErr:   []string{"runs ghcr.io/tracebloc/jobs-manager:prod, not docker.io/tracebloc/jobs-manager:prod"},
		},
		{
			name:      "not an image reference",
			container: "{name: api, image: 'Jobs Manager', imagePullPolicy: Always}",
			wantErr:   []string{`runs "Jobs Manager", which is not an image reference`},
		},
		{
			name:      "IfNotPresent",
			container: "{name: api, image: docker.io/tracebloc/jobs-manager:prod, imagePullPolicy: IfNotPresent}",
			wantErr: []string{
				`container "api" of Deployment tracebloc/stg-jobs-manager runs docker.io/tracebloc/jobs-manager:prod with ` +
					`imagePullPolicy IfNotPresent`,
				"set imagePullPolicy: Always",
			},
		},
		{
			name:      "Never",
			container: "{name: api, image: docker.io/tracebloc/jobs-manager:prod, imagePullPolicy: Never}",
			wantErr:   []string{"with imagePullPolicy Never"},
		},
		{
			name:      "no policy on a tag other than latest defaults to IfNotPresent",
			container: "{name: api, image: docker.io/tracebloc/jobs-manager:prod}",
			wantErr: []string{
				"with no imagePullPolicy, which Kubernetes defaults to IfNotPresent",
				"set imagePullPolicy: Always",
			},
		},
		{
			name:      "set-env does not care what the container runs",
			action:    config.ActionSetEnv,
			container: "{name: api, image: '" + pinned + "', imagePullPolicy: IfNotPresent}",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var container corev1.Container
			if err := yaml.UnmarshalStrict([]byte(tc.container), &container); err != nil {
				t.Fatal(err)
			}
			dep := deployment(map[string]string{jobsManagerKey: stale})
			dep.Spec.Template.Spec.Containers = []corev1.Container{container}
			img := config.Image{
				Name: "jobs-manager", Repository: "docker.io/tracebloc/jobs-manager", Tag: tc.tag, Action: tc.action,
				Target: config.Target{
					Kind:      config.KindDeployment,
					Name:      deploymentName,
					Namespace: namespace,
					Container: "api",
				},
				Annotation: jobsManagerKey,
			}
			if img.Tag == "" {
				img.Tag = "prod"
			}
			if img.Action == "" {
				img.Action = config.ActionRolloutRestart
			}
			if img.Action == config.ActionSetEnv {
				img.Env = ingestorEnv
			}
			rep := &ImageReport{Digest: digestOf('a')}

			patch, err := planTarget(
				dep,
				[]targetImage{{report: rep, image: img}},
				tickSettings{now: clock, waitTimeout: config.DefaultWaitTimeout},
			)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.wantErr) == 0 {
				if rep.Err != nil || rep.Decision == DecisionFailed || patch == nil {
					t.Errorf("decision %s, error %v, patch %s; want the image planned", rep.Decision, rep.Err, patch)
				}
				return
			}
			if rep.Decision != DecisionFailed || rep.Err == nil {
				t.Fatalf("decision %s, error %v; want failed", rep.Decision, rep.Err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(rep.Err.Error(), want) {
					t.Errorf("error %q lacks %q", rep.Err, want)
				}
			}
			if want := onlyStatus(t, patch); want != "jobs-manager" {
				t.Errorf("patch %s writes more than the failed image's status", patch)
			}
		})
	}
}

// deploymentWithImage is the target with container name running image under policy.
func deploymentWithImage(dep *appsv1.Deployment, name, image string, policy corev1.PullPolicy) *appsv1.Deployment {
	c := containerNamed(dep, name)
	c.Image, c.ImagePullPolicy = image, policy
	return dep
}

// An action outside the contract (validation admits none) still fails the run with a reason.
func TestPlanTargetUnknownActionFailsTheRun(t *testing.T) {
	img := config.Image{
		Name: "jobs-manager", Repository: "docker.io/tracebloc/jobs-manager", Tag: "prod", Action: "rollout-restart-twice",
		Target:     config.Target{Kind: config.KindDeployment, Name: deploymentName, Namespace: namespace, Container: "api"},
		Annotation: jobsManagerKey,
	}
	rep := &ImageReport{Name: img.Name, Digest: digestOf('a')}
	patch, err := planTarget(
		deployment(nil),
		[]targetImage{{report: rep, image: img}},
		tickSettings{now: clock, waitTimeout: config.DefaultWaitTimeout},
	)
	if err != nil {
		t.Fatal(err)
	}
	if onlyStatus(t, patch) != "jobs-manager" || rep.Decision != DecisionFailed {
		t.Errorf("decision %s, patch %s; want failed and only its status written", rep.Decision, patch)
	}
	report := Report{Images: []ImageReport{*rep}}
	if err := report.Err(); err == nil ||
		!strings.Contains(err.Error(), `image jobs-manager: unknown action "rollout-restart-twice"`) {
		t.Errorf("report error %v, want the unknown action named", err)
	}
}

// onlyStatus returns the image whose status annotation is the only thing patch writes, "" when
// it writes anything else (or several statuses).
func onlyStatus(t *testing.T, patch []byte) string {
	t.Helper()
	var p struct {
		Metadata map[string]any `json:"metadata"`
		Spec     any            `json:"spec"`
	}
	if err := json.Unmarshal(patch, &p); err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	annotations, _ := p.Metadata["annotations"].(map[string]any)
	if p.Spec != nil || len(p.Metadata) != 2 || len(annotations) != 1 {
		return ""
	}
	for key := range annotations {
		if image, ok := strings.CutPrefix(key, config.StatusAnnotationPrefix); ok {
			return image
		}
	}
	return ""
}

// containerNamed is the fixture Deployment's container of that name (the fixtures have it).
func containerNamed(dep *appsv1.Deployment, name string) *corev1.Container {
	for i := range dep.Spec.Template.Spec.Containers {
		if c := &dep.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	return &corev1.Container{Name: name} // detached: a test using it fails on its assertions
}
