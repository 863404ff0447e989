package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/e2e/tools"
)

// world is the control plane, registry and binaries every scenario shares; each scenario
// gets its own namespace and its own repositories in the registry.
type world struct {
	dir      string
	cluster  *harness.Cluster
	registry *harness.Registry
	bins     *harness.Binaries
	chart    string
}

var shared struct {
	once  sync.Once
	world *world
	err   error
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if w := shared.world; w != nil {
		w.cluster.Close()
		w.registry.Close()
		if code != 0 {
			// Keep the state and logs of a failed run for a post-mortem.
			fmt.Fprintf(os.Stderr, "e2e: failed; component logs and state kept in %s\n", w.dir)
			harness.DumpLogs(stderrLogger{}, w.dir, 30)
		} else {
			os.RemoveAll(w.dir)
		}
	}
	os.Exit(code)
}

type stderrLogger struct{}

func (stderrLogger) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// setup returns the shared world, starting it on first use. Under -short it skips the test;
// a missing tool fails it.
func setup(t *testing.T) *world {
	t.Helper()
	for _, tool := range []string{tools.Etcd, tools.KubeAPIServer, tools.KubeControllerManager, tools.Kubectl, tools.DockerRegistry, tools.Helm3, tools.Helm4} {
		tools.Require(t, tool)
	}
	shared.once.Do(func() { shared.world, shared.err = start(t) })
	if shared.err != nil {
		t.Fatalf("starting the e2e world: %v", shared.err)
	}
	return shared.world
}

// start builds our binaries while the control plane and registry come up.
func start(log harness.Logger) (w *world, err error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "image-refresh-e2e-")
	if err != nil {
		return nil, fmt.Errorf("creating work dir: %w", err)
	}
	w = &world{dir: dir}
	began := time.Now()
	built := make(chan error, 1)
	go func() {
		var err error
		w.bins, err = harness.BuildBinaries(ctx, filepath.Join(dir, "bin"))
		built <- err
	}()
	if w.cluster, err = harness.StartCluster(ctx, filepath.Join(dir, "cluster"), log); err != nil {
		return nil, err
	}
	if w.registry, err = harness.StartRegistry(ctx, filepath.Join(dir, "registry")); err != nil {
		w.cluster.Close()
		return nil, err
	}
	if err := <-built; err != nil {
		w.cluster.Close()
		w.registry.Close()
		return nil, err
	}
	root, err := harness.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	w.chart = filepath.Join(root, "charts", "client")
	log.Logf("e2e world ready in %s (work dir %s)", time.Since(began).Round(time.Millisecond), dir)
	return w, nil
}

// image is one of the three images charts/client follows.
type image struct {
	name      string // the refresh config's image name
	valuesKey string // under .Values.images
	multiArch bool   // pushed as an index, as the real ingestor is
}

var (
	jobsManager = image{name: "jobs-manager", valuesKey: "jobsManager"}
	podsMonitor = image{name: "pods-monitor", valuesKey: "podsMonitor"}
	ingestor    = image{name: "ingestor", valuesKey: "ingestor", multiArch: true}
	allImages   = []image{jobsManager, podsMonitor, ingestor}
)

// annotation is the audit annotation the chart configures for the image.
func (i image) annotation() string { return "tracebloc.io/last-refreshed-" + i.name + "-digest" }

const (
	releaseName = "stg"
	deployName  = releaseName + "-jobs-manager"
	floatingTag = "prod"
	digestEnv   = "INGESTOR_IMAGE_DIGEST"
	restartedAt = "kubectl.kubernetes.io/restartedAt"
)

// release is one install of charts/client in its own namespace, its images in their own
// repositories (<namespace>/<image>) of a registry.
type release struct {
	t        *testing.T
	w        *world
	ns       string
	registry *harness.Registry
	helm     *harness.Helm
	// postRenderer is the --post-renderer argument: the binary (Helm 3) or plugin name (Helm 4).
	postRenderer string
	// digest is what each image's floating tag points at now.
	digest map[image]string
	// pinned holds the digests set in values (images.<key>.digest).
	pinned map[image]string
}

var namespaceUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// newRelease creates a namespace enforcing Pod Security "restricted", pushes the three
// images to registry and prepares helm (tools.Helm3 or tools.Helm4) for the release.
func newRelease(t *testing.T, w *world, helmTool string, registry *harness.Registry) *release {
	t.Helper()
	ctx := t.Context()
	ns := strings.Trim(namespaceUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(ns) > 50 {
		ns = strings.TrimRight(ns[:50], "-")
	}
	_, err := w.cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns,
		Labels: map[string]string{
			"pod-security.kubernetes.io/enforce":         "restricted",
			"pod-security.kubernetes.io/enforce-version": "latest",
			"pod-security.kubernetes.io/warn":            "restricted",
		},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	helm, err := harness.NewHelm(helmTool, t.TempDir(), w.cluster.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	r := &release{t: t, w: w, ns: ns, registry: registry, helm: helm, digest: map[image]string{}, pinned: map[image]string{}}
	switch helmTool {
	case tools.Helm3:
		r.postRenderer = w.bins.Postrender
	case tools.Helm4:
		r.helmRun("plugin", "install", w.bins.PluginDir)
		r.postRenderer = harness.PluginName
	}
	for _, img := range allImages {
		r.push(img)
	}
	return r
}

// repo is the image's repository inside the registry (without the host).
func (r *release) repo(img image) string { return r.ns + "/" + img.name }

// push moves the image's floating tag to a fresh random image and returns its digest.
func (r *release) push(img image) string {
	r.t.Helper()
	push := r.registry.PushImage
	if img.multiArch {
		push = r.registry.PushIndex
	}
	d, err := push(r.t.Context(), r.repo(img), floatingTag)
	if err != nil {
		r.t.Fatal(err)
	}
	r.digest[img] = d
	return d
}

// values are the --set flags pointing the chart at this release's repositories and pins.
func (r *release) values() []string {
	var args []string
	for _, img := range allImages {
		prefix := "images." + img.valuesKey + "."
		args = append(args,
			"--set", prefix+"repository="+r.registry.Repository(r.repo(img)),
			"--set", prefix+"tag="+floatingTag,
			"--set", prefix+"digest="+r.pinned[img])
	}
	return args
}

func (r *release) helmRun(args ...string) *harness.Result {
	r.t.Helper()
	res, err := r.helm.Run(r.t.Context(), args...)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

// install runs helm install of chart with the post-renderer; extra flags go last.
func (r *release) install(extra ...string) *harness.Result {
	r.t.Helper()
	args := append([]string{"install", releaseName, r.w.chart, "--namespace", r.ns, "--post-renderer", r.postRenderer}, r.values()...)
	return r.helmRun(append(args, extra...)...)
}

// upgrade runs helm upgrade of chart with the post-renderer; extra flags go last.
func (r *release) upgrade(chart string, extra ...string) *harness.Result {
	r.t.Helper()
	args := append([]string{"upgrade", releaseName, chart, "--namespace", r.ns, "--post-renderer", r.postRenderer}, r.values()...)
	return r.helmRun(append(args, extra...)...)
}

// refresh runs the refresher as the injected CronJob would and returns the result, failing
// the test only if it could not be run at all.
func (r *release) refresh() *harness.Result {
	r.t.Helper()
	pod, err := r.w.cluster.PrepareCronJobPod(r.t.Context(), r.ns, r.t.TempDir())
	if err != nil {
		r.t.Fatal(err)
	}
	res, err := pod.Run(r.t.Context(), r.w.bins.Refresher)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

// refreshOK runs the refresher and requires exit 0.
func (r *release) refreshOK() *harness.Result {
	r.t.Helper()
	res := r.refresh()
	if res.ExitCode != 0 {
		r.t.Fatalf("refresher failed:\n%s", res)
	}
	return res
}

// state is the target Deployment once the deployment controller has caught up with its
// latest generation, and its ReplicaSets.
type state struct {
	dep         *appsv1.Deployment
	replicaSets []appsv1.ReplicaSet
}

func (r *release) state() state {
	r.t.Helper()
	ctx := r.t.Context()
	client := r.w.cluster.Client
	var s state
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		dep, err := client.AppsV1().Deployments(r.ns).Get(ctx, deployName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if dep.Status.ObservedGeneration < dep.Generation {
			return false, nil
		}
		list, err := client.AppsV1().ReplicaSets(r.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		s = state{dep: dep}
		for _, rs := range list.Items {
			if metav1.IsControlledBy(&rs, dep) {
				s.replicaSets = append(s.replicaSets, rs)
			}
		}
		return true, nil
	})
	if err != nil {
		r.t.Fatalf("waiting for the deployment controller to sync %s/%s: %v", r.ns, deployName, err)
	}
	return s
}

func (s state) annotation(img image) string { return s.dep.Annotations[img.annotation()] }

func (s state) restartedAt() string { return s.dep.Spec.Template.Annotations[restartedAt] }

// env returns the value of an env var of container api, and whether it is set.
func (s state) env(name string) (string, bool) {
	for _, c := range s.dep.Spec.Template.Spec.Containers {
		if c.Name != "api" {
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
