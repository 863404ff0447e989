package chartcheck

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	contract "github.com/tracebloc/image-refresh/internal/contract"
)

// Names of the expectation checks; image checks are "expect.image/<name>".
const (
	expectErrorCheck        = "expect.error"
	expectConfigCheck       = "expect.config"
	expectCronJobCheck      = "expect.cronJob"
	expectScheduleCheck     = "expect.schedule"
	expectPodSecurityCheck  = "expect.podSecurity"
	expectVerificationCheck = "expect.verification"
	expectImageCheckPrefix  = "expect.image/"
	// expectEnvCheckPrefix is followed by deployment/container/name.
	expectEnvCheckPrefix = "expect.env/"
)

func (e *expectations) check(c *checkedRelease, cs *checkSet) {
	if e.Config != "" {
		cs.add(expectConfigCheck, c.expectConfig(e.Config))
	}
	if e.CronJob != "" {
		cs.add(expectCronJobCheck, c.expectCronJob(e.CronJob))
	}
	if e.Schedule != "" {
		cs.add(expectScheduleCheck, c.expectSchedule(e.Schedule))
	}
	if e.PodSecurity != "" {
		cs.add(expectPodSecurityCheck, c.expectRestrictedPods())
	}
	if e.Verification != "" {
		cs.add(expectVerificationCheck, c.expectVerification())
	}
	for _, n := range slices.Sorted(maps.Keys(e.Images)) {
		want := e.Images[n]
		cs.add(expectImageCheckPrefix+n, c.expectImage(n, &want))
	}
	for _, env := range e.Env {
		cs.add(expectEnvCheckPrefix+path.Join(env.Deployment, env.Container, env.Name), c.expectEnv(env))
	}
}

func (c *checkedRelease) expectEnv(e envExpectation) []Finding {
	i := slices.IndexFunc(c.stream.OfKind(config.KindDeployment), func(d *document) bool { return d.Name == e.Deployment })
	if i < 0 {
		return []Finding{{Document: "stream", Expected: fmt.Sprintf("Deployment %q", e.Deployment), Found: "no such object"}}
	}
	namespace := c.stream.OfKind(config.KindDeployment)[i].Namespace
	target := config.Target{Kind: config.KindDeployment, Namespace: namespace, Name: e.Deployment, Container: e.Container}
	return c.expectRenderedEnv(
		contract.Target{Image: config.Image{Env: e.Name, Target: target}, Key: target.Key()},
		*e.Value,
	)
}

func (c *checkedRelease) expectConfig(want presence) []Finding {
	label := fmt.Sprintf("ConfigMap labelled %s=true", config.ConfigLabel)
	switch {
	case want == present && c.configDoc == nil:
		return []Finding{{Document: "stream", Expected: "a " + label, Found: "none"}}
	case want == absent && c.configDoc != nil:
		return []Finding{{Document: c.configDoc.String(), Expected: "no " + label, Found: "one"}}
	}
	return nil
}

func (c *checkedRelease) expectCronJob(want presence) []Finding {
	cronJobs, _ := c.refresherCronJobs() // a CronJob that does not decode is cronjob-presence's finding
	if want == present && len(cronJobs) == 0 {
		doc := "stream"
		if c.configDoc != nil {
			doc = c.configDoc.String()
		}
		return []Finding{{Document: doc, Expected: "an image-refresh CronJob", Found: "none"}}
	}
	var findings []Finding
	if want == absent {
		for _, r := range cronJobs {
			findings = append(findings, Finding{
				Document: r.doc.String(),
				Expected: "no image-refresh CronJob",
				Found:    "one (" + r.evidence + ")",
			})
		}
	}
	return findings
}

func (c *checkedRelease) noConfig() []Finding {
	if c.configDoc != nil {
		return []Finding{
			{
				Document: c.configDoc.String(),
				Expected: "a valid refresh config",
				Found:    "an invalid one (see " + refreshConfigCheck + ")",
			},
		}
	}
	return []Finding{
		{Document: "stream", Expected: fmt.Sprintf("a ConfigMap labelled %s=true", config.ConfigLabel), Found: "none"},
	}
}

func (c *checkedRelease) expectSchedule(want string) []Finding {
	if c.cfg == nil {
		return c.noConfig()
	}
	if c.cfg.Spec.Schedule != want {
		return []Finding{
			{
				Document: c.configDoc.String(),
				Expected: fmt.Sprintf("schedule %q", want),
				Found:    fmt.Sprintf("%q", c.cfg.Spec.Schedule),
			},
		}
	}
	return nil
}

