package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher"
)

// setImageValues make jobs-manager a set-image image; a short progress deadline lets a rollout
// nobody settles fail within seconds.
var setImageValues = []string{"--set", "images.jobsManager.action=set-image", "--set", "progressDeadlineSeconds=3"}

// TestSetImage runs jobs-manager with action set-image on the real API server (Helm 3 and 4,
// through the post-renderer): the first tick records, the next pins the container to
// repository@digest (drift healed: one ReplicaSet, no restartedAt), a steady tick writes
// nothing, a push pins the new digest, an image set back to the tag (what a helm upgrade that
// renders it does) is healed, and a rollout that fails is rolled back to repository@previous.
func TestSetImage(t *testing.T) {
	w := setup(t)
	for _, helm := range []string{tools.Helm3, tools.Helm4} {
		t.Run(helm, func(t *testing.T) {
			r := newRelease(t, w, helm, w.registry)
			r.install(setImageValues...)
			repo := w.registry.Repository(r.Repo(jobsManager))
			api := func(s *harness.State) *corev1.Container {
				for i := range s.Deployment.Spec.Template.Spec.Containers {
					if c := &s.Deployment.Spec.Template.Spec.Containers[i]; c.Name == "api" {
						return c
					}
				}
				t.Fatal("no container api")
				return nil
			}
			decision := func(res *harness.Result, want refresher.Decision) {
				t.Helper()
				if rec := logLine(res.Stderr, jobsManager); !strings.Contains(rec, `"decision":"`+string(want)+`"`) {
					t.Fatalf("jobs-manager: want %s:\n%s", want, res.Stderr)
				}
			}

			s0 := r.state()
			decision(r.refreshOK(), refresher.DecisionRecord)
			if got := api(r.state()).Image; got != api(s0).Image || strings.Contains(got, "@") {
				t.Fatalf("the first observation changed the image to %s", got)
			}
			s1 := r.state()
			decision(r.refreshOK(), refresher.DecisionDrift)
			s2 := r.state()
			if got, want := api(s2).Image, repo+"@"+r.Digest[jobsManager]; got != want {
				t.Errorf("image %s, want %s", got, want)
			}
			if s2.RestartedAt() != "" {
				t.Errorf("set-image stamped %s", restartedAt)
			}
			checkNewReplicaSets(t, "pinning the image", s1, s2, 1)
			decision(r.refreshOK(), refresher.DecisionUnchanged)
			checkUnchanged(t, "a steady tick", s2, r.state())

			pushed := r.push(jobsManager)
			decision(r.refreshOK(), refresher.DecisionUpdateImage)
			s3 := r.state()
			if got := api(s3).Image; got != repo+"@"+pushed || s3.Annotation(jobsManager) != pushed {
				t.Errorf("after a push: image %s, annotation %s; want %s@%s", got, s3.Annotation(jobsManager), repo, pushed)
			}

			// A helm upgrade renders the tag again: the next tick heals it (or, if the upgrade left
			// the pin alone, finds nothing to do).
			if err := r.Settle(t.Context()); err != nil {
				t.Fatal(err)
			}
			upgradeOverPin(t, r, helm, setImageValues...)
			want := refresher.DecisionUnchanged
			if got := api(r.state()).Image; got != repo+"@"+pushed {
				t.Logf("%s upgrade rendered the image back to %s", helm, got)
				want = refresher.DecisionDrift
			}
			decision(r.refreshOK(), want)
			// A hand edit back to the tag is healed too.
			setContainerImage(t, r, repo+":"+harness.FloatingTag)
			decision(r.refreshOK(), refresher.DecisionDrift)
			if got := api(r.state()).Image; got != repo+"@"+pushed {
				t.Errorf("after the drift: image %s, want %s@%s", got, repo, pushed)
			}

			// A digest whose rollout fails is rolled back to repository@previous.
			previous := pushed
			bad := r.push(jobsManager)
			decision(r.refreshOK(), refresher.DecisionUpdateImage) // refreshOK settles the drift first, not this
			waitProgressDeadline(t, r)
			res, err := r.cronJobPod().Run(t.Context(), w.bins.Refresher) // no Settle: the rollout stays failed
			if err != nil {
				t.Fatal(err)
			}
			decision(res, refresher.DecisionRolledBack)
			s4 := r.state()
			if got := api(s4).Image; got != repo+"@"+previous || s4.Annotation(jobsManager) != previous {
				t.Errorf("after the rollback: image %s, annotation %s; want %s@%s", got, s4.Annotation(jobsManager), repo, previous)
			}
			if st := statusOf(t, s4, jobsManager); st.State != refresher.StateQuarantined || st.Quarantined != bad {
				t.Errorf("status %+v, want %s quarantined", st, bad)
			}
		})
	}
}

// upgradeOverPin runs helm upgrade over a Deployment whose image the refresher pinned. Helm 4's
// server-side apply refuses it — the image field is the refresher's ("conflict with
// \"image-refresh\"") — and changes nothing; with --force-conflicts it takes the field back.
func upgradeOverPin(t *testing.T, r *release, helm string, values ...string) {
	t.Helper()
	if helm == tools.Helm4 {
		before := r.state()
		args := append(
			[]string{"upgrade", r.Name, r.Chart, "--namespace", r.Namespace, "--post-renderer", r.PostRenderer},
			r.Values()...)
		res, err := r.Helm.Try(t.Context(), append(args, values...)...)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode == 0 || !strings.Contains(res.Stderr, `conflict with \"image-refresh\"`) ||
			!strings.Contains(res.Stderr, ".image") {
			t.Fatalf("helm 4 upgrade over a pinned image: want a conflict with image-refresh on .image:\n%s", res)
		}
		checkUnchanged(t, "a refused helm 4 upgrade", before, r.state())
		values = append(values, "--force-conflicts")
	}
	r.upgrade(r.Chart, values...)
}

func setContainerImage(t *testing.T, r *release, image string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(
		t.Context(),
		100*time.Millisecond,
		10*time.Second,
		true,
		func(ctx context.Context) (bool, error) {
			deps := r.Cluster.Client.AppsV1().Deployments(r.Namespace)
			dep, err := deps.Get(ctx, deployName, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for i := range dep.Spec.Template.Spec.Containers {
				if dep.Spec.Template.Spec.Containers[i].Name == "api" {
					dep.Spec.Template.Spec.Containers[i].Image = image
				}
			}
			_, err = deps.Update(ctx, dep, metav1.UpdateOptions{FieldManager: "kubectl-edit"})
			return err == nil, nil // a conflict with the controller's status write: read again
		},
	)
	if err != nil {
		t.Fatal(err)
	}
}

// waitProgressDeadline waits until the deployment controller gives up on the rollout.
func waitProgressDeadline(t *testing.T, r *release) {
	t.Helper()
	err := wait.PollUntilContextTimeout(
		t.Context(),
		200*time.Millisecond,
		time.Minute,
		true,
		func(ctx context.Context) (bool, error) {
			dep, err := r.Cluster.Client.AppsV1().Deployments(r.Namespace).Get(ctx, deployName, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			for _, c := range dep.Status.Conditions {
				if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
					return true, nil
				}
			}
			return false, nil
		},
	)
	if err != nil {
		t.Fatalf("the rollout never exceeded its progress deadline: %v", err)
	}
}
