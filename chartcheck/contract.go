package chartcheck

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/refresher/config"
)

// Names of the built-in checks, in the order they run and are reported.
const (
	CheckPostRender     = "post-render"
	CheckUniqueObjects  = "unique-objects"
	CheckRefreshConfig  = "refresh-config"
	CheckCronJob        = "cronjob-presence"
	CheckCronJobConfig  = "cronjob-config"
	CheckSchedule       = "cronjob-schedule"
	CheckPodSecurity    = "pod-security"
	CheckRBAC           = "rbac"
	CheckTargets        = "targets"
	CheckSetEnv         = "set-env"
	CheckRolloutRestart = "rollout-restart"
	CheckAnnotations    = "annotations"
)

// contract is what the built-in checks look at: the stream and the refresh config found in it.
type contract struct {
	stream    *Stream
	configDoc *Document
	cfg       *config.RefreshConfig
	// cronJob is the CronJob named after the config, if the stream has one.
	cronJobDoc *Document
	cronJob    *batchv1.CronJob
}

// CheckStream runs the built-in contract over a rendered stream. postRenderErr is the
// post-renderer's refusal, if it refused; the objects it would have injected are then not checked.
func CheckStream(s *Stream, postRendered bool, postRenderErr error) []CheckResult {
	return checkScenario(s, postRendered, postRenderErr, nil)
}

func (c *contract) check(cs *checkSet, postRendered bool, postRenderErr error) {
	if postRendered {
		var findings []Finding
		if postRenderErr != nil {
			findings = postRenderFindings(postRenderErr)
		}
		cs.add(CheckPostRender, findings)
	}
	cs.add(CheckUniqueObjects, c.checkUniqueObjects())

	findings, ok := c.loadConfig()
	cs.add(CheckRefreshConfig, findings)
	if !ok {
		for _, name := range []string{CheckCronJob, CheckCronJobConfig, CheckSchedule, CheckPodSecurity, CheckRBAC, CheckTargets, CheckSetEnv, CheckRolloutRestart, CheckAnnotations} {
			cs.skip(name, "the refresh config is invalid")
		}
		return
	}

	injectedChecks := []string{CheckCronJob, CheckCronJobConfig, CheckSchedule, CheckPodSecurity, CheckRBAC}
	if postRenderErr != nil {
		for _, name := range injectedChecks {
			cs.skip(name, "the post-renderer refused the release")
		}
	} else {
		cs.add(CheckCronJob, c.checkCronJobPresence())
		switch {
		case c.cfg == nil || !c.cfg.AnyFloating():
			for _, name := range []string{CheckCronJobConfig, CheckSchedule, CheckPodSecurity} {
				cs.skip(name, nothingFloats(c.cfg))
			}
			cs.add(CheckRBAC, c.checkNothingInjected())
		case c.cronJob == nil:
			for _, name := range injectedChecks[1:] {
				cs.skip(name, "no CronJob "+quoted(c.cfg.Metadata.Name)+" (see "+CheckCronJob+")")
			}
		default:
			cs.add(CheckCronJobConfig, c.checkCronJobConfig())
			cs.add(CheckSchedule, c.checkSchedule())
			cs.add(CheckPodSecurity, checkRestrictedPod(c.cronJobDoc, &c.cronJob.Spec.JobTemplate.Spec.Template, true))
			cs.add(CheckRBAC, c.checkRBAC())
		}
	}

	if c.cfg == nil || !c.cfg.AnyFloating() {
		for _, name := range []string{CheckTargets, CheckSetEnv, CheckRolloutRestart, CheckAnnotations} {
			cs.skip(name, nothingFloats(c.cfg))
		}
		return
	}
	targets := c.resolveTargets()
	cs.add(CheckTargets, targets.findings)
	cs.add(CheckSetEnv, c.checkSetEnv(targets))
	cs.add(CheckRolloutRestart, c.checkRolloutRestart(targets))
	cs.add(CheckAnnotations, c.checkAnnotations(targets))
}

// checkUniqueObjects: one object per kind, namespace and name. The cluster holds one object for
// both documents, so one overwrites the other, and the checks read only the first.
func (c *contract) checkUniqueObjects() []Finding {
	type groupKindName struct{ group, kind, name string }
	seen := map[groupKindName][]*Document{}
	var findings []Finding
	for _, d := range c.stream.Docs {
		if d.Name == "" {
			continue // generateName: the API server names each one
		}
		key := groupKindName{d.Group(), d.Kind, d.Name}
		for _, earlier := range seen[key] {
			if earlier.Namespace == d.Namespace {
				findings = append(findings, Finding{Document: d.String(), Expected: fmt.Sprintf("one %s %q in the namespace", d.Kind, d.Name), Found: "a duplicate of " + earlier.String()})
				break
			}
		}
		seen[key] = append(seen[key], d)
	}
	return findings
}

func nothingFloats(cfg *config.RefreshConfig) string {
	if cfg == nil {
		return "no refresh config in the stream"
	}
	return "every image is pinned"
}

func quoted(s string) string { return fmt.Sprintf("%q", s) }

