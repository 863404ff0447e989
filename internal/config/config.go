// Package config is the one contract shared by the refresher, the post-renderer and chartcheck:
// the RefreshConfig document (image-refresh.io/v1alpha1), its YAML loading, defaults and
// validation. Nothing else in the module declares these types.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"gopkg.in/yaml.v3"
)

const (
	// APIVersion and Kind identify a RefreshConfig document.
	APIVersion = "image-refresh.io/v1alpha1"
	Kind       = "RefreshConfig"

	// ConfigMapKey is the key of the ConfigMap entry that carries the document.
	ConfigMapKey = "refresh.yaml"
	// ConfigLabel marks the ConfigMap that carries the document; its value is "true".
	ConfigLabel = "image-refresh.io/config"

	// FieldManager is the field manager (managedFields) of every strategic-merge patch the
	// refresher sends.
	FieldManager = "image-refresh"
	// RestartedAtAnnotation is the pod-template annotation kubectl rollout restart sets.
	RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
	// StatusAnnotationPrefix + an image's name is the target annotation that tells the image's
	// refresh state (ok, waiting, failed) since its last transition.
	StatusAnnotationPrefix = "image-refresh.io/status-"

	// MountPath is where the CronJob mounts the config ConfigMap; the refresher reads
	// MountPath/ConfigMapKey.
	MountPath = "/etc/image-refresh"
	// DockerConfigMountPath is where the optional registry-credentials Secret is mounted;
	// DOCKER_CONFIG points at it.
	DockerConfigMountPath = "/etc/image-refresh-docker"
	// KeysMountPath is where the CronJob mounts spec.verification.keysConfigMap (read-only); the
	// refresher reads every *.pub file there.
	KeysMountPath = "/etc/image-refresh-keys"
	// KeyFileSuffix marks the entries of the keys ConfigMap that are public keys.
	KeyFileSuffix = ".pub"
)

// Action is what the refresher does when a floating tag moves.
type Action string

const (
	// ActionRolloutRestart stamps the pod template with kubectl's restartedAt annotation.
	ActionRolloutRestart Action = "rollout-restart"
	// ActionSetEnv writes the new digest into an env var of the target container.
	ActionSetEnv Action = "set-env"
	// ActionSetImage sets the target container's image to <repository>@<digest> (kubectl set
	// image): the pods run exactly that digest, whatever their pull policy.
	ActionSetImage Action = "set-image"
)

// Actions are the actions a config may name, in the order messages list them.
var Actions = []Action{ActionRolloutRestart, ActionSetEnv, ActionSetImage}

// Pins reports whether the action writes the digest itself into the pod template (set-env,
// set-image), so the pods run exactly it and a rollback can write the previous one back.
func (a Action) Pins() bool { return a == ActionSetEnv || a == ActionSetImage }

// PinnedImage is the image reference set-image gives the container for digest.
func (i Image) PinnedImage(digest string) string { return i.Repository + "@" + digest }

// The target kinds: both roll a changed pod template out the same way, and the refresher writes the same fields.
const (
	KindDeployment = "Deployment"
	KindDaemonSet  = "DaemonSet"
)

// TargetKinds are the kinds a target may be, in the order messages list them.
var TargetKinds = []string{KindDeployment, KindDaemonSet}

// RefreshConfig is the whole document.
type RefreshConfig struct {
	APIVersion string     `yaml:"apiVersion" json:"apiVersion"`
	Kind       string     `yaml:"kind" json:"kind"`
	Metadata   ObjectMeta `yaml:"metadata" json:"metadata"`
	Spec       Spec       `yaml:"spec" json:"spec"`
}

// ObjectMeta names the config; metadata.name also names every object the post-renderer injects.
type ObjectMeta struct {
	Name      string `yaml:"name" json:"name"`
	Namespace string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
}

