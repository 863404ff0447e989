package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/ociimage"
)

// RefresherRepo is the refresher image's repository in a NodeWorld's registry: private, only
// the pull secret (Registry.PullSecret) can read it.
const RefresherRepo = "e2e/image-refresh"

// nodeLock serializes node runs on a machine: the bridge, addresses and NodeRoot are fixed.
const nodeLock = "/run/image-refresh-e2e-node.lock"

// NodeWorld is a control plane, registry and real node sharing the node's bridge address:
// pods run, pull from the registry and reach the API server through the kubernetes Service.
type NodeWorld struct {
	Cluster  *Cluster
	Registry *Registry
	Node     *Node
	Bins     *Binaries
	Images   NodeImages
	// RefresherImage is the refresher image (tag v1) and RefresherDigest its digest.
	RefresherImage, RefresherDigest string

	dir  string
	lock *os.File
	gen  atomic.Int64
}

// StartNodeWorld cleans up after any earlier node run, creates the bridge, starts the control
// plane and the registry on it, builds our binaries and the node's images, pushes the pause
// and refresher images and starts the node. On error everything is stopped and cleaned up.
func StartNodeWorld(ctx context.Context, log Logger) (_ *NodeWorld, err error) {
	if err := NodeRequirements(); err != nil {
		return nil, err
	}
	began := time.Now()
	root, err := ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	w := &NodeWorld{}
	if w.lock, err = os.OpenFile(nodeLock, os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return nil, fmt.Errorf("opening the node lock: %w", err)
	}
	if err := syscall.Flock(int(w.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		w.lock.Close()
		return nil, fmt.Errorf("another e2e node runs on this machine (%s is held): %w", nodeLock, err)
	}
	defer func() {
		if err != nil {
			w.Close(log, true)
		}
	}()
	if w.dir, err = os.MkdirTemp("", "image-refresh-node-"); err != nil {
		return nil, err
	}
	buildCtx, cancelBuild := context.WithCancel(ctx)
	defer cancelBuild()
	var wg sync.WaitGroup
	var binErr, imgErr error
	var refresher *ociimage.Result
	wg.Go(func() { w.Bins, binErr = BuildBinaries(buildCtx, filepath.Join(w.dir, "bin")) })
	wg.Go(func() {
		if w.Images, imgErr = BuildGoImages(buildCtx, root, NodeImagePackages); imgErr == nil {
			refresher, imgErr = BuildRefresherImage(buildCtx)
		}
	})
	defer func() {
		if err != nil {
			cancelBuild()
			wg.Wait()
		}
	}()
	if err := PrepareNodeNetwork(log); err != nil {
		return nil, err
	}
	if w.Cluster, err = StartClusterWith(ctx, filepath.Join(NodeRoot, "cluster"), log, ClusterOptions{
		Address: NodeAddress, ServiceCIDR: ServiceCIDR, NodeName: NodeName,
	}); err != nil {
		return nil, err
	}
	if w.Registry, err = StartRegistryAt(ctx, filepath.Join(NodeRoot, "registry"), NodeAddress); err != nil {
		return nil, err
	}
	log.Logf("registry at %s (token realm %s)", w.Registry.Host, w.Registry.Tokens.Realm)
	wg.Wait()
	if err := errors.Join(binErr, imgErr); err != nil {
		return nil, err
	}
	pause, err := w.Registry.PushArtifact(ctx, "e2e/pause", "v1", w.Images["pause"])
	if err != nil {
		return nil, err
	}
	w.Registry.Tokens.RequireAuth(RefresherRepo)
	// The product's multi-arch index, as a release pushes it; the node pulls its amd64 image.
	if w.RefresherDigest, err = w.Registry.PushArtifact(ctx, RefresherRepo, "v1", refresher.Index); err != nil {
		return nil, err
	}
	w.RefresherImage = w.Registry.Repository(RefresherRepo) + ":v1"
	if w.Node, err = StartNode(
		ctx, w.Cluster, w.Registry.Repository("e2e/pause")+"@"+pause, []string{w.Registry.Host}, log,
	); err != nil {
		return nil, err
	}
	log.Logf("node world ready in %s (state %s)", since(began), NodeRoot)
	return w, nil
}

// Close stops the node, the control plane and the registry and removes everything the node
// made (CleanupNode). With keepState (a failed run) the logs and state under NodeRoot stay.
func (w *NodeWorld) Close(log Logger, keepState bool) {
	if w.Node != nil {
		w.Node.Close(log)
	}
	if w.Cluster != nil {
		w.Cluster.Close()
	}
	if w.Registry != nil {
		w.Registry.Close()
	}
	CleanupNode(log)
	if !keepState {
		if err := RemoveNodeState(); err != nil {
			log.Logf("%v", err)
		}
	}
	if w.dir != "" {
		os.RemoveAll(w.dir)
	}
	if w.lock != nil {
		w.lock.Close()
	}
}

// Push is a PushFunc for releases on the node: the image's program from e2e/images as a new
// generation (a new digest on every push), as an index when multiArch says so.
func (w *NodeWorld) Push(multiArch map[Image]bool) PushFunc {
	return func(ctx context.Context, reg *Registry, repo string, img Image) (string, error) {
		v := Variant{}
		if multiArch[img] {
			v.Archs = []string{"amd64", "arm64"}
		}
		return w.PushVariant(v)(ctx, reg, repo, img)
	}
}

// Variant is what a node push makes of an image's program.
type Variant struct {
	// Crash makes it a broken build (Crashing).
	Crash bool
	// Archs, when set, pushes an index with these linux architectures (Index) instead of
	// the image.
	Archs []string
}

// PushVariant is a PushFunc pushing a new generation of the image's program as v says.
func (w *NodeWorld) PushVariant(v Variant) PushFunc {
	return func(ctx context.Context, reg *Registry, repo string, img Image) (string, error) {
		base, ok := w.Images[img.Name]
		if !ok {
			return "", fmt.Errorf("no node image %s", img.Name)
		}
		gen, err := Generation(base, int(w.gen.Add(1)))
		if err != nil {
			return "", err
		}
		if v.Crash {
			if gen, err = Crashing(gen); err != nil {
				return "", err
			}
		}
		if len(v.Archs) > 0 {
			idx, err := Index(gen, v.Archs...)
			if err != nil {
				return "", err
			}
			return reg.PushArtifact(ctx, repo, FloatingTag, idx)
		}
		return reg.PushArtifact(ctx, repo, FloatingTag, gen)
	}
}

// CreatePullSecret creates a kubernetes.io/dockerconfigjson Secret for the registry in
// namespace, with the right or a wrong password.
func (w *NodeWorld) CreatePullSecret(ctx context.Context, namespace, name string, wrong bool) error {
	data, err := w.Registry.PullSecret(wrong)
	if err != nil {
		return err
	}
	_, err = w.Cluster.Client.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: data},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating pull secret %s/%s: %w", namespace, name, err)
	}
	return nil
}

// Values are the --set flags of a release on the node: a one-minute schedule, the refresher
// image with pull secret pullSecret, the Role jobs-manager needs to launch (and follow)
// ingestion Jobs, and a readiness probe on jobs-manager's /readyz, so a pod that never
// becomes Ready keeps its rollout incomplete.
func (w *NodeWorld) Values(pullSecret string) []string {
	return []string{
		"--set", "imageRefresh.schedule=* * * * *",
		"--set", "imageRefresh.image=" + w.RefresherImage,
		"--set", "imageRefresh.imagePullSecrets[0]=" + pullSecret,
		"--set", "rbac.ingestionJobs=true",
		"--set", "api.readinessProbe.httpGet.path=/readyz",
		"--set", "api.readinessProbe.httpGet.port=http",
		"--set", "api.readinessProbe.periodSeconds=1",
	}
}