// loadConfig finds the ConfigMap labelled image-refresh.io/config=true and parses its
// refresh.yaml with the contract's own parser. ok is false when a config is present but unusable.
func (c *contract) loadConfig() (findings []Finding, ok bool) {
	var docs []*Document
	var configMaps []*corev1.ConfigMap
	for _, d := range c.stream.OfKind("ConfigMap") {
		var cm corev1.ConfigMap
		if err := d.Decode(&cm); err != nil {
			return []Finding{{Document: d.String(), Expected: "a ConfigMap", Found: err.Error()}}, false
		}
		if cm.Labels[config.ConfigLabel] == "true" {
			docs = append(docs, d)
			configMaps = append(configMaps, &cm)
		}
	}
	switch len(docs) {
	case 0:
		return nil, true
	case 1:
	default:
		c.configDoc = docs[0]
		var names []string
		for _, d := range docs {
			names = append(names, d.String())
		}
		return []Finding{{
			Document: docs[1].String(),
			Expected: fmt.Sprintf("at most one ConfigMap labelled %s=true", config.ConfigLabel),
			Found:    fmt.Sprintf("%d: %s", len(docs), strings.Join(names, ", ")),
		}}, false
	}
	doc, cm := docs[0], configMaps[0]
	c.configDoc = doc
	data, present := cm.Data[config.ConfigMapKey]
	if !present {
		return []Finding{{
			Document: doc.String(),
			Expected: fmt.Sprintf("data key %q", config.ConfigMapKey),
			Found:    fmt.Sprintf("keys %v", slices.Sorted(maps.Keys(cm.Data))),
		}}, false
	}
	cfg, err := config.Parse([]byte(data))
	if err != nil {
		return []Finding{{Document: doc.String(), Expected: "a valid RefreshConfig", Found: err.Error()}}, false
	}
	if cfg.Metadata.Namespace != "" && doc.Namespace != cfg.Metadata.Namespace {
		return []Finding{{
			Document: doc.String(),
			Expected: fmt.Sprintf("the ConfigMap in the config's namespace %q (the CronJob mounts it from there)", cfg.Metadata.Namespace),
			Found:    fmt.Sprintf("namespace %q", doc.Namespace),
		}}, false
	}
	// A config without a namespace is the ConfigMap's: the CronJob and its RBAC go there.
	if cfg.Metadata.Namespace == "" {
		cfg.Metadata.Namespace = doc.Namespace
		for i := range cfg.Spec.Images {
			cfg.Spec.Images[i].Target.Namespace = defaultString(cfg.Spec.Images[i].Target.Namespace, doc.Namespace)
		}
	}
	c.cfg = cfg
	return nil, true
}

// target is a floating image's resolved workload.
type target struct {
	image      config.Image
	doc        *Document
	deployment *appsv1.Deployment
	container  *corev1.Container
}

type resolvedTargets struct {
	targets  []target // floating images whose Deployment and container exist
	findings []Finding
}

// resolveTargets finds each floating image's Deployment and container in the stream.
func (c *contract) resolveTargets() resolvedTargets {
	var out resolvedTargets
	for _, img := range c.cfg.Floating() {
		t, finding := c.findTarget(img)
		if finding != nil {
			out.findings = append(out.findings, *finding)
			continue
		}
		if t.deployment.Spec.Paused {
			out.findings = append(out.findings, Finding{Document: t.doc.String(), Image: img.Name, Expected: "an unpaused Deployment", Found: "spec.paused: true: no refresh would roll out"})
		}
		out.targets = append(out.targets, t)
	}
	return out
}

// findTarget finds an image's target Deployment and container, or says what is missing.
func (c *contract) findTarget(img config.Image) (target, *Finding) {
	docs := c.stream.Find(img.Target.Kind, img.Target.Namespace, img.Target.Name)
	if len(docs) == 0 {
		return target{}, &Finding{Document: c.configDoc.String(), Image: img.Name, Expected: fmt.Sprintf("target %s %q in the stream", img.Target.Kind, img.Target.Name), Found: "no such object"}
	}
	var dep appsv1.Deployment
	if err := docs[0].Decode(&dep); err != nil {
		return target{}, &Finding{Document: docs[0].String(), Image: img.Name, Expected: "a Deployment", Found: err.Error()}
	}
	containers := dep.Spec.Template.Spec.Containers
	i := slices.IndexFunc(containers, func(ctr corev1.Container) bool { return ctr.Name == img.Target.Container })
	if i < 0 {
		var names []string
		for _, ctr := range containers {
			names = append(names, ctr.Name)
		}
		return target{}, &Finding{Document: docs[0].String(), Image: img.Name, Expected: fmt.Sprintf("container %q", img.Target.Container), Found: fmt.Sprintf("containers %q", names)}
	}
	return target{image: img, doc: docs[0], deployment: &dep, container: &containers[i]}, nil
}

