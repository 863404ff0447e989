package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// A scheduled run is at most a minute away, plus pulling and starting the pod.
const tick = harness.Tick

// Node scenario 1 + 2 with Helm 3: the CronJob fires on its own schedule, its pod pulls the
// refresher image with the pull secret and completes; then a new ingestor digest reaches the
// ingestion Job jobs-manager launches — the seed's whole value chain.
func TestNodeValueChainHelm3(t *testing.T) {
	t.Parallel()
	w := nodeSetup(t)
	r := newNodeRelease(t, w, tools.Helm3, nil)
	createPullSecret(t, w, r, "refresher-pull", false)
	r.install(nodeValues(w, "refresher-pull")...)

	_, firstPod := waitRefresherRun(t, r, time.Time{})
	checkRefresherPod(t, w, r, firstPod)
	// The first run fills the ingestor digest: a rollout; its pod launches an ingestion Job.
	waitDeployment(t, r, "the first run's fill", func(d *appsv1.Deployment) bool {
		return envOf(d) == r.Digest[ingestor]
	})
	waitRollout(t, r)
	waitIngestion(t, r, r.Digest[ingestor])

	newIngestor := r.push(ingestor)
	t.Logf("pushed ingestor %s", newIngestor)
	waitDeployment(t, r, "the next run setting "+digestEnv, func(d *appsv1.Deployment) bool {
		return envOf(d) == newIngestor
	})
	pod := waitRollout(t, r)
	job := waitIngestion(t, r, newIngestor)
	if job.Annotations["e2e.image-refresh.io/launched-by"] != pod.Name {
		t.Errorf(
			"ingestion Job %s was launched by %s, want the new jobs-manager pod %s",
			job.Name,
			job.Annotations["e2e.image-refresh.io/launched-by"],
			pod.Name,
		)
	}
}

// Node scenario 1 with the Helm 4 plugin, then 3: a new jobs-manager digest restarts the
// rollout and the new pod runs it.
func TestNodeJobsManagerRestartHelm4(t *testing.T) {
	t.Parallel()
	w := nodeSetup(t)
	r := newNodeRelease(t, w, tools.Helm4, nil)
	createPullSecret(t, w, r, "refresher-pull", false)
	r.install(nodeValues(w, "refresher-pull")...)
	_, firstPod := waitRefresherRun(t, r, time.Time{})
	checkRefresherPod(t, w, r, firstPod)
	waitDeployment(t, r, "the first run", func(d *appsv1.Deployment) bool {
		return d.Annotations[jobsManager.Annotation()] == r.Digest[jobsManager]
	})
	waitRollout(t, r)

	newJM := r.push(jobsManager)
	t.Logf("pushed jobs-manager %s", newJM)
	waitDeployment(t, r, "the next run's restart", func(d *appsv1.Deployment) bool {
		return d.Annotations[jobsManager.Annotation()] == newJM && d.Spec.Template.Annotations[restartedAt] != ""
	})
	pod := waitRollout(t, r)
	resolved, err := r.Registry.Resolve(t.Context(), r.Repo(jobsManager), harness.FloatingTag)
	if err != nil {
		t.Fatal(err)
	}
	if got := harness.ImageDigest(pod, harness.APIContainer); got != resolved || got != newJM {
		t.Errorf("new pod %s runs jobs-manager %s; the registry has %s (pushed %s)", pod.Name, got, resolved, newJM)
	}
}

