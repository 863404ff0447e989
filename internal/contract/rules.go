package contract

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

// Container finds the image's target container in a Deployment.
func Container(dep *appsv1.Deployment, img config.Image) (*corev1.Container, *Violation) {
	containers := dep.Spec.Template.Spec.Containers
	for i := range containers {
		if containers[i].Name == img.Target.Container {
			return &containers[i], nil
		}
	}
	names := make([]string, len(containers))
	for i, c := range containers {
		names[i] = fmt.Sprintf("%q", c.Name)
	}
	has := "no containers"
	if len(names) > 0 {
		has = strings.Join(names, ", ")
	}
	return nil, violation(RuleTargetMissing, "container %q not found (it has %s)", img.Target.Container, has)
}

// CheckTargetState refuses a target that does not roll out a changed pod template — a paused Deployment, a
// DaemonSet updated OnDelete — and one being deleted, gone soon; the refresh would record a digest no pod runs.
func CheckTargetState(dep *appsv1.Deployment) *Violation {
	kind := ViewKind(dep)
	switch {
	case dep.DeletionTimestamp != nil:
		return violation(RuleTargetState,
			"the %s is being deleted (metadata.deletionTimestamp is set): nothing would roll out", kind)
	case dep.Spec.Paused:
		return violation(RuleTargetState, "the %s is paused (spec.paused: true): nothing would roll out; resume it "+
			"(kubectl rollout resume) or pin the image", kind)
	case dep.Spec.Strategy.Type == onDeleteStrategy:
		return violation(RuleTargetState, "the %s is updated OnDelete (spec.updateStrategy.type: OnDelete): nothing would "+
			"roll out until its pods are deleted; use RollingUpdate or pin the image", kind)
	}
	return nil
}

// CheckRestart is the rule "can this container be restarted into the moved tag": it must run
// the polled repository:tag (compared normalised, with go-containerregistry's parser), not a
// digest, with an effective imagePullPolicy of Always. Otherwise recording the new digest would
// claim a change the pods never got.
func CheckRestart(img config.Image, c *corev1.Container) *Violation {
	polled, err := name.NewTag(img.Reference())
	if err != nil {
		// config.Validate admits only references that parse.
		return violation(RuleRestartReference, "the polled reference %q does not parse: %v", img.Reference(), err)
	}
	running, err := name.ParseReference(c.Image)
	if err != nil {
		return violation(RuleRestartReference,
			"runs %q, which is not an image reference (%v): run %s there with imagePullPolicy: Always while %s floats",
			c.Image, err, polled, img.Name)
	}
	if _, pinned := running.(name.Digest); pinned {
		return violation(RuleRestartPinned, "runs the digest-pinned image %s: a rollout restart would start that digest "+
			"again, not the one %s points at; run the image by tag (%s) with imagePullPolicy: Always while %s floats, or pin "+
			"the digest in the config too",
			c.Image, polled, polled, img.Name)
	}
	if running.Name() != polled.Name() {
		return violation(RuleRestartReference, "runs %s, not %s: a rollout restart would not start the digest %s points "+
			"at; run %s there, or set the image's repository and tag in the config to what the container runs",
			c.Image, polled, polled, polled)
	}
	if policy := EffectivePullPolicy(c); policy != corev1.PullAlways {
		found := "imagePullPolicy " + string(policy)
		if c.ImagePullPolicy == "" {
			found = fmt.Sprintf("no imagePullPolicy, which Kubernetes defaults to %s for %q", policy, c.Image)
		}
		return violation(RuleRestartPullPolicy, "runs %s with %s: a rollout restart would start the cached image instead "+
			"of pulling the digest the tag now points at; set imagePullPolicy: Always on that container while %s floats",
			c.Image, found, img.Name)
	}
	return nil
}

// LiveImage is the set-image rule on a container: it must run the polled repository (compared
// normalised), by tag or by digest — set-image replaces only the tag or digest, never the image.
// L is the digest it is pinned to ("" when it runs a tag: the first change heals it to a digest).
func LiveImage(img config.Image, c *corev1.Container) (string, *Violation) {
	polled, err := name.NewRepository(img.Repository)
	if err != nil {
		// config.Validate admits only repositories that parse.
		return "", violation(RuleImageReference, "the polled repository %q does not parse: %v", img.Repository, err)
	}
	running, err := name.ParseReference(c.Image)
	if err != nil {
		return "", violation(RuleImageReference,
			"runs %q, which is not an image reference (%v): run %s there while %s floats",
			c.Image, err, polled, img.Name)
	}
	if running.Context().Name() != polled.Name() {
		return "", violation(RuleImageReference, "runs %s, not the repository %s: set-image would replace one image with "+
			"another; run %s there, or set the image's repository in the config to what the container runs",
			c.Image, polled, polled)
	}
	if d, ok := running.(name.Digest); ok {
		return d.DigestStr(), nil
	}
	return "", nil
}

