package refresher

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
)

const jobsManagerRepo = "docker.io/tracebloc/jobs-manager"

// A set-image jobs-manager whose container runs the tag with IfNotPresent, as the real client
// chart renders it: the first tick records, the next pins the image (drift healed), a push pins
// the new digest, a helm upgrade that renders the tag again is healed; the env and the other
// container are never touched.
func TestRunSetImage(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, e := f.current()
		delete(annotations, jobsManagerKey)
		dep := deployment(annotations, e)
		dep.Spec.Template.Spec.Containers[0].ImagePullPolicy = corev1.PullIfNotPresent
		return dep
	})
	f.image("jobs-manager").Action = config.ActionSetImage
	at := func(m int) time.Time { return clock.Add(time.Duration(m) * time.Minute) }
	api := func() *corev1.Container { return containerNamed(f.deployment(t), "api") }
	tick := func(m int, want Decision) []string {
		t.Helper()
		report, patches := f.safeTick(t, at(m))
		if got := report.Images[0]; got.Decision != want || report.Failed() {
			t.Fatalf("minute %d: jobs-manager %s (%v), want %s; %s", m, got.Decision, report.Err(), want, decisions(report))
		}
		return patches
	}

	tick(0, DecisionRecord)
	if got := api().Image; got != jobsManagerRepo+":prod" {
		t.Errorf("after the first observation the image is %s, want it untouched", got)
	}
	patches := tick(15, DecisionDrift)
	want := jobsManagerRepo + "@" + f.digest["jobs-manager"]
	if got := api().Image; got != want || len(patches) != 1 || strings.Contains(patches[0], `"env"`) ||
		strings.Contains(patches[0], "restartedAt") {
		t.Fatalf(
			"drift healed to %s with patches %q; want the image %s in one patch without env or restartedAt",
			got,
			patches,
			want,
		)
	}
	if e := apiEnv(f.deployment(t)); e["LOG_LEVEL"] != "info" || e[ingestorEnv] != f.digest["ingestor"] ||
		api().ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("the env %v or the pull policy %s changed", e, api().ImagePullPolicy)
	}
	setRollout(t, f, f.deployment(t).Generation, 1, 1, 1)
	if patches := tick(30, DecisionUnchanged); len(patches) != 0 {
		t.Errorf("a steady tick wrote %q", patches)
	}

	pushed, err := f.srv.PushIndex(f.image("jobs-manager").Reference()) // a multi-arch index
	if err != nil {
		t.Fatal(err)
	}
	tick(45, DecisionUpdateImage)
	if got := api().Image; got != jobsManagerRepo+"@"+pushed {
		t.Errorf("after a push the image is %s, want %s@%s", got, jobsManagerRepo, pushed)
	}
	if s := f.status(t, "jobs-manager"); s.Digest != pushed || s.Previous != f.digest["jobs-manager"] {
		t.Errorf("status %+v, want digest %s, previous %s", s, pushed, f.digest["jobs-manager"])
	}
	if n := len(f.events(t)[ReasonImageUpdated]); n != 1 {
		t.Errorf("%d ImageUpdated events, want 1", n)
	}
	setRollout(t, f, f.deployment(t).Generation, 1, 1, 1)
	tick(60, DecisionUnchanged)

	// helm upgrade renders the tag again: healed on the next tick.
	dep := f.deployment(t)
	containerNamed(dep, "api").Image = jobsManagerRepo + ":prod"
	dep.Generation++
	dep.Status.ObservedGeneration = dep.Generation
	if _, err := f.kube.AppsV1().Deployments(namespace).Update(context.Background(), dep, metav1.UpdateOptions{}); err !=
		nil {
		t.Fatal(err)
	}
	tick(75, DecisionDrift)
	if got := api().Image; got != jobsManagerRepo+"@"+pushed {
		t.Errorf("after the upgrade's drift the image is %s, want %s@%s", got, jobsManagerRepo, pushed)
	}
}

