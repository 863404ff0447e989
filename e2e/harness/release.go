package harness

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// Image is one of the three images charts/client follows.
type Image struct {
	// Name is the image's name in the refresh config.
	Name string
	// ValuesKey is its key under .Values.images.
	ValuesKey string
	// MultiArch pushes it as an index, as the real ingestor is published.
	MultiArch bool
}

// The images of charts/client.
var (
	JobsManager = Image{Name: "jobs-manager", ValuesKey: "jobsManager"}
	PodsMonitor = Image{Name: "pods-monitor", ValuesKey: "podsMonitor"}
	Ingestor    = Image{Name: "ingestor", ValuesKey: "ingestor", MultiArch: true}
	AllImages   = []Image{JobsManager, PodsMonitor, Ingestor}
)

// Annotation is the audit annotation charts/client configures for the image.
func (i Image) Annotation() string { return "tracebloc.io/last-refreshed-" + i.Name + "-digest" }

const (
	// FloatingTag is the tag every image follows.
	FloatingTag = "prod"
	// DigestEnv is the env var on container api that follows the ingestor.
	DigestEnv = "INGESTOR_IMAGE_DIGEST"
	// APIContainer is the container of the Deployment that carries DigestEnv.
	APIContainer = "api"
)

// Release is one install of charts/client in its own namespace (Pod Security "restricted"
// enforced), its images in their own repositories <namespace>/<image> of a registry, and
// the Helm CLI that manages it with the image-refresh post-renderer.
type Release struct {
	Name      string
	Namespace string
	// Chart is the chart directory installed and upgraded by default.
	Chart string
	// PostRenderer is the --post-renderer argument: the binary (Helm 3) or plugin name (Helm 4).
	PostRenderer string
	// Digest is what each image's floating tag points at now.
	Digest map[Image]string
	// Pinned holds the digests set in values (images.<key>.digest).
	Pinned map[Image]string

	Cluster  *Cluster
	Registry *Registry
	Helm     *Helm
	bins     *Binaries
	push     PushFunc
}

// ReleaseOptions describe a new release.
type ReleaseOptions struct {
	Name, Namespace, Chart string
	// HelmTool is tools.Helm3 (post-renderer executable) or tools.Helm4 (plugin).
	HelmTool string
	// HelmHome holds Helm's cache, config and data (plugins) for this release.
	HelmHome string
	// Push, when set, pushes a new digest of img to repo:FloatingTag instead of a random
	// image (a real node runs the images).
	Push PushFunc
}

// PushFunc pushes a new digest of img to repo:FloatingTag in reg and returns it.
type PushFunc func(ctx context.Context, reg *Registry, repo string, img Image) (string, error)

