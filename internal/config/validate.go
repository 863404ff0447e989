package config

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tracebloc/image-refresh/internal/version"
)

// Defaults applied by Default.
const (
	DefaultSchedule     = "7,22,37,52 * * * *"
	DefaultTag          = "latest"
	DefaultRunAsUser    = int64(65532)
	DefaultPullPolicy   = "IfNotPresent"
	maxImageNameChars   = 63 - len("status-") // the name part of the status annotation key
	maxCronJobNameChars = 52                  // the CronJob controller appends an 11-character suffix to Job names
)

// DefaultJobImage is the refresher image the CronJob runs unless spec.job.image says
// otherwise: this release's own image.
var DefaultJobImage = version.ImageReference()

var digestPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ValidDigest reports whether d is a sha256 digest as the contract requires.
func ValidDigest(d string) bool { return digestPattern.MatchString(d) }

// Default fills the fields the contract defaults: schedule, tag, target kind and namespace,
// and the CronJob's image and security settings.
func (c *RefreshConfig) Default() {
	if c.Spec.Schedule == "" {
		c.Spec.Schedule = DefaultSchedule
	}
	// Empty lists count as unset, as empty maps do below: they marshal to nothing.
	if len(c.Spec.Platforms) == 0 {
		c.Spec.Platforms = nil
	}
	if len(c.Spec.InsecureRegistries) == 0 {
		c.Spec.InsecureRegistries = nil
	}
	if len(c.Spec.Job.ImagePullSecrets) == 0 {
		c.Spec.Job.ImagePullSecrets = nil
	}
	if len(c.Spec.Job.Env) == 0 {
		c.Spec.Job.Env = nil
	}
	for i := range c.Spec.Images {
		img := &c.Spec.Images[i]
		if img.Tag == "" {
			img.Tag = DefaultTag
		}
		if img.Target.Kind == "" {
			img.Target.Kind = KindDeployment
		}
		if img.Target.Namespace == "" {
			img.Target.Namespace = c.Metadata.Namespace
		}
	}
	job := &c.Spec.Job
	if job.Image == "" {
		job.Image = DefaultJobImage
	}
	if job.ImagePullPolicy == "" {
		job.ImagePullPolicy = DefaultPullPolicy
	}
	setDefault(&job.RunAsUser, DefaultRunAsUser)
	setDefault(&job.StartingDeadlineSeconds, 300)
	setDefault(&job.ActiveDeadlineSeconds, 600)
	setDefault(&job.BackoffLimit, 1)
	setDefault(&job.SuccessfulJobsHistoryLimit, 1)
	setDefault(&job.FailedJobsHistoryLimit, 3)
	// Empty counts as unset (resources: {limits: {}} marshals to nothing and would take the
	// defaults on the next read): a config means the same after a round trip.
	if len(job.Resources.Requests) == 0 && len(job.Resources.Limits) == 0 {
		job.Resources = Resources{
			Requests: map[string]string{"cpu": "10m", "memory": "32Mi"},
			Limits:   map[string]string{"cpu": "200m", "memory": "64Mi"},
		}
	}
}

func setDefault[T any](field **T, v T) {
	if *field == nil {
		*field = &v
	}
}

