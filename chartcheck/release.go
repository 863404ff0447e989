package chartcheck

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	contract "github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/manifest"
)

// Names of the built-in checks, in the order they run and are reported.
const (
	postRenderCheck     = "post-render"
	uniqueObjectsCheck  = "unique-objects"
	refreshConfigCheck  = "refresh-config"
	cronJobCheck        = "cronjob-presence"
	cronJobConfigCheck  = "cronjob-config"
	keysCheck           = "verification-keys"
	scheduleCheck       = "cronjob-schedule"
	podSecurityCheck    = "pod-security"
	rbacCheck           = "rbac"
	guardCheck          = "admission-guard"
	targetsCheck        = "targets"
	setEnvCheck         = "set-env"
	rolloutRestartCheck = "rollout-restart"
	setImageCheck       = "set-image"
	annotationsCheck    = "annotations"
	writersCheck        = "writers"
)

// checkedRelease is what the built-in checks look at: the stream and the refresh config found in it.
type checkedRelease struct {
	stream    *stream
	configDoc *document
	cfg       *config.RefreshConfig
	// targets are the floating images' targets, resolved by the contract's namespace
	// precedence before cfg's namespace was defaulted to the ConfigMap's.
	targets []contract.Target
	// keys are every image's target, namespace resolved the same way, by image index.
	keys []config.TargetKey
	// cronJob is the CronJob named after the config, if the stream has one.
	cronJobDoc *document
	cronJob    *batchv1.CronJob
	// allowExternalKeys: the keys ConfigMap of spec.verification may be outside the stream.
	allowExternalKeys bool
	// chartCarriesRefresher: the chart itself renders the refresher's CronJob, which the
	// post-renderer then replaced with its identical own (scenarioInput).
	chartCarriesRefresher bool
	// guardNamespace is the namespace the post-renderer names the admission guard after: the
	// config's, else its ConfigMap's as the stream says it ("" when neither says one: the
	// post-renderer cannot see the release namespace, and matches the request's instead).
	guardNamespace string
}

func (c *checkedRelease) check(cs *checkSet, postRendered bool, postRenderErr error) {
	if postRendered {
		var findings []Finding
		if postRenderErr != nil {
			findings = postRenderFindings(postRenderErr)
		}
		cs.add(postRenderCheck, findings)
	}
	cs.add(uniqueObjectsCheck, c.checkUniqueObjects())

	findings, ok := c.loadConfig()
	if deprecated := c.deprecations(); ok && len(findings) == 0 && deprecated != "" {
		cs.warn(refreshConfigCheck, deprecated)
	} else {
		cs.add(refreshConfigCheck, findings)
	}
	if !ok {
		for _, name := range []string{
			cronJobCheck, cronJobConfigCheck, keysCheck, scheduleCheck, podSecurityCheck, rbacCheck, guardCheck, targetsCheck,
			setEnvCheck, rolloutRestartCheck, setImageCheck, annotationsCheck, writersCheck,
		} {
			cs.skip(name, "the refresh config is invalid")
		}
		return
	}

	injectedChecks := []string{
		cronJobCheck, cronJobConfigCheck, keysCheck, scheduleCheck, podSecurityCheck, rbacCheck, guardCheck,
	}
	if postRenderErr != nil {
		for _, name := range injectedChecks {
			cs.skip(name, "the post-renderer refused the release")
		}
	} else {
		cs.add(cronJobCheck, c.checkCronJobPresence())
		switch {
		case c.cfg == nil || !c.cfg.AnyFloating():
			for _, name := range []string{cronJobConfigCheck, keysCheck, scheduleCheck, podSecurityCheck} {
				cs.skip(name, nothingFloats(c.cfg))
			}
			cs.add(rbacCheck, c.checkNothingInjected())
			cs.add(guardCheck, c.checkNoGuard("nothing injected: "+nothingFloats(c.cfg)))
		case c.cronJob == nil:
			for _, name := range injectedChecks[1:] {
				cs.skip(name, "no CronJob "+quoted(c.cfg.Metadata.Name)+" (see "+cronJobCheck+")")
			}
		default:
			cs.add(cronJobConfigCheck, c.checkCronJobConfig())
			c.addKeysCheck(cs)
			cs.add(scheduleCheck, c.checkSchedule())
			cs.add(podSecurityCheck, checkRestrictedPod(c.cronJobDoc, &c.cronJob.Spec.JobTemplate.Spec.Template, true))
			cs.add(rbacCheck, c.checkRBAC())
			c.addGuardCheck(cs)
		}
	}

	if c.cfg == nil || !c.cfg.AnyFloating() {
		for _, name := range []string{
			targetsCheck, setEnvCheck, rolloutRestartCheck, setImageCheck, annotationsCheck, writersCheck,
		} {
			cs.skip(name, nothingFloats(c.cfg))
		}
		return
	}
	targets := c.resolveTargets()
	cs.add(targetsCheck, targets.findings)
	cs.add(setEnvCheck, c.checkSetEnv(targets))
	cs.add(rolloutRestartCheck, c.checkRolloutRestart(targets))
	cs.add(setImageCheck, c.checkSetImage(targets))
	cs.add(annotationsCheck, c.checkAnnotations(targets))
	c.addWritersCheck(cs)
}

