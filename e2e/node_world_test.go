package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/e2e/tools"
)

// nodeWorld is a control plane, registry and real node sharing the node's bridge address:
// pods run, pull from the registry and reach the API server through the kubernetes Service.
// It is separate from the loopback world (whose scenarios need no node) and started on the
// first node scenario.
type nodeWorld struct {
	world
	node   *harness.Node
	images harness.NodeImages
	// RefresherImage is the refresher image, in a repository only the pull secret can read.
	RefresherImage  string
	refresherDigest string
	lock            *os.File
}

const refresherRepo = "e2e/image-refresh"

var nodeShared struct {
	once  sync.Once
	world *nodeWorld
	err   error
}

// nodeSetup returns the node world, starting it on first use. Under -short it skips; a
// machine that cannot run the node (no root, a missing capability or tool) fails the test
// naming what is missing.
func nodeSetup(t *testing.T) *nodeWorld {
	t.Helper()
	for _, tool := range append(append([]string{}, tools.All...), tools.Node...) {
		tools.Require(t, tool)
	}
	if err := harness.NodeRequirements(); err != nil {
		t.Fatal(err)
	}
	nodeShared.once.Do(func() { nodeShared.world, nodeShared.err = startNodeWorld(t) })
	if nodeShared.err != nil {
		t.Fatalf("starting the node world: %v", nodeShared.err)
	}
	return nodeShared.world
}

// closeNodeWorld stops the node world (if started) and removes everything it made; the
// state and logs under harness.NodeRoot stay when the run failed.
func closeNodeWorld(failed bool) {
	w := nodeShared.world
	if w == nil {
		return
	}
	w.stop(stderrLogger{}, failed)
}

func (w *nodeWorld) stop(log harness.Logger, failed bool) {
	if w.node != nil {
		w.node.Close(log)
	}
	if w.cluster != nil {
		w.cluster.Close()
	}
	if w.registry != nil {
		w.registry.Close()
	}
	harness.CleanupNode(log)
	if failed {
		fmt.Fprintf(os.Stderr, "e2e: node run failed; node state and logs kept in %s\n", harness.NodeRoot)
		harness.DumpLogs(log, harness.NodeRoot, 30)
	} else if err := harness.RemoveNodeState(); err != nil {
		log.Logf("%v", err)
	}
	if w.dir != "" {
		os.RemoveAll(w.dir)
	}
	if w.lock != nil {
		w.lock.Close()
	}
}

func startNodeWorld(log harness.Logger) (_ *nodeWorld, err error) {
	ctx := context.Background()
	began := time.Now()
	root, err := harness.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	w := &nodeWorld{}
	w.chart = filepath.Join(root, "charts", "client")
	// One node per machine: its bridge, addresses and state directory are fixed.
	if w.lock, err = os.OpenFile("/run/image-refresh-e2e-node.lock", os.O_CREATE|os.O_RDWR, 0o600); err != nil {
		return nil, fmt.Errorf("opening the node lock: %w", err)
	}
	if err := syscall.Flock(int(w.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		w.lock.Close()
		return nil, fmt.Errorf("another e2e node runs on this machine (/run/image-refresh-e2e-node.lock is held): %w", err)
	}
	defer func() {
		if err != nil {
			w.stop(log, true)
		}
	}()
	if w.dir, err = os.MkdirTemp("", "image-refresh-e2e-node-"); err != nil {
		return nil, err
	}
	buildCtx, cancelBuild := context.WithCancel(ctx)
	defer cancelBuild()
	built := make(chan error, 2)
	go func() {
		var err error
		w.bins, err = harness.BuildBinaries(buildCtx, filepath.Join(w.dir, "bin"))
		built <- err
	}()
	go func() {
		var err error
		w.images, err = harness.BuildGoImages(buildCtx, root, filepath.Join(w.dir, "images"), harness.NodeImagePackages)
		built <- err
	}()
	waitBuilt := sync.OnceValue(func() error { return errorsJoin(<-built, <-built) })
	defer func() {
		if err != nil {
			cancelBuild()
			_ = waitBuilt()
		}
	}()
	if err := harness.PrepareNodeNetwork(log); err != nil {
		return nil, err
	}
	if w.cluster, err = harness.StartClusterWith(ctx, filepath.Join(harness.NodeRoot, "cluster"), log, harness.ClusterOptions{
		Address: harness.NodeAddress, ServiceCIDR: harness.ServiceCIDR, NodeName: harness.NodeName,
	}); err != nil {
		return nil, err
	}
	if w.registry, err = harness.StartRegistryAt(ctx, filepath.Join(harness.NodeRoot, "registry"), harness.NodeAddress); err != nil {
		return nil, err
	}
	if err := waitBuilt(); err != nil {
		return nil, err
	}
	pause, err := w.registry.PushArtifact(ctx, "e2e/pause", "v1", w.images["pause"])
	if err != nil {
		return nil, err
	}
	w.registry.Tokens.RequireAuth(refresherRepo)
	if w.refresherDigest, err = w.registry.PushArtifact(ctx, refresherRepo, "v1", w.images["refresher"]); err != nil {
		return nil, err
	}
	w.RefresherImage = w.registry.Repository(refresherRepo) + ":v1"
	if w.node, err = harness.StartNode(ctx, w.cluster, w.registry.Repository("e2e/pause")+"@"+pause, []string{w.registry.Host}, log); err != nil {
		return nil, err
	}
	log.Logf("node world ready in %s (state %s)", time.Since(began).Round(time.Millisecond), harness.NodeRoot)
	return w, nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// generations numbers the images pushed to the node's registry, so every push is a new digest.
var generations atomic.Int64

// nodeRelease is a release on the node: its images are the programs of e2e/images (a new
// generation on every push; those in multiArch pushed as an index), its refresher CronJob runs
// every minute from the node world's refresher image with pull secret pullSecret.
func newNodeRelease(t *testing.T, w *nodeWorld, helmTool string, multiArch map[harness.Image]bool) *release {
	t.Helper()
	r := newReleaseWith(t, &w.world, helmTool, w.registry, func(ctx context.Context, reg *harness.Registry, repo string, img harness.Image) (string, error) {
		base, ok := w.images[img.Name]
		if !ok {
			return "", fmt.Errorf("no node image %s", img.Name)
		}
		gen, err := harness.Generation(base, int(generations.Add(1)))
		if err != nil {
			return "", err
		}
		if multiArch[img] {
			idx, err := harness.MultiArch(gen)
			if err != nil {
				return "", err
			}
			return reg.PushArtifact(ctx, repo, harness.FloatingTag, idx)
		}
		return reg.PushArtifact(ctx, repo, harness.FloatingTag, gen)
	})
	return r
}

// createPullSecret creates a kubernetes.io/dockerconfigjson Secret for the node registry,
// with the right or a wrong password.
func createPullSecret(t *testing.T, w *nodeWorld, r *release, name string, wrong bool) {
	t.Helper()
	data, err := w.registry.PullSecret(wrong)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.cluster.Client.CoreV1().Secrets(r.Namespace).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: data},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// nodeValues are the --set flags of a node release: a one-minute schedule, the refresher
// image with its pull secret, and the Role jobs-manager needs to launch ingestion Jobs.
func nodeValues(w *nodeWorld, pullSecret string, extra ...string) []string {
	return append([]string{
		"--set", "imageRefresh.schedule=* * * * *",
		"--set", "imageRefresh.image=" + w.RefresherImage,
		"--set", "imageRefresh.imagePullSecrets[0]=" + pullSecret,
		"--set", "rbac.ingestionJobs=true",
	}, extra...)
}