// Validate checks the whole document and reports every problem at once; each message names
// the image (by index and name) and the field.
func (c *RefreshConfig) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.APIVersion != APIVersion {
		add("apiVersion: got %q, want %q", c.APIVersion, APIVersion)
	}
	if c.Kind != Kind {
		add("kind: got %q, want %q", c.Kind, Kind)
	}
	if msgs := content.IsDNS1123Label(c.Metadata.Name); len(msgs) > 0 {
		add("metadata.name %q: %s", c.Metadata.Name, strings.Join(msgs, "; "))
	} else if len(c.Metadata.Name) > maxCronJobNameChars {
		add("metadata.name %q: must be at most %d characters (it names the CronJob)", c.Metadata.Name, maxCronJobNameChars)
	}
	if c.Metadata.Namespace != "" {
		if msgs := content.IsDNS1123Label(c.Metadata.Namespace); len(msgs) > 0 {
			add("metadata.namespace %q: %s", c.Metadata.Namespace, strings.Join(msgs, "; "))
		}
	}
	if err := ValidateSchedule(c.Spec.Schedule); err != nil {
		add("spec.schedule %q: %v", c.Spec.Schedule, err)
	}
	if c.Spec.WaitLimit < 0 {
		add("spec.waitLimit %d: must be at least 1 (deprecated: use spec.waitTimeout)", c.Spec.WaitLimit)
	}
	if len(c.Spec.Images) == 0 {
		add("spec.images: at least one image is required")
	}

	names := map[string]int{}
	annotations := map[string]int{}
	for i, img := range c.Spec.Images {
		at := fmt.Sprintf("spec.images[%d] (%s)", i, img.Name)
		if img.Name == "" {
			add("spec.images[%d].name: required", i)
		} else if msgs := content.IsDNS1123Label(img.Name); len(msgs) > 0 {
			add("%s.name: %s", at, strings.Join(msgs, "; "))
		} else if len(img.Name) > maxImageNameChars {
			add("%s.name: must be at most %d characters (it names the status annotation %s<name>)", at, maxImageNameChars,
				StatusAnnotationPrefix)
		} else if j, dup := names[img.Name]; dup {
			add("%s.name: duplicate of spec.images[%d]", at, j)
		} else {
			names[img.Name] = i
		}
		errs = append(errs, img.validate(at)...)
		if img.Verify != nil && *img.Verify && c.Spec.Verification == nil {
			add("%s.verify: true needs spec.verification (the keys to verify with)", at)
		}
		if img.Annotation != "" {
			if j, dup := annotations[img.Annotation]; dup {
				add("%s.annotation %q: duplicate of spec.images[%d]", at, img.Annotation, j)
			} else {
				annotations[img.Annotation] = i
			}
		}
	}
	if v := c.Spec.Verification; v != nil {
		if v.KeysConfigMap == "" {
			add("spec.verification.keysConfigMap: required (a ConfigMap of *%s public keys)", KeyFileSuffix)
		} else if msgs := content.IsDNS1123Subdomain(v.KeysConfigMap); len(msgs) > 0 {
			add("spec.verification.keysConfigMap %q: %s", v.KeysConfigMap, strings.Join(msgs, "; "))
		}
		if r := v.RecheckAfter.D(); r != 0 && r < minRecheckAfter {
			add("spec.verification.recheckAfter %s: must be at least %s (or unset: %s)", r, minRecheckAfter, DefaultRecheckAfter)
		}
	}
	errs = append(errs, c.validateSafe()...)
	errs = append(errs, c.validateInsecureRegistries()...)
	errs = append(errs, c.Spec.Job.validate()...)
	if len(errs) > 0 {
		return fmt.Errorf("invalid refresh config %q: %w", c.Metadata.Name, errors.Join(errs...))
	}
	return nil
}

func (i Image) validate(at string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(at+"."+format, args...)) }

	if i.Repository == "" {
		add("repository: required")
	} else if repo, err := name.NewRepository(i.Repository); err != nil {
		add("repository %q: %v", i.Repository, err)
	} else if _, err := name.NewTag(repo.Name() + ":" + i.Tag); err != nil {
		add("tag %q: %v", i.Tag, err)
	}
	if i.Digest != "" && !ValidDigest(i.Digest) {
		add("digest %q: must be sha256: followed by 64 lowercase hex characters", i.Digest)
	}
	switch i.Action {
	case ActionRolloutRestart, ActionSetImage:
		if i.Env != "" {
			add("env %q: only valid with action %q", i.Env, ActionSetEnv)
		}
	case ActionSetEnv:
		if i.Env == "" {
			add("env: required with action %q", ActionSetEnv)
		} else if msgs := validation.IsEnvVarName(i.Env); len(msgs) > 0 {
			add("env %q: %s", i.Env, strings.Join(msgs, "; "))
		}
	case "":
		add("action: required (%s)", actionList())
	default:
		add("action %q: unsupported (use %s)", i.Action, actionList())
	}
	if !slices.Contains(TargetKinds, i.Target.Kind) {
		add("target.kind %q: unsupported (use %s)", i.Target.Kind, strings.Join(TargetKinds, " or "))
	}
	if msgs := content.IsDNS1123Subdomain(i.Target.Name); len(msgs) > 0 {
		add("target.name %q: %s", i.Target.Name, strings.Join(msgs, "; "))
	}
	if msgs := content.IsDNS1123Label(i.Target.Container); len(msgs) > 0 {
		add("target.container %q: %s", i.Target.Container, strings.Join(msgs, "; "))
	}
	if i.Target.Namespace != "" {
		if msgs := content.IsDNS1123Label(i.Target.Namespace); len(msgs) > 0 {
			add("target.namespace %q: %s", i.Target.Namespace, strings.Join(msgs, "; "))
		}
	}
	if i.Annotation == "" {
		add("annotation: required")
	} else if err := ValidateAnnotationKey(i.Annotation); err != nil {
		add("annotation %q: %v", i.Annotation, err)
	} else if strings.HasPrefix(i.Annotation, StatusAnnotationPrefix) {
		add("annotation %q: %s* is where the refresher writes each image's status", i.Annotation, StatusAnnotationPrefix)
	}
	return errs
}