// Node scenario 4: jobs-manager's tag is a multi-arch index: the pod's imageID is the index
// digest and the next run is unchanged (no restart loop).
func TestNodeMultiArchIndex(t *testing.T) {
	t.Parallel()
	w := nodeSetup(t)
	r := newNodeRelease(t, w, tools.Helm3, map[harness.Image]bool{jobsManager: true})
	createPullSecret(t, w, r, "refresher-pull", false)
	r.install(nodeValues(w, "refresher-pull")...)
	waitRefresherRun(t, r, time.Time{})
	// The first run records; the fill waits for the install's rollout (jobs-manager is Ready
	// once its ingestion Job succeeded), so it lands on the first run or the next.
	waitDeployment(t, r, "the first runs", func(d *appsv1.Deployment) bool {
		return d.Annotations[jobsManager.Annotation()] == r.Digest[jobsManager] && envOf(d) == r.Digest[ingestor]
	})
	pod := waitRollout(t, r)
	if got := harness.ImageDigest(pod, harness.APIContainer); got != r.Digest[jobsManager] {
		t.Errorf("pod %s runs jobs-manager %s, want the index digest %s", pod.Name, got, r.Digest[jobsManager])
	}
	before := r.state()
	_, next := waitRefresherRun(t, r, time.Now())
	logs := podLogs(t, r, next)
	if n := strings.Count(logs, `"decision":"unchanged"`); n != len(allImages) {
		t.Errorf("the next run decided unchanged for %d images, want all %d:\n%s", n, len(allImages), logs)
	}
	// A run during the fill's rollout may have written a waiting status, which this run turns
	// back to ok: only the status annotations may move.
	checkUnchanged(t, "the next run on an index", before, r.state(), allImages...)
}