// NewRelease creates the namespace, pushes the three images and prepares Helm (installing
// the post-renderer plugin for Helm 4). Nothing is installed yet.
func NewRelease(ctx context.Context, c *Cluster, reg *Registry, bins *Binaries, o ReleaseOptions) (*Release, error) {
	_, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: o.Namespace,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
			"pod-security.kubernetes.io/warn":            "restricted",
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", o.Namespace, err)
	}
	helm, err := NewHelm(o.HelmTool, o.HelmHome, c.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	r := &Release{
		Name: o.Name, Namespace: o.Namespace, Chart: o.Chart,
		Digest: map[Image]string{}, Pinned: map[Image]string{},
		Cluster: c, Registry: reg, Helm: helm, bins: bins, push: o.Push,
	}
	switch o.HelmTool {
	case tools.Helm3:
		r.PostRenderer = bins.Postrender
	case tools.Helm4:
		if _, err := helm.Run(ctx, "plugin", "install", bins.PluginDir); err != nil {
			return nil, err
		}
		r.PostRenderer = PluginName
	default:
		return nil, fmt.Errorf("unknown helm %q", o.HelmTool)
	}
	for _, img := range AllImages {
		if _, err := r.Push(ctx, img); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Deployment is the name of the release's jobs-manager Deployment, the refresh target.
func (r *Release) Deployment() string { return r.Name + "-jobs-manager" }

// Repo is the image's repository inside the registry (without the host).
func (r *Release) Repo(img Image) string { return r.Namespace + "/" + img.Name }

// Push moves the image's floating tag to a fresh random image and returns its digest.
func (r *Release) Push(ctx context.Context, img Image) (string, error) {
	if r.push != nil {
		return r.PushWith(ctx, img, r.push)
	}
	push := r.Registry.PushImage
	if img.MultiArch {
		push = r.Registry.PushIndex
	}
	d, err := push(ctx, r.Repo(img), FloatingTag)
	if err != nil {
		return "", err
	}
	r.Digest[img] = d
	return d, nil
}

// PushWith moves the image's floating tag to what push pushes and returns its digest.
func (r *Release) PushWith(ctx context.Context, img Image, push PushFunc) (string, error) {
	d, err := push(ctx, r.Registry, r.Repo(img), img)
	if err != nil {
		return "", err
	}
	r.Digest[img] = d
	return d, nil
}

// Values are the --set flags pointing the chart at the release's repositories and pins.
func (r *Release) Values() []string {
	var args []string
	for _, img := range AllImages {
		prefix := "images." + img.ValuesKey + "."
		args = append(args,
			"--set", prefix+"repository="+r.Registry.Repository(r.Repo(img)),
			"--set", prefix+"tag="+FloatingTag,
			"--set", prefix+"digest="+r.Pinned[img])
	}
	return args
}

// Install runs helm install of r.Chart with the post-renderer; extra flags go last.
func (r *Release) Install(ctx context.Context, extra ...string) (*Result, error) {
	args := append(
		[]string{"install", r.Name, r.Chart, "--namespace", r.Namespace, "--post-renderer", r.PostRenderer},
		r.Values()...)
	return r.Helm.Run(ctx, append(args, extra...)...)
}

// Upgrade runs helm upgrade to chart with the post-renderer; extra flags go last.
func (r *Release) Upgrade(ctx context.Context, chart string, extra ...string) (*Result, error) {
	args := append(
		[]string{"upgrade", r.Name, chart, "--namespace", r.Namespace, "--post-renderer", r.PostRenderer},
		r.Values()...)
	return r.Helm.Run(ctx, append(args, extra...)...)
}

// CronJobPod reproduces the injected CronJob's pod under dir.
func (r *Release) CronJobPod(ctx context.Context, dir string) (*CronJobPod, error) {
	return r.Cluster.PrepareCronJobPod(ctx, r.Namespace, dir)
}

// Refresh runs the refresher as the injected CronJob would, its pod reproduced under dir,
// after the target's last rollout settled (Settle: healthy pods become Ready between ticks).
// The exit code is in the result.
func (r *Release) Refresh(ctx context.Context, dir string) (*Result, error) {
	if err := r.Settle(ctx); err != nil {
		return nil, err
	}
	pod, err := r.CronJobPod(ctx, dir)
	if err != nil {
		return nil, err
	}
	return pod.Run(ctx, r.bins.Refresher)
}

// State is the target Deployment once the deployment controller has caught up with its
// latest generation, and the ReplicaSets it controls.
type State struct {
	Deployment  *appsv1.Deployment
	ReplicaSets []appsv1.ReplicaSet
}

// State waits for the deployment controller to observe the Deployment's latest generation
// (so a template change has its ReplicaSet) and returns both.
func (r *Release) State(ctx context.Context) (*State, error) {
	client := r.Cluster.Client
	var s *State
	err := wait.PollUntilContextTimeout(
		ctx,
		50*time.Millisecond,
		30*time.Second,
		true,
		func(ctx context.Context) (bool, error) {
			dep, err := client.AppsV1().Deployments(r.Namespace).Get(ctx, r.Deployment(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if dep.Status.ObservedGeneration < dep.Generation {
				return false, nil
			}
			list, err := client.AppsV1().ReplicaSets(r.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			s = &State{Deployment: dep}
			for _, rs := range list.Items {
				if metav1.IsControlledBy(&rs, dep) {
					s.ReplicaSets = append(s.ReplicaSets, rs)
				}
			}
			return true, nil
		},
	)
	if err != nil {
		return nil, fmt.Errorf("waiting for the deployment controller to sync %s/%s: %w", r.Namespace, r.Deployment(), err)
	}
	return s, nil
}

// Annotation is the image's audit annotation on the Deployment.
func (s *State) Annotation(img Image) string { return s.Deployment.Annotations[img.Annotation()] }

// RestartedAt is the pod template's restart annotation, as kubectl rollout restart sets it.
func (s *State) RestartedAt() string {
	return s.Deployment.Spec.Template.Annotations[config.RestartedAtAnnotation]
}

// Env returns the value of an env var of container api, and whether it is set.
func (s *State) Env(name string) (string, bool) { return APIEnv(s.Deployment.Spec.Template.Spec, name) }

// APIEnv returns the value of an env var of container api in a pod spec, and whether it is set.
func APIEnv(spec corev1.PodSpec, name string) (string, bool) {
	for _, c := range spec.Containers {
		if c.Name != APIContainer {
			continue
		}
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value, true
			}
		}
	}
	return "", false
}