func (j Job) validate() []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("spec.job."+format, args...)) }
	if _, err := name.ParseReference(j.Image); err != nil {
		add("image %q: %v", j.Image, err)
	}
	switch j.ImagePullPolicy {
	case "Always", "IfNotPresent", "Never":
	default:
		add("imagePullPolicy %q: must be Always, IfNotPresent or Never", j.ImagePullPolicy)
	}
	if j.RunAsUser != nil && *j.RunAsUser <= 0 {
		add("runAsUser %d: must be a non-root UID (> 0)", *j.RunAsUser)
	}
	for _, s := range append(append([]string{}, j.ImagePullSecrets...), j.RegistryCredentialsSecret) {
		if s == "" {
			continue
		}
		if msgs := content.IsDNS1123Subdomain(s); len(msgs) > 0 {
			add("secret name %q: %s", s, strings.Join(msgs, "; "))
		}
	}
	if v := j.StartingDeadlineSeconds; v != nil && *v <= 0 {
		add("startingDeadlineSeconds %d: must be positive", *v)
	}
	if v := j.ActiveDeadlineSeconds; v != nil && *v <= 0 {
		add("activeDeadlineSeconds %d: must be positive", *v)
	}
	for _, f := range []struct {
		field string
		v     *int32
	}{{"backoffLimit", j.BackoffLimit}, {"successfulJobsHistoryLimit", j.SuccessfulJobsHistoryLimit},
		{"failedJobsHistoryLimit", j.FailedJobsHistoryLimit}} {
		if f.v != nil && *f.v < 0 {
			add("%s %d: must not be negative", f.field, *f.v)
		}
	}
	for _, list := range []struct {
		field string
		m     map[string]string
	}{{"requests", j.Resources.Requests}, {"limits", j.Resources.Limits}} {
		for _, k := range slices.Sorted(maps.Keys(list.m)) {
			if _, err := resource.ParseQuantity(list.m[k]); err != nil {
				add("resources.%s.%s %q: %v", list.field, k, list.m[k], err)
			}
		}
	}
	return append(errs, j.validateEnv()...)
}

// reservedAnnotationDomains own annotations the refresher must never write: Kubernetes and its
// controllers (deployment.kubernetes.io/revision changes on every rollout), kubectl, and Helm
// (meta.helm.sh/release-name records ownership).
var reservedAnnotationDomains = []string{"kubernetes.io", "k8s.io", "helm.sh"}

// ValidateAnnotationKey checks an audit annotation key: a Kubernetes qualified name whose
// prefix is not one of the domains Kubernetes, kubectl or Helm own (nor a subdomain of one).
func ValidateAnnotationKey(key string) error {
	if msgs := content.IsLabelKey(key); len(msgs) > 0 {
		return errors.New(strings.Join(msgs, "; "))
	}
	prefix, _, found := strings.Cut(key, "/")
	if !found {
		return nil
	}
	for _, domain := range reservedAnnotationDomains {
		if prefix == domain || strings.HasSuffix(prefix, "."+domain) {
			return fmt.Errorf("prefix %q is reserved for %s; use a domain of your own, e.g. "+
				"tracebloc.io/last-refreshed-<image>-digest", prefix, domain)
		}
	}
	return nil
}

// ValidateSchedule checks a CronJob schedule as the API server does: standard cron syntax (five
// fields or a @descriptor) without a TZ= or CRON_TZ= prefix, which the API server refuses in
// favour of spec.timeZone.
func ValidateSchedule(schedule string) error {
	if strings.Contains(schedule, "TZ") {
		return errors.New("TZ= and CRON_TZ= are not allowed in a CronJob schedule (the API server refuses them)")
	}
	if _, err := cron.ParseStandard(schedule); err != nil {
		return err
	}
	return nil
}

// actionList names the actions for a message: "rollout-restart", "set-env" or "set-image".
func actionList() string {
	quoted := make([]string, len(Actions))
	for i, a := range Actions {
		quoted[i] = strconv.Quote(string(a))
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
}
