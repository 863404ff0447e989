package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/testutil/golden"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher"
)

// The safety scenarios on the node (the settled check, soak, platform gate, quarantine and
// rollback) count ticks: each runs its ticks itself with harness.RunRefresherNow — the
// CronJob's own Job template, on the node — while the CronJob's schedule is a year away.
const neverScheduled = "0 0 29 2 *" // 29 February: years apart (a day of week too would OR with it)

// installForTicks installs the release on the node with the schedule out of the way and waits
// for its rollout (as helm install --wait would): a change waits for a rollout in flight.
func installForTicks(t *testing.T, w *harness.NodeWorld, r *release, extra ...string) {
	t.Helper()
	createPullSecret(t, w, r, "refresher-pull", false)
	r.install(
		nodeValues(w, "refresher-pull", append([]string{"--set", "imageRefresh.schedule=" + neverScheduled}, extra...)...)...)
	waitRollout(t, r)
}

// nodeTick is one refresher run on the node: its exit code and each image's decision.
type nodeTick struct {
	run       *harness.RefresherRun
	decisions decisions
	lines     map[harness.Image]map[string]any
}

// tickNow runs one tick on the node and parses its log.
func tickNow(t *testing.T, r *release) *nodeTick {
	t.Helper()
	run, err := harness.RunRefresherNow(t.Context(), r.Cluster, r.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	tick := &nodeTick{run: run, decisions: decisions{}, lines: map[harness.Image]map[string]any{}}
	for line := range strings.SplitSeq(strings.TrimSpace(run.Logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("refresher pod %s: log line is not JSON: %q", run.Pod.Name, line)
		}
		for _, img := range allImages {
			if rec["image"] == img.Name && rec["decision"] != nil {
				tick.decisions[img] = refresher.Decision(rec["decision"].(string))
				tick.lines[img] = rec
			}
		}
	}
	t.Logf("tick %s (pod %s): exit %d, %v", run.Job.Name, run.Pod.Name, run.ExitCode, tick.decisions)
	return tick
}

// want fails the test unless the tick exited with code and decided want for each image it
// names.
func (k *nodeTick) want(t *testing.T, code int32, want decisions) {
	t.Helper()
	if k.run.ExitCode != code {
		t.Errorf("tick %s exited %d, want %d", k.run.Job.Name, k.run.ExitCode, code)
	}
	for img, d := range want {
		if got := k.decisions[img]; got != d {
			t.Errorf("tick %s: %s decided %q, want %q; its log line: %v", k.run.Job.Name, img.Name, got, d, k.lines[img])
		}
	}
	if t.Failed() {
		t.Fatalf("tick %s log:\n%s", k.run.Job.Name, k.run.Logs)
	}
}

// events are the refresher's Events on the target, oldest first, as "Reason: note" of the
// image's Events, an Event with a series once per tick it counts.
func events(t *testing.T, r *release, img harness.Image) []string {
	t.Helper()
	list, err := r.Cluster.Client.EventsV1().Events(r.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(list.Items, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	var out []string
	for _, e := range list.Items {
		if e.ReportingController == refresher.EventController && e.Regarding.Name == deployName &&
			strings.HasPrefix(e.Note, "image "+img.Name+" (") {
			// A repeating outcome is one Event whose series counts its ticks: one entry per tick.
			n := 1
			if e.Series != nil {
				n = int(e.Series.Count)
			}
			for range n {
				out = append(out, e.Reason+": "+e.Note)
			}
		}
	}
	return out
}

// reasons are the reasons of events, in order.
func reasons(events []string) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i], _, _ = strings.Cut(e, ":")
	}
	return out
}

// statusOf is the image's status annotation on the Deployment.
func statusOf(t *testing.T, s *harness.State, img harness.Image) refresher.Status {
	t.Helper()
	var st refresher.Status
	raw := s.Deployment.Annotations[config.StatusAnnotationPrefix+img.Name]
	if raw == "" {
		return st
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("status annotation of %s: %v: %q", img.Name, err, raw)
	}
	return st
}

