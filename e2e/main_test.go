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
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/ociimage"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// world is the control plane, registry and binaries every scenario shares; each scenario
// gets its own namespace and its own repositories in the registry.
type world struct {
	dir      string
	cluster  *harness.Cluster
	registry *harness.Registry
	bins     *harness.Binaries
	chart    string
	// refresherImage is the refresher's OCI image, built from the checkout with
	// internal/ociimage and pushed to registry at refresherImageRef (repo:tag).
	refresherImage    *ociimage.Result
	refresherImageRef string
}

var shared struct {
	once  sync.Once
	world *world
	err   error
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	closeNodeWorld(code != 0)
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
	for _, tool := range tools.All {
		tools.Require(t, tool)
	}
	shared.once.Do(func() { shared.world, shared.err = start(t) })
	if shared.err != nil {
		t.Fatalf("starting the e2e world: %v", shared.err)
	}
	return shared.world
}

// start builds our binaries and the refresher image while the control plane and registry
// come up, then pushes the image to the registry. On error it
// stops whatever it started and keeps the work dir, whose logs the error names.
func start(log harness.Logger) (_ *world, err error) {
	ctx := context.Background()
	began := time.Now()
	root, err := harness.ModuleRoot(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "image-refresh-e2e-")
	if err != nil {
		return nil, fmt.Errorf("creating work dir: %w", err)
	}
	w := &world{dir: dir, chart: filepath.Join(root, "charts", "client")}
	buildCtx, cancelBuild := context.WithCancel(ctx)
	defer cancelBuild()
	built := make(chan error, 1)
	go func() {
		var err error
		w.bins, err = harness.BuildBinaries(buildCtx, filepath.Join(dir, "bin"))
		if err == nil {
			w.refresherImage, err = harness.BuildRefresherImage(buildCtx)
		}
		built <- err
	}()
	waitBuilt := sync.OnceValue(func() error { return <-built })
	defer func() {
		if err == nil {
			return
		}
		// A go build left running would outlive the test binary.
		cancelBuild()
		_ = waitBuilt()
		if w.registry != nil {
			w.registry.Close()
		}
		if w.cluster != nil {
			w.cluster.Close()
		}
	}()
	if w.cluster, err = harness.StartCluster(ctx, filepath.Join(dir, "cluster"), log); err != nil {
		return nil, err
	}
	if w.registry, err = harness.StartRegistry(ctx, filepath.Join(dir, "registry")); err != nil {
		return nil, err
	}
	if err := waitBuilt(); err != nil {
		return nil, err
	}
	if _, err := w.registry.PushIndexImage(
		ctx, harness.RefresherImageRepo, harness.RefresherImageTag, w.refresherImage.Index,
	); err != nil {
		return nil, fmt.Errorf("pushing the refresher image: %w", err)
	}
	w.refresherImageRef = w.registry.Repository(harness.RefresherImageRepo) + ":" + harness.RefresherImageTag
	log.Logf("e2e world ready in %s (work dir %s)", time.Since(began).Round(time.Millisecond), dir)
	return w, nil
}

// Short names for the images of charts/client.
var (
	jobsManager = harness.JobsManager
	podsMonitor = harness.PodsMonitor
	ingestor    = harness.Ingestor
	allImages   = harness.AllImages
)

const (
	releaseName = "stg"
	deployName  = releaseName + "-jobs-manager"
	digestEnv   = harness.DigestEnv
	restartedAt = config.RestartedAtAnnotation
)

// release is a harness.Release whose operations fail the test.
type release struct {
	*harness.Release
	t *testing.T
	w *world
}

var namespaceUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// releases numbers the releases of this process: the cluster outlives a test, so a test run
// again (go test -count=2) needs a namespace of its own.
var releases atomic.Int64

// newRelease prepares a release of charts/client managed by helmTool (tools.Helm3 or
// tools.Helm4) in a namespace named after the test and numbered, its images in registry.
func newRelease(t *testing.T, w *world, helmTool string, registry *harness.Registry) *release {
	t.Helper()
	return newReleaseWith(t, w, helmTool, registry, nil)
}

// newReleaseWith is newRelease with the release's images pushed by push (nil: random images).
func newReleaseWith(
	t *testing.T,
	w *world,
	helmTool string,
	registry *harness.Registry,
	push harness.PushFunc,
) *release {
	t.Helper()
	ns := strings.Trim(namespaceUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(ns) > 50 {
		ns = strings.TrimRight(ns[:50], "-")
	}
	ns = fmt.Sprintf("%s-%d", ns, releases.Add(1))
	r, err := harness.NewRelease(t.Context(), w.cluster, registry, w.bins, harness.ReleaseOptions{
		Name: releaseName, Namespace: ns, Chart: w.chart, HelmTool: helmTool, HelmHome: t.TempDir(), Push: push,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &release{Release: r, t: t, w: w}
}

func (r *release) must(res *harness.Result, err error) *harness.Result {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *release) helmRun(args ...string) *harness.Result {
	r.t.Helper()
	return r.must(r.Helm.Run(r.t.Context(), args...))
}

func (r *release) install(extra ...string) *harness.Result {
	r.t.Helper()
	return r.must(r.Install(r.t.Context(), extra...))
}

func (r *release) upgrade(chart string, extra ...string) *harness.Result {
	r.t.Helper()
	return r.must(r.Upgrade(r.t.Context(), chart, extra...))
}

// push moves the image's floating tag to a fresh image and returns its digest.
func (r *release) push(img harness.Image) string {
	r.t.Helper()
	d, err := r.Push(r.t.Context(), img)
	if err != nil {
		r.t.Fatal(err)
	}
	return d
}

// cronJobPod reproduces the injected CronJob's pod.
func (r *release) cronJobPod() *harness.CronJobPod {
	r.t.Helper()
	pod, err := r.CronJobPod(r.t.Context(), r.t.TempDir())
	if err != nil {
		r.t.Fatal(err)
	}
	return pod
}

// refresh runs the refresher as the CronJob would; the exit code is in the result.
func (r *release) refresh() *harness.Result {
	r.t.Helper()
	return r.must(r.Refresh(r.t.Context(), r.t.TempDir()))
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

func (r *release) state() *harness.State {
	r.t.Helper()
	s, err := r.State(r.t.Context())
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}