// Spec is the refresh schedule, the images and how the CronJob runs.
type Spec struct {
	// Schedule is a standard five-field cron expression.
	Schedule string  `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	Images   []Image `yaml:"images" json:"images"`
	// WaitTimeout is how long an image may wait for its target's rollout to settle before it
	// fails (default DefaultWaitTimeout; see EffectiveWaitTimeout).
	WaitTimeout Duration `yaml:"waitTimeout,omitempty" json:"waitTimeout,omitempty"`
	// WaitLimit is deprecated: the number of ticks of Schedule WaitTimeout used to be counted
	// in. Accepted for one release and converted (see EffectiveWaitTimeout, Deprecations).
	WaitLimit int `yaml:"waitLimit,omitempty" json:"waitLimit,omitempty"`
	// Platforms, when set, gate every new digest: an image index must list each of them, a
	// single-platform image must be the only one listed (see ParsePlatform).
	Platforms []string `yaml:"platforms,omitempty" json:"platforms,omitempty"`
	// RolloutTimeout is how long a rollout the refresher started may take to settle before
	// it is treated as failed: quarantine, and rollback for set-env (default
	// DefaultRolloutTimeout, see EffectiveRolloutTimeout).
	RolloutTimeout Duration `yaml:"rolloutTimeout,omitempty" json:"rolloutTimeout,omitempty"`
	// Verification, when set, gates every change that moves what runs on a signature of the
	// new digest by one of the trusted keys (see Verification).
	Verification *Verification `yaml:"verification,omitempty" json:"verification,omitempty"`
	// InsecureRegistries are the registries (host[:port]) whose credentials may be sent over
	// plain HTTP; any other registry's are never sent over it, except to a loopback host.
	InsecureRegistries []string `yaml:"insecureRegistries,omitempty" json:"insecureRegistries,omitempty"`
	// Job shapes the CronJob the post-renderer injects; the refresher ignores it.
	Job Job `yaml:"job,omitempty" json:"job,omitempty"`
}

// Image is one floating (or pinned) image and what to do when its tag moves.
type Image struct {
	Name       string `yaml:"name" json:"name"`
	Repository string `yaml:"repository" json:"repository"`
	Tag        string `yaml:"tag,omitempty" json:"tag,omitempty"`
	// Digest pins the image: a pinned image is never polled and never touched.
	Digest     string `yaml:"digest,omitempty" json:"digest,omitempty"`
	Action     Action `yaml:"action" json:"action"`
	Env        string `yaml:"env,omitempty" json:"env,omitempty"`
	Target     Target `yaml:"target" json:"target"`
	Annotation string `yaml:"annotation" json:"annotation"`
	// Soak is how long a new registry digest must be seen unchanged before it is applied
	// (default 0: at once).
	Soak Duration `yaml:"soak,omitempty" json:"soak,omitempty"`
	// Verify false exempts the image from spec.verification; unset means "verify when
	// spec.verification is set". true without spec.verification is a config error.
	Verify *bool `yaml:"verify,omitempty" json:"verify,omitempty"`
}

// Verification is the signature gate: a new digest reaches a workload only when one of the
// trusted keys signed it (cosign key-based signatures, verified offline).
type Verification struct {
	// KeysConfigMap names a ConfigMap in the config's namespace whose data entries ending in
	// KeyFileSuffix are PEM public keys (cosign.pub format); the CronJob mounts it at
	// KeysMountPath.
	KeysConfigMap string `yaml:"keysConfigMap" json:"keysConfigMap"`
	// RecheckAfter is how long a refused digest's verdict is remembered before its signatures
	// are fetched again (default DefaultRecheckAfter): a digest signed after it was first seen
	// is applied by then, without a request on every tick before.
	RecheckAfter Duration `yaml:"recheckAfter,omitempty" json:"recheckAfter,omitempty"`
}

// DefaultRecheckAfter is spec.verification.recheckAfter when unset: four ticks of the default
// schedule.
const DefaultRecheckAfter = time.Hour

// minRecheckAfter keeps a refused digest from being fetched on every tick of a fast schedule.
const minRecheckAfter = time.Minute

// EffectiveRecheckAfter is spec.verification.recheckAfter, or its default when unset.
func (v Verification) EffectiveRecheckAfter() time.Duration {
	if v.RecheckAfter == 0 {
		return DefaultRecheckAfter
	}
	return v.RecheckAfter.D()
}

// Target is the workload an image's change is applied to.
type Target struct {
	Kind      string `yaml:"kind,omitempty" json:"kind,omitempty"`
	Name      string `yaml:"name" json:"name"`
	Namespace string `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Container string `yaml:"container" json:"container"`
}

