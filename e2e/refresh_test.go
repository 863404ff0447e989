package e2e

import (
	"maps"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// installAndFirstRun installs the release with helm3 and runs the refresher once: the
// annotations are recorded and the floating ingestor digest is filled into the env.
func installAndFirstRun(t *testing.T, r *release) *harness.State {
	t.Helper()
	r.install()
	r.refreshOK()
	return r.state()
}

// Scenario 3: the refresher run as the CronJob would — the injected ServiceAccount's token,
// the mounted config, no other rights.
func TestRefresherRunsAsCronJob(t *testing.T) {
	w := setup(t)
	r := newRelease(t, w, tools.Helm3, w.registry)
	r.install()
	before := r.state()

	pod := r.cronJobPod()
	t.Run("can-i", func(t *testing.T) {
		deployment := "deployments.apps/" + deployName
		for _, c := range []struct {
			args []string
			want bool
		}{
			{[]string{"get", deployment}, true},
			{[]string{"patch", deployment}, true},
			{[]string{"list", "deployments.apps"}, false},
			{[]string{"watch", "deployments.apps"}, false},
			{[]string{"update", deployment}, false},
			{[]string{"delete", deployment}, false},
			{[]string{"create", "deployments.apps"}, false},
			{[]string{"get", "deployments.apps/other"}, false},
			{[]string{"patch", "deployments.apps/other"}, false},
			{[]string{"get", "secrets"}, false},
			{[]string{"list", "secrets"}, false},
			{[]string{"get", "configmaps"}, false},
			{[]string{"create", "pods"}, false},
			{[]string{"patch", "cronjobs.batch"}, false},
			{[]string{"create", "events.events.k8s.io"}, true},
			{[]string{"list", "events.events.k8s.io"}, false},
			{[]string{"get", "events.events.k8s.io"}, true},   // an Event's series: read it,
			{[]string{"patch", "events.events.k8s.io"}, true}, // then count it up
			{[]string{"delete", "events.events.k8s.io"}, false},
			{[]string{"create", "events"}, false}, // the core group's: the refresher uses events.k8s.io/v1
			{[]string{"create", "events.events.k8s.io", "--namespace", "default"}, false},
			{[]string{"get", deployment, "--namespace", "default"}, false},
			{[]string{"patch", deployment, "--namespace", "default"}, false},
		} {
			args := append([]string{"auth", "can-i"}, c.args...)
			if !slices.Contains(c.args, "--namespace") {
				args = append(args, "--namespace", r.Namespace)
			}
			res, err := harness.TryKubectl(t.Context(), pod.Kubeconfig, args...)
			if err != nil {
				t.Fatal(err)
			}
			// can-i exits 0 for yes and 1 for no.
			if got := res.ExitCode == 0 && strings.TrimSpace(res.Stdout) == "yes"; got != c.want || res.ExitCode > 1 {
				t.Errorf(
					"ServiceAccount %s: can-i %s = %v, want %v\n%s",
					pod.ServiceAccount,
					strings.Join(c.args, " "),
					got,
					c.want,
					res,
				)
			}
		}
	})

	// The install's rollout completes (pods Ready) before the first tick; the fill waits for it.
	if err := r.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if res := r.must(pod.Run(t.Context(), w.bins.Refresher)); res.ExitCode != 0 {
		t.Fatalf("first run failed:\n%s", res)
	}
	after := r.state()
	for _, img := range allImages {
		if got := after.Annotation(img); got != r.Digest[img] {
			t.Errorf("first run recorded %s = %q, want %s", img.Annotation(), got, r.Digest[img])
		}
	}
	if after.RestartedAt() != "" {
		t.Errorf(
			"first run restarted the rollout (%s = %s); a first observation only records",
			restartedAt,
			after.RestartedAt(),
		)
	}
	// The documented fill: the floating ingestor had no digest env, now it has the tag's.
	if got, _ := after.Env(digestEnv); got != r.Digest[ingestor] {
		t.Errorf("first run filled %s = %q, want %s", digestEnv, got, r.Digest[ingestor])
	}
	if n := len(after.ReplicaSets) - len(before.ReplicaSets); n != 1 {
		t.Errorf("the fill made %d new ReplicaSets, want 1", n)
	}
	checkPatchedBy(t, after.Deployment)
	checkAnonymousPulls(t, r)

	// Nothing moved: the second run writes nothing.
	r.refreshOK()
	checkUnchanged(t, "a second run with nothing moved", after, r.state())
}

// checkPatchedBy verifies the refresher's writes carry its field manager.
func checkPatchedBy(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	for _, mf := range dep.ManagedFields {
		if mf.Manager == config.FieldManager {
			return
		}
	}
	t.Errorf("no managedFields entry of manager %q on Deployment %s", config.FieldManager, dep.Name)
}

// checkAnonymousPulls verifies the refresher went through the token handshake: anonymous
// pull tokens for each of the release's repositories, nothing more.
func checkAnonymousPulls(t *testing.T, r *release) {
	t.Helper()
	granted := map[string]bool{}
	for _, tok := range r.Registry.Tokens.Issued() {
		if tok.User != "" {
			continue
		}
		for _, a := range tok.Access {
			granted[a] = true
		}
	}
	for _, img := range allImages {
		if want := "repository:" + r.Repo(img) + ":pull"; !granted[want] {
			t.Errorf("no anonymous token %q was issued; tokens: %v", want, granted)
		}
	}
}

// Scenario 4: a new digest on each floating tag, and on two at once.
func TestNewDigests(t *testing.T) {
	w := setup(t)
	r := newRelease(t, w, tools.Helm3, w.registry)
	s0 := installAndFirstRun(t, r)

	// The ingestor moves: the env follows (that is the rollout), no restart.
	newIngestor := r.push(ingestor)
	r.refreshOK()
	s1 := r.state()
	if got, _ := s1.Env(digestEnv); got != newIngestor {
		t.Errorf("%s = %q, want the new digest %s", digestEnv, got, newIngestor)
	}
	if got := s1.Annotation(ingestor); got != newIngestor {
		t.Errorf("%s = %q, want %s", ingestor.Annotation(), got, newIngestor)
	}
	if s1.RestartedAt() != "" {
		t.Errorf("an ingestor change restarted the rollout (%s = %s)", restartedAt, s1.RestartedAt())
	}
	checkNewReplicaSets(t, "ingestor change", s0, s1, 1)

	// jobs-manager moves: a restart, the env stays.
	newJobsManager := r.push(jobsManager)
	r.refreshOK()
	s2 := r.state()
	if s2.RestartedAt() == "" {
		t.Errorf("a jobs-manager change did not set %s", restartedAt)
	}
	if got := s2.Annotation(jobsManager); got != newJobsManager {
		t.Errorf("%s = %q, want %s", jobsManager.Annotation(), got, newJobsManager)
	}
	if got, _ := s2.Env(digestEnv); got != newIngestor {
		t.Errorf("a jobs-manager change touched %s: %q, want %s", digestEnv, got, newIngestor)
	}
	checkNewReplicaSets(t, "jobs-manager change", s1, s2, 1)

	// Both (and pods-monitor) at once: one patch, one rollout.
	for _, img := range allImages {
		r.push(img)
	}
	r.refreshOK()
	s3 := r.state()
	for _, img := range allImages {
		if got := s3.Annotation(img); got != r.Digest[img] {
			t.Errorf("%s = %q, want %s", img.Annotation(), got, r.Digest[img])
		}
	}
	if got, _ := s3.Env(digestEnv); got != r.Digest[ingestor] {
		t.Errorf("%s = %q, want %s", digestEnv, got, r.Digest[ingestor])
	}
	checkNewReplicaSets(t, "all three changing at once", s2, s3, 1)
}

// checkUnchanged requires the Deployment's labels, annotations and spec to be as before:
// everything the refresher could write — but the status annotations of the images named in
// statusOf, which a failed or waiting image moves. (The resourceVersion also moves with the
// deployment controller's status updates, so it proves nothing.)
func checkUnchanged(t *testing.T, what string, before, after *harness.State, statusOf ...harness.Image) {
	t.Helper()
	b, a := before.Deployment, after.Deployment
	if !apiequality.Semantic.DeepEqual(withoutStatus(b.Annotations, statusOf), withoutStatus(a.Annotations, statusOf)) ||
		!apiequality.Semantic.DeepEqual(b.Labels, a.Labels) ||
		!apiequality.Semantic.DeepEqual(b.Spec, a.Spec) {
		t.Errorf(
			"%s changed the Deployment:\nannotations %v\n         → %v\ntemplate %v\n      → %v",
			what,
			b.Annotations,
			a.Annotations,
			b.Spec.Template,
			a.Spec.Template,
		)
	}
	checkNewReplicaSets(t, what, before, after, 0)
}

func checkNewReplicaSets(t *testing.T, what string, before, after *harness.State, want int) {
	t.Helper()
	if got := len(after.ReplicaSets) - len(before.ReplicaSets); got != want {
		t.Errorf("%s: %d new ReplicaSets, want %d", what, got, want)
	}
}

// withoutStatus is annotations less the status annotations of images.
func withoutStatus(annotations map[string]string, images []harness.Image) map[string]string {
	out := maps.Clone(annotations)
	for _, img := range images {
		delete(out, config.StatusAnnotationPrefix+img.Name)
	}
	return out
}