// expectRestrictedPods evaluates every pod template of the stream against Pod Security restricted.
func (c *checkedRelease) expectRestrictedPods() []Finding {
	var findings []Finding
	for _, d := range c.stream.Docs {
		var tmpl *corev1.PodTemplateSpec
		var err error
		switch d.Kind {
		case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
			var obj struct {
				Spec struct {
					Template corev1.PodTemplateSpec `json:"template"`
				} `json:"spec"`
			}
			err, tmpl = d.Decode(&obj), &obj.Spec.Template
		case "CronJob":
			var cj batchv1.CronJob
			err, tmpl = d.Decode(&cj), &cj.Spec.JobTemplate.Spec.Template
		case "Pod":
			var pod corev1.Pod
			err, tmpl = d.Decode(&pod), &corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}
		default:
			continue
		}
		if err != nil {
			findings = append(findings, Finding{Document: d.String(), Expected: "a " + d.Kind, Found: err.Error()})
			continue
		}
		findings = append(findings, checkRestrictedPod(d, tmpl, false)...)
	}
	return findings
}

func (c *checkedRelease) expectImage(imageName string, want *imageExpectation) []Finding {
	if c.cfg == nil {
		return c.noConfig()
	}
	i := slices.IndexFunc(c.cfg.Spec.Images, func(img config.Image) bool { return img.Name == imageName })
	if i < 0 {
		var names []string
		for _, img := range c.cfg.Spec.Images {
			names = append(names, img.Name)
		}
		return []Finding{
			{
				Document: c.configDoc.String(),
				Image:    imageName,
				Expected: "the image in the refresh config",
				Found:    fmt.Sprintf("images %q", names),
			},
		}
	}
	img := c.cfg.Spec.Images[i]
	var findings []Finding
	compare := func(field, want, got string) {
		if want != "" && want != got {
			findings = append(findings, Finding{
				Document: c.configDoc.String(),
				Image:    imageName,
				Expected: fmt.Sprintf("%s %q", field, want),
				Found:    fmt.Sprintf("%s %q", field, got),
			})
		}
	}
	if want.Pinned != nil && *want.Pinned != img.Pinned() {
		findings = append(findings, Finding{
			Document: c.configDoc.String(),
			Image:    imageName,
			Expected: pinnedWord(*want.Pinned),
			Found:    pinnedWord(img.Pinned()) + digestSuffix(img.Digest),
		})
	}
	compare("action", want.Action, string(img.Action))
	compare("env", want.Env, img.Env)
	compare("target", want.Target, img.Target.Name)
	compare("container", want.Container, img.Target.Container)
	compare("repository", want.Repository, img.Repository)
	compare("tag", want.Tag, img.Tag)
	compare("digest", want.Digest, img.Digest)
	compare("annotation", want.Annotation, img.Annotation)
	if want.Registry != "" {
		wantRegistry, err := name.NewRegistry(want.Registry)
		if err != nil {
			findings = append(findings, Finding{
				Document: "suite",
				Image:    imageName,
				Expected: "a registry host",
				Found:    fmt.Sprintf("%q: %v", want.Registry, err),
			})
		} else if repo, err := name.NewRepository(img.Repository); err != nil {
			findings = append(findings, Finding{
				Document: c.configDoc.String(),
				Image:    imageName,
				Expected: "a valid repository",
				Found:    err.Error(),
			})
		} else if repo.RegistryStr() != wantRegistry.RegistryStr() {
			findings = append(findings, Finding{
				Document: c.configDoc.String(),
				Image:    imageName,
				Expected: fmt.Sprintf("registry %s", wantRegistry.RegistryStr()),
				Found:    fmt.Sprintf("registry %s (repository %q)", repo.RegistryStr(), img.Repository),
			})
		}
	}
	if want.RenderedEnv != "" {
		findings = append(
			findings,
			c.expectRenderedEnv(contract.Target{Index: i, Image: img, Key: c.keys[i]}, want.RenderedEnv)...,
		)
	}
	return findings
}

func pinnedWord(pinned bool) string {
	if pinned {
		return "pinned"
	}
	return "floating"
}

func digestSuffix(d string) string {
	if d == "" {
		return ""
	}
	return " to " + d
}

// expectRenderedEnv compares the value the chart renders for the image's env var on its target
// container; want "absent" means the chart must not render it.
func (c *checkedRelease) expectRenderedEnv(rt contract.Target, want string) []Finding {
	img := rt.Image
	t, missing := c.findTarget(rt)
	if missing != nil {
		return []Finding{*missing}
	}
	var rendered []string
	for _, e := range t.container.Env {
		if e.Name == img.Env {
			rendered = append(rendered, fmt.Sprintf("%q", e.Value))
		}
	}
	expected := fmt.Sprintf("env %s=%q on container %q", img.Env, want, img.Target.Container)
	if want == string(absent) {
		expected = fmt.Sprintf("no env %s on container %q", img.Env, img.Target.Container)
	}
	found := "value " + strings.Join(rendered, ", ")
	switch {
	case want == string(absent) && len(rendered) == 0:
		return nil
	case len(rendered) == 1 && rendered[0] == fmt.Sprintf("%q", want):
		return nil
	case len(rendered) == 0:
		found = "no such env"
	}
	return []Finding{{Document: t.doc.String(), Image: img.Name, Expected: expected, Found: found}}
}
