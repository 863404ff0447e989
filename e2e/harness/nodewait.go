package harness

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Tick bounds a wait for a scheduled refresher run: at most a minute to the next schedule
// time, plus pulling and starting the pod.
const Tick = 150 * time.Second

// WaitRefresherRun waits for a Job the CronJob created on its schedule (created after
// since) to complete and returns it with its pod. A failed Job is an error.
func WaitRefresherRun(
	ctx context.Context,
	c *Cluster,
	namespace string,
	since time.Time,
) (*batchv1.Job, *corev1.Pod, error) {
	var done *batchv1.Job
	err := poll(ctx, Tick, func(ctx context.Context) (bool, error) {
		jobs, err := c.Client.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for i, j := range jobs.Items {
			owner := metav1.GetControllerOf(&j)
			if owner == nil || owner.Kind != "CronJob" || !j.CreationTimestamp.After(since) {
				continue
			}
			if JobCondition(&j, batchv1.JobFailed) {
				return false, fmt.Errorf("refresher Job %s failed: %s", j.Name, DescribeJob(ctx, c, &j))
			}
			if JobCondition(&j, batchv1.JobComplete) {
				done = &jobs.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("waiting for a scheduled refresher Job in %s: %w", namespace, err)
	}
	pod, err := JobPod(ctx, c, done)
	return done, pod, err
}

// RefresherRun is one refresher run on the node: its Job, pod, exit code and log.
type RefresherRun struct {
	Job      *batchv1.Job
	Pod      *corev1.Pod
	ExitCode int32
	Logs     string
}

// runs numbers the runs RunRefresherNow starts.
var runs atomic.Int64

// RunRefresherNow runs the refresher once on the node, now, as `kubectl create job
// --from=cronjob/NAME` would: a Job from the one CronJob's template (owned by it, without
// retries, so one run is one tick), and waits for its pod to exit. A scenario that counts
// ticks runs them with this, its CronJob's schedule far away.
func RunRefresherNow(ctx context.Context, c *Cluster, namespace string) (*RefresherRun, error) {
	cjs, err := c.Client.BatchV1().CronJobs(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing CronJobs in %s: %w", namespace, err)
	}
	if len(cjs.Items) != 1 {
		return nil, fmt.Errorf("want exactly one CronJob in %s, found %d", namespace, len(cjs.Items))
	}
	cj := &cjs.Items[0]
	spec := *cj.Spec.JobTemplate.Spec.DeepCopy()
	spec.BackoffLimit = new(int32)
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("%s-now-%d", cj.Name, runs.Add(1)),
			Namespace:   namespace,
			Labels:      cj.Spec.JobTemplate.Labels,
			Annotations: map[string]string{"cronjob.kubernetes.io/instantiate": "manual"},
			OwnerReferences: []metav1.OwnerReference{
				*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob")),
			},
		},
		Spec: spec,
	}
	if job, err = c.Client.BatchV1().Jobs(namespace).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating a refresher Job from CronJob %s: %w", cj.Name, err)
	}
	run := &RefresherRun{Job: job}
	err = poll(ctx, Tick, func(ctx context.Context) (bool, error) {
		pod, err := JobPod(ctx, c, job)
		if err != nil {
			return false, nil //nolint:nilerr // the Job's pod is not created yet
		}
		for _, s := range pod.Status.ContainerStatuses {
			if t := s.State.Terminated; t != nil {
				run.Pod, run.ExitCode = pod, t.ExitCode
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf(
			"waiting for refresher Job %s/%s to run: %w (%s)",
			namespace,
			job.Name,
			err,
			DescribeJob(ctx, c, job),
		)
	}
	if run.Logs, err = PodLogs(ctx, c, run.Pod); err != nil {
		return nil, err
	}
	return run, nil
}

// WaitRollout waits until the Deployment's rollout is complete — one pod, from its newest
// ReplicaSet, Ready, every older pod gone — and returns that pod.
func WaitRollout(ctx context.Context, c *Cluster, namespace, deployment string) (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := poll(ctx, Tick, func(ctx context.Context) (bool, error) {
		d, err := c.Client.AppsV1().Deployments(namespace).Get(ctx, deployment, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != 1 || st.Replicas != 1 || st.AvailableReplicas != 1 {
			return false, nil
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			return false, err
		}
		pods, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return false, err
		}
		if len(pods.Items) != 1 || !PodReady(&pods.Items[0]) {
			return false, nil
		}
		pod = &pods.Items[0]
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for the rollout of %s/%s: %w", namespace, deployment, err)
	}
	return pod, nil
}

// WaitIngestion waits for an ingestion Job (label app.kubernetes.io/component=ingestor)
// running image to complete and returns it with its pod.
func WaitIngestion(ctx context.Context, c *Cluster, namespace, image string) (*batchv1.Job, *corev1.Pod, error) {
	var job *batchv1.Job
	err := poll(ctx, Tick, func(ctx context.Context) (bool, error) {
		jobs, err := c.Client.BatchV1().
			Jobs(namespace).
			List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=ingestor"})
		if err != nil {
			return false, err
		}
		for i, j := range jobs.Items {
			if j.Spec.Template.Spec.Containers[0].Image != image {
				continue
			}
			if JobCondition(&j, batchv1.JobFailed) {
				return false, fmt.Errorf("ingestion Job %s failed: %s", j.Name, DescribeJob(ctx, c, &j))
			}
			if JobCondition(&j, batchv1.JobComplete) {
				job = &jobs.Items[i]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("waiting for an ingestion Job running %s: %w", image, err)
	}
	pod, err := JobPod(ctx, c, job)
	return job, pod, err
}

// JobPod is the one pod of a Job.
func JobPod(ctx context.Context, c *Cluster, job *batchv1.Job) (*corev1.Pod, error) {
	pods, err := c.Client.CoreV1().
		Pods(job.Namespace).
		List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job.Name})
	if err != nil {
		return nil, err
	}
	if len(pods.Items) != 1 {
		return nil, fmt.Errorf("Job %s has %d pods, want 1", job.Name, len(pods.Items))
	}
	return &pods.Items[0], nil
}

// PodLogs reads a pod's log through the API server (and so the kubelet).
func PodLogs(ctx context.Context, c *Cluster, pod *corev1.Pod) (string, error) {
	var out []byte
	var last error
	err := poll(ctx, 20*time.Second, func(ctx context.Context) (bool, error) {
		out, last = c.Client.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		return last == nil, nil
	})
	if err != nil {
		//nolint:errorlint // one cause is wrapped; the last attempt is context
		return "", fmt.Errorf("reading the log of pod %s/%s: %w (last attempt: %v)", pod.Namespace, pod.Name, err, last)
	}
	return string(out), nil
}

// JobCondition tells whether the Job has condition c.
func JobCondition(j *batchv1.Job, c batchv1.JobConditionType) bool {
	for _, cond := range j.Status.Conditions {
		if cond.Type == c && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// PodReady tells whether the pod is Ready and not being deleted.
func PodReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// ImageDigest is the digest of the image a container runs. A pod's imageID names whichever
// repository containerd first stored that digest under: compare digests only.
func ImageDigest(p *corev1.Pod, container string) string {
	for _, s := range slices.Concat(p.Status.ContainerStatuses, p.Status.InitContainerStatuses) {
		if s.Name == container {
			if _, d, ok := strings.Cut(s.ImageID, "@"); ok {
				return d
			}
			return s.ImageID
		}
	}
	return ""
}

// DescribeJob summarizes the states of a Job's pods' containers, for error messages.
func DescribeJob(ctx context.Context, c *Cluster, j *batchv1.Job) string {
	pods, err := c.Client.CoreV1().
		Pods(j.Namespace).
		List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + j.Name})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, p := range pods.Items {
		for _, s := range p.Status.ContainerStatuses {
			st := fmt.Sprintf("%+v", s.State)
			out = append(out, fmt.Sprintf("pod %s container %s: %s", p.Name, s.Name, st))
		}
	}
	return strings.Join(out, "; ")
}

func poll(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	return wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, cond)
}