// checkUniqueObjects: one object per kind, namespace and name. The cluster holds one object for
// both documents, so one overwrites the other, and the checks read only the first.
func (c *checkedRelease) checkUniqueObjects() []Finding {
	type groupKindName struct{ group, kind, name string }
	seen := map[groupKindName][]*document{}
	var findings []Finding
	for _, d := range c.stream.Docs {
		if d.Name == "" {
			continue // generateName: the API server names each one
		}
		key := groupKindName{d.Group(), d.Kind, d.Name}
		for _, earlier := range seen[key] {
			if earlier.Namespace == d.Namespace {
				findings = append(findings, Finding{
					Document: d.String(),
					Expected: fmt.Sprintf("one %s %q in the namespace", d.Kind, d.Name),
					Found:    "a duplicate of " + earlier.String(),
				})
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
func (c *checkedRelease) loadConfig() (findings []Finding, ok bool) {
	var docs []*document
	var candidates []manifest.Candidate
	for _, d := range c.stream.OfKind("ConfigMap") {
		var cm corev1.ConfigMap
		if err := d.Decode(&cm); err != nil {
			return []Finding{{Document: d.String(), Expected: "a ConfigMap", Found: err.Error()}}, false
		}
		if cm.Labels[config.ConfigLabel] == "true" {
			docs = append(docs, d)
			load := func() (*corev1.ConfigMap, error) { return &cm, nil }
			candidates = append(candidates, manifest.Candidate{Hook: d.Hook, Namespace: d.Namespace, Load: load})
		}
	}
	found := manifest.FindConfig(candidates, manifest.Defaulted)
	if len(docs) > 0 {
		c.configDoc = docs[0]
	}
	doc, cm, cfg := c.configDoc, found.ConfigMap, found.Config
	switch found.Rule {
	case manifest.ConfigFound:
		if cfg == nil {
			return nil, true
		}
	case manifest.ConfigSeveral:
		var names []string
		for _, d := range docs {
			names = append(names, d.String())
		}
		return []Finding{{
			Document: docs[1].String(),
			Expected: fmt.Sprintf("at most one ConfigMap labelled %s=true", config.ConfigLabel),
			Found:    fmt.Sprintf("%d: %s", len(docs), strings.Join(names, ", ")),
		}}, false
	case manifest.ConfigHook:
		return []Finding{{Document: doc.String(), Expected: "the refresh config ConfigMap as a resource of the release",
			Found: found.Violation.Message}}, false
	case manifest.ConfigUnreadable: // decoded above
		return []Finding{{Document: doc.String(), Expected: "a ConfigMap", Found: found.Err.Error()}}, false
	case manifest.ConfigNoKey:
		return []Finding{{
			Document: doc.String(),
			Expected: fmt.Sprintf("data key %q", config.ConfigMapKey),
			Found:    fmt.Sprintf("keys %v", slices.Sorted(maps.Keys(cm.Data))),
		}}, false
	case manifest.ConfigInvalid:
		return []Finding{{Document: doc.String(), Expected: "a valid RefreshConfig", Found: found.Err.Error()}}, false
	case manifest.ConfigNamespace:
		return []Finding{{
			Document: doc.String(),
			Expected: fmt.Sprintf(
				"the ConfigMap in the config's namespace %q (the CronJob mounts it from there)",
				cfg.Metadata.Namespace,
			),
			Found: fmt.Sprintf("namespace %q", doc.Namespace),
		}}, false
	}
	// The targets resolve by the contract's precedence; the CronJob and its RBAC go to the
	// Role namespace, which the checks of injected objects read as the config's namespace.
	c.targets = contract.Targets(cfg, doc.Namespace, "")
	for _, img := range cfg.Spec.Images {
		key := img.Target.Key()
		key.Namespace = contract.Namespace(cfg, img, doc.Namespace, "")
		c.keys = append(c.keys, key)
	}
	// The post-renderer saw the ConfigMap's namespace as rendered (cm is decoded from the
	// document, not defaulted to the release namespace).
	c.guardNamespace = contract.RoleNamespace(cfg, cm.Namespace, "")
	cfg.Metadata.Namespace = contract.RoleNamespace(cfg, doc.Namespace, "")
	c.cfg = cfg
	return nil, true
}

// target is a floating image's resolved workload.
type target struct {
	image      config.Image
	doc        *document
	deployment *appsv1.Deployment
	container  *corev1.Container
}

type resolvedTargets struct {
	targets  []target // floating images whose Deployment and container exist
	findings []Finding
}

// resolveTargets finds each floating image's Deployment and container in the stream and applies
// the contract's rules about targets: one writer per set-env variable and per set-image container, the Role's namespace
// covers the target, the Deployment can roll out.
func (c *checkedRelease) resolveTargets() resolvedTargets {
	var out resolvedTargets
	shared := contract.CheckSharedEnv(c.targets)
	for _, rt := range c.targets {
		img := rt.Image
		if v := shared[rt.Index]; v != nil {
			expected := "one set-env image per variable of a container"
			if v.Rule == contract.RuleImageShared {
				expected = "one set-image image per container"
			}
			out.findings = append(out.findings, Finding{
				Document: c.configDoc.String(),
				Image:    img.Name,
				Expected: expected,
				Found:    v.Message,
			})
			continue
		}
		if v := contract.CheckRoleCovers(c.cfg.Metadata.Namespace, rt); v != nil {
			out.findings = append(out.findings, Finding{
				Document: c.configDoc.String(),
				Image:    img.Name,
				Expected: "the target in the namespace of the refresher's Role",
				Found:    v.Message,
			})
			continue
		}
		t, finding := c.findTarget(rt)
		if finding != nil {
			out.findings = append(out.findings, *finding)
			continue
		}
		if v := contract.CheckTargetState(t.deployment); v != nil {
			out.findings = append(out.findings, Finding{
				Document: t.doc.String(),
				Image:    img.Name,
				Expected: "a " + rt.Key.Kind + " that rolls out",
				Found:    v.Message,
			})
		}
		out.targets = append(out.targets, t)
	}
	return out
}

// findTarget finds an image's resolved target Deployment and container, or says what is missing.
func (c *checkedRelease) findTarget(rt contract.Target) (target, *Finding) {
	img := rt.Image
	docs := c.stream.Find(rt.Key.Kind, rt.Key.Namespace, rt.Key.Name)
	if len(docs) == 0 {
		return target{}, &Finding{
			Document: c.configDoc.String(),
			Image:    img.Name,
			Expected: fmt.Sprintf("target %s in the stream", contract.KeyString(rt.Key)),
			Found:    "no such object",
		}
	}
	dep, err := contract.TargetView(rt.Key.Kind, docs[0].Decode)
	if err != nil {
		return target{}, &Finding{
			Document: docs[0].String(),
			Image:    img.Name,
			Expected: "a " + rt.Key.Kind,
			Found:    err.Error(),
		}
	}
	ctr, v := contract.Container(dep, img)
	if v != nil {
		return target{}, &Finding{
			Document: docs[0].String(),
			Image:    img.Name,
			Expected: fmt.Sprintf("container %q", img.Target.Container),
			Found:    v.Message,
		}
	}
	return target{image: img, doc: docs[0], deployment: dep, container: ctr}, nil
}

// checkSetEnv: while a set-env image floats the chart must not render its variable, or every
// helm upgrade would reset the refreshed digest (the contract's rule, contract.CheckRenderedEnv).
func (c *checkedRelease) checkSetEnv(resolved resolvedTargets) []Finding {
	var findings []Finding
	for _, t := range resolved.targets {
		if t.image.Action != config.ActionSetEnv {
			continue
		}
		namespace := t.doc.Namespace
		envFrom := func(kind, name, key string) string {
			if doc := c.envSourceDefining(kind, name, key, namespace); doc != nil {
				return doc.String()
			}
			return ""
		}
		if v := contract.CheckRenderedEnv(t.container, t.image.Env, envFrom); v != nil {
			findings = append(findings, Finding{Document: t.doc.String(), Image: t.image.Name,
				Expected: fmt.Sprintf(
					"env %s on container %q left to image-refresh while %s floats (absent, or named without a value)",
					t.image.Env,
					t.container.Name,
					t.image.Name,
				),
				Found: fmt.Sprintf("container %q %s", t.container.Name, v.Message)})
		}
	}
	return findings
}

// envSourceDefining returns the ConfigMap or Secret of the stream, of kind and name in
// namespace, that defines key.
func (c *checkedRelease) envSourceDefining(kind, name, key, namespace string) *document {
	for _, d := range c.stream.Find(kind, namespace, name) {
		var data contract.EnvData
		if d.Decode(&data) == nil && data.Defines(key) {
			return d
		}
	}
	return nil
}

// checkRolloutRestart: a restart only picks up a moved tag when the container runs the polled
// repository:tag, not a digest, with imagePullPolicy Always (contract.CheckRestart).
func (c *checkedRelease) checkRolloutRestart(resolved resolvedTargets) []Finding {
	var findings []Finding
	for _, t := range resolved.targets {
		if t.image.Action != config.ActionRolloutRestart {
			continue
		}
		if v := contract.CheckRestart(t.image, t.container); v != nil {
			findings = append(findings, Finding{Document: t.doc.String(), Image: t.image.Name,
				Expected: fmt.Sprintf(
					"container %q to run %s with imagePullPolicy Always, so a restart pulls the moved tag",
					t.container.Name,
					t.image.Reference(),
				),
				Found: fmt.Sprintf("container %q %s", t.container.Name, v.Message)})
		}
	}
	return findings
}

// checkSetImage: set-image replaces only the tag or digest of the container's image, so the
// container must run the polled repository, by tag or digest, with any pull policy (contract.LiveImage).
func (c *checkedRelease) checkSetImage(resolved resolvedTargets) []Finding {
	var findings []Finding
	for _, t := range resolved.targets {
		if t.image.Action != config.ActionSetImage {
			continue
		}
		if _, v := contract.LiveImage(t.image, t.container); v != nil {
			findings = append(findings, Finding{Document: t.doc.String(), Image: t.image.Name,
				Expected: fmt.Sprintf(
					"container %q to run the repository %s, by tag or digest, which set-image pins to %s",
					t.container.Name,
					t.image.Repository,
					t.image.PinnedImage("<digest>"),
				),
				Found: fmt.Sprintf("container %q %s", t.container.Name, v.Message)})
		}
	}
	return findings
}

// effectivePullPolicy is the policy the API server will store for the container.
func effectivePullPolicy(ctr *corev1.Container) corev1.PullPolicy {
	return contract.EffectivePullPolicy(ctr)
}

// checkAnnotations: the chart does not render an audit annotation on its target (an upgrade would
// reset the recorded digest and the next run would act on an unchanged image). That each key is
// valid, unique and outside the domains Kubernetes and Helm own, config.Parse has checked.
func (c *checkedRelease) checkAnnotations(resolved resolvedTargets) []Finding {
	var findings []Finding
	for _, t := range resolved.targets {
		if v, owned := t.deployment.Annotations[t.image.Annotation]; owned {
			findings = append(findings, Finding{
				Document: t.doc.String(),
				Image:    t.image.Name,
				Expected: fmt.Sprintf("annotation %s left to image-refresh", t.image.Annotation),
				Found:    fmt.Sprintf("the chart renders it with value %q", v),
			})
		}
	}
	return findings
}

// deprecations are the config's deprecated fields (config.Deprecations), one line, "" for none.
func (c *checkedRelease) deprecations() string {
	if c.cfg == nil {
		return ""
	}
	return strings.Join(c.cfg.Deprecations(), "; ")
}