// EffectivePullPolicy is the policy the API server stores for the container (config's rule:
// unset means Always only for :latest or no tag, without a digest).
func EffectivePullPolicy(c *corev1.Container) corev1.PullPolicy {
	return corev1.PullPolicy(config.EffectivePullPolicy(string(c.ImagePullPolicy), c.Image))
}

// envEntries returns the indexes of the container's env entries named env.
func envEntries(c *corev1.Container, env string) []int {
	var out []int
	for i := range c.Env {
		if c.Env[i].Name == env {
			out = append(out, i)
		}
	}
	return out
}

func checkEnvDuplicate(c *corev1.Container, env string, entries []int) *Violation {
	if len(entries) < 2 {
		return nil
	}
	return violation(RuleEnvDuplicate, "lists env %s %d times (env[%d] and env[%d]): the kubelet uses the last, a patch "+
		"by name cannot say which it changes; keep exactly one entry",
		env, len(entries), entries[0], entries[len(entries)-1])
}

// LiveEnv is the set-env rule on a live container: the value of the variable the refresher
// owns (L, "" when absent). The image fails when the variable is listed more than once (the
// kubelet uses the last entry, a strategic-merge patch by name would not say which it changes)
// or set from valueFrom (never overwritten).
func LiveEnv(c *corev1.Container, env string) (string, *Violation) {
	entries := envEntries(c, env)
	if v := checkEnvDuplicate(c, env, entries); v != nil {
		return "", v
	}
	if len(entries) == 0 {
		return "", nil
	}
	e := c.Env[entries[0]]
	if e.ValueFrom != nil {
		return "", violation(RuleEnvValueFrom, "sets env %s from valueFrom; refusing to overwrite it", env)
	}
	return e.Value, nil
}

// EnvSource finds the rendered ConfigMap or Secret (kind) of a name that an envFrom entry reads
// and that defines key (see EnvData), and returns how to name it; "" when none does or it is not
// in the release.
type EnvSource func(kind, name, key string) string

// EnvData is what an envFrom source defines: decode a ConfigMap or Secret into it.
type EnvData struct {
	Data       map[string]any `json:"data"`
	StringData map[string]any `json:"stringData"`
}

// Defines reports whether the ConfigMap or Secret defines key.
func (d EnvData) Defines(key string) bool {
	_, inData := d.Data[key]
	_, inStringData := d.StringData[key]
	return inData || inStringData
}

// CheckRenderedEnv is the set-env rule on a rendered container: while the image floats, the
// chart must not render the variable — with a value, from valueFrom, or through envFrom of a
// rendered ConfigMap or Secret — or every helm upgrade resets the refreshed digest (a silent
// downgrade). A bare "- name: VAR" entry (or value: "", which Kubernetes stores the same) is
// accepted; a variable listed twice is not.
func CheckRenderedEnv(c *corev1.Container, env string, envFrom EnvSource) *Violation {
	entries := envEntries(c, env)
	if v := checkEnvDuplicate(c, env, entries); v != nil {
		return v
	}
	for _, i := range entries {
		e := c.Env[i]
		switch {
		case e.ValueFrom != nil:
			return violation(RuleEnvRendered, "renders env %s from valueFrom: every helm upgrade would reset the digest the "+
				"refresher set (a silent downgrade); leave %s out of the chart while the image floats (render it only when its "+
				"digest is pinned)", env, env)
		case e.Value != "":
			return violation(RuleEnvRendered, "renders env %s with value %q: every helm upgrade would reset the digest the "+
				"refresher set (a silent downgrade); leave %s out of the chart while the image floats (render it only when its "+
				"digest is pinned)", env, e.Value, env)
		}
	}
	if len(entries) > 0 || envFrom == nil {
		return nil // an explicit entry takes precedence over envFrom
	}
	for _, src := range c.EnvFrom {
		key, found := strings.CutPrefix(env, src.Prefix)
		if !found {
			continue
		}
		kind, name := "ConfigMap", ""
		switch {
		case src.ConfigMapRef != nil:
			name = src.ConfigMapRef.Name
		case src.SecretRef != nil:
			kind, name = "Secret", src.SecretRef.Name
		default:
			continue
		}
		if from := envFrom(kind, name, key); from != "" {
			return violation(RuleEnvRendered, "takes env %s from %s (envFrom): every helm upgrade would reset the digest the "+
				"refresher set (a silent downgrade); leave %s out of it while the image floats", env, from, key)
		}
	}
	return nil
}
