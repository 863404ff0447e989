package refresher

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

// seedLeftover is the Deployment as the chart's own refresh script leaves it (kubectl set image
// repo@digest, then kubectl annotate): both containers pinned by digest with IfNotPresent, its
// last-refreshed-* annotations recording those digests, and its own bookkeeping annotations.
func seedLeftover(f *fixture, jm, pm string) *appsv1.Deployment {
	annotations, e := f.current()
	annotations[jobsManagerKey], annotations[podsMonitorKey] = jm, pm
	annotations["tracebloc.io/refresh-attempt"] = "2"
	annotations["tracebloc.io/refresh-flap-detected"] = "false"
	annotations["tracebloc.io/stale-pin-jobs-manager"] = "true"
	dep := deployment(annotations, e)
	api, monitor := containerNamed(dep, "api"), containerNamed(dep, "pods-monitor")
	api.Image, api.ImagePullPolicy = jobsManagerRepo+"@"+jm, corev1.PullIfNotPresent
	monitor.Image, monitor.ImagePullPolicy = "docker.io/tracebloc/pods-monitor@"+pm, corev1.PullIfNotPresent
	old := metav1.NewTime(clock.Add(-2 * time.Hour))
	dep.ManagedFields = []metav1.ManagedFieldsEntry{
		{
			Manager:    "kubectl-annotate",
			Operation:  metav1.ManagedFieldsOperationUpdate,
			Time:       &old,
			FieldsType: "FieldsV1",
			FieldsV1:   metav1.NewFieldsV1(`{"f:metadata":{"f:annotations":{"f:` + jobsManagerKey + `":{}}}}`),
		},
	}
	return dep
}

// The first tick after switching from the chart's own refresh script to set-image with the same
// annotation keys: the script's records are adopted as A, its live repo@digest pins are what
// set-image writes — no rollout, no write at all while the tags stay; its bookkeeping
// annotations are left as they are (the refresher reads and writes only its own).
func TestRunMigrationFromTheSeedScript(t *testing.T) {
	setImage := func(f *fixture) {
		f.image("jobs-manager").Action = config.ActionSetImage
		f.image("pods-monitor").Action = config.ActionSetImage
	}
	t.Run("tags where the script left them", func(t *testing.T) {
		f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
			return seedLeftover(f, f.digest["jobs-manager"], f.digest["pods-monitor"])
		})
		setImage(f)
		before := f.deployment(t)
		report, patches := f.safeTick(t, clock)
		if report.Failed() || report.Images[0].Decision != DecisionUnchanged ||
			report.Images[1].Decision != DecisionUnchanged || len(patches) != 0 {
			t.Fatalf("first tick: %s, patches %q; want unchanged and nothing written", decisions(report), patches)
		}
		if after := f.deployment(t); after.ResourceVersion != before.ResourceVersion {
			t.Errorf("the Deployment was written")
		}
		if strings.Contains(f.logs.String(), "another writer") {
			t.Errorf("the script's old ownership was warned about:\n%s", f.logs.String())
		}
	})
	t.Run("a tag moved since", func(t *testing.T) {
		var old string
		f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
			var err error
			if old, err = f.srv.PushImage(jobsManagerRepo + ":old"); err != nil {
				t.Fatal(err)
			}
			return seedLeftover(f, old, f.digest["pods-monitor"])
		})
		setImage(f)
		report, patches := f.safeTick(t, clock)
		if report.Images[0].Decision != DecisionUpdateImage || report.Images[1].Decision != DecisionUnchanged ||
			len(patches) != 1 {
			t.Fatalf("first tick: %s, patches %q; want one update-image", decisions(report), patches)
		}
		dep := f.deployment(t)
		if got := containerNamed(dep, "api").Image; got != jobsManagerRepo+"@"+f.digest["jobs-manager"] {
			t.Errorf("image %s", got)
		}
		if s := f.status(t, "jobs-manager"); s.Previous != old {
			t.Errorf("status %+v: want the script's digest %s as the rollback target", s, old)
		}
		for _, k := range []string{
			"tracebloc.io/refresh-attempt",
			"tracebloc.io/refresh-flap-detected",
			"tracebloc.io/stale-pin-jobs-manager",
		} {
			if _, ok := dep.Annotations[k]; !ok {
				t.Errorf("the script's annotation %s was removed", k)
			}
		}
	})
}