// A set-image digest whose rollout fails is rolled back to repository@previous.
func TestRunSetImageRollsBack(t *testing.T) {
	var previous string
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		var err error
		if previous, err = f.srv.PushImage(jobsManagerRepo + ":previous"); err != nil {
			t.Fatal(err)
		}
		annotations, e := f.current()
		annotations[jobsManagerKey] = previous
		dep := deployment(annotations, e)
		containerNamed(dep, "api").Image = jobsManagerRepo + "@" + previous
		return dep
	})
	f.image("jobs-manager").Action = config.ActionSetImage
	bad := f.digest["jobs-manager"]
	report, _ := f.safeTick(t, clock)
	if got := report.Images[0].Decision; got != DecisionUpdateImage {
		t.Fatalf("first tick: %s", got)
	}
	stuck(t, f, f.deployment(t).Generation, true)
	report, patches := f.safeTick(t, clock.Add(5*time.Minute))
	if got := report.Images[0]; got.Decision != DecisionRolledBack ||
		!strings.Contains(got.Reason, "image of container api set back to "+previous) {
		t.Fatalf("detecting tick: %s (%s)", got.Decision, got.Reason)
	}
	if len(patches) != 1 || !strings.Contains(patches[0], jobsManagerRepo+"@"+previous) {
		t.Errorf("rollback patches %q", patches)
	}
	dep := f.deployment(t)
	if got := containerNamed(dep, "api").Image; got != jobsManagerRepo+"@"+previous ||
		dep.Annotations[jobsManagerKey] != previous {
		t.Errorf(
			"after the rollback image %s, annotation %s; want both at %s",
			got,
			dep.Annotations[jobsManagerKey],
			previous,
		)
	}
	if s := f.status(t, "jobs-manager"); s.State != StateQuarantined || s.Quarantined != bad {
		t.Errorf("status %+v", s)
	}
}

// set-image goes through the gates like every change that moves what runs: an unsigned push is
// refused (nothing but the status written), a signed one pins exactly the verified digest.
func TestRunSetImageSignatureGate(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, e := f.current()
		dep := deployment(annotations, e)
		containerNamed(dep, "api").Image = jobsManagerRepo + "@" + f.digest["jobs-manager"]
		return dep
	})
	f.image("jobs-manager").Action = config.ActionSetImage
	f.cfg.Spec.Verification = &config.Verification{KeysConfigMap: "keys", RecheckAfter: config.Duration(time.Hour)}
	trusted := newTestKey(t, "release.pub")
	tick := func(now time.Time) (Report, []string) {
		t.Helper()
		f.kube.ClearActions()
		opts := f.options()
		opts.Now, opts.Keys = func() time.Time { return now }, []signature.PublicKey{trusted.pub}
		report := f.run(t, opts)
		return report, f.patches(t)
	}
	unsigned, err := f.srv.PushImage(jobsManagerRepo + ":prod")
	if err != nil {
		t.Fatal(err)
	}
	report, patches := tick(clock)
	if jm := report.Images[0]; jm.Decision != DecisionFailed || jm.Reason != signature.ReasonMissing ||
		jm.Intended != DecisionUpdateImage {
		t.Fatalf("unsigned push: %s (%s, intended %s)", jm.Decision, jm.Reason, jm.Intended)
	}
	if len(patches) != 1 || strings.Contains(patches[0], `"spec"`) ||
		strings.Contains(patches[0], `"`+jobsManagerKey+`"`) {
		t.Errorf("patches %q: want the failed status only", patches)
	}
	f.sign(t, trusted, jobsManagerRepo, unsigned)
	report, _ = tick(clock.Add(2 * time.Hour))
	if jm := report.Images[0]; jm.Decision != DecisionUpdateImage || jm.Signature.State != SignatureVerified {
		t.Fatalf("signed: %s (signature %s, %v)", jm.Decision, jm.Signature, jm.Err)
	}
	if got := containerNamed(f.deployment(t), "api").Image; got != jobsManagerRepo+"@"+unsigned {
		t.Errorf("image %s, want the verified %s@%s", got, jobsManagerRepo, unsigned)
	}
}