// Node scenario 5: the refresher image cannot be pulled (wrong pull secret): the Job fails
// visibly and nothing is patched.
func TestNodeRefresherImagePullFails(t *testing.T) {
	t.Parallel()
	w := nodeSetup(t)
	r := newNodeRelease(t, w, tools.Helm3, nil)
	createPullSecret(t, w, r, "wrong-pull", true)
	r.install(
		nodeValues(
			w,
			"wrong-pull",
			"--set",
			"imageRefresh.activeDeadlineSeconds=30",
			"--set",
			"imageRefresh.backoffLimit=0",
		)...)
	before := r.state()
	var failed *batchv1.Job
	poll(t, tick+60*time.Second, "a failed refresher Job", func(ctx context.Context) (bool, error) {
		jobs, err := r.Cluster.Client.BatchV1().Jobs(r.Namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for i, j := range jobs.Items {
			if harness.JobCondition(&j, batchv1.JobFailed) {
				failed = &jobs.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	res, err := harness.Kubectl(t.Context(), r.Cluster.AdminKubeconfig, "get", "jobs", "--namespace", r.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("$ kubectl get jobs\n%s", res.Stdout)
	if !strings.Contains(res.Stdout, failed.Name) || !strings.Contains(res.Stdout, "Failed") {
		t.Errorf("kubectl get jobs does not show %s as Failed:\n%s", failed.Name, res.Stdout)
	}
	// The pull failed for lack of credentials, not for anything else.
	events, err := r.Cluster.Client.CoreV1().Events(r.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pullErrors []string
	for _, e := range events.Items {
		if e.InvolvedObject.Kind == "Pod" && strings.Contains(e.Message, refresherRepo) &&
			(e.Reason == "Failed" || e.Reason == "BackOff") {
			pullErrors = append(pullErrors, e.Message)
		}
	}
	if len(pullErrors) == 0 {
		t.Errorf("no pull failure event for the refresher image")
	} else {
		t.Logf("pull failure: %s", pullErrors[0])
	}
	checkUnchanged(t, "a refresher that never ran", before, r.state())
	for _, img := range allImages {
		if got := r.state().Annotation(img); got != "" {
			t.Errorf("%s = %q after a failed pull", img.Annotation(), got)
		}
	}
}

// waitRefresherRun waits for a Job the CronJob created on its schedule after since to
// complete.
func waitRefresherRun(t *testing.T, r *release, since time.Time) (*batchv1.Job, *corev1.Pod) {
	t.Helper()
	began := time.Now()
	job, pod, err := harness.WaitRefresherRun(t.Context(), r.Cluster, r.Namespace, since)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CronJob %s fired Job %s at %s on its schedule; complete %s later", metav1.GetControllerOf(job).Name, job.Name,
		job.CreationTimestamp.Format(time.TimeOnly), time.Since(began).Round(time.Second))
	return job, pod
}

// checkRefresherPod verifies the refresher's pod: the refresher image pulled with the pull
// secret, run as 65532 with a read-only root filesystem, JSON log lines.
func checkRefresherPod(t *testing.T, w *harness.NodeWorld, r *release, pod *corev1.Pod) {
	t.Helper()
	spec := pod.Spec
	c := spec.Containers[0]
	if c.Image != w.RefresherImage {
		t.Errorf("refresher pod image %s, want %s", c.Image, w.RefresherImage)
	}
	if got := harness.ImageDigest(pod, c.Name); got != w.RefresherDigest {
		t.Errorf("refresher pod runs %s, want %s", got, w.RefresherDigest)
	}
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsUser == nil || *spec.SecurityContext.RunAsUser != 65532 {
		t.Errorf("refresher pod security context %+v, want runAsUser 65532", spec.SecurityContext)
	}
	if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil ||
		!*c.SecurityContext.ReadOnlyRootFilesystem {
		t.Errorf("refresher container security context %+v, want a read-only root filesystem", c.SecurityContext)
	}
	if !slices.ContainsFunc(
		spec.ImagePullSecrets,
		func(s corev1.LocalObjectReference) bool { return s.Name == "refresher-pull" },
	) {
		t.Errorf("refresher pod pull secrets %v, want refresher-pull", spec.ImagePullSecrets)
	}
	pulledWithSecret := false
	for _, tok := range w.Registry.Tokens.Issued() {
		if tok.User != "" && slices.Contains(tok.Access, "repository:"+refresherRepo+":pull") {
			pulledWithSecret = true
		}
	}
	if !pulledWithSecret {
		t.Errorf("no token for %s was issued to the pull secret's user", refresherRepo)
	}
	logs := podLogs(t, r, pod)
	t.Logf("refresher pod %s log:\n%s", pod.Name, logs)
	n := 0
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("refresher log line is not JSON: %q", line)
		}
		n++
	}
	if n == 0 {
		t.Errorf("refresher pod %s logged nothing", pod.Name)
	}
}

func podLogs(t *testing.T, r *release, pod *corev1.Pod) string {
	t.Helper()
	logs, err := harness.PodLogs(t.Context(), r.Cluster, pod)
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

// waitDeployment waits until the Deployment satisfies ok.
func waitDeployment(t *testing.T, r *release, what string, ok func(*appsv1.Deployment) bool) *appsv1.Deployment {
	t.Helper()
	var dep *appsv1.Deployment
	poll(t, tick, what, func(ctx context.Context) (bool, error) {
		d, err := r.Cluster.Client.AppsV1().Deployments(r.Namespace).Get(ctx, deployName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		dep = d
		return ok(d), nil
	})
	return dep
}

func waitRollout(t *testing.T, r *release) *corev1.Pod {
	t.Helper()
	pod, err := harness.WaitRollout(t.Context(), r.Cluster, r.Namespace, deployName)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rollout complete: pod %s Ready, no other pod", pod.Name)
	return pod
}

// waitIngestion waits for an ingestion Job running the ingestor at digest to succeed, and
// checks its pod ran that digest and printed it.
func waitIngestion(t *testing.T, r *release, digest string) *batchv1.Job {
	t.Helper()
	want := r.Registry.Repository(r.Repo(ingestor)) + "@" + digest
	job, pod, err := harness.WaitIngestion(t.Context(), r.Cluster, r.Namespace, want)
	if err != nil {
		t.Fatal(err)
	}
	if got := harness.ImageDigest(pod, "ingestor"); got != digest {
		t.Errorf("ingestion pod %s ran %s, want %s", pod.Name, got, digest)
	}
	if logs := podLogs(t, r, pod); !strings.Contains(logs, digest) {
		t.Errorf("ingestion pod %s did not print %s:\n%s", pod.Name, digest, logs)
	} else {
		t.Logf("ingestion Job %s ran %s: %s", job.Name, digest, strings.TrimSpace(logs))
	}
	return job
}

func envOf(d *appsv1.Deployment) string {
	v, _ := harness.APIEnv(d.Spec.Template.Spec, digestEnv)
	return v
}

// poll polls cond every half second until it is true, fails the test on an error or after
// timeout.
func poll(t *testing.T, timeout time.Duration, what string, cond func(context.Context) (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, timeout, true, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