// Job shapes the injected CronJob and its pod.
type Job struct {
	// Image is the refresher image the CronJob runs.
	Image           string `yaml:"image,omitempty" json:"image,omitempty"`
	ImagePullPolicy string `yaml:"imagePullPolicy,omitempty" json:"imagePullPolicy,omitempty"`
	// ImagePullSecrets are Secret names used to pull the refresher image.
	ImagePullSecrets []string `yaml:"imagePullSecrets,omitempty" json:"imagePullSecrets,omitempty"`
	// RegistryCredentialsSecret names a kubernetes.io/dockerconfigjson Secret mounted at
	// DockerConfigMountPath for private registries (DOCKER_CONFIG points at it).
	RegistryCredentialsSecret  string    `yaml:"registryCredentialsSecret,omitempty" json:"registryCredentialsSecret,omitempty"` //nolint:lll // a struct tag cannot be split
	Resources                  Resources `yaml:"resources,omitempty" json:"resources,omitempty"`
	StartingDeadlineSeconds    *int64    `yaml:"startingDeadlineSeconds,omitempty" json:"startingDeadlineSeconds,omitempty"` //nolint:lll // a struct tag cannot be split
	ActiveDeadlineSeconds      *int64    `yaml:"activeDeadlineSeconds,omitempty" json:"activeDeadlineSeconds,omitempty"`
	BackoffLimit               *int32    `yaml:"backoffLimit,omitempty" json:"backoffLimit,omitempty"`
	SuccessfulJobsHistoryLimit *int32    `yaml:"successfulJobsHistoryLimit,omitempty" json:"successfulJobsHistoryLimit,omitempty"` //nolint:lll // a struct tag cannot be split
	FailedJobsHistoryLimit     *int32    `yaml:"failedJobsHistoryLimit,omitempty" json:"failedJobsHistoryLimit,omitempty"`
	// RunAsUser is the non-root UID of the refresher container.
	RunAsUser *int64 `yaml:"runAsUser,omitempty" json:"runAsUser,omitempty"`
	// AdmissionGuard false leaves out the ValidatingAdmissionPolicy that lets the refresher's
	// ServiceAccount change only what the refresher writes (see GuardEnabled); unset means on.
	AdmissionGuard *bool `yaml:"admissionGuard,omitempty" json:"admissionGuard,omitempty"`
	// Env is set on the refresher container after the variables the post-renderer sets, in
	// order: only the proxy variables (ProxyEnvNames).
	Env []EnvVar `yaml:"env,omitempty" json:"env,omitempty"`
}

// GuardEnabled reports whether the admission guard is injected: on unless admissionGuard is
// false, so turning it off is always explicit.
func (j Job) GuardEnabled() bool { return j.AdmissionGuard == nil || *j.AdmissionGuard }

// Resources are the container's requests and limits, as Kubernetes quantities.
type Resources struct {
	Requests map[string]string `yaml:"requests,omitempty" json:"requests,omitempty"`
	Limits   map[string]string `yaml:"limits,omitempty" json:"limits,omitempty"`
}

// Parse decodes one RefreshConfig document, rejecting unknown fields, applies defaults and
// validates it. The error names the image and the field at fault.
func Parse(data []byte) (*RefreshConfig, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("refresh config is empty")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var cfg RefreshConfig
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("decoding refresh config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("refresh config must be a single YAML document")
	}
	cfg.Default()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// Load reads and parses a RefreshConfig file.
func Load(path string) (*RefreshConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading refresh config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Marshal renders the config as YAML, the form carried in the ConfigMap.
func (c *RefreshConfig) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding refresh config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding refresh config: %w", err)
	}
	return buf.Bytes(), nil
}

// StatusAnnotation is the key of the image's status annotation on its target.
func (i Image) StatusAnnotation() string { return StatusAnnotationPrefix + i.Name }

// Pinned reports whether the image's digest is fixed in values: never polled, never touched.
func (i Image) Pinned() bool { return i.Digest != "" }

// VerificationRequired reports whether a new digest of img needs a trusted signature before
// it is applied: spec.verification is set and the image does not opt out (verify: false).
func (c *RefreshConfig) VerificationRequired(img Image) bool {
	return c.Spec.Verification != nil && !img.Pinned() && (img.Verify == nil || *img.Verify)
}

// Reference is the floating reference the refresher polls, "repository:tag".
func (i Image) Reference() string { return i.Repository + ":" + i.Tag }

// EffectivePullPolicy is the imagePullPolicy Kubernetes gives a container running image with
// policy: policy itself when set; when unset, Always for an image without a digest whose tag is
// "latest" or absent, IfNotPresent for any other. A rollout restart pulls a moved tag only
// under Always.
func EffectivePullPolicy(policy, image string) string {
	if policy != "" {
		return policy
	}
	if tag, err := name.NewTag(image, name.WeakValidation); err == nil && tag.TagStr() == DefaultTag {
		return "Always"
	}
	return "IfNotPresent"
}

// Floating returns the images that are not pinned, in config order.
func (c *RefreshConfig) Floating() []Image {
	var out []Image
	for _, img := range c.Spec.Images {
		if !img.Pinned() {
			out = append(out, img)
		}
	}
	return out
}

// AnyFloating reports whether the refresh machinery has anything to do.
func (c *RefreshConfig) AnyFloating() bool { return len(c.Floating()) > 0 }

// TargetKey identifies one workload.
type TargetKey struct {
	Kind, Namespace, Name string
}

// Key is the workload the image acts on.
func (t Target) Key() TargetKey { return TargetKey{Kind: t.Kind, Namespace: t.Namespace, Name: t.Name} }