// checkSetEnv: while a set-env image floats the chart must not render its variable, or every
// helm upgrade would reset the refreshed digest (Helm's three-way merge patches every field
// present in the new manifest).
func (c *contract) checkSetEnv(resolved resolvedTargets) []Finding {
	var findings []Finding
	for _, t := range resolved.targets {
		if t.image.Action != config.ActionSetEnv {
			continue
		}
		expected := fmt.Sprintf("no env %s on container %q: image-refresh owns it while %s floats", t.image.Env, t.container.Name, t.image.Name)
		for _, e := range t.container.Env {
			if e.Name != t.image.Env {
				continue
			}
			found := fmt.Sprintf("the chart renders env %s with value %q, which every helm upgrade would restore", e.Name, e.Value)
			if e.ValueFrom != nil {
				found = fmt.Sprintf("the chart renders env %s from valueFrom, which every helm upgrade would restore", e.Name)
			}
			findings = append(findings, Finding{Document: t.doc.String(), Image: t.image.Name, Expected: expected, Found: found})
		}
		for _, src := range t.container.EnvFrom {
			if doc := c.envSourceDefining(src, t.image.Env, t.doc.Namespace); doc != nil {
				findings = append(findings, Finding{Document: t.doc.String(), Image: t.image.Name, Expected: expected, Found: fmt.Sprintf("envFrom %s defines %s", doc, t.image.Env)})
			}
		}
	}
	return findings
}

// envSourceDefining returns the ConfigMap or Secret of the stream that an envFrom entry takes env
// from, if it carries the variable.
func (c *contract) envSourceDefining(src corev1.EnvFromSource, env, namespace string) *Document {
	key, found := strings.CutPrefix(env, src.Prefix)
	if !found {
		return nil
	}
	kind, name := "", ""
	switch {
	case src.ConfigMapRef != nil:
		kind, name = "ConfigMap", src.ConfigMapRef.Name
	case src.SecretRef != nil:
		kind, name = "Secret", src.SecretRef.Name
	default:
		return nil
	}
	for _, d := range c.stream.Find(kind, namespace, name) {
		var obj struct {
			Data       map[string]any `json:"data"`
			StringData map[string]any `json:"stringData"`
			BinaryData map[string]any `json:"binaryData"`
		}
		if err := d.Decode(&obj); err != nil {
			continue
		}
		_, inData := obj.Data[key]
		_, inStringData := obj.StringData[key]
		if inData || inStringData {
			return d
		}
	}
	return nil
}

// checkRolloutRestart: a restart only picks up a moved tag when the container runs the polled
// repository:tag, not a digest, with imagePullPolicy Always.
func (c *contract) checkRolloutRestart(resolved resolvedTargets) []Finding {
	var findings []Finding
	for _, t := range resolved.targets {
		if t.image.Action != config.ActionRolloutRestart {
			continue
		}
		doc, ctr := t.doc.String(), t.container
		polled, err := name.NewTag(t.image.Reference())
		if err != nil {
			findings = append(findings, Finding{Document: c.configDoc.String(), Image: t.image.Name, Expected: "a valid repository:tag", Found: err.Error()})
			continue
		}
		running, err := name.ParseReference(ctr.Image)
		switch {
		case err != nil:
			findings = append(findings, Finding{Document: doc, Image: t.image.Name, Expected: fmt.Sprintf("container %q to run %s", ctr.Name, polled), Found: fmt.Sprintf("image %q: %v", ctr.Image, err)})
		case strings.Contains(ctr.Image, "@"):
			findings = append(findings, Finding{Document: doc, Image: t.image.Name, Expected: fmt.Sprintf("container %q to run the floating %s, not a digest", ctr.Name, polled), Found: fmt.Sprintf("image %q, pinned: a restart cannot pick up a moved tag", ctr.Image)})
		case running.Name() != polled.Name():
			findings = append(findings, Finding{Document: doc, Image: t.image.Name, Expected: fmt.Sprintf("container %q to run %s, the reference image-refresh polls", ctr.Name, polled), Found: fmt.Sprintf("image %q", ctr.Image)})
		}
		if policy := effectivePullPolicy(ctr); policy != corev1.PullAlways {
			findings = append(findings, Finding{Document: doc, Image: t.image.Name, Expected: fmt.Sprintf("container %q with imagePullPolicy Always", ctr.Name), Found: fmt.Sprintf("%s: a restart would start the cached digest again", policy)})
		}
	}
	return findings
}

// effectivePullPolicy is the policy the API server will store for the container.
func effectivePullPolicy(ctr *corev1.Container) corev1.PullPolicy {
	return corev1.PullPolicy(config.EffectivePullPolicy(string(ctr.ImagePullPolicy), ctr.Image))
}

// checkAnnotations: the chart does not render an audit annotation on its target (an upgrade would
// reset the recorded digest and the next run would act on an unchanged image). That each key is
// valid, unique and outside the domains Kubernetes and Helm own, config.Parse has checked.
func (c *contract) checkAnnotations(resolved resolvedTargets) []Finding {
	var findings []Finding
	for _, t := range resolved.targets {
		if v, owned := t.deployment.Annotations[t.image.Annotation]; owned {
			findings = append(findings, Finding{Document: t.doc.String(), Image: t.image.Name, Expected: fmt.Sprintf("annotation %s left to image-refresh", t.image.Annotation), Found: fmt.Sprintf("the chart renders it with value %q", v)})
		}
	}
	return findings
}