// waitCrashLoop waits until one pod of the release has restarted its container api after it
// exited 1 — the new digest crash-loops — while another pod is still Ready (the rollout is
// stuck, not down).
func waitCrashLoop(t *testing.T, r *release) {
	t.Helper()
	poll(t, 2*time.Minute, "a crash-looping jobs-manager pod", func(ctx context.Context) (bool, error) {
		pods, err := r.Cluster.Client.CoreV1().
			Pods(r.Namespace).
			List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=client"})
		if err != nil {
			return false, err
		}
		crashing, ready := "", ""
		for _, p := range pods.Items {
			for _, s := range p.Status.ContainerStatuses {
				if s.Name == harness.APIContainer && s.RestartCount > 0 && s.LastTerminationState.Terminated != nil &&
					s.LastTerminationState.Terminated.ExitCode == 1 {
					crashing = p.Name
				}
			}
			if harness.PodReady(&p) {
				ready = p.Name
			}
		}
		if crashing != "" && ready != "" && crashing != ready {
			t.Logf("pod %s crash-loops; pod %s still Ready", crashing, ready)
			return true, nil
		}
		return false, nil
	})
}

// No restart storm, on the node: a jobs-manager digest that crash-loops is restarted exactly once. Each
// next tick waits for that rollout (exit 0, a Waiting Event each, the Deployment written only
// when the wait begins) until spec.waitTimeout (1m), then fails (exit 1, written once) — never
// a second restart while the rollout is stuck. Once a human undoes the rollout, the next tick restarts once to the new
// digest and its pod runs it.
func TestNodeNoRestartStorm(t *testing.T) {
	t.Parallel()
	w := nodeSetup(t)
	r := newNodeRelease(t, w, tools.Helm3, nil)
	// The waits are the subject here, not quarantine: however slow a loaded machine makes the
	// ticks, neither the progress deadline nor spec.rolloutTimeout may end the rollout first.
	installForTicks(
		t,
		w,
		r,
		"--set",
		"progressDeadlineSeconds=3600",
		"--set",
		"imageRefresh.rolloutTimeout=2h",
		"--set",
		"imageRefresh.waitTimeout=1m",
	)
	tickNow(t, r).want(t, 0, decisions{
		jobsManager: refresher.DecisionRecord,
		podsMonitor: refresher.DecisionRecord,
		ingestor:    refresher.DecisionFill,
	})
	waitRollout(t, r)

	bad, err := r.PushWith(t.Context(), jobsManager, w.PushVariant(harness.Variant{Crash: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed a jobs-manager that crashes on start: %s", bad)
	tickNow(t, r).want(t, 0, decisions{
		jobsManager: refresher.DecisionRestart,
		podsMonitor: refresher.DecisionUnchanged,
		ingestor:    refresher.DecisionUnchanged,
	})
	restarted := r.state()
	if restarted.Annotation(jobsManager) != bad || restarted.RestartedAt() == "" {
		t.Fatalf(
			"after the restart: %s = %q, restartedAt %q",
			jobsManager.Annotation(),
			restarted.Annotation(jobsManager),
			restarted.RestartedAt(),
		)
	}
	waitCrashLoop(t, r)

	// The rollout this refresher started never completes: each tick waits for it — the status
	// is written when the wait begins, never on the waiting ticks after (no write, no new
	// generation) — until spec.waitTimeout (1m here) passes; then the image fails (exit 1),
	// written once, and still does not restart. The tag stays: a crash-looping pod re-pulls the
	// tag on each container restart (pull policy Always), so a good digest pushed now would heal
	// the rollout by itself — the unit test TestRunStormOneRestartThenWaitsThenFails covers a
	// tag that moves while the rollout stays stuck.
	steady := func(what string, before, after *harness.State) {
		t.Helper()
		if b, a := before.Deployment, after.Deployment; b.Generation != a.Generation ||
			b.Annotations[config.StatusAnnotationPrefix+jobsManager.Name] !=
				a.Annotations[config.StatusAnnotationPrefix+jobsManager.Name] {
			t.Errorf(
				"%s wrote the Deployment: generation %d → %d, status %s → %s",
				what,
				b.Generation,
				a.Generation,
				b.Annotations[config.StatusAnnotationPrefix+jobsManager.Name],
				a.Annotations[config.StatusAnnotationPrefix+jobsManager.Name],
			)
		}
	}
	tickNow(t, r).want(t, 0, decisions{
		jobsManager: refresher.DecisionWaiting,
		podsMonitor: refresher.DecisionUnchanged,
		ingestor:    refresher.DecisionUnchanged,
	})
	waiting := r.state()
	checkUnchanged(t, "the first waiting tick", restarted, waiting, jobsManager)
	st := statusOf(t, waiting, jobsManager)
	if st.State != refresher.StateWaiting || st.WaitingSince == "" {
		t.Fatalf("waiting: status %+v, want waiting with waitingSince", st)
	}
	for i := range 2 {
		tickNow(t, r).want(t, 0, decisions{
			jobsManager: refresher.DecisionWaiting,
			podsMonitor: refresher.DecisionUnchanged,
			ingestor:    refresher.DecisionUnchanged,
		})
		steady(fmt.Sprintf("waiting tick %d", i+2), waiting, r.state())
	}
	began, err := time.Parse(time.RFC3339, st.WaitingSince)
	if err != nil {
		t.Fatal(err)
	}
	if wait := time.Until(began.Add(time.Minute + 2*time.Second)); wait > 0 {
		t.Logf("waiting %s for spec.waitTimeout (waiting since %s)", wait.Round(time.Second), st.WaitingSince)
		select {
		case <-time.After(wait):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
	tickNow(t, r).want(t, 1, decisions{
		jobsManager: refresher.DecisionFailed,
		podsMonitor: refresher.DecisionUnchanged,
		ingestor:    refresher.DecisionUnchanged,
	})
	failed := r.state()
	checkUnchanged(t, "the failing tick", restarted, failed, jobsManager)
	if st := statusOf(t, failed, jobsManager); st.State != refresher.StateFailed ||
		!strings.Contains(st.Error, "spec.waitTimeout") ||
		st.WaitingSince != statusOf(t, waiting, jobsManager).WaitingSince {
		t.Errorf("after the timeout: status %+v, want failed naming spec.waitTimeout, waiting since as before", st)
	}
	tickNow(t, r).want(t, 1, decisions{
		jobsManager: refresher.DecisionFailed,
		podsMonitor: refresher.DecisionUnchanged,
		ingestor:    refresher.DecisionUnchanged,
	})
	steady("a second failing tick", failed, r.state())
	if got, want := reasons(events(t, r, jobsManager)), []string{
		"Recorded", "Restarted", "Waiting", "Waiting", "Waiting", "Failed", "Failed",
	}; !slices.Equal(got, want) {
		t.Errorf("jobs-manager Events %q, want %q:\n%s", got, want, strings.Join(events(t, r, jobsManager), "\n"))
	}

	// A human undoes the rollout and a good build is pushed: the next tick restarts once.
	res, err := harness.Kubectl(
		t.Context(),
		r.Cluster.AdminKubeconfig,
		"rollout",
		"undo",
		"deployment/"+deployName,
		"--namespace",
		r.Namespace,
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("$ kubectl rollout undo: %s", strings.TrimSpace(res.Stdout))
	waitRollout(t, r)
	good := r.push(jobsManager)
	t.Logf("pushed a good jobs-manager: %s", good)
	tickNow(t, r).want(t, 0, decisions{
		jobsManager: refresher.DecisionRestart,
		podsMonitor: refresher.DecisionUnchanged,
		ingestor:    refresher.DecisionUnchanged,
	})
	pod := waitRollout(t, r)
	if got := harness.ImageDigest(pod, harness.APIContainer); got != good {
		t.Errorf("pod %s runs jobs-manager %s after the restart, want %s", pod.Name, got, good)
	}
	if s := r.state(); s.Annotation(jobsManager) != good || statusOf(t, s, jobsManager).State != refresher.StateOK {
		t.Errorf(
			"after the restart: %s = %q, status %+v",
			jobsManager.Annotation(),
			s.Annotation(jobsManager),
			statusOf(t, s, jobsManager),
		)
	}
	settled := r.state()
	tickNow(t, r).want(t, 0, decisions{
		jobsManager: refresher.DecisionUnchanged,
		podsMonitor: refresher.DecisionUnchanged,
		ingestor:    refresher.DecisionUnchanged,
	})
	checkUnchanged(t, "the steady tick after the restart", settled, r.state())
	t.Logf("jobs-manager Events:\n%s", strings.Join(events(t, r, jobsManager), "\n"))
}

// Soak on the node: with imageRefresh.soak, a tag pushed twice within the soak is
// applied once — the last digest — and only after it stayed unchanged for the soak.
func TestNodeSoak(t *testing.T) {
	t.Parallel()
	const soak = 20 * time.Second
	w := nodeSetup(t)
	r := newNodeRelease(t, w, tools.Helm3, nil)
	installForTicks(t, w, r, "--set", "imageRefresh.soak="+soak.String())
	// The first observation records; the ingestor's fill applies a digest, so it soaks too.
	tickNow(t, r).want(t, 0, decisions{
		jobsManager: refresher.DecisionRecord,
		podsMonitor: refresher.DecisionRecord,
		ingestor:    refresher.DecisionSoaking,
	})
	sleepPastSoak(t, r, soak)
	tickNow(t, r).want(t, 0, decisions{ingestor: refresher.DecisionFill})
	waitRollout(t, r)
	before := r.state()

	a := r.push(ingestor)
	tickNow(t, r).want(t, 0, decisions{ingestor: refresher.DecisionSoaking, jobsManager: refresher.DecisionUnchanged})
	sa := r.state()
	checkUnchanged(t, "soaking "+a, before, sa, ingestor)
	if st := statusOf(t, sa, ingestor); st.State != refresher.StateSoaking || st.Pending != a {
		t.Errorf("soaking: status %+v, want pending %s", st, a)
	}
	b := r.push(ingestor)
	tickNow(t, r).want(t, 0, decisions{ingestor: refresher.DecisionSoaking})
	sb := r.state()
	checkUnchanged(t, "soaking "+b, before, sb, ingestor)
	if st, old := statusOf(t, sb, ingestor), statusOf(t, sa, ingestor); st.Pending != b ||
		st.PendingSince <= old.PendingSince {
		t.Errorf("the tag moved during the soak: status %+v (was %+v), want pending %s from a new first sighting", st, old, b)
	}
	sleepPastSoak(t, r, soak)
	tickNow(t, r).want(t, 0, decisions{ingestor: refresher.DecisionUpdateEnv})
	if s := r.state(); envOrEmpty(s) != b {
		t.Fatalf("after the soak: %s = %q, want %s", digestEnv, envOrEmpty(s), b)
	}
	waitRollout(t, r)
	waitIngestion(t, r, b)
	var applied []string
	for _, e := range events(t, r, ingestor) {
		if strings.HasPrefix(e, refresher.ReasonEnvUpdated+":") {
			applied = append(applied, e)
		}
		if strings.Contains(e, a) && !strings.HasPrefix(e, refresher.ReasonSoaking+":") {
			t.Errorf("an Event applies the digest pushed over during its soak: %s", e)
		}
	}
	if len(applied) != 2 || !strings.Contains(applied[1], "→ "+b) {
		t.Errorf("EnvUpdated Events %q, want the fill and then one update to %s", applied, b)
	}
	t.Logf("ingestor Events:\n%s", strings.Join(events(t, r, ingestor), "\n"))
}

// sleepPastSoak sleeps until the ingestor's pending digest (its status annotation) has soaked
// for soak, by the refresher's own record of its first sighting.
func sleepPastSoak(t *testing.T, r *release, soak time.Duration) {
	t.Helper()
	st := statusOf(t, r.state(), ingestor)
	since, err := time.Parse(time.RFC3339, st.PendingSince)
	if err != nil {
		t.Fatalf("ingestor status %+v: no pending digest: %v", st, err)
	}
	wait := time.Until(since.Add(soak + time.Second))
	if wait <= 0 {
		return
	}
	t.Logf("waiting %s for the soak of %s (first seen %s)", wait.Round(time.Second), st.Pending, st.PendingSince)
	select {
	case <-time.After(wait):
	case <-t.Context().Done():
		t.Fatal(t.Context().Err())
	}
}

func envOrEmpty(s *harness.State) string {
	v, _ := s.Env(digestEnv)
	return v
}

// Platform gate on the node: with imageRefresh.platforms [linux/amd64, linux/arm64],
// an ingestor index pushed without arm64 is refused (failed, platform-missing, exit 1, nothing
// written), the next full index is applied and its ingestion Job runs on the node. `refresher
// status` then shows what the pods run.
func TestNodePlatformGate(t *testing.T) {
	t.Parallel()
	w := nodeSetup(t)
	all := map[harness.Image]bool{jobsManager: true, podsMonitor: true, ingestor: true}
	r := newNodeRelease(t, w, tools.Helm3, all)
	installForTicks(
		t,
		w,
		r,
		"--set",
		"imageRefresh.platforms[0]=linux/amd64",
		"--set",
		"imageRefresh.platforms[1]=linux/arm64",
	)
	tickNow(t, r).want(t, 0, decisions{
		jobsManager: refresher.DecisionRecord,
		podsMonitor: refresher.DecisionRecord,
		ingestor:    refresher.DecisionFill,
	})
	waitRollout(t, r)
	before := r.state()

	half, err := r.PushWith(t.Context(), ingestor, w.PushVariant(harness.Variant{Archs: []string{"amd64"}}))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed an ingestor index without arm64: %s", half)
	k := tickNow(t, r)
	k.want(
		t,
		1,
		decisions{
			ingestor:    refresher.DecisionFailed,
			jobsManager: refresher.DecisionUnchanged,
			podsMonitor: refresher.DecisionUnchanged,
		},
	)
	if line := fmt.Sprint(k.lines[ingestor]); !strings.Contains(line, "linux/arm64") {
		t.Errorf("the refusal does not name the missing platform: %s", line)
	}
	refused := r.state()
	checkUnchanged(t, "the refused index", before, refused, ingestor)
	if st := statusOf(t, refused, ingestor); st.State != refresher.StateFailed ||
		!strings.Contains(st.Error, "linux/arm64") {
		t.Errorf("after the refusal: status %+v, want failed naming linux/arm64", st)
	}
	if evs := events(t, r, ingestor); len(evs) == 0 || !strings.HasPrefix(evs[len(evs)-1], refresher.ReasonFailed+":") ||
		!strings.Contains(evs[len(evs)-1], "linux/arm64") {
		t.Errorf("the last ingestor Event is not a Failed naming linux/arm64: %q", evs)
	}

	full := r.push(ingestor)
	t.Logf("pushed the full ingestor index: %s", full)
	tickNow(t, r).want(t, 0, decisions{ingestor: refresher.DecisionUpdateEnv})
	waitRollout(t, r)
	waitIngestion(t, r, full)

	// What runs where: every image current, running digests from the pods' imageID (the
	// jobs-manager and pods-monitor indexes) and from the env (the ingestor).
	out, code := r.status()
	if code != 0 {
		t.Fatalf("status exit %d, want 0:\n%s", code, out)
	}
	digests := map[string]string{"refused-ingestor": half}
	for _, img := range allImages {
		digests[img.Name] = r.Digest[img]
	}
	golden.Assert(t, filepath.Join("testdata", "status-node.txt"), []byte(maskTable(t, out, r.Namespace, digests)))
	raw, code := r.status("-o", "json")
	var rows []refresher.StatusRow
	if err := json.Unmarshal([]byte(raw), &rows); err != nil || code != 0 {
		t.Fatalf("status -o json: exit %d, %v:\n%s", code, err, raw)
	}
	for _, row := range rows {
		img := harness.Image{}
		for _, i := range allImages {
			if i.Name == row.Image {
				img = i
			}
		}
		// From the pods: their imageID (jobs-manager, pods-monitor), their env (the ingestor).
		if row.RunningFrom != "pods" || !slices.Equal(row.Running, []string{r.Digest[img]}) ||
			row.State != refresher.ViewCurrent {
			t.Errorf("status row %+v: want %s current, running %s from its pods", row, row.Image, r.Digest[img])
		}
	}
}

// Quarantine and rollback on the node: an ingestor digest whose consumer never becomes
// Ready (its ingestion Job fails, jobs-manager crash-loops) exceeds the progress deadline; the
// next tick sets the env back to the previous digest in one patch and quarantines the bad one;
// later ticks do not try it again; a new push is applied.
func TestNodeQuarantineRollback(t *testing.T) {
	t.Parallel()
	w := nodeSetup(t)
	r := newNodeRelease(t, w, tools.Helm3, nil)
	installForTicks(t, w, r, "--set", "progressDeadlineSeconds=15")
	tickNow(t, r).want(t, 0, decisions{
		jobsManager: refresher.DecisionRecord,
		podsMonitor: refresher.DecisionRecord,
		ingestor:    refresher.DecisionFill,
	})
	waitRollout(t, r)
	goodDigest := r.Digest[ingestor]

	bad, err := r.PushWith(t.Context(), ingestor, w.PushVariant(harness.Variant{Crash: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed an ingestor that crashes: %s", bad)
	tickNow(t, r).want(t, 0, decisions{ingestor: refresher.DecisionUpdateEnv})
	waitCrashLoop(t, r)
	waitDeployment(t, r, "ProgressDeadlineExceeded", func(d *appsv1.Deployment) bool {
		for _, c := range d.Status.Conditions {
			if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse &&
				c.Reason == "ProgressDeadlineExceeded" {
				return true
			}
		}
		return false
	})

	before := r.state()
	tickNow(t, r).want(t, 0, decisions{
		ingestor:    refresher.DecisionRolledBack,
		jobsManager: refresher.DecisionUnchanged,
		podsMonitor: refresher.DecisionUnchanged,
	})
	rolled := r.state()
	if envOrEmpty(rolled) != goodDigest || rolled.Annotation(ingestor) != goodDigest {
		t.Errorf(
			"after the rollback: %s = %q, %s = %q, want both %s",
			digestEnv,
			envOrEmpty(rolled),
			ingestor.Annotation(),
			rolled.Annotation(ingestor),
			goodDigest,
		)
	}
	if st := statusOf(t, rolled, ingestor); st.State != refresher.StateQuarantined || st.Quarantined != bad {
		t.Errorf("after the rollback: status %+v, want quarantined %s", st, bad)
	}
	if rolled.Deployment.Generation != before.Deployment.Generation+1 {
		t.Errorf(
			"the rollback took generation %d → %d, want one patch",
			before.Deployment.Generation,
			rolled.Deployment.Generation,
		)
	}
	pod := waitRollout(t, r)
	if got, _ := harness.APIEnv(pod.Spec, digestEnv); got != goodDigest {
		t.Errorf("pod %s runs with %s=%s after the rollback, want %s", pod.Name, digestEnv, got, goodDigest)
	}
	if job := waitIngestion(t, r, goodDigest); job.Annotations["e2e.image-refresh.io/launched-by"] != pod.Name {
		t.Errorf(
			"ingestion Job %s was launched by %s, want the running pod %s",
			job.Name,
			job.Annotations["e2e.image-refresh.io/launched-by"],
			pod.Name,
		)
	}

	// The tag still names the bad digest: held, nothing written, no Event.
	held := r.state()
	nEvents := len(events(t, r, ingestor))
	tickNow(t, r).want(t, 0, decisions{ingestor: refresher.DecisionQuarantined})
	checkUnchanged(t, "a tick on the quarantined digest", held, r.state())
	if n := len(events(t, r, ingestor)); n != nEvents {
		t.Errorf("a tick on the quarantined digest made %d Events", n-nEvents)
	}
	out, code := r.status()
	if code != 3 || !strings.Contains(out, "quarantined") {
		t.Errorf("status (exit %d) does not show the quarantine:\n%s", code, out)
	}
	t.Logf("$ refresher status\n%s", out)

	next := r.push(ingestor)
	tickNow(t, r).want(t, 0, decisions{ingestor: refresher.DecisionUpdateEnv})
	waitRollout(t, r)
	waitIngestion(t, r, next)
	if got, want := reasons(events(t, r, ingestor)), []string{
		"EnvUpdated", "EnvUpdated", "RolledBack", "EnvUpdated",
	}; !slices.Equal(got, want) {
		t.Errorf("ingestor Events %q, want %q:\n%s", got, want, strings.Join(events(t, r, ingestor), "\n"))
	}
}
