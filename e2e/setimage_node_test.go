package e2e

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher"
)

// Node scenario: jobs-manager with action set-image and imagePullPolicy IfNotPresent, its tag a
// multi-arch index, installed with Helm 4. The first tick records; the next pins the container
// to repository@digest and the new pod's imageID is that digest; a push rolls to a pod whose
// imageID is the pushed digest; the tick after it is unchanged (the index digest is what runs);
// a helm upgrade that renders the tag back (Helm 4: --force-conflicts) is healed on the next tick.
func TestNodeSetImage(t *testing.T) {
	t.Parallel()
	w := nodeSetup(t)
	r := newNodeRelease(t, w, tools.Helm4, map[harness.Image]bool{jobsManager: true})
	values := []string{"--set", "images.jobsManager.action=set-image"}
	installForTicks(t, w, r, values...)
	repo := r.Registry.Repository(r.Repo(jobsManager))
	apiOf := func(d *appsv1.Deployment) *corev1.Container {
		for i := range d.Spec.Template.Spec.Containers {
			if c := &d.Spec.Template.Spec.Containers[i]; c.Name == harness.APIContainer {
				return c
			}
		}
		t.Fatal("no container api")
		return nil
	}
	if p := apiOf(r.state().Deployment).ImagePullPolicy; p != corev1.PullIfNotPresent {
		t.Fatalf("the chart rendered jobs-manager with imagePullPolicy %s, want IfNotPresent", p)
	}
	runs := func(want string) {
		t.Helper()
		pod := waitRollout(t, r)
		if got := harness.ImageDigest(pod, harness.APIContainer); got != want {
			t.Errorf("pod %s runs jobs-manager %s, want %s", pod.Name, got, want)
		}
	}

	tickNow(t, r).want(t, 0, decisions{jobsManager: refresher.DecisionRecord})
	waitRollout(t, r) // the ingestor's fill rolls out first: a change waits for it
	tickNow(t, r).want(t, 0, decisions{jobsManager: refresher.DecisionDrift})
	if got := apiOf(r.state().Deployment).Image; got != repo+"@"+r.Digest[jobsManager] {
		t.Fatalf("image %s, want %s@%s", got, repo, r.Digest[jobsManager])
	}
	runs(r.Digest[jobsManager])

	pushed := r.push(jobsManager)
	tickNow(t, r).want(t, 0, decisions{jobsManager: refresher.DecisionUpdateImage})
	runs(pushed)
	tickNow(t, r).want(t, 0, decisions{jobsManager: refresher.DecisionUnchanged})

	upgradeOverPin(
		t,
		r,
		tools.Helm4,
		append(
			w.Values("refresher-pull"),
			append([]string{"--set", "imageRefresh.schedule=" + neverScheduled}, values...)...)...)
	want := refresher.DecisionUnchanged
	if got := apiOf(r.state().Deployment).Image; got != repo+"@"+pushed {
		t.Logf("helm upgrade rendered the image back to %s", got)
		want = refresher.DecisionDrift
	}
	waitRollout(t, r)
	tickNow(t, r).want(t, 0, decisions{jobsManager: want})
	if got := apiOf(r.state().Deployment).Image; got != repo+"@"+pushed {
		t.Errorf("after the upgrade's tick the image is %s, want %s@%s", got, repo, pushed)
	}
	runs(pushed)
}
