package contract

import (
	"fmt"

	"github.com/tracebloc/image-refresh/internal/config"
)

// Namespace resolves a target's namespace by the contract's precedence: the image's target.namespace (config.Default
// copies metadata.namespace into one left empty), then the config's metadata.namespace, then the namespace of the
// ConfigMap that carries the config, then the fallback (the release namespace, or at run time --namespace / the
// pod's namespace). "" means "the release namespace", which a post-renderer cannot see.
func Namespace(cfg *config.RefreshConfig, img config.Image, configMapNamespace, fallback string) string {
	for _, ns := range []string{img.Target.Namespace, cfg.Metadata.Namespace, configMapNamespace, fallback} {
		if ns != "" {
			return ns
		}
	}
	return ""
}

// RoleNamespace is where the injected ServiceAccount, Role, RoleBinding and CronJob live: the
// config's metadata.namespace, else the config ConfigMap's, else the fallback.
func RoleNamespace(cfg *config.RefreshConfig, configMapNamespace, fallback string) string {
	for _, ns := range []string{cfg.Metadata.Namespace, configMapNamespace, fallback} {
		if ns != "" {
			return ns
		}
	}
	return ""
}

// Target is a floating image with its target resolved.
type Target struct {
	// Index is the image's position in spec.images.
	Index int
	Image config.Image
	// Key is the target with its namespace resolved ("" = the release namespace).
	Key config.TargetKey
}

// Targets resolves the targets of the floating images, in config order.
func Targets(cfg *config.RefreshConfig, configMapNamespace, fallback string) []Target {
	var out []Target
	for i, img := range cfg.Spec.Images {
		if img.Pinned() {
			continue
		}
		key := img.Target.Key()
		key.Namespace = Namespace(cfg, img, configMapNamespace, fallback)
		out = append(out, Target{Index: i, Image: img, Key: key})
	}
	return out
}

// CheckSharedEnv is the rule that two floating set-env images may not write one variable of
// one container. It runs on resolved targets: namespace defaulting can land two entries on the
// same Deployment, and two values for one variable in one patch flip it on every run. A
// namespace still unresolved ("", the release namespace a post-renderer cannot see) may be
// any, so it collides with every namespace. It returns one violation per image that repeats an
// earlier one, keyed by that image's index.
//
// Two floating set-image images may not set the image of one container either (rule
// image-shared), for the same reason.
func CheckSharedEnv(targets []Target) map[int]*Violation {
	out := map[int]*Violation{}
	for j, t := range targets {
		if !t.Image.Action.Pins() {
			continue
		}
		for _, first := range targets[:j] {
			if first.Image.Action != t.Image.Action || first.Image.Env != t.Image.Env ||
				first.Image.Target.Container != t.Image.Target.Container ||
				first.Key.Kind != t.Key.Kind || first.Key.Name != t.Key.Name ||
				(first.Key.Namespace != t.Key.Namespace && first.Key.Namespace != "" && t.Key.Namespace != "") {
				continue
			}
			if t.Image.Action == config.ActionSetImage {
				out[t.Index] = violation(RuleImageShared,
					"spec.images[%d] (%s): spec.images[%d] (%s) already sets the image of container %q of %s; one patch would carry "+
						"two images and every run would flip it: give one of them another target",
					t.Index, t.Image.Name, first.Index, first.Image.Name, t.Image.Target.Container, KeyString(t.Key))
				break
			}
			out[t.Index] = violation(RuleEnvShared,
				"spec.images[%d] (%s).env %q: spec.images[%d] (%s) already sets it on container %q of %s; one patch would carry "+
					"two values and every run would flip it: give one of them another variable or target",
				t.Index, t.Image.Name, t.Image.Env, first.Index, first.Image.Name, t.Image.Target.Container, KeyString(t.Key))
			break
		}
	}
	return out
}

// CheckRoleCovers is the RBAC coverage rule: every namespace with a target gets a Role and a RoleBinding of its own
// (Grants), and a RoleBinding outside the refresher's namespace must name that namespace in its subject. So a
// target with an explicit namespace needs the refresher's namespace known (roleNamespace, resolved; "" = the
// release namespace, which a post-renderer cannot see).
func CheckRoleCovers(roleNamespace string, t Target) *Violation {
	if roleNamespace != "" || t.Key.Namespace == "" {
		return nil
	}
	return violation(RuleRBACNamespace,
		"its target %s is in namespace %q, where the refresher's RoleBinding must name the namespace of the refresher's "+
			"ServiceAccount, and that is the release namespace, which a post-renderer cannot see, so every run would be "+
			"refused (403); set metadata.namespace of the config",
		KeyString(t.Key), t.Key.Namespace)
}

// KeyString names a target: "Deployment ns/name", or "Deployment name" without a namespace.
func KeyString(k config.TargetKey) string {
	kind := k.Kind
	if kind == "" {
		kind = config.KindDeployment
	}
	if k.Namespace == "" {
		return fmt.Sprintf("%s %s", kind, k.Name)
	}
	return fmt.Sprintf("%s %s/%s", kind, k.Namespace, k.Name)
}

// HelmHookAnnotation makes a rendered document a Helm hook instead of a resource of the release.
const HelmHookAnnotation = "helm.sh/hook"

// CheckConfigNotHook is the rule that the config ConfigMap is a resource of the release, not a
// Helm hook (hook is its helm.sh/hook annotation, or its list's): Helm creates a hook at its
// hook time, outside the release's resources, and deletes it by its hook-delete-policy, so the
// CronJob could not count on mounting it.
func CheckConfigNotHook(hook string) *Violation {
	if hook == "" {
		return nil
	}
	return violation(RuleConfigHook,
		"it is a Helm hook (helm.sh/hook: %s), which is not a resource of the release and may be deleted after the hook "+
			"runs, so the CronJob could not mount it; render the refresh config ConfigMap without the helm.sh/hook annotation",
		hook)
}
