package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// Scenario 5: helm upgrade after a refresh — same chart, --reset-values, a new chart
// version — keeps the refreshed digest and the annotations; `kubectl rollout undo` brings
// back an old digest and the next run heals it. With Helm 3 (three-way merge) and Helm 4
// (server-side apply).
func TestUpgradeKeepsRefresh(t *testing.T) {
	w := setup(t)
	for _, tool := range []string{tools.Helm3, tools.Helm4} {
		t.Run(tool, func(t *testing.T) {
			r := newRelease(t, w, tool, w.registry)
			r.install()
			r.refreshOK()
			filled := r.Digest[ingestor]
			refreshedDigest := r.push(ingestor)
			r.refreshOK()
			refreshed := r.state()

			kept := func(what string) {
				t.Helper()
				s := r.state()
				if got, _ := s.Env(digestEnv); got != refreshedDigest {
					t.Errorf("after %s: %s = %q, want the refreshed %s", what, digestEnv, got, refreshedDigest)
				}
				for _, img := range allImages {
					if got := s.Annotation(img); got != r.Digest[img] {
						t.Errorf("after %s: %s = %q, want %s", what, img.Annotation(), got, r.Digest[img])
					}
				}
				checkNewReplicaSets(t, what, refreshed, s, 0)
			}
			r.upgrade(w.chart)
			kept("helm upgrade of the same chart")
			r.upgrade(w.chart, "--reset-values")
			kept("helm upgrade --reset-values")
			r.upgrade(bumpChartVersion(t, w.chart, "0.1.1-e2e"))
			kept("helm upgrade to a new chart version")
			beforeRun := r.state()
			r.refreshOK()
			checkUnchanged(t, "a run after the upgrades (nothing had moved)", beforeRun, r.state())

			if _, err := harness.Kubectl(
				t.Context(), w.cluster.AdminKubeconfig, "rollout", "undo", "deployment/"+deployName, "--namespace", r.Namespace,
			); err != nil {
				t.Fatal(err)
			}
			if got, _ := r.state().Env(digestEnv); got != filled {
				t.Fatalf("rollout undo left %s = %q, want the previous %s", digestEnv, got, filled)
			}
			r.refreshOK()
			healed := r.state()
			if got, _ := healed.Env(digestEnv); got != refreshedDigest {
				t.Errorf("the run after rollout undo left %s = %q, want %s", digestEnv, got, refreshedDigest)
			}
			if got := healed.Annotation(ingestor); got != refreshedDigest {
				t.Errorf("after healing %s = %q, want %s", ingestor.Annotation(), got, refreshedDigest)
			}
		})
	}
}

// bumpChartVersion copies the chart to a temporary directory with another version.
func bumpChartVersion(t *testing.T, chart, version string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), filepath.Base(chart))
	if err := os.CopyFS(dir, os.DirFS(chart)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "Chart.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	versionLine := regexp.MustCompile(`(?m)^version: .*$`)
	if !versionLine.Match(data) {
		t.Fatalf("%s has no version line", path)
	}
	if err := os.WriteFile(path, versionLine.ReplaceAll(data, []byte("version: "+version)), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Scenario 6: pinning all three images removes the CronJob, its RBAC and config; unpinning
// one brings them back, following only that image.
func TestPinAllThenUnpinOne(t *testing.T) {
	w := setup(t)
	r := newRelease(t, w, tools.Helm3, w.registry)
	installAndFirstRun(t, r)
	pod := r.cronJobPod()

	for _, img := range allImages {
		r.Pinned[img] = r.Digest[img]
	}
	r.upgrade(w.chart)
	ctx := t.Context()
	client := w.cluster.Client
	cronJobs, err := client.BatchV1().CronJobs(r.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roles, err := client.RbacV1().Roles(r.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bindings, err := client.RbacV1().RoleBindings(r.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	configs, err := client.CoreV1().
		ConfigMaps(r.Namespace).
		List(ctx, metav1.ListOptions{LabelSelector: config.ConfigLabel + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	if n := [4]int{len(cronJobs.Items), len(roles.Items), len(bindings.Items), len(configs.Items)}; n != [4]int{} {
		t.Errorf("all pinned: CronJobs, Roles, RoleBindings, refresh ConfigMaps = %v, want none", n)
	}
	if _, err := client.CoreV1().ServiceAccounts(r.Namespace).Get(
		ctx, pod.ServiceAccount, metav1.GetOptions{},
	); !apierrors.IsNotFound(err) {
		t.Errorf("all pinned: ServiceAccount %s still there (%v)", pod.ServiceAccount, err)
	}
	if got, _ := r.state().Env(digestEnv); got != r.Pinned[ingestor] {
		t.Errorf("all pinned: %s = %q, want the pinned %s", digestEnv, got, r.Pinned[ingestor])
	}

	delete(r.Pinned, jobsManager)
	r.upgrade(w.chart)
	pod = r.cronJobPod()
	checkRBAC(t, r, pod.ServiceAccount)
	cfg, err := config.Load(filepath.Join(pod.Root, config.MountPath, config.ConfigMapKey))
	if err != nil {
		t.Fatal(err)
	}
	var floating []string
	for _, img := range cfg.Floating() {
		floating = append(floating, img.Name)
	}
	if !slices.Equal(floating, []string{jobsManager.Name}) {
		t.Errorf("jobs-manager unpinned: floating images %q, want only %s", floating, jobsManager.Name)
	}
	newJobsManager := r.push(jobsManager)
	r.push(ingestor) // pinned: must be ignored
	before := r.state()
	if err := r.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	if res := r.must(pod.Run(ctx, w.bins.Refresher)); res.ExitCode != 0 {
		t.Fatalf("refresher failed:\n%s", res)
	}
	s := r.state()
	if got := s.Annotation(jobsManager); got != newJobsManager {
		t.Errorf("%s = %q, want %s", jobsManager.Annotation(), got, newJobsManager)
	}
	if got, _ := s.Env(digestEnv); got != r.Pinned[ingestor] {
		t.Errorf("the pinned ingestor's %s changed to %q", digestEnv, got)
	}
	checkNewReplicaSets(t, "jobs-manager moving", before, s, 1)
}
